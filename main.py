"""Flow contrastive estimation of energy-based models: the command-line entry point.

  python main.py                                  # FCE on 8 gaussians (no download)
  python main.py --dataset=rings --mode=mle --set train.steps=3000

Flags choose the dataset, mode and workdir; `--set key=value` overrides any config field.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

import configs  # noqa: E402
from configs import overrides  # noqa: E402
from data import toys  # noqa: E402
from train import loop  # noqa: E402

flags.DEFINE_enum('dataset', '8gaussians', toys.TOYS, 'Dataset to train on.')
flags.DEFINE_enum('mode', 'fce', loop.MODES, 'mle: flow by maximum likelihood; nce: EBM against '
                  'Gaussian noise; fce: EBM and flow on the shared value function (FCE eq. 12).')
flags.DEFINE_string('workdir', None, 'Output folder (default: runs/<dataset>_<mode>).')
flags.DEFINE_multi_string('set', [], 'Config override key=value, e.g. train.steps=500.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = configs.get_config('toy2d')
  config.data.name = FLAGS.dataset
  try:
    overrides.apply(config, FLAGS.set)
  except ValueError as e:
    raise app.UsageError(str(e))
  workdir = FLAGS.workdir or os.path.join('runs', f'{FLAGS.dataset}_{FLAGS.mode}')
  logging.info('Training %s on %s; writing to %s', FLAGS.mode, FLAGS.dataset, workdir)
  try:
    metrics = loop.run(config, FLAGS.mode, workdir)
  except loop.TrainingDiverged as e:
    logging.error('%s', e)
    raise SystemExit(1)
  logging.info('Done. Final metrics in %s/metrics.json: %s', workdir, metrics)


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  app.run(main)
