"""Energy-based models p_theta(x) = exp(f_theta(x) - c) as Keras (tf_keras) models.

`EnergyModel(x)` returns f_theta(x): one scalar per example ([B]) or, class-conditional, one per
class ([B, K]) with heads sharing all layers but the top (FCE eq. 16). The log-normalizer c is a
trained parameter (one per class), estimated by NCE / FCE as in FCE Sec. 3.1.2.

Networks:
  'mlp'        FCE Table 5, 2D: fc128-lReLU x3, fc1 (lReLU slope 0.2).
  'conv'       FCE Table 5, SVHN / CIFAR-10: 4x4 conv 64/128/256 stride 2 + lReLU, 4x4 conv 1.
               Both take `activation` ('lrelu', the paper's; 'swish'; 'softplus').
  'lipswish'   NT-EBM Tables 4-5: 3x3 conv nf, 4x4 stride-2 convs (2,4,4)nf at 32x32 or
               (2,4,8,8)nf at 64x64, LipSwish, 4x4 conv 1.
  'conv_small' / 'conv_large'  FCE Table 6 (semi-supervised SVHN): weight-normalised convs with
               lReLU 0.2 and dropout, global max pool, weight-normalised fc to K.
Conv layers are named conv0, conv1, ... so feature probes (FCE Sec. 4.3) can fetch them.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import bijectors as fb

LEAK = 0.2


def lipswish(x):
  """LipSwish(x) = x sigmoid(x) / 1.1, 1-Lipschitz (Chen et al. 2019; NT-EBM A.3)."""
  return tf.nn.silu(x) / 1.1


class WeightNorm(keras.layers.Wrapper):
  """Weight normalisation (Salimans & Kingma 2016): w = g v / ||v||, per output unit.

  Wraps a Dense or Conv2D layer; g starts at ||v|| so the wrapped layer starts unchanged.
  """

  def build(self, input_shape):
    if not self.layer.built:
      self.layer.build(input_shape)
    kernel = self.layer.kernel
    self._reduce_axes = list(range(kernel.shape.rank - 1))
    self.v = kernel
    self.g = self.add_weight(
        name='g', shape=kernel.shape[-1:],
        initializer=keras.initializers.Constant(
            np.sqrt(np.sum(np.square(kernel.numpy()), axis=tuple(self._reduce_axes)))))
    super().build(input_shape)

  def call(self, inputs, training=None):
    v_norm = tf.sqrt(tf.reduce_sum(tf.square(self.v), axis=self._reduce_axes) + 1e-12)
    kernel = self.v * (self.g / v_norm)
    if isinstance(self.layer, keras.layers.Dense):
      out = tf.tensordot(inputs, kernel, [[-1], [0]])
    else:
      out = tf.nn.conv2d(inputs, kernel, strides=self.layer.strides,
                         padding=self.layer.padding.upper())
    out = tf.nn.bias_add(out, self.layer.bias)
    return self.layer.activation(out)

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)


def _lrelu(x):
  return tf.nn.leaky_relu(x, LEAK)


# model.ebm.activation of the 'mlp' and 'conv' networks. With 'lrelu' (the paper's) f is
# piecewise linear in x; 'swish' and 'softplus' make it smooth (lrelu did better on the 2D
# suite, docs/bench2d).
ACTIVATIONS = {'lrelu': _lrelu, 'swish': tf.nn.silu, 'softplus': tf.nn.softplus}


def _head(h, outputs):
  """A final 4x4 valid conv to `outputs` channels (FCE Table 5), averaged over what remains."""
  k = min(4, h.shape[1], h.shape[2])
  h = keras.layers.Conv2D(outputs, k, padding='valid', name='head')(h)
  return keras.layers.GlobalAveragePooling2D()(h)


MLP_WIDTH = 128  # FCE Table 5, 2D: fc128 x3


def mlp_net(input_dim, outputs=1, width=MLP_WIDTH, depth=3, activation='lrelu'):
  act = ACTIVATIONS[activation]
  x = keras.Input((input_dim,))
  h = x
  for i in range(depth):
    h = keras.layers.Dense(width, activation=act, name=f'fc{i}')(h)
  return keras.Model(x, keras.layers.Dense(outputs, name='head')(h), name='mlp_energy')


def place_kinks_on_data(network, x, seed, share=1.):
  """model.ebm.first_bias='data': moves each first-layer unit's kink onto a data point.

  Keras starts biases at 0, so every unit of the mlp's first layer has its kink (the line
  w_j . x + b_j = 0) through the origin, and f starts piecewise linear on wedges around it: a
  2D EBM then draws small modes as streaks pointing at the origin and needs many updates to
  move the kinks out (docs/bench2d). Setting b_j = -w_j . p_j, p_j a random row of `x` (the
  run's first batch), spreads the kinks over the data instead. Call once, on a new model.
  first_bias='half' (`share`=0.5) moves only the first half of the units and leaves the others
  through the origin, where the kinks did better on spirals (docs/bench2d).
  """
  layer = network.get_layer('fc0')
  w = layer.kernel.numpy()  # [D, width]
  x = np.asarray(x, np.float32).reshape(len(x), -1)
  points = x[np.random.default_rng(seed).integers(len(x), size=w.shape[1])]  # [width, D]
  bias = -np.sum(points * w.T, axis=1)
  bias[int(round(share * len(bias))):] = 0.  # the units are exchangeable at the start
  layer.bias.assign(bias)


def conv_net(image_shape, outputs=1, widths=(64, 128, 256), activation='lrelu'):
  act = ACTIVATIONS[activation]
  x = keras.Input(image_shape)
  h = x
  for i, w in enumerate(widths):
    h = keras.layers.Conv2D(w, 4, strides=2, padding='same', activation=act, name=f'conv{i}')(h)
  return keras.Model(x, _head(h, outputs), name='conv_energy')


def lipswish_net(image_shape, outputs=1, nf=32, multipliers=None):
  if multipliers is None:
    multipliers = (2, 4, 8, 8) if image_shape[0] >= 64 else (2, 4, 4)
  x = keras.Input(image_shape)
  h = keras.layers.Conv2D(nf, 3, padding='same', activation=lipswish, name='conv0')(x)
  for i, m in enumerate(multipliers):
    h = keras.layers.Conv2D(m * nf, 4, strides=2, padding='same', activation=lipswish,
                            name=f'conv{i + 1}')(h)
  return keras.Model(x, _head(h, outputs), name='lipswish_energy')


def _wn_conv(h, filters, kernel, strides, padding, name):
  return WeightNorm(keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                                        activation=_lrelu), name=name)(h)


def conv_ssl_net(image_shape, outputs=10, large=False):
  """Conv-small / Conv-large of FCE Table 6 (from Miyato et al.'s VAT), dropout included."""
  w1, w2, w3 = (128, 256, (512, 256, 128)) if large else (64, 128, (128, 128, 128))
  x = keras.Input(image_shape)
  h = keras.layers.Dropout(0.2)(x)
  n = 0
  for widths, drop in ((w1, 0.5), (w2, 0.5)):
    for strides in (1, 1, 2):
      h = _wn_conv(h, widths, 3, strides, 'same', f'conv{n}')
      n += 1
    h = keras.layers.Dropout(drop)(h)
  for kernel, width in zip((3, 1, 1), w3):
    h = _wn_conv(h, width, kernel, 1, 'valid', f'conv{n}')
    n += 1
  h = keras.layers.GlobalMaxPooling2D()(h)
  out = WeightNorm(keras.layers.Dense(outputs), name='head')(h)
  return keras.Model(x, out, name='conv_large' if large else 'conv_small')


# model.ebm.arch: the energy network for data of shape `shape` (no batch axis) with `outputs`
# outputs; 'mlp' takes vectors (D,), the others images (H, W, C).
NETWORKS = {
    'mlp': lambda shape, outputs, **kwargs: mlp_net(shape[0], outputs, **kwargs),
    'conv': conv_net,
    'lipswish': lipswish_net,
    'conv_small': lambda shape, outputs: conv_ssl_net(shape, outputs, large=False),
    'conv_large': lambda shape, outputs: conv_ssl_net(shape, outputs, large=True),
}
ARCHITECTURES = tuple(NETWORKS)


def build_network(arch, data_shape, outputs=1, **kwargs):
  """Builds the energy network `arch` (a key of NETWORKS) for data of shape `data_shape`; the
  config's pair of them has passed configs/checks.py."""
  return NETWORKS[arch](tuple(int(d) for d in data_shape), outputs, **kwargs)


class EnergyModel(keras.Model):
  """p_theta(x) = exp(f_theta(x) - c) (FCE eqs. 1 and 16), c a free parameter per class.

  c is stored as a fixed offset c0 plus a trained delta (`log_normalizer` is their sum). On
  32x32x3 images c starts near -1e4 (level with the flow's log q), where float32 values are
  ~1e-3 apart: an Adam step of 3e-4 on c itself would round to nothing, and c would never move.
  The delta starts at 0, where Adam's steps register. `set_log_normalizer` moves c0.

  With a `base` flow (model.ebm.base = 'flow'), f_theta(x) = g_theta(x) + log q_base(x): the
  network learns a correction of a frozen copy of the flow (the pretrained Glow when FCE begins;
  `train.trainer`), as NT-EBM's tilt does, instead of learning log q's shape from scratch.
  The base is not trained by the EBM's optimizer.

  With `support` = (low, high), p_theta is exp(f - c) on the cube [low, high]^D and 0 outside
  (model.ebm.support = 'cube': [-0.5, 0.5], where dequantized images live), so that Z
  integrates over the data's range only. Without it a network can put mass on images far
  outside that range, where neither data nor flow samples hold it down (docs/image_fce).
  """

  def __init__(self, network, num_classes=None, base=None, support=None, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.support = support
    self.num_classes = num_classes
    outputs = network.output_shape[-1]
    if outputs != (num_classes or 1):
      raise ValueError(f'The network has {outputs} outputs; expected {num_classes or 1}.')
    shape = [num_classes or 1]
    self.log_normalizer_offset = self.add_weight(
        name='log_normalizer_offset', shape=shape, initializer='zeros', trainable=False)
    self.log_normalizer_delta = self.add_weight(
        name='log_normalizer_delta', shape=shape, initializer='zeros')
    self.data_shape = tuple(network.input_shape[1:])
    self.base = base

  @property
  def trainable_weights(self):
    """The network's weights and delta; never the base flow's (Keras would list them)."""
    if self.base is None:
      return super().trainable_weights
    frozen = {v.ref() for v in self.base.variables}
    return [v for v in super().trainable_weights if v.ref() not in frozen]

  @property
  def log_normalizer(self):
    """c = c0 + delta, one per class."""
    return self.log_normalizer_offset + self.log_normalizer_delta

  def set_log_normalizer(self, c):
    """Sets c (c0 = c, delta = 0), e.g. to start level with the noise."""
    self.log_normalizer_offset.assign(tf.broadcast_to(
        tf.cast(c, self.log_normalizer_offset.dtype), self.log_normalizer_offset.shape))
    self.log_normalizer_delta.assign(tf.zeros_like(self.log_normalizer_delta))

  @property
  def has_dropout(self):
    """Whether the network has dropout, i.e. f_theta(x, training=True) is random."""
    dropout = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)
    return any(isinstance(layer, dropout) for layer in self.network.submodules)

  def _check(self, x):
    if tuple(x.shape[1:]) != self.data_shape:
      raise ValueError(f'This EBM takes inputs of shape {self.data_shape}; '
                       f'got a batch of shape {tuple(x.shape)}.')

  def call(self, x, training=False):
    """f_theta(x): [B] for an unconditional EBM, [B, K] class-conditional."""
    self._check(x)
    f = self.network(x, training=training)
    if self.base is not None:
      f = f + self.base.log_prob(x)[:, None]
    return f if self.num_classes else f[:, 0]

  def in_support(self, x):
    """[B] bool: whether each example lies in the support (an EBM with one)."""
    return fb.in_cube(x, *self.support)

  def log_prob(self, x, training=False):
    """log p_theta(x) = f_theta(x) - c ([B], or [B, K] with one c_k per class); -inf outside
    the support, if one is set."""
    c = self.log_normalizer if self.num_classes else self.log_normalizer[0]
    lp = self(x, training=training) - c
    if self.support is None:
      return lp
    inside = self.in_support(x)
    if self.num_classes:
      inside = inside[:, None]
    return tf.where(inside, lp, tf.constant(-np.inf, lp.dtype))

  def marginal_log_prob(self, x, training=False):
    """log of the mixture (1/K) sum_k p_theta_k(x) (FCE eq. 18); log p_theta(x) if unconditional."""
    lp = self.log_prob(x, training=training)
    if not self.num_classes:
      return lp
    return tf.reduce_logsumexp(lp, axis=-1) - np.log(self.num_classes)


def restore_legacy_log_normalizer(ebm, checkpoint, prefix='ebm'):
  """Sets c from a checkpoint saved when c was one variable ('log_normalizer', before the
  offset + delta split); returns whether it was one (the caller then skips the restore's
  completeness check, which the missing offset and delta would fail)."""
  names = dict(tf.train.list_variables(checkpoint))
  key = f'{prefix}/log_normalizer/.ATTRIBUTES/VARIABLE_VALUE'
  if key not in names or f'{prefix}/log_normalizer_delta/.ATTRIBUTES/VARIABLE_VALUE' in names:
    return False
  ebm.set_log_normalizer(tf.train.load_variable(checkpoint, key))
  return True
