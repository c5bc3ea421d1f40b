import numpy as np
import tensorflow as tf

from data import pipeline
from losses import flow as flow_losses
from models import glow


class _ConstantUniform:
  """Stands in for a numpy Generator whose U(0, 1) draws all equal u."""

  def __init__(self, u):
    self.u = u

  def random(self, shape, dtype):
    return np.full(shape, self.u, dtype)


def test_training_dequantization_maps_levels_into_their_bins_and_quantize_inverts():
  # data/pipeline.py's dequantize_numpy makes every training (and test-bpd) batch; quantize maps
  # flow samples back to levels.
  x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  for u in (0., 0.999):
    y = pipeline.dequantize_numpy(x, 256, _ConstantUniform(u))
    assert y.dtype == np.float32 and y.min() >= -0.5 and y.max() < 0.5
    np.testing.assert_allclose(y, (x + u) / 256 - 0.5, rtol=0, atol=4 * np.finfo(np.float32).eps)
    np.testing.assert_array_equal(flow_losses.quantize(y).numpy(), x)
  y17 = pipeline.dequantize_numpy(np.array([[0, 16]], np.uint8), 17, _ConstantUniform(0.))
  np.testing.assert_allclose(y17, [[-0.5, 16 / 17 - 0.5]], rtol=1e-6)
  np.testing.assert_array_equal(flow_losses.quantize(y17, 17).numpy(), [[0, 16]])
  # The real draws: u ~ U(0, 1), one per value (mean within 5 standard errors of 1/2, spread
  # 1/sqrt(12)), within [0, 1] up to float32 rounding at the scale k of x + u.
  n, k = 100000, 16
  y = pipeline.dequantize_numpy(np.full(n, 7, np.uint8), k, np.random.default_rng(0))
  u = (y.astype(np.float64) + 0.5) * k - 7
  tol = 4 * np.finfo(np.float32).eps * k
  assert u.min() >= -tol and u.max() <= 1 + tol
  assert abs(u.mean() - 0.5) < 5 / np.sqrt(12 * n)
  np.testing.assert_allclose(u.std(), 1 / np.sqrt(12), rtol=0.01)
  v = np.array([[0.25, -1.5]], np.float32)  # continuous data (num_bins 0) passes through
  np.testing.assert_array_equal(pipeline.dequantize_numpy(v, 0, np.random.default_rng(0)), v)


def test_bin_centres_are_the_mean_training_input():
  x = np.array([[0, 1, 16]], np.uint8)
  np.testing.assert_allclose(flow_losses.bin_centres(x, 17),
                             [[0.5 / 17 - 0.5, 1.5 / 17 - 0.5, 16.5 / 17 - 0.5]], rtol=1e-6)
  y = flow_losses.bin_centres(np.arange(256, dtype=np.uint8), 256)
  assert y.dtype == np.float32 and y.min() > -0.5 and y.max() < 0.5
  # The mean of the training input (x + u)/k - 0.5 over u, within 5 standard errors of the mean
  # of n draws (u/k has std 1/(k sqrt 12)).
  n, k = 20000, 8
  noisy = pipeline.dequantize_numpy(np.full(n, 3, np.uint8), k, np.random.default_rng(0))
  assert abs(noisy.mean() - flow_losses.bin_centres(np.uint8(3), k)) < \
      5 / (k * np.sqrt(12 * n))
  v = np.array([[0.25, -1.5]], np.float32)
  np.testing.assert_array_equal(flow_losses.bin_centres(v, 0), v)  # continuous data


def test_bits_per_dim_worked_by_hand():
  # The uniform density on [-0.5, 0.5]^D has log p(y) = 0: exactly log2(k) bits per dimension;
  # each further -D log 2 nats of log p(y) adds one bit per dimension.
  d = 3072
  np.testing.assert_allclose(
      flow_losses.bits_per_dim(tf.constant([0., -d * np.log(2.), -2.5 * d * np.log(2.)]), d,
                               256).numpy(), [8., 9., 10.5], rtol=1e-6)
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
