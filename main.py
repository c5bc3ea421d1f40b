"""Flow contrastive estimation of energy-based models: the command-line entry point.

  python main.py                                       # FCE on 2D 8 gaussians (no download)
  python main.py --dataset=celeba --mode=fce        # Glow by MLE, then FCE from it
  python main.py --dataset=celeba --mode=fce --init_flow=runs/celeba_mle
  python main.py --dataset=rings --mode=mle --set train.steps=3000

Flags choose the dataset, mode, workdir and strategy; `--set key=value` overrides any config
field (see configs/). Re-running the same command resumes from the workdir's checkpoint.
"""

import json
import math
import os

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

import configs  # noqa: E402
from configs import departures  # noqa: E402
from data import images  # noqa: E402
from eval import image_eval  # noqa: E402
from eval import run as eval_run  # noqa: E402
from train import distribute  # noqa: E402
from train import modes  # noqa: E402
from train import trainer  # noqa: E402

flags.DEFINE_string('dataset', '8gaussians', f'One of {", ".join(configs.DATASETS)}, or '
                    'npy:PATH ((N, D) float vectors or (N, H, W, C) uint8 images), folder:PATH '
                    '(image files), npz:PATH (x, and y labels with -1 = unlabeled); a held-out '
                    'split as a second path (npy:TRAIN.npy,TEST.npy) or in the npz (x_test, '
                    'y_test), or cut by --set data.test_fraction=0.1.')
flags.DEFINE_enum('mode', 'fce', modes.NAMES + ('eval', 'sample'), '; '.join(
    f'{m.name}: {m.help}' for m in modes.MODES.values()) + '; eval / sample: evaluate / sample '
                  'the latest checkpoint of --workdir.')
flags.DEFINE_string('workdir', None, 'Run folder (default: runs/<dataset>_<mode>).')
flags.DEFINE_string('config', None, f'Base config, one of {", ".join(configs.CONFIGS)} '
                    '(default: the dataset\'s own).')
flags.DEFINE_multi_string('set', [], 'Config override key=value, e.g. --set train.steps=500.')
flags.DEFINE_string('init_flow', None, 'Workdir of a trained flow to start from (fce), or to use '
                    'as the fixed noise (nce).')
flags.DEFINE_string('eval_points', None, 'With --mode=eval: an .npy of (N, D) points at which '
                    'to write the EBM\'s and the flow\'s log-densities.')
flags.DEFINE_integer('fid_samples', 50000, 'With --mode=eval on images: Glow samples for FID/KID '
                     '(the convention: 50k against the training split; 0 skips FID).')
flags.DEFINE_enum('fid_network', 'ttur', ['ttur', 'keras', 'digits'], 'ttur: the standard '
                  'Inception graph (TTUR, classify_image_graph_def.pb); keras: tf_keras '
                  'InceptionV3, a fallback whose numbers are not comparable to published FIDs '
                  '(reports say so); digits: a small classifier of the 8x8 digits (trained once, '
                  'cached), for the digits only. For --mode=eval and the FID that training '
                  'writes on images.')
flags.DEFINE_string('inception_graph', '', 'Path of classify_image_graph_def.pb (from '
                    'inception-2015-12-05.tgz), for --mode=eval and for the FID that training '
                    'writes on images; default: the cache, downloaded once if possible.')
flags.DEFINE_string('fid_stats', '', 'Reference statistics .npz (mu, sigma); default: those of '
                    'the training split, computed once and cached.')
flags.DEFINE_integer('test_examples', 0, 'With --mode=eval on images: bits/dim on this many '
                     'test images (the seeded subset training evaluates on: eval.examples); '
                     '0 = the whole test split.')
flags.DEFINE_integer('is_samples', 10000, 'With --mode=eval on images: flow proposals for the '
                     'importance-sampled log-normalizer of the EBM.')
flags.DEFINE_list('ais_steps', [], 'With --mode=eval on images: also bound the EBM\'s log Z by '
                  'annealed importance sampling in the flow\'s latent space with this many '
                  'annealing steps, or a ladder of them (e.g. 100,300,1000: has the estimate '
                  'stopped moving?). Forward AIS gives the lower bits/dim, reverse AIS from '
                  'neural-transport chains the upper (approximate). Empty = off.')
flags.DEFINE_integer('ais_chains', 256, 'With --ais_steps: AIS chains.')
flags.DEFINE_float('ais_step_size', 0.1, 'With --ais_steps: the HMC step size of each annealing '
                   'step (3 leapfrog steps).')
flags.DEFINE_integer('ais_reverse_steps', 1000, 'With --ais_steps: HMC steps of the neural-'
                     'transport chains reverse AIS starts from (0 = no upper side).')
flags.DEFINE_enum('eval_checkpoints', 'latest', ['latest', 'all'], 'With --mode=eval on images: '
                  'the latest checkpoint, or every kept snapshot too (one report each).')
flags.DEFINE_integer('num_samples', 64, 'With --mode=sample: how many flow samples.')
flags.DEFINE_float('temperature', 1.0, 'With --mode=sample: the latent temperature.')
flags.DEFINE_integer('hmc_steps', 200, 'With --mode=sample or eval on an nt / nt_nce run: HMC '
                     'steps of each latent chain (--num_samples chains, or one per FID sample); '
                     'the step size adapts in the first half.')
flags.DEFINE_float('hmc_step_size', 0., 'With --mode=sample or eval on an nt / nt_nce run: the '
                   'initial HMC step size (0: the run\'s adapted one, or nt.hmc_step_size).')
flags.DEFINE_integer('thin', 0, 'With --mode=sample on an nt / nt_nce run: keep every THIN-th '
                     'state of each chain after the adaptation (0: the last state only).')
flags.DEFINE_enum('strategy', 'auto', distribute.STRATEGIES, 'tf.distribute strategy; auto: '
                  'multi-worker if TF_CONFIG is set, else mirrored over the GPUs, else one device.')
flags.DEFINE_integer('rollback', 0, 'Resume from the checkpoint N before the newest (the newer '
                     'ones are set aside in WORKDIR/rolled_back/): for a run that diverges right '
                     'after resuming. train.keep_checkpoints sets how many are kept.')
FLAGS = flags.FLAGS


def evaluate_or_sample():
  if not FLAGS.workdir:
    raise app.UsageError(f'--mode={FLAGS.mode} needs --workdir, the run folder to read.')
  if FLAGS.hmc_steps < 1 or FLAGS.thin < 0 or FLAGS.num_samples < 1:
    raise app.UsageError('--hmc_steps and --num_samples must be at least 1, --thin at least 0.')
  positive = lambda v: math.isfinite(v) and v > 0
  if not positive(FLAGS.temperature):
    raise app.UsageError(f'--temperature must be a positive number (1: the model itself); got '
                         f'{FLAGS.temperature}.')
  if not (math.isfinite(FLAGS.hmc_step_size) and FLAGS.hmc_step_size >= 0):
    raise app.UsageError(f'--hmc_step_size must be 0 (the run\'s own) or positive; got '
                         f'{FLAGS.hmc_step_size}.')
  ais_steps = [int(k) if k.strip().isdigit() else -1 for k in FLAGS.ais_steps if k != '0']
  if ais_steps and not (positive(FLAGS.ais_step_size) and min(ais_steps) >= 2 and
                        FLAGS.ais_chains >= 2 and FLAGS.ais_reverse_steps >= 0):
    raise app.UsageError('--ais_steps must be 0 or integers of at least 2, with --ais_chains at '
                         'least 2, a positive --ais_step_size and --ais_reverse_steps >= 0; got '
                         f'{",".join(FLAGS.ais_steps)}, {FLAGS.ais_chains}, '
                         f'{FLAGS.ais_step_size}, {FLAGS.ais_reverse_steps}.')
  # Errors the user can fix (errors.UserError: no run there, unreadable data, ...) are printed
  # as one line by startup.run.
  if FLAGS.mode == 'eval':
    options = image_eval.Options(
        fid_samples=FLAGS.fid_samples, fid_network=FLAGS.fid_network,
        inception_graph=FLAGS.inception_graph, fid_stats=FLAGS.fid_stats,
        is_samples=FLAGS.is_samples, test_examples=FLAGS.test_examples,
        hmc_steps=FLAGS.hmc_steps, hmc_step_size=FLAGS.hmc_step_size,
        ais_steps=tuple(ais_steps), ais_chains=FLAGS.ais_chains,
        ais_step_size=FLAGS.ais_step_size, ais_reverse_steps=FLAGS.ais_reverse_steps)
    result = eval_run.evaluate(FLAGS.workdir, FLAGS.eval_points, options, FLAGS.eval_checkpoints)
  else:
    result = eval_run.sample(FLAGS.workdir, FLAGS.num_samples, FLAGS.temperature,
                             hmc_steps=FLAGS.hmc_steps, step_size=FLAGS.hmc_step_size,
                             thin=FLAGS.thin)
  logging.info('Wrote: %s', json.dumps(result))


def main(argv):
  del argv
  if FLAGS.mode in ('eval', 'sample'):
    return evaluate_or_sample()
  if FLAGS.rollback < 0:
    raise app.UsageError('--rollback must be 0 or more (checkpoints to go back).')
  try:
    config = configs.for_dataset(FLAGS.dataset, FLAGS.config, FLAGS.set, FLAGS.mode)
  except (ValueError, images.DataError) as e:
    raise app.UsageError(str(e))
  if FLAGS.inception_graph:
    config.eval.inception_graph = FLAGS.inception_graph
  if FLAGS['fid_network'].present:
    config.eval.fid_network = FLAGS.fid_network
  name = FLAGS.dataset.replace(':', '_').replace('/', '_').strip('_')
  workdir = FLAGS.workdir or os.path.join('runs', f'{name}_{FLAGS.mode}')
  logging.info('%s on %s, writing to %s', FLAGS.mode, FLAGS.dataset, workdir)
  differ = departures.lines(config, FLAGS.mode)
  if differ:
    logging.info('Departures from the papers (configs/departures.py), each with what reverts it:')
  for line in differ:
    logging.info('  %s', line)
  try:
    strategy = distribute.make_strategy(FLAGS.strategy)
    run = trainer.Trainer(config, FLAGS.mode, workdir, strategy, FLAGS.init_flow,
                          rollback=FLAGS.rollback)
  except ValueError as e:  # bad shapes, architectures or data, found while building
    raise trainer.TrainingError(str(e)) from e
  # A TrainingError (a NaN, a held workdir) and a stop by SIGINT / SIGTERM are printed as one
  # line by startup.run.
  metrics = run.run()
  if not run.was_finished:  # else the trainer said it was finished already
    logging.info('Done: %s', '  '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items())))


if __name__ == '__main__':
  startup.run(main)
