import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import bijectors as fb
from tests import helpers

# (event shape, event_ndims): vectors and images share every block.
SHAPES = [((4,), 1), ((4, 4, 6), 3)]


def _data(shape, batch=3, seed=0):
  rng = np.random.default_rng(seed)
  return (1.5 * rng.standard_normal((batch, *shape)) + 0.3).astype(np.float32)


def _network_fn(event_ndims):
  return fb.mlp_network_fn(8) if event_ndims == 1 else fb.conv_network_fn(8)


def _blocks(shape, event_ndims):
  c = shape[-1]
  return {
      'actnorm': fb.ActNorm(c, event_ndims),
      'invertible_lu': fb.InvertibleLinearLU(c, event_ndims, seed=1),
      'additive': fb.Coupling(c, event_ndims, _network_fn(event_ndims), affine=False),
      'affine': fb.Coupling(c, event_ndims, _network_fn(event_ndims), affine=True),
      'affine_floor': fb.Coupling(c, event_ndims, _network_fn(event_ndims), affine=True,
                                  scale_floor=0.05),
      'step': fb.glow_step(c, event_ndims, _network_fn(event_ndims), True, seed=2, name='s'),
  }


@pytest.mark.parametrize('shape,event_ndims', SHAPES)
@pytest.mark.parametrize('kind', ['actnorm', 'invertible_lu', 'additive', 'affine',
                                  'affine_floor', 'step'])
def test_block_invertible_and_log_det_matches_autodiff(shape, event_ndims, kind):
  block = _blocks(shape, event_ndims)[kind]
  helpers.perturb_variables(block, scale=0.3)
  x = _data(shape)
  _, ildj = helpers.assert_invertible(block, x)
  expected = helpers.autodiff_log_det(lambda t: block.inverse_and_log_det(t)[0], x[0])
  np.testing.assert_allclose(ildj.numpy()[0], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('shape,event_ndims', SHAPES)
def test_forward_log_det_matches_autodiff(shape, event_ndims):
  block = _blocks(shape, event_ndims)['step']
  helpers.perturb_variables(block, scale=0.3)
  z = _data(shape, seed=1)
  _, fldj = block.forward_and_log_det(tf.constant(z))
  expected = helpers.autodiff_log_det(lambda t: block.forward_and_log_det(t)[0], z[0])
  np.testing.assert_allclose(fldj.numpy()[0], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('shape,event_ndims', SHAPES)
def test_tfp_interface_agrees_with_fused_passes(shape, event_ndims):
  block = _blocks(shape, event_ndims)['step']
  helpers.perturb_variables(block, scale=0.3)
  x = tf.constant(_data(shape))
  z, ildj = block.inverse_and_log_det(x)
  # |z| reaches about 7 here: float32 rounding is relative to that scale.
  np.testing.assert_allclose(block.inverse(tf.identity(x)).numpy(), z.numpy(), rtol=1e-6,
                             atol=1e-6 * np.abs(z.numpy()).max())
  np.testing.assert_allclose(
      block.inverse_log_det_jacobian(tf.identity(x), event_ndims=event_ndims).numpy(),
      ildj.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      block.forward_log_det_jacobian(tf.identity(z), event_ndims=event_ndims).numpy(),
      -ildj.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('shape,event_ndims', SHAPES)
def test_actnorm_data_init_gives_zero_mean_unit_std(shape, event_ndims):
  block = fb.ActNorm(shape[-1], event_ndims)
  x = _data(shape, batch=16) * np.arange(1, shape[-1] + 1, dtype=np.float32) + 5.
  z = block.data_init(tf.constant(x)).numpy().reshape(-1, shape[-1])
  np.testing.assert_allclose(z.mean(0), 0., atol=1e-4)
  np.testing.assert_allclose(z.std(0), 1., atol=1e-3)


def test_actnorm_on_constant_channel_stays_finite():
  block = fb.ActNorm(2, 1)
  x = np.stack([np.ones(8), np.arange(8.)], 1).astype(np.float32)
  block.data_init(tf.constant(x))
  z, ldj = block.inverse_and_log_det(tf.constant(x))
  helpers.assert_finite(z, ldj)


def test_coupling_needs_two_channels():
  with pytest.raises(ValueError, match='at least 2 channels'):
    fb.Coupling(1, 1, fb.mlp_network_fn(4), affine=True)


def test_scale_floor_bounds_the_generators_expansion():
  """With raw scales driven to -inf, openai/glow's coupling sends a sample to infinity; with a
  floor e the expansion is 1/e per coupling, and the log-det says so."""
  for floor, expected in ((0., np.inf), (0.01, 100.)):
    coupling = fb.Coupling(2, 1, fb.mlp_network_fn(4), affine=True, scale_floor=floor)
    coupling.forward_and_log_det(tf.zeros([1, 2]))  # builds the network
    last = coupling.network.layers[-1]
    last.bias.assign([0., -1e4])  # shift 0, raw -1e4: sigmoid(raw + 2) underflows to 0
    x, fldj = coupling.forward_and_log_det(tf.constant([[0.3, 1.]]))
    if np.isinf(expected):
      assert not np.isfinite(x.numpy()[0, 1])
    else:
      np.testing.assert_allclose(x.numpy()[0], [0.3, expected], rtol=1e-5)
      np.testing.assert_allclose(fldj.numpy(), [np.log(expected)], rtol=1e-5)
  with pytest.raises(ValueError, match='scale floor'):
    fb.Coupling(2, 1, fb.mlp_network_fn(4), affine=True, scale_floor=1.)


def test_cube_squash_invertible_and_log_dets_match_autodiff():
  rng = np.random.default_rng(0)
  block = fb.CubeSquash(-0.5, 0.5, 3)
  x = rng.uniform(-0.49, 0.49, size=(3, 4, 4, 2)).astype(np.float32)
  _, ildj = helpers.assert_invertible(block, x)
  expected = helpers.autodiff_log_det(lambda t: block.inverse_and_log_det(t)[0], x[0])
  np.testing.assert_allclose(ildj.numpy()[0], expected, rtol=1e-4, atol=1e-3)
  u = (3. * rng.standard_normal((2, 4, 4, 2))).astype(np.float32)
  _, fldj = block.forward_and_log_det(tf.constant(u))
  expected = helpers.autodiff_log_det(lambda t: block.forward_and_log_det(t)[0], u[0])
  np.testing.assert_allclose(fldj.numpy()[0], expected, rtol=1e-4, atol=1e-3)


def test_cube_squash_stays_in_the_cube_and_refuses_points_outside():
  block = fb.CubeSquash(-0.5, 0.5, 1)
  x, fldj = block.forward_and_log_det(tf.constant([[-40., 0., 40.]]))
  assert np.all(np.abs(x.numpy()) <= 0.5) and np.isfinite(fldj.numpy()).all()
  # The cube's own edge (a dequantized pixel at level 0) is finite; a point outside is -inf.
  _, ildj = block.inverse_and_log_det(tf.constant([[-0.5, 0., 0.5], [0.1, 0.5001, 0.]]))
  assert np.isfinite(ildj.numpy()[0]) and ildj.numpy()[1] == -np.inf
  with pytest.raises(ValueError, match='low < high'):
    fb.CubeSquash(0.5, -0.5, 1)


def test_pointwise_conv_is_a_1x1_conv_with_the_same_checkpoint(tmp_path):
  """PointwiseConv2D (the coupling network's 1x1 conv, computed as a matmul) restores a Keras
  1x1 Conv2D's checkpoint and then gives its outputs and gradients."""
  x = tf.random.stateless_normal([2, 4, 4, 6], [3, 4])
  conv = keras.Sequential([keras.layers.Conv2D(5, 1, activation='relu')])
  point = keras.Sequential([fb.PointwiseConv2D(5, activation='relu')])
  conv.build(x.shape)
  point.build(x.shape)
  conv.layers[0].bias.assign(tf.linspace(-0.5, 0.5, 5))
  path = tf.train.Checkpoint(net=conv).write(str(tmp_path / 'ckpt'))
  tf.train.Checkpoint(net=point).read(path).assert_consumed()
  outputs = []
  for net in (conv, point):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = net(x)
      loss = tf.reduce_sum(y * tf.range(5, dtype=tf.float32))
    outputs.append((y, *tape.gradient(loss, [x, *net.trainable_variables])))
  for expected, got in zip(*outputs):
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
  assert float(tf.reduce_max(outputs[0][0])) > 0  # the ReLU is not all off
