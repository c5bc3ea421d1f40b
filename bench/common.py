"""What the benchmark scripts share. Import it after `startup.quiet()`: it imports TensorFlow."""

import numpy as np
import tensorflow as tf

from losses import flow as flow_losses
from models import build


def models_and_batch(config, batch_size):
  """The config's flow and EBM, and a batch {'x', 'z'} of random stand-in data (dequantized
  uint8 images, or Gaussian vectors) on which the flow's ActNorms are initialised."""
  shape = tuple(config.data.shape)
  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes, config.model.flow)
  rng = np.random.default_rng(0)
  if config.data.num_bins:
    ints = rng.integers(0, config.data.num_bins, (batch_size, *shape))
    x = tf.constant(flow_losses.dequantize(ints, config.data.num_bins, rng.random(ints.shape)))
  else:
    x = tf.constant(rng.standard_normal((batch_size, *shape)).astype(np.float32))
  flow.data_init(x)
  return flow, ebm, {'x': x, 'z': flow.sample_latent(batch_size)}
