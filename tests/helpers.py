"""Shared test helpers: invertibility, log-det checks and variable perturbation."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers


def assert_finite(*tensors):
  for t in tensors:
    assert np.all(np.isfinite(np.asarray(t))), 'non-finite values'


def perturb_variables(module, scale=0.1, seed=0):
  """Adds N(0, scale^2) noise to every trainable variable, so zero-initialised layers are no
  longer the identity and log-dets are not trivially zero."""
  rng = np.random.default_rng(seed)
  for v in module.trainable_variables:
    v.assign_add(scale * rng.standard_normal(v.shape).astype(np.float32))


def assert_invertible(bijector, x, atol=1e-4):
  """inverse(forward(z)) == z and forward(inverse(x)) == x, each pass recomputed from fresh
  tensors (TFP caches by tensor identity), and -ILDJ(x) == FLDJ(z) at z = inverse(x)."""
  z, ildj = bijector.inverse_and_log_det(tf.constant(np.asarray(x)))
  x_back, fldj = bijector.forward_and_log_det(tf.constant(z.numpy()))
  np.testing.assert_allclose(x_back.numpy(), np.asarray(x), atol=atol)
  np.testing.assert_allclose(-ildj.numpy(), fldj.numpy(), rtol=1e-4, atol=1e-3)
  z_back, _ = bijector.inverse_and_log_det(tf.constant(x_back.numpy()))
  np.testing.assert_allclose(z_back.numpy(), z.numpy(), atol=atol * 10)
  assert_finite(z, ildj, fldj)
  return z, ildj


def autodiff_log_det(fn, x):
  """log|det J| of a map on one example x (no batch axis), by autodiff Jacobian and slogdet."""
  x = tf.constant(np.asarray(x)[None])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(x)
  jac = tape.jacobian(y, x).numpy().astype(np.float64)
  d = int(np.prod(x.shape[1:]))
  sign, logdet = np.linalg.slogdet(jac.reshape(d, d))
  assert sign != 0, 'singular Jacobian'
  return logdet


def assert_all_gradients_nonzero(variables, grads):
  """Every variable gets a gradient that is not None and not all zeros."""
  assert len(variables) == len(grads) and variables
  for v, g in zip(variables, grads):
    assert g is not None, f'no gradient reaches {v.name}'
    g = tf.convert_to_tensor(g)
    assert np.any(g.numpy() != 0), f'zero gradient for {v.name}'


TINY_INCEPTION_DIMS = 5
_RNG = np.random.default_rng(1)
_W = _RNG.standard_normal((3, TINY_INCEPTION_DIMS)).astype(np.float32)
_B = _RNG.standard_normal(TINY_INCEPTION_DIMS).astype(np.float32)


def write_tiny_inception_graph(path, variant='placeholder'):
  """A stand-in for TTUR's classify_image_graph_def.pb with its tensor names: images (0..255)
  enter `ExpandDims:0`, features leave `pool_3:0` as [N, 1, 1, TINY_INCEPTION_DIMS]; they are
  `tiny_inception_numpy(images)`. Variants: 'placeholder'; 'jpeg' (like TTUR's graph: a decoded
  JPEG cast and expanded to a batch of one, as 'expand_dims'); 'unknown_shape' (pool_3 has no
  static shape)."""
  g = tf.Graph()
  with g.as_default():
    if variant in ('placeholder', 'unknown_shape'):
      x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name='ExpandDims')
    elif variant == 'expand_dims':
      raw = tf.compat.v1.placeholder(tf.uint8, [None, None, 3], name='DecodeJpeg')
      x = tf.expand_dims(tf.cast(raw, tf.float32), 0, name='ExpandDims')
    else:
      raise ValueError(f'Unknown variant {variant!r}.')
    h = tf.nn.relu(tf.nn.conv2d((x - 128.) / 128., _W[None, None], 1, 'VALID') + _B)
    if variant == 'unknown_shape':  # found by running the graph
      shape = tf.compat.v1.placeholder_with_default([-1, 1, 1, TINY_INCEPTION_DIMS], [None])
      tf.reshape(tf.reduce_mean(h, axis=[1, 2]), shape, name='pool_3')
    else:
      tf.reduce_mean(h, axis=[1, 2], keepdims=True, name='pool_3')
  with open(path, 'wb') as f:
    f.write(g.as_graph_def().SerializeToString())
  return str(path)


def tiny_inception_numpy(images):
  """The features of `write_tiny_inception_graph`, in float64 numpy (grey repeated to RGB)."""
  x = images.astype(np.float64)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return np.maximum((x - 128.) / 128. @ _W + _B, 0.).mean(axis=(1, 2))


class AffineFlow(tf.Module):
  """A stand-in flow g(z) = mu + s z on vectors, so q = N(mu, s^2 I): tilts of it have known
  answers (tests of models/transport.py and eval/mixing.py)."""

  def __init__(self, mu, s):
    super().__init__()
    self.mu, self.s = tf.constant(mu, tf.float32), float(s)
    self.latent_dim = int(self.mu.shape[0])
    self.event_shape = (self.latent_dim,)

  def generate(self, z):
    x = self.mu + self.s * z
    return x, self._log_normal(z)

  def log_prob(self, x):
    return self._log_normal((x - self.mu) / self.s)

  def _log_normal(self, z):
    return (-0.5 * tf.reduce_sum(tf.square(z), axis=1)
            - self.latent_dim * (0.5 * np.log(2 * np.pi) + np.log(self.s)))


def ebm_config(**fields):
  """model.ebm of the base config with `fields` changed: every field there, as a checked config
  gives the builders (models/build.py reads them without defaults)."""
  from configs import base  # pylint: disable=g-import-not-at-top
  config = base.get_base_config().model.ebm
  config.update(fields)
  return config


def flow_config(**fields):
  """model.flow of the base config with `fields` changed (see ebm_config)."""
  from configs import base  # pylint: disable=g-import-not-at-top
  config = base.get_base_config().model.flow
  config.update(fields)
  return config


def _bits(seed, shape, stream):
  """uint32 hashes (in int64) of a seed, a stream number and each element's index: integer
  arithmetic that XLA and TensorFlow's kernels compute identically."""
  mask = 2 ** 32 - 1

  def mix(h):
    for _ in range(2):
      h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
      h = tf.bitwise.bitwise_and(h * 0x45d9f3b, mask)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))

  seed = tf.bitwise.bitwise_and(tf.cast(seed, tf.int64), mask)
  h = mix(seed[0] + mix(seed[1] + stream))
  index = tf.range(tf.reduce_prod(tf.cast(shape, tf.int64)), dtype=tf.int64)
  return tf.reshape(mix(tf.bitwise.bitwise_and(h + index * 0x9e3779b, mask)), shape)


def _uniform24(seed, shape, stream):
  return tf.bitwise.right_shift(_bits(seed, shape, stream), 8)  # 24-bit integers


class ExactRandom:
  """A stand-in for tfp's stateless samplers (seeds, uniforms, normals) that gives the same
  numbers under XLA as outside it: XLA's Philox differs from TensorFlow's kernels, so HMC's
  chains under jit_compile are another (equally valid) function of the seed. With this, the nt
  steps with and without XLA can be compared number for number."""

  @staticmethod
  def sanitize_seed(seed, salt=None, name=None):
    del name
    seed = tf.convert_to_tensor(seed, tf.int32)
    if salt is not None:
      seed = ExactRandom.split_seed(seed, 1, stream=len(salt))[0]
    return seed

  @staticmethod
  def split_seed(seed, n=2, salt=None, name=None, stream=7):
    del salt, name
    halves = tf.cast(_bits(seed, [n, 2], stream) - 2 ** 31, tf.int32)
    return tf.unstack(halves)

  @staticmethod
  def uniform(shape, minval=0., maxval=None, dtype=tf.float32, seed=None, name=None):
    del name
    u = tf.cast(_uniform24(seed, shape, 1), dtype) * 2. ** -24
    return minval + u * ((1. if maxval is None else maxval) - minval)

  @staticmethod
  def normal(shape, mean=0., stddev=1., dtype=tf.float32, seed=None, name=None):
    del name
    # Irwin-Hall: the sum of 12 uniforms, less 6, has mean 0 and variance 1 (an exact integer
    # sum, rounded once).
    total = sum(_uniform24(seed, shape, 2 + k) for k in range(12))
    return mean + stddev * (tf.cast(total, dtype) * 2. ** -24 - 6.)


def patch_exact_random(monkeypatch):
  """Puts `ExactRandom` in place of tfp's stateless samplers for one test."""
  for name in ('sanitize_seed', 'split_seed', 'uniform', 'normal'):
    monkeypatch.setattr(samplers, name, getattr(ExactRandom, name))
    if hasattr(tfp.random, name):
      monkeypatch.setattr(tfp.random, name, getattr(ExactRandom, name))
