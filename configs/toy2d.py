"""2D toy densities (FCE Sec. 4.1): Glow L=1, K=10, W=128, affine, fc; EBM fc128 x3 (Tables 5, 7)."""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = '8gaussians'
  config.data.shape = (2,)
  config.model.flow.update(levels=1, steps=10, width=128, coupling='affine')
  config.model.ebm.arch = 'mlp'
  config.train.batch_size = 1000
  config.train.steps = 20000
  return config
