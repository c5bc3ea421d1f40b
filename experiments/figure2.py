"""FCE Figure 2: the EBM's log-density error on 8 gaussians against EBM updates, for FCE from a
random Glow ('rand'), FCE from an MLE-trained Glow ('trained') and NCE with Gaussian noise.

Each run is the trainer of `main.py` with the toy2d defaults (plus --set overrides); the error is
read back from each run's TensorBoard scalars. Writes, in --outdir: figure2.png, figure2.json
(all curves) and figure2.md (the final errors per seed).

  python -m experiments.figure2 --seeds=0,1,2 --ebm_updates=4000 --outdir=docs/figure2
"""

import json
import os

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import configs  # noqa: E402
import experiments  # noqa: E402
from train import modes  # noqa: E402
from train import trainer as trainer_lib  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds (train.seed) to run.')
  flags.DEFINE_integer('ebm_updates', 4000, 'EBM updates per run (FCE runs stop when their EBM '
                       'has had as many, whatever the flow had).')
  flags.DEFINE_integer('mle_steps', 2000, 'MLE steps of the flow for the "trained" start.')
  flags.DEFINE_integer('eval_every', 500, 'Steps between log-density evaluations.')
  experiments.define_run_flags('figure2')


FLAGS = flags.FLAGS


def _train(mode, seed, workdir, init_flow=None):
  """Trains to FLAGS.ebm_updates EBM updates; returns [(EBM updates, EBM log-density MSE)]."""
  n = FLAGS.ebm_updates
  steps = [f'train.steps={n}']
  if modes.get(mode).alternates:  # the run ends at n EBM updates, allowing 4 flow updates each
    steps = [f'train.steps={5 * n}', f'fce.ebm_updates={n}']
  config = configs.for_dataset('8gaussians', None, [
      f'train.seed={seed}', f'eval.every={FLAGS.eval_every}',
      f'train.log_every={FLAGS.eval_every}', f'train.checkpoint_every={FLAGS.eval_every}',
      *steps] + FLAGS.set)
  trainer_lib.Trainer(config, mode, workdir, init_flow=init_flow).run()
  mse = experiments.scalars(workdir, 'ebm_logp_mse')
  if modes.get(mode).alternates:
    updates = experiments.scalars(workdir, 'ebm_updates')
  else:  # every update is an EBM update
    updates = {s: s for s in mse}
  return [(updates[s], mse[s]) for s in sorted(mse)]


def main(_):
  tf.io.gfile.makedirs(FLAGS.outdir)
  n = FLAGS.ebm_updates
  curves = {'FCE rand': {}, 'FCE trained': {}, 'NCE': {}}
  for seed in map(int, FLAGS.seeds):
    root = os.path.join(FLAGS.workroot, f'seed{seed}')
    logging.info('seed %d: FCE from a random Glow', seed)
    curves['FCE rand'][seed] = _train('fce', seed, os.path.join(root, 'fce_rand'))
    logging.info('seed %d: MLE Glow, then FCE from it', seed)
    mle_dir = os.path.join(root, 'mle')
    config = configs.for_dataset('8gaussians', None, [f'train.seed={seed}',
                                              f'train.steps={FLAGS.mle_steps}',
                                              f'eval.every={FLAGS.mle_steps}'] + FLAGS.set)
    trainer_lib.Trainer(config, 'mle', mle_dir).run()
    curves['FCE trained'][seed] = _train('fce', seed, os.path.join(root, 'fce_trained'),
                                         init_flow=mle_dir)
    logging.info('seed %d: NCE with Gaussian noise', seed)
    curves['NCE'][seed] = _train('nce', seed, os.path.join(root, 'nce'))

  fig, ax = plt.subplots(figsize=(6, 4))
  for (name, runs), color in zip(curves.items(), ('C0', 'C1', 'C2')):
    for i, points in enumerate(runs.values()):
      x, y = zip(*points)
      ax.plot(x, y, color=color, alpha=0.8, label=name if i == 0 else None)
  ax.set_yscale('log')
  ax.set_xlabel('EBM updates')
  ax.set_ylabel('MSE of log-density (EBM, learned c)')
  ax.set_title('8 gaussians (FCE Figure 2)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.outdir, 'figure2.png'), dpi=100)
  with open(os.path.join(FLAGS.outdir, 'figure2.json'), 'w') as f:
    json.dump({k: {str(s): v for s, v in runs.items()} for k, runs in curves.items()}, f)

  table = summary(curves, n, FLAGS.seeds)
  with open(os.path.join(FLAGS.outdir, 'figure2.md'), 'w') as f:
    f.write(table)
  print(table)


def summary(curves, n, seeds, below=0.1):
  """The table of figure2.md: per method, the EBM's log-density MSE at the last evaluation
  within n EBM updates (per seed and mean), the mean of the last 3 such evaluations, and the EBM
  updates at the first evaluation below `below` (per seed; '-' if none)."""
  lines = [f'EBM log-density MSE (learned c), at most {n} EBM updates', '',
           '| method | last evaluation (' + ' / '.join(f'seed {s}' for s in seeds) + ') | mean '
           f'| mean of the last 3 evaluations | first evaluation below {below} |',
           '|---|---|---|---|---|']
  for name, runs in curves.items():
    within = [[(u, m) for u, m in points if u <= n] for points in runs.values()]
    finals = [w[-1][1] for w in within]
    last3 = np.mean([m for w in within for _, m in w[-3:]])
    first = [next((str(int(u)) for u, m in w if m < below), '-') for w in within]
    lines.append(f'| {name} | ' + ' / '.join(f'{v:.3f}' for v in finals) +
                 f' | {np.mean(finals):.3f} | {last3:.3f} | {" / ".join(first)} |')
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  define_flags()
  startup.run(main)
