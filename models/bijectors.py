"""Glow's building blocks as TFP bijectors with fused (value, log-det) passes.

Direction convention, written once for the whole package (TFP's):
  `forward`  maps latent z -> data x (the generator g_alpha of FCE eq. 7);
  `inverse`  maps data x -> latent z (what log q_alpha(x) needs, FCE eq. 8).

Every bijector here is a `tfb.Bijector`, so it composes with TFP (`tfd.TransformedDistribution`,
`tfb.Chain`, `tfb.Invert`) and is a `tf.Module` whose `trainable_variables` include its networks.
Each also offers two fused methods that the training loop uses:
  `forward_and_log_det(z)` -> (x, log|det dx/dz|), log-det of shape [batch];
  `inverse_and_log_det(x)` -> (z, log|det dz/dx|), log-det of shape [batch].
They evaluate every coupling network once. TFP's own `log_prob` path calls `_inverse` and
`_inverse_log_det_jacobian` separately, which runs each coupling network twice (this is what
makes `tfb.Glow` cost 2x per step); it stays available and is tested to agree with the fused one.

Blocks act on the last (channel) axis; any axes between batch and channels are positions
(pixels), so one class serves vectors ([B, D], event_ndims=1) and images ([B, H, W, C],
event_ndims=3).
"""

import numpy as np
import scipy.linalg
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

tfb = tfp.bijectors


def _num_positions(x):
  """Number of positions per example: the product of the axes between batch and channels."""
  return int(np.prod(x.shape[1:-1])) if x.shape.rank > 2 else 1


def sum_except_batch(t):
  return tf.reduce_sum(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


def in_cube(x, low, high):
  """[B] bool: whether every value of each example lies in the closed cube [low, high]^D."""
  flat = tf.reshape(x, [tf.shape(x)[0], -1])
  return tf.reduce_all((flat >= low) & (flat <= high), axis=1)


class FlowBijector(tfb.Bijector):
  """A TFP bijector defined by fused `forward_and_log_det` / `inverse_and_log_det` methods."""

  def __init__(self, event_ndims, name, inverse_event_ndims=None):
    super().__init__(
        forward_min_event_ndims=event_ndims,
        inverse_min_event_ndims=(event_ndims if inverse_event_ndims is None
                                 else inverse_event_ndims),
        dtype=tf.float32,
        name=name)

  def forward_and_log_det(self, z):
    raise NotImplementedError

  def inverse_and_log_det(self, x):
    raise NotImplementedError

  def data_init(self, x):
    """Initialises data-dependent parameters on a data batch `x`; returns `inverse(x)`."""
    return self.inverse_and_log_det(x)[0]

  # TFP's interface, derived from the fused passes.
  def _forward(self, z):
    return self.forward_and_log_det(z)[0]

  def _inverse(self, x):
    return self.inverse_and_log_det(x)[0]

  def _forward_log_det_jacobian(self, z):
    return self.forward_and_log_det(z)[1]

  def _inverse_log_det_jacobian(self, x):
    return self.inverse_and_log_det(x)[1]


class ActNorm(FlowBijector):
  """Per-channel affine normalisation (Glow, Kingma & Dhariwal 2018, Sec. 3.1).

  inverse: z = (x + bias) * exp(log_scale). `data_init` sets bias and log_scale so that z has
  mean 0 and standard deviation 1 per channel on the given batch. It must be called explicitly on
  data (never on samples): until then the block is the identity.
  """

  # Keeps ActNorm finite on a channel that is constant in the init batch.
  VAR_EPS = 1e-6

  def __init__(self, num_channels, event_ndims, name='actnorm'):
    super().__init__(event_ndims, name)
    self.bias = tf.Variable(tf.zeros([num_channels]), name='bias')
    self.log_scale = tf.Variable(tf.zeros([num_channels]), name='log_scale')

  def inverse_and_log_det(self, x):
    z = (x + self.bias) * tf.exp(self.log_scale)
    ldj = _num_positions(x) * tf.reduce_sum(self.log_scale)
    return z, tf.fill(tf.shape(x)[:1], ldj)

  def forward_and_log_det(self, z):
    x = z * tf.exp(-self.log_scale) - self.bias
    ldj = -_num_positions(z) * tf.reduce_sum(self.log_scale)
    return x, tf.fill(tf.shape(z)[:1], ldj)

  def data_init(self, x):
    axes = list(range(x.shape.rank - 1))
    mean, var = tf.nn.moments(x, axes=axes)
    self.bias.assign(-mean)
    self.log_scale.assign(-0.5 * tf.math.log(var + self.VAR_EPS))
    return self.inverse_and_log_det(x)[0]


class InvertibleLinearLU(FlowBijector):
  """Invertible 1x1 convolution (a channel-mixing matrix) in LU form (Glow, Sec. 3.2).

  W = P (L + I) (U + diag(sign * exp(log_s))), with P and sign fixed; inverse: z = W x at every
  position, log|det| = positions * sum(log_s). The log-parameterised diagonal keeps W invertible
  for any parameter values (`tfb.ScaleMatvecLU` stores the raw diagonal, which can cross zero).
  Initialised from a random rotation, as in Glow.
  """

  def __init__(self, num_channels, event_ndims, seed=0, name='invertible_lu'):
    super().__init__(event_ndims, name)
    c = num_channels
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((c, c)))
    p, l, u = scipy.linalg.lu(q)
    s = np.diag(u)
    self._p = tf.constant(p, tf.float32)
    self._sign = tf.constant(np.sign(s), tf.float32)
    self._lower_mask = tf.constant(np.tril(np.ones((c, c)), -1), tf.float32)
    self._upper_mask = tf.constant(np.triu(np.ones((c, c)), 1), tf.float32)
    self.lower = tf.Variable(np.tril(l, -1).astype(np.float32), name='lower')
    self.upper = tf.Variable(np.triu(u, 1).astype(np.float32), name='upper')
    self.log_s = tf.Variable(np.log(np.abs(s)).astype(np.float32), name='log_s')

  def weight(self):
    c = self.log_s.shape[0]
    lower = self.lower * self._lower_mask + tf.eye(c)
    upper = self.upper * self._upper_mask + tf.linalg.diag(self._sign * tf.exp(self.log_s))
    return self._p @ lower @ upper

  def _log_det(self, x, sign):
    ldj = sign * _num_positions(x) * tf.reduce_sum(self.log_s)
    return tf.fill(tf.shape(x)[:1], ldj)

  def inverse_and_log_det(self, x):
    z = tf.tensordot(x, self.weight(), [[-1], [1]])
    return z, self._log_det(x, 1.)

  def forward_and_log_det(self, z):
    x = tf.tensordot(z, tf.linalg.inv(self.weight()), [[-1], [1]])
    return x, self._log_det(z, -1.)


class Coupling(FlowBijector):
  """Additive or affine coupling layer (RealNVP / Glow, Sec. 3.3).

  The first `c // 2` channels x_a pass unchanged and condition a network h = NN(x_a).
  inverse: additive  z_b = x_b + h;
           affine    (shift, raw) = h, s = sigmoid(raw + 2), z_b = (x_b + shift) * s,
                     log|det| = sum log s  (openai/glow's bounded scale).
  With scale_floor = e > 0, s = e + (1 - e) sigmoid(raw + 2): the generator's x_b = z_b / s - shift
  then expands by at most 1/e per coupling. openai/glow's s (e = 0) has no such bound, and a
  latent in the tail can make a trained flow's sample overflow (seen in FCE, where the samples
  drive training: docs/bench2d).
  The network's last layer starts at zero, so every coupling starts as the identity.
  """

  def __init__(self, num_channels, event_ndims, network_fn, affine, name='coupling',
               scale_floor=0.):
    super().__init__(event_ndims, name)
    if num_channels < 2:
      raise ValueError(f'A coupling layer needs at least 2 channels, got {num_channels}.')
    if not 0. <= scale_floor < 1.:
      raise ValueError(f'The coupling scale floor must lie in [0, 1), got {scale_floor}.')
    self.affine, self.scale_floor = affine, scale_floor
    self._split = num_channels // 2
    out = num_channels - self._split
    self.network = network_fn(self._split, 2 * out if affine else out)

  def _shift_and_log_scale(self, x_a):
    h = self.network(x_a)
    if not self.affine:
      return h, None
    shift, raw = tf.split(h, 2, axis=-1)
    if self.scale_floor:
      return shift, tf.math.log(self.scale_floor + (1. - self.scale_floor) * tf.sigmoid(raw + 2.))
    return shift, tf.math.log_sigmoid(raw + 2.)

  def inverse_and_log_det(self, x):
    x_a, x_b = x[..., :self._split], x[..., self._split:]
    shift, log_s = self._shift_and_log_scale(x_a)
    if log_s is None:
      return tf.concat([x_a, x_b + shift], -1), tf.zeros(tf.shape(x)[:1])
    z_b = (x_b + shift) * tf.exp(log_s)
    return tf.concat([x_a, z_b], -1), sum_except_batch(log_s)

  def forward_and_log_det(self, z):
    z_a, z_b = z[..., :self._split], z[..., self._split:]
    shift, log_s = self._shift_and_log_scale(z_a)
    if log_s is None:
      return tf.concat([z_a, z_b - shift], -1), tf.zeros(tf.shape(z)[:1])
    x_b = z_b * tf.exp(-log_s) - shift
    return tf.concat([z_a, x_b], -1), -sum_except_batch(log_s)


class CubeSquash(FlowBijector):
  """A flow onto the open cube (low, high)^D: x = low + (high - low) sigmoid(u) (forward).

  Inverse: u = logit(p), p = (x - low) / (high - low), with
  log|det du/dx| = sum(-log p - log(1 - p) - log(high - low)); RealNVP's logit preprocessing
  (Dinh et al. 2017, Sec. 4.1) without its squeeze towards the centre, so that the model's
  support is exactly the cube. p is clipped to [EPS, 1 - EPS] (dequantized data reach the edge
  itself); outside the closed cube the log-det is -inf, so log q = -inf there.

  float32 holds x near the edges only to ~3e-8, so a forward sample with |u| beyond
  logit(1 - EPS) = 13.8 lands on the clip: log q recomputed from that x differs from the one
  its forward pass gave. Data are that close to an edge with probability ~EPS * k per pixel
  (k levels), and a trained Glow's samples rarely are.
  """

  EPS = 1e-6

  def __init__(self, low, high, event_ndims, name='cube_squash'):
    super().__init__(event_ndims, name)
    if not low < high:
      raise ValueError(f'The cube needs low < high, got ({low}, {high}).')
    self.low, self.high = float(low), float(high)
    self._log_width = float(np.log(high - low))

  def inverse_and_log_det(self, x):
    p = tf.clip_by_value((x - self.low) / (self.high - self.low), self.EPS, 1. - self.EPS)
    log_p, log_1mp = tf.math.log(p), tf.math.log1p(-p)
    ldj = sum_except_batch(-log_p - log_1mp - self._log_width)
    inside = in_cube(x, self.low, self.high)
    return log_p - log_1mp, tf.where(inside, ldj, tf.constant(-np.inf, ldj.dtype))

  def forward_and_log_det(self, u):
    x = self.low + (self.high - self.low) * tf.sigmoid(u)
    # log dx/du = log(high - low) + log sigmoid(u) + log sigmoid(-u), stable for large |u|.
    return x, sum_except_batch(self._log_width - tf.nn.softplus(-u) - tf.nn.softplus(u))


class FlowChain(FlowBijector):
  """Composition of FlowBijectors, listed in the inverse (data -> latent) order."""

  def __init__(self, bijectors, event_ndims, name='flow_chain'):
    super().__init__(event_ndims, name)
    self.bijectors = list(bijectors)

  def inverse_and_log_det(self, x):
    total = tf.zeros(tf.shape(x)[:1])
    for b in self.bijectors:
      with tf.name_scope(b.name):  # ops named by block, for profiles (bench/glow_profile.py)
        x, ldj = b.inverse_and_log_det(x)
        total += ldj
    return x, total

  def forward_and_log_det(self, z):
    total = tf.zeros(tf.shape(z)[:1])
    for b in reversed(self.bijectors):
      with tf.name_scope(b.name):
        z, ldj = b.forward_and_log_det(z)
        total += ldj
    return z, total

  def data_init(self, x):
    for b in self.bijectors:
      x = b.data_init(x)
    return x


def glow_step(num_channels, event_ndims, network_fn, affine, seed, name, scale_floor=0.):
  """One Glow flow step (inverse order): ActNorm -> invertible 1x1 conv -> coupling."""
  return FlowChain([
      ActNorm(num_channels, event_ndims, name=f'{name}_actnorm'),
      InvertibleLinearLU(num_channels, event_ndims, seed=seed, name=f'{name}_invlu'),
      Coupling(num_channels, event_ndims, network_fn, affine, name=f'{name}_coupling',
               scale_floor=scale_floor),
  ], event_ndims, name=name)


class PointwiseConv2D(keras.layers.Conv2D):
  """A 1x1 Conv2D computed as one matmul over the channels of every position.

  Its variables are Conv2D's (kernel [1, 1, in, out], bias), so checkpoints load either way.
  Why: on CPU, oneDNN's gradients of a 1x1 convolution ran at about a third of the matmul rate
  (4.5x the forward pass, where 2x is the arithmetic), and the coupling network's W x W 1x1
  convolution is three quarters of a Glow's FLOPs; a matmul's gradients are two matmuls
  (bench/glow_profile.py, docs/benchmarks).
  """

  def __init__(self, filters, **kwargs):
    super().__init__(filters, 1, **kwargs)

  def call(self, inputs):
    kernel = tf.reshape(self.kernel, self.kernel.shape[-2:])
    shape = tf.shape(inputs)
    flat = tf.reshape(inputs, [-1, inputs.shape[-1]])
    outputs = tf.reshape(tf.matmul(flat, kernel), tf.concat([shape[:-1], [self.filters]], 0))
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    return self.activation(outputs)


def conv_network_fn(width):
  """Glow's coupling network: 3x3 conv W, ReLU, 1x1 conv W, ReLU, 3x3 conv (zero init)."""

  def build(in_channels, out_channels):
    net = keras.Sequential([
        keras.layers.Conv2D(width, 3, padding='same', activation='relu'),
        PointwiseConv2D(width, activation='relu'),
        keras.layers.Conv2D(out_channels, 3, padding='same',
                            kernel_initializer='zeros', bias_initializer='zeros'),
    ])
    net.build((None, None, None, in_channels))
    return net

  return build


def mlp_network_fn(width):
  """Fully connected coupling network: fc W, ReLU, fc W, ReLU, fc (zero init) (FCE Table 7)."""

  def build(in_features, out_features):
    net = keras.Sequential([
        keras.layers.Dense(width, activation='relu'),
        keras.layers.Dense(width, activation='relu'),
        keras.layers.Dense(out_features, kernel_initializer='zeros', bias_initializer='zeros'),
    ])
    net.build((None, in_features))
    return net

  return build
