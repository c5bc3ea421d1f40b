"""MNIST, zero-padded to 32x32 so three Glow levels fit (NT-EBM A.3: L=3, K=8, W=128)."""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = 'mnist'
  config.data.shape = (32, 32, 1)
  config.data.num_bins = 256
  config.data.num_classes = 10
  config.model.flow.update(levels=3, steps_per_level=8, width=128, coupling='additive',
                           support=base.EDGE_FLOW_SUPPORT)
  config.model.ebm.arch = 'conv'
  config.train.batch_size = 64
  config.fce.mle_pretrain_steps = 30000  # ours: the paper does not say (configs/base.py)
  config.eval.every = 5000  # as the 32x32 RGB configs
  return config


def for_mode(config, mode):
  # Mostly background at the bottom of the pixel range: the paper's flow rate and the cube Glow.
  base.image_for_mode(config, mode, nt_lr=5e-5, nce_lr=1e-5, photographs=False)
