import ml_collections
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
  config = ml_collections.ConfigDict(dict(arch=arch, conditional=bool(classes)))
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
  model.log_normalizer.assign([0.5, -1., 2.])
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


def test_bad_input_is_refused():
  with pytest.raises(ValueError, match="Unknown EBM architecture 'resnet'; valid: mlp"):
    ebm_lib.build_network('resnet', (2,))
  with pytest.raises(ValueError, match='takes images'):
    ebm_lib.build_network('conv', (2,))
  model = _ebm('conv', (8, 8, 1), 0)
  with pytest.raises(ValueError, match=r'inputs of shape \(8, 8, 1\).*\(2, 8, 8, 3\)'):
    model(tf.zeros([2, 8, 8, 3]))
  with pytest.raises(ValueError, match='num_classes >= 2'):
    build.build_ebm(ml_collections.ConfigDict(dict(arch='mlp', conditional=True)), (2,),
                    num_classes=0)
