import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import build
from models import ebm as ebm_lib
from tests import helpers

CASES = [
    ('mlp', (2,), 0),
    ('mlp', (2,), 2),
    ('conv', (32, 32, 3), 0),
    ('conv', (8, 8, 1), 0),
    ('lipswish', (32, 32, 3), 0),
    ('lipswish', (64, 64, 3), 0),
    ('conv_small', (32, 32, 3), 10),
    ('conv_large', (32, 32, 3), 10),
]


def _ebm(arch, shape, classes):
  config = helpers.ebm_config(arch=arch, conditional=bool(classes))
  return build.build_ebm(config, shape, num_classes=classes)


@pytest.mark.parametrize('arch,shape,classes', CASES)
def test_output_shapes_and_every_variable_gets_a_gradient(arch, shape, classes):
  model = _ebm(arch, shape, classes)
  x = tf.random.stateless_normal([3, *shape], seed=[0, 1])
  f = model(x)
  assert f.shape == ((3, classes) if classes else (3,))
  assert model.log_normalizer.shape == (classes or 1,)
  with tf.GradientTape() as tape:
    # A data-vs-noise logistic loss touches c as well as the network.
    loss = tf.reduce_mean(tf.nn.softplus(-model.marginal_log_prob(x, training=True)))
  helpers.assert_all_gradients_nonzero(model.trainable_variables,
                                       tape.gradient(loss, model.trainable_variables))


def test_log_prob_subtracts_the_log_normalizer_per_class():
  model = _ebm('mlp', (2,), 3)
  model.set_log_normalizer([0.5, -1., 2.])
  x = tf.random.stateless_normal([4, 2], seed=[1, 2])
  f = model(x).numpy()
  lp = f - [0.5, -1., 2.]
  # float32 rounding is relative to the size of f and c, not of their difference (which can be
  # near 0 for some initial weights: a relative tolerance alone failed in the full suite).
  scale = np.abs(f).max() + 2.
  np.testing.assert_allclose(model.log_prob(x).numpy(), lp, rtol=0, atol=1e-6 * scale)
  mixture = np.log(np.mean(np.exp(lp), axis=1))  # FCE eq. 18 by hand
  np.testing.assert_allclose(model.marginal_log_prob(x).numpy(), mixture, rtol=0,
                             atol=1e-5 * scale)


@pytest.mark.parametrize('classes', [0, 3])
def test_a_cube_support_zeroes_the_density_outside_and_keeps_gradients_finite(classes):
  """model.ebm.support='cube': log p = f - c on [-0.5, 0.5]^D, -inf outside (one pixel out is
  enough); a loss on a batch mixing both has finite gradients for every variable."""
  config = helpers.ebm_config(arch='conv', conditional=bool(classes), support='cube')
  model = build.build_ebm(config, (8, 8, 1), num_classes=classes)
  free = _ebm('conv', (8, 8, 1), classes)
  free.set_weights(model.get_weights())
  x = tf.random.stateless_uniform([4, 8, 8, 1], seed=[2, 3], minval=-0.5, maxval=0.5)
  x = tf.tensor_scatter_nd_update(x, [[1, 3, 4, 0], [3, 0, 0, 0]], [0.51, -0.6])
  lp, expected = model.log_prob(x).numpy(), free.log_prob(x).numpy()
  inside = np.array([True, False, True, False])
  np.testing.assert_array_equal(lp[inside], expected[inside])
  assert np.all(np.isneginf(lp[~inside]))
  with tf.GradientTape() as tape:
    # V's sample term at these points: log sigmoid(log q - log p), log q = 0.
    loss = -tf.reduce_mean(tf.math.log_sigmoid(-model.marginal_log_prob(x, training=True)))
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_table5_conv_net_layers():
  net = ebm_lib.build_network('conv', (32, 32, 3))
  shapes = [net.get_layer(f'conv{i}').output_shape[1:] for i in range(3)]
  assert shapes == [(16, 16, 64), (8, 8, 128), (4, 4, 256)]
  assert net.get_layer('head').output_shape[1:] == (1, 1, 1)


def test_table6_conv_small_pools_six_by_six():
  net = ebm_lib.build_network('conv_small', (32, 32, 3), outputs=10)
  assert net.get_layer('conv6').output_shape[1:] == (6, 6, 128)
  assert net.output_shape == (None, 10)
  assert any(isinstance(layer, keras.layers.Dropout) for layer in net.layers)


def test_weight_norm_starts_equal_to_wrapped_layer():
  dense = keras.layers.Dense(5)
  wrapped = ebm_lib.WeightNorm(dense)
  x = tf.random.stateless_normal([4, 3], seed=[3, 4])
  y = wrapped(x)
  np.testing.assert_allclose(y.numpy(), (x @ dense.kernel + dense.bias).numpy(), rtol=1e-5,
                             atol=1e-6)
  wrapped.g.assign(2. * wrapped.g)  # doubling g doubles the effective kernel
  np.testing.assert_allclose(wrapped(x).numpy(), (2. * x @ dense.kernel + dense.bias).numpy(),
                             rtol=1e-5, atol=1e-5)


def test_lipswish():
  x = np.linspace(-5, 5, 11).astype(np.float32)
  np.testing.assert_allclose(ebm_lib.lipswish(x).numpy(), x / (1 + np.exp(-x)) / 1.1, rtol=1e-6)


@pytest.mark.parametrize('arch,shape', [('mlp', (2,)), ('conv', (8, 8, 1))])
@pytest.mark.parametrize('activation', ['lrelu', 'swish', 'softplus'])
def test_activation_option_sets_the_hidden_layers(arch, shape, activation):
  config = helpers.ebm_config(arch=arch, activation=activation)
  net = build.build_ebm(config, shape).network
  hidden = [layer for layer in net.layers if layer.name.startswith(('fc', 'conv'))]
  assert hidden
  z = np.linspace(-3, 3, 13).astype(np.float32)
  for layer in hidden:
    np.testing.assert_allclose(layer.activation(z).numpy(),
                               ebm_lib.ACTIVATIONS[activation](z).numpy(), rtol=1e-6)


@pytest.mark.parametrize('width', [16, 256])
def test_width_option_sets_the_mlp_hidden_layers(width):
  config = helpers.ebm_config(arch='mlp', width=width)
  net = build.build_ebm(config, (2,)).network
  hidden = [layer for layer in net.layers if layer.name.startswith('fc')]
  assert [layer.units for layer in hidden] == [width] * 3
  assert net(tf.zeros([5, 2])).shape == (5, 1)


def test_smooth_activation_curves_the_2d_log_density():
  """With lReLUs f is piecewise linear in x (its Hessian is 0 almost everywhere); swish bends it."""
  x = tf.random.stateless_normal([64, 2], seed=[5, 6])

  def hessian_norm(activation):
    keras.utils.set_random_seed(0)
    config = helpers.ebm_config(arch='mlp', activation=activation)
    f = build.build_ebm(config, (2,)).network
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        y = tf.reduce_sum(f(x))
      g = inner.gradient(y, x)
    return float(tf.norm(outer.batch_jacobian(g, x)))

  assert hessian_norm('lrelu') == 0.
  assert hessian_norm('swish') > 1e-3


def test_place_kinks_on_data_puts_each_first_layer_kink_through_a_data_point():
  net = ebm_lib.build_network('mlp', (2,), width=16)
  assert not np.any(net.get_layer('fc0').bias.numpy())  # Keras' start: every kink at 0
  x = np.random.default_rng(0).normal(3., 1., (50, 2)).astype(np.float32)
  ebm_lib.place_kinks_on_data(net, x, seed=1)
  layer = net.get_layer('fc0')
  pre = x @ layer.kernel.numpy() + layer.bias.numpy()  # [50, 16]: w_j . x_i + b_j
  assert np.all(np.min(np.abs(pre), axis=0) < 1e-5)  # each unit's line passes a row of x
  assert len(set(np.argmin(np.abs(pre), axis=0))) > 8  # through many points, not one
  other = ebm_lib.build_network('mlp', (2,), width=16)
  other.set_weights([w.copy() for w in net.get_weights()])
  ebm_lib.place_kinks_on_data(other, x, seed=1)
  np.testing.assert_array_equal(other.get_layer('fc0').bias.numpy(), layer.bias.numpy())
  half = ebm_lib.build_network('mlp', (2,), width=16)
  half.set_weights([w.copy() for w in net.get_weights()])
  half.get_layer('fc0').bias.assign(np.zeros(16, np.float32))
  ebm_lib.place_kinks_on_data(half, x, seed=1, share=0.5)  # first_bias='half'
  bias = half.get_layer('fc0').bias.numpy()
  np.testing.assert_array_equal(bias[:8], layer.bias.numpy()[:8])  # through data points
  assert not np.any(bias[8:])  # the others still through the origin


def test_inputs_of_another_shape_are_refused():
  model = _ebm('conv', (8, 8, 1), 0)
  with pytest.raises(ValueError, match=r'inputs of shape \(8, 8, 1\).*\(2, 8, 8, 3\)'):
    model(tf.zeros([2, 8, 8, 3]))


def _adam_steps_on_c(ebm, steps):
  """`steps` Adam updates (lr 3e-4, FCE's) of a loss whose gradient on c is -1."""
  opt = keras.optimizers.Adam(3e-4)
  x = tf.zeros([4, 2])
  for _ in range(steps):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(ebm.log_prob(x))
    opt.apply_gradients(zip(tape.gradient(loss, ebm.trainable_variables),
                            ebm.trainable_variables))


def test_c_learns_at_the_scale_of_image_log_densities():
  """At |c| = 1e4 (32x32x3 images) float32 values are ~1e-3 apart, more than an Adam step: c0 +
  delta moves by the steps' sum, where a single float32 c would not move at all."""
  ebm = _ebm('mlp', (2,), 0)
  ebm.set_log_normalizer([-1e4])
  _adam_steps_on_c(ebm, 10)
  moved = float(ebm.log_normalizer_delta.numpy()[0])
  np.testing.assert_allclose(moved, 10 * 3e-4, rtol=0.05)  # Adam steps of lr each, upwards
  np.testing.assert_allclose(ebm.log_normalizer.numpy(), [-1e4 + 3e-3], atol=1e-3)
  single = tf.Variable([-1e4])  # what c was before the split, for contrast
  for _ in range(10):
    single.assign_add([3e-4])
  assert single.numpy()[0] == np.float32(-1e4)


def test_a_flow_base_adds_a_frozen_log_q():
  """With base='flow', f = network + log q_base, and the base is not among the EBM's trainable
  variables (the EBM's optimizer must not move it)."""
  flow_config = helpers.flow_config(levels=1, steps_per_level=2, width=8)
  config = helpers.ebm_config(arch='mlp', base='flow')
  ebm = build.build_ebm(config, (2,), flow_config=flow_config)
  plain = build.build_ebm(helpers.ebm_config(arch='mlp'), (2,))
  x = tf.random.stateless_normal([5, 2], seed=[3, 4])
  np.testing.assert_allclose(ebm(x).numpy(), ebm.network(x).numpy()[:, 0] +
                             ebm.base.log_prob(x).numpy(), rtol=1e-6)
  frozen = {v.ref() for v in ebm.base.variables}
  assert ebm.base.trainable_variables and not any(v.ref() in frozen
                                                  for v in ebm.trainable_variables)
  assert len(ebm.trainable_variables) == len(plain.trainable_variables)
  with pytest.raises(ValueError, match='base'):
    build.build_ebm(config, (2,))


def test_a_checkpoint_with_a_single_c_restores_its_value(tmp_path):
  """Checkpoints saved before c was split into c0 + delta hold one variable, 'log_normalizer'."""
  legacy = tf.Module()
  legacy.log_normalizer = tf.Variable([-123.5])
  path = tf.train.Checkpoint(ebm=legacy).save(str(tmp_path / 'old'))
  ebm = _ebm('mlp', (2,), 0)
  assert ebm_lib.restore_legacy_log_normalizer(ebm, path)
  np.testing.assert_array_equal(ebm.log_normalizer.numpy(), [-123.5])
  current = tf.train.Checkpoint(ebm=ebm).save(str(tmp_path / 'new'))
  assert not ebm_lib.restore_legacy_log_normalizer(_ebm('mlp', (2,), 0), current)
