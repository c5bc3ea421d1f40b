import numpy as np
import tensorflow as tf

from losses import ssl
from models import build
from models import glow
from tests import helpers


def _conditional_ebm(classes=3):
  config = helpers.ebm_config(arch='mlp', conditional=True)
  return build.build_ebm(config, (2,), num_classes=classes)


def test_label_loss_is_cross_entropy_of_f_minus_c_by_hand():
  ebm = _conditional_ebm()
  ebm.set_log_normalizer([0.3, -0.2, 1.0])
  x = tf.random.stateless_normal([5, 2], seed=[0, 1])
  y = np.array([0, 1, 2, 1, 0])
  loss, metrics = ssl.label_loss(ebm, x, y)
  logits = ebm(x).numpy() - [0.3, -0.2, 1.0]
  log_post = logits - np.log(np.sum(np.exp(logits), 1, keepdims=True))  # FCE eq. 17
  np.testing.assert_allclose(loss.numpy(), -np.mean(log_post[np.arange(5), y]), rtol=1e-5)
  np.testing.assert_allclose(metrics['label_accuracy'].numpy(),
                             np.mean(logits.argmax(1) == y), rtol=1e-6)


def test_vat_is_zero_for_a_classifier_that_ignores_x_and_positive_otherwise():
  ebm = _conditional_ebm()
  x = tf.random.stateless_normal([6, 2], seed=[2, 3])
  vat, _ = ssl.vat_loss(ebm, x, epsilon=1.)
  assert float(vat) > 0.
  for v in ebm.network.trainable_variables:  # f_k(x) = bias_k: p(y | x) is constant
    if 'kernel' in v.name:
      v.assign(tf.zeros_like(v))
  vat, _ = ssl.vat_loss(ebm, x, epsilon=1.)
  np.testing.assert_allclose(float(vat), 0., atol=1e-7)


def test_ssl_loss_reaches_every_ebm_variable():
  ebm = _conditional_ebm()
  flow = glow.Flow(glow.VectorGlow(2, 2, width=8), (2,))
  rng = np.random.default_rng(0)
  x_lab = tf.constant(rng.normal(size=(6, 2)).astype(np.float32))
  x_unl = tf.constant(rng.normal(size=(16, 2)).astype(np.float32))
  z = flow.sample_latent(16)
  with tf.GradientTape() as tape:
    loss, metrics = ssl.ebm_ssl_loss(ebm, flow, x_lab, np.arange(6) % 3, x_unl, z,
                                     vat_weight=1., vat_epsilon=0.5)
  helpers.assert_all_gradients_nonzero(ebm.trainable_variables,
                                       tape.gradient(loss, ebm.trainable_variables))
  assert {'value', 'accuracy', 'label_loss', 'vat_loss'} <= set(metrics)


def _dropout_ebm(classes=3, shape=(12, 12, 3)):
  """A 'conv_small' EBM (dropout 0.2 / 0.5 / 0.5, FCE Table 6) on images it accepts."""
  config = helpers.ebm_config(arch='conv_small', conditional=True)
  return build.build_ebm(config, shape, num_classes=classes)


def test_vat_is_zero_at_zero_perturbation_for_a_network_with_dropout():
  ebm = _dropout_ebm()
  assert ebm.has_dropout
  x = tf.random.stateless_normal([4, 12, 12, 3], seed=[4, 5])
  vat, metrics = ssl.vat_loss(ebm, x, epsilon=0.)  # KL(p(.|x) || p(.|x + 0)) must vanish
  np.testing.assert_allclose(float(vat), 0., atol=1e-6)
  np.testing.assert_allclose(float(metrics['vat_loss']), 0., atol=1e-6)
  vat, _ = ssl.vat_loss(ebm, x, epsilon=1.)
  assert np.isfinite(float(vat)) and float(vat) >= 0.
