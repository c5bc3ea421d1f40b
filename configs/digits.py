"""scikit-learn's 8x8 digits (17 grey levels): a real image dataset small enough for CPU runs."""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = 'digits'
  config.data.shape = (8, 8, 1)
  config.data.num_bins = 17
  config.data.num_classes = 10
  config.model.flow.update(levels=2, steps=8, width=128, coupling='affine')
  config.model.ebm.arch = 'conv'
  config.train.batch_size = 64
  return config
