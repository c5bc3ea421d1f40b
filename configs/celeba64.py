"""CelebA at 64x64 (NT-EBM Sec. 4 and A.3): Glow L=3, K=16, W=256 with additive couplings (NT-EBM
A.4), and the 64x64 LipSwish EBM of NT-EBM Table 5 (nf=32) with Adam lr 1e-5, beta1 0.99."""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = 'celeba64'
  config.data.shape = (64, 64, 3)
  config.data.num_bins = 256
  config.model.flow.update(levels=3, steps_per_level=16, width=256, coupling='additive')
  config.model.ebm.arch = 'lipswish'  # (2, 4, 8, 8) x nf stride-2 convs at 64x64
  config.optim.update(ebm_lr=1e-5, ebm_beta1=0.99)
  config.train.batch_size = 64
  config.fce.mle_pretrain_steps = 50000  # ours: the paper does not say (configs/base.py)
  config.eval.every = 5000
  return config


def for_mode(config, mode):
  base.image_for_mode(config, mode, nt_lr=1e-5, nce_lr=1e-5)
