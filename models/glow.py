"""The flow q_alpha: multi-scale Glow for images, single-scale Glow for vectors (FCE Table 7).

Direction convention as in `models.bijectors`: forward = latent -> data. The latent is a flat
vector of D = prod(data shape) standard normals for both kinds, so samplers (temperature, HMC in
latent space) treat every flow alike.

Why our own composition rather than `tfb.Glow`: (1) fused passes evaluate each coupling network
once per step instead of twice; (2) ActNorm is initialised explicitly on a data batch rather than
on whatever batch first passes in either direction; (3) the multi-scale exit is openai/glow's
learned split prior (a conditional Gaussian on the factored-out half, written as a conditional
affine bijector) rather than a conditional RealNVP.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from models import bijectors as fb

tfd = tfp.distributions

LOG_2PI = float(np.log(2. * np.pi))


class SplitPrior(fb.FlowBijector):
  """openai/glow's learned prior for the factored-out half at a multi-scale exit.

  The kept half h_a conditions a zero-initialised 3x3 conv giving (mean, log_std) for the other
  half z_b ~ N(mean, exp(log_std)^2). Written as a bijector onto standard normal noise:
  inverse: eps_b = (z_b - mean) * exp(-log_std), log|det| = -sum log_std. Temperature T on eps
  then scales every prior's std, as in openai/glow.
  """

  def __init__(self, num_channels, name='split_prior'):
    super().__init__(3, name)
    self.split = num_channels // 2
    out = num_channels - self.split
    self.network = keras.Sequential([
        keras.layers.Conv2D(2 * out, 3, padding='same',
                            kernel_initializer='zeros', bias_initializer='zeros'),
    ])
    self.network.build((None, None, None, self.split))

  def _mean_log_std(self, h_a):
    return tf.split(self.network(h_a), 2, axis=-1)

  def inverse_and_log_det(self, x):
    h_a, z_b = x[..., :self.split], x[..., self.split:]
    mean, log_std = self._mean_log_std(h_a)
    eps = (z_b - mean) * tf.exp(-log_std)
    return tf.concat([h_a, eps], -1), -fb.sum_except_batch(log_std)

  def forward_and_log_det(self, z):
    h_a, eps = z[..., :self.split], z[..., self.split:]
    mean, log_std = self._mean_log_std(h_a)
    z_b = eps * tf.exp(log_std) + mean
    return tf.concat([h_a, z_b], -1), fb.sum_except_batch(log_std)


class ImageGlow(fb.FlowBijector):
  """Multi-scale Glow (Kingma & Dhariwal 2018): image [H, W, C] <-> flat latent [H*W*C].

  Inverse pass, per level l = 1..L: squeeze 2x2 -> K steps (ActNorm, 1x1 conv, coupling) ->
  (if l < L) factor out half of the channels through the learned split prior. The latent is the
  concatenation of the factored-out noise of levels 1..L-1 and the top level's output, flattened.

  With `support` = (low, high) (model.flow.support = 'cube'), the data first pass through the
  logit of `fb.CubeSquash`: every sample then lies in the cube and q = 0 outside it.
  """

  def __init__(self, image_shape, levels, steps_per_level, width, coupling='additive', seed=0,
               name='glow', scale_floor=0., support=None):
    super().__init__(event_ndims=1, inverse_event_ndims=3, name=name)
    check_image_shape(image_shape, levels)
    if coupling not in ('additive', 'affine'):
      raise ValueError(f"coupling must be 'additive' or 'affine', got {coupling!r}.")
    if steps_per_level < 1 or width < 1:
      raise ValueError(f'steps_per_level and width must be >= 1, got {steps_per_level}, {width}.')
    self.image_shape = tuple(int(d) for d in image_shape)
    self.levels, self.steps_per_level, self.width = levels, steps_per_level, width
    self.coupling = coupling
    network_fn = fb.conv_network_fn(width)
    h, w, c = self.image_shape
    self.flows, self.priors = [], []
    self._exit_shapes = []  # shapes of the tensors that leave at each level (inverse pass)
    for level in range(levels):
      h, w, c = h // 2, w // 2, c * 4
      self.flows.append(fb.FlowChain([
          fb.glow_step(c, 3, network_fn, coupling == 'affine', seed=seed + 1000 * level + k,
                       name=f'level{level}_step{k}', scale_floor=scale_floor)
          for k in range(steps_per_level)], 3, name=f'level{level}'))
      if level < levels - 1:
        self.priors.append(SplitPrior(c, name=f'level{level}_prior'))
        self._exit_shapes.append((h, w, c - c // 2))
        c = c // 2
      else:
        self._exit_shapes.append((h, w, c))
    self._exit_sizes = [int(np.prod(s)) for s in self._exit_shapes]
    self.latent_dim = int(np.prod(self.image_shape))
    # support = (low, high): a last forward step onto the open cube (fb.CubeSquash).
    self.squash = None if support is None else fb.CubeSquash(*support, 3, name='cube_squash')

  @property
  def support(self):
    """(low, high) of the cube the samples stay in, or None (all of R^D)."""
    return None if self.squash is None else (self.squash.low, self.squash.high)

  def _check_images(self, x):
    if tuple(x.shape[1:]) != self.image_shape:
      raise ValueError(f'This Glow models images of shape {self.image_shape} (H, W, C); '
                       f'got a batch of shape {tuple(x.shape)}.')

  def _run_inverse(self, x, init):
    self._check_images(x)
    total = tf.zeros(tf.shape(x)[:1])
    exits = []
    h = x
    if self.squash is not None:
      h, total = self.squash.inverse_and_log_det(h)
    for level, flow in enumerate(self.flows):
      h = tf.nn.space_to_depth(h, 2)
      if init:
        h = flow.data_init(h)
      else:
        with tf.name_scope(flow.name):
          h, ldj = flow.inverse_and_log_det(h)
        total += ldj
      if level < self.levels - 1:
        prior = self.priors[level]
        with tf.name_scope(prior.name):
          h, ldj = prior.inverse_and_log_det(h)
        total += ldj
        exits.append(h[..., prior.split:])
        h = h[..., :prior.split]
    exits.append(h)
    batch = tf.shape(x)[0]
    z = tf.concat([tf.reshape(e, [batch, -1]) for e in exits], axis=1)
    return z, total

  def inverse_and_log_det(self, x):
    return self._run_inverse(x, init=False)

  def data_init(self, x):
    return self._run_inverse(x, init=True)[0]

  def forward_and_log_det(self, z):
    batch = tf.shape(z)[0]
    exits = tf.split(z, self._exit_sizes, axis=1)
    total = tf.zeros([batch])
    h = None
    for level in reversed(range(self.levels)):
      e = tf.reshape(exits[level], [batch, *self._exit_shapes[level]])
      if h is None:
        h = e
      else:
        with tf.name_scope(self.priors[level].name):
          h, ldj = self.priors[level].forward_and_log_det(tf.concat([h, e], -1))
        total += ldj
      with tf.name_scope(self.flows[level].name):
        h, ldj = self.flows[level].forward_and_log_det(h)
      total += ldj
      h = tf.nn.depth_to_space(h, 2)
    if self.squash is not None:
      h, ldj = self.squash.forward_and_log_det(h)
      total += ldj
    return h, total

  # Event shapes for TFP (latent [D] <-> image [H, W, C]).
  def _forward_event_shape(self, input_shape):
    return tf.TensorShape(self.image_shape)

  def _forward_event_shape_tensor(self, input_shape):
    return tf.constant(self.image_shape, tf.int32)

  def _inverse_event_shape(self, output_shape):
    return tf.TensorShape([self.latent_dim])

  def _inverse_event_shape_tensor(self, output_shape):
    return tf.constant([self.latent_dim], tf.int32)


def check_image_shape(image_shape, levels):
  """Raises a ValueError naming the problem if `image_shape` cannot go through `levels` levels."""
  if len(image_shape) != 3:
    raise ValueError(f'Image Glow needs an (H, W, C) image shape, got {tuple(image_shape)}.')
  h, w, c = image_shape
  if levels < 1:
    raise ValueError(f'Glow needs at least one level, got levels={levels}.')
  if c < 1:
    raise ValueError(f'Image shape {tuple(image_shape)} has no channels.')
  factor = 2 ** levels
  if h % factor or w % factor:
    raise ValueError(
        f'Image shape {tuple(image_shape)} cannot pass through L={levels} Glow levels: height and '
        f'width must be divisible by 2^L = {factor}. Resize or pad the images, or lower L.')


class VectorGlow(fb.FlowChain):
  """Single-scale Glow for vectors [D] (FCE Table 7, 2D: L=1, K=10, width 128, affine, fc).

  K steps of ActNorm -> invertible D x D linear map (LU) -> coupling with an MLP network.
  """

  def __init__(self, dim, steps, width, coupling='affine', seed=0, name='vector_glow',
               scale_floor=0.):
    if dim < 2:
      raise ValueError(f'A coupling flow needs vectors of dimension >= 2, got {dim}.')
    if coupling not in ('additive', 'affine'):
      raise ValueError(f"coupling must be 'additive' or 'affine', got {coupling!r}.")
    network_fn = fb.mlp_network_fn(width)
    super().__init__([
        fb.glow_step(dim, 1, network_fn, coupling == 'affine', seed=seed + k, name=f'step{k}',
                     scale_floor=scale_floor)
        for k in range(steps)], event_ndims=1, name=name)
    self.latent_dim = dim

  def _check(self, x):
    if tuple(x.shape[1:]) != (self.latent_dim,):
      raise ValueError(f'This flow models vectors of dimension {self.latent_dim}; '
                       f'got a batch of shape {tuple(x.shape)}.')

  def inverse_and_log_det(self, x):
    self._check(x)
    return super().inverse_and_log_det(x)

  def forward_and_log_det(self, z):
    self._check(z)
    return super().forward_and_log_det(z)


def standard_normal_log_prob(z):
  """log N(z; 0, I) summed over the flat latent, shape [batch]."""
  return -0.5 * tf.reduce_sum(tf.square(z), axis=1) - 0.5 * z.shape[1] * LOG_2PI


class Flow(tf.Module):
  """q_alpha(x) = N(g^{-1}(x); 0, I) |det d g^{-1}(x) / dx| (FCE eq. 8), with fused passes.

  `log_prob(x)` runs the inverse pass once; `generate(z)` returns the sample g(z) and its log q
  from the forward pass, with no inversion (what the flow update of FCE eq. 12 needs).
  `distribution` is the same model as a `tfd.TransformedDistribution`, for TFP interop.
  """

  def __init__(self, bijector, event_shape, name='flow'):
    super().__init__(name=name)
    self.bijector = bijector
    self.event_shape = tuple(int(d) for d in event_shape)
    self.latent_dim = bijector.latent_dim
    self.initialized = tf.Variable(False, trainable=False, name='initialized')

  def log_prob(self, x):
    z, ldj = self.bijector.inverse_and_log_det(x)
    return standard_normal_log_prob(z) + ldj

  def generate(self, z):
    """Returns (x, log q_alpha(x)) for latents z; z at temperature T is T * N(0, I)."""
    x, ldj = self.bijector.forward_and_log_det(z)
    return x, standard_normal_log_prob(z) - ldj

  def sample_latent(self, n, temperature=1., generator=None):
    shape = [n, self.latent_dim]
    eps = generator.normal(shape) if generator is not None else tf.random.normal(shape)
    return temperature * eps

  def sample_and_log_prob(self, n, temperature=1., generator=None):
    """Samples n examples; log q is the model's density (T = 1) at those samples."""
    return self.generate(self.sample_latent(n, temperature, generator))

  def sample(self, n, temperature=1., generator=None):
    return self.sample_and_log_prob(n, temperature, generator)[0]

  def data_init(self, x):
    """Data-dependent initialisation of every ActNorm on a data batch (call once, eagerly)."""
    self.bijector.data_init(tf.convert_to_tensor(x, tf.float32))
    self.initialized.assign(True)

  @property
  def distribution(self):
    base = tfd.Sample(tfd.Normal(0., 1.), sample_shape=[self.latent_dim])
    return tfd.TransformedDistribution(base, self.bijector)
