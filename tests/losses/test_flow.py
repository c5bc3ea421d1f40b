import numpy as np
import tensorflow as tf

from losses import flow as flow_losses
from models import glow


def test_dequantize_maps_levels_into_their_bins_and_quantize_inverts():
  x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  for u in (0., 0.999):
    y = flow_losses.dequantize(x, noise=np.full(x.shape, u, np.float32)).numpy()
    assert y.min() >= -0.5 and y.max() < 0.5
    np.testing.assert_array_equal(flow_losses.quantize(y).numpy(), x)
  y17 = flow_losses.dequantize(np.array([[0, 16]]), num_bins=17, noise=np.zeros((1, 2))).numpy()
  np.testing.assert_allclose(y17, [[-0.5, 16 / 17 - 0.5]], rtol=1e-6)


def test_bits_per_dim_of_uniform_density_is_log2_of_levels():
  # The uniform density on [-0.5, 0.5]^D has log p(y) = 0: exactly log2(k) bits per dimension.
  np.testing.assert_allclose(flow_losses.bits_per_dim(tf.zeros([3]), 3072, 256).numpy(), 8.)
  np.testing.assert_allclose(flow_losses.bits_per_dim(tf.zeros([1]), 64, 17).numpy(),
                             np.log2(17), rtol=1e-6)


def test_flow_nll_bits_per_dim_closed_form_for_standard_normal_flow():
  # A freshly built additive Glow is exactly N(0, I) (see tests/models/test_glow.py).
  shape = (4, 4, 2)
  flow = glow.Flow(glow.ImageGlow(shape, 1, 2, 8, 'additive'), shape)
  y = np.random.default_rng(0).uniform(-0.5, 0.5, (5, *shape)).astype(np.float32)
  loss, metrics = flow_losses.flow_nll(flow, tf.constant(y), num_bins=256)
  d = 32
  nll = 0.5 * np.sum(y.reshape(5, -1) ** 2, 1) + 0.5 * d * np.log(2 * np.pi)
  np.testing.assert_allclose(loss.numpy(), nll, rtol=1e-5)
  np.testing.assert_allclose(metrics['bpd'].numpy(),
                             np.mean(nll / (d * np.log(2)) + 8.), rtol=1e-5)
