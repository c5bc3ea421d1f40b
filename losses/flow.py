"""Flow maximum likelihood: dequantization, negative log-likelihood and bits per dimension.

openai/glow's convention: an integer image x in {0, ..., k-1} (k = 256 for 8-bit data) becomes
y = (x + u) / k - 0.5 with u ~ U(0, 1)^D. A density p(y) on [-0.5, 0.5]^D is a density on the
dequantized [0, k)^D scale divided by k^D, so

  bpd = (-log p(y) + D log k) / (D log 2).
"""

import numpy as np
import tensorflow as tf

from losses.contrastive import reduce_batch


def dequantize(x, num_bins, u):
  """Uniform dequantization y = (x + u) / k - 0.5 (openai/glow): this formula's one home.

  Args:
    x: levels in {0, ..., k - 1} (numpy, any dtype); continuous data if num_bins is 0.
    num_bins: number of quantization levels k (0: x passes through as float32).
    u: U(0, 1) noise shaped like x (training batches, data/pipeline.py), or 0.5 for the bin
      centres (`bin_centres`).

  Returns:
    float32 numpy array in [-0.5, 0.5).
  """
  x = np.asarray(x, np.float32)
  if not num_bins:
    return x
  return (x + np.asarray(u, np.float32)) / np.float32(num_bins) - np.float32(0.5)


def bin_centres(x, num_bins):
  """The centres (x + 1/2) / k - 1/2 of the bins: the deterministic input for a classifier."""
  return dequantize(x, num_bins, 0.5)


def quantize(y, num_bins=256):
  """Inverse of `dequantize` up to the noise: maps y in [-0.5, 0.5] to uint8 levels."""
  x = tf.floor((tf.cast(y, tf.float32) + 0.5) * num_bins)
  return tf.cast(tf.clip_by_value(x, 0, num_bins - 1), tf.uint8)


def to_8bit(x, num_bins):
  """Quantized images in {0..k-1} stretched to uint8 0..255 (unchanged for k = 256 or 0), for
  viewing and for Inception features."""
  x = np.asarray(x)
  if num_bins in (0, 256):
    return x.astype(np.uint8)
  return np.round(x.astype(np.float32) * 255. / (num_bins - 1)).astype(np.uint8)


def bits_per_dim(log_prob, num_dims, num_bins=256):
  """Bits per dimension of discrete data from log p(y) of its dequantized version (per example)."""
  return (-log_prob + num_dims * np.log(num_bins)) / (num_dims * np.log(2.))


def flow_nll(flow, y, num_bins=None, global_batch_size=None):
  """Flow MLE loss: per-example -log q_alpha(y) in nats, plus scalars to log.

  Args:
    flow: a `models.glow.Flow`.
    y: a data batch (dequantized images, or real vectors).
    num_bins: quantization levels of the data; if given, bits/dim is logged too.
    global_batch_size: under tf.distribute, the global batch size the scalars are scaled by.

  Returns:
    (per-example loss [B], dict of scalar metrics).
  """
  log_q = flow.log_prob(y)
  metrics = {'nll': reduce_batch(-log_q, global_batch_size)}
  if num_bins:
    num_dims = int(np.prod(y.shape[1:]))
    metrics['bpd'] = reduce_batch(bits_per_dim(log_q, num_dims, num_bins), global_batch_size)
  return -log_q, metrics
