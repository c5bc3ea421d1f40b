"""scikit-learn's 8x8 digits (17 grey levels): a real image dataset small enough for CPU runs."""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = 'digits'
  config.data.shape = (8, 8, 1)
  config.data.num_bins = 17
  config.data.num_classes = 10
  # Additive couplings, as the paper's image configs (Table 7): an affine scale sigmoid(h + 2)
  # near 0 can blow a sample up, and one NaN flow sample stops an FCE run.
  config.model.flow.update(levels=2, steps_per_level=8, width=128, coupling='additive',
                           support=base.EDGE_FLOW_SUPPORT)
  config.model.ebm.arch = 'conv'
  config.train.batch_size = 64
  config.fce.mle_pretrain_steps = 3000  # the Glow-MLE of docs/digits (it overfits beyond)
  # No FID in the training loop: Inception is slow on a CPU (docs/benchmarks); --mode=eval
  # computes it.
  config.eval.fid_samples = 0
  return config


def for_mode(config, mode):
  # Mostly background at the bottom of the pixel range: the paper's flow rate and the cube Glow.
  base.image_for_mode(config, mode, photographs=False)
