"""A tiny image config that runs every mode end to end on CPU in seconds (used by the tests)."""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = 'random_images'
  config.data.shape = (8, 8, 3)
  config.data.num_bins = 256
  config.data.num_classes = 2
  config.model.flow.update(levels=2, steps_per_level=2, width=16, coupling='affine')
  config.model.ebm.arch = 'conv'
  config.train.update(batch_size=8, steps=4, log_every=2, checkpoint_every=2)
  config.eval.update(examples=16, fid_samples=0)
  return config
