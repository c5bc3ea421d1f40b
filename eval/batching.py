"""Evaluation in batches: the one helper every evaluation loop uses."""

import numpy as np
import tensorflow as tf


def spans(n, size):
  """(start, length) of consecutive batches of at most `size` covering range(n)."""
  for start in range(0, n, size):
    yield start, min(size, n - start)


def apply(fn, x, batch_size, dtype=np.float32):
  """fn applied eagerly to float32 batches of `x`; the outputs concatenated as a `dtype` array."""
  x = np.asarray(x, np.float32)
  out = [fn(tf.constant(x[start:start + size])).numpy()
         for start, size in spans(len(x), batch_size)]
  return np.concatenate(out).astype(dtype) if out else np.zeros((0,), dtype)
