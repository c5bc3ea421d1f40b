"""FCE Figure 5: semi-supervised FCE on two spirals with 7 labeled points per arm.

Runs `--mode=ssl` (class-conditional EBM, eqs. 15-18; the flow as in FCE) with the toy2d
defaults for ssl (`for_mode` in configs/toy2d.py: VAT) plus --set overrides, evaluating
every --eval_every steps. Writes, in --outdir:
figure5.png (data | Glow | EBM marginal | EBM class 0 | EBM class 1, at the end), figure5.json
(class accuracy on 5000 points of both arms against steps, and the log-density errors) and
figure5.md (the table).

  python -m experiments.figure5 --steps=8000 --seeds=0,1,2 --outdir=docs/figure5
"""

import json
import os
import shutil

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import configs  # noqa: E402
import experiments  # noqa: E402
from train import trainer as trainer_lib  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_list('seeds', ['0'], 'Seeds (train.seed: also which points are labeled).')
  flags.DEFINE_integer('steps', 10000, 'Updates (EBM + flow) per run.')
  flags.DEFINE_integer('labels_per_class', 7, 'Labeled points per arm (the paper: 7).')
  flags.DEFINE_integer('eval_every', 1000, 'Steps between evaluations.')
  experiments.define_run_flags('figure5')


FLAGS = flags.FLAGS


def main(_):
  tf.io.gfile.makedirs(FLAGS.outdir)
  results = {}
  for seed in map(int, FLAGS.seeds):
    workdir = os.path.join(FLAGS.workroot, f'seed{seed}')
    config = configs.for_dataset('2spirals', None, [
        f'train.seed={seed}', f'train.steps={FLAGS.steps}', f'eval.every={FLAGS.eval_every}',
        f'train.log_every={FLAGS.eval_every}', f'train.checkpoint_every={FLAGS.eval_every}',
        f'ssl.labels_per_class={FLAGS.labels_per_class}'] +
        FLAGS.set, mode='ssl')
    logging.info('seed %d: semi-supervised FCE on two spirals', seed)
    trainer_lib.Trainer(config, 'ssl', workdir).run()
    values = lambda tag: [v for _, v in sorted(experiments.scalars(workdir, tag).items())]
    results[seed] = {'steps': sorted(experiments.scalars(workdir, 'class_accuracy')),
                     'class_accuracy': values('class_accuracy'),
                     'ebm_updates': values('ebm_updates'), 'flow_logp_mse': values('flow_logp_mse')}
    shutil.copy(os.path.join(workdir, 'samples', f'density_{FLAGS.steps}.png'),
                os.path.join(FLAGS.outdir, f'figure5_seed{seed}.png'))
  with open(os.path.join(FLAGS.outdir, 'figure5.json'), 'w') as f:
    json.dump(results, f, indent=2)
  lines = ['| seed | ' + ' | '.join(f'step {s}' for s in next(iter(results.values()))['steps']) +
           ' |', '|---|' + '---|' * len(next(iter(results.values()))['steps'])]
  for seed, r in results.items():
    lines.append(f'| {seed} | ' + ' | '.join(f'{a:.3f}' for a in r['class_accuracy']) + ' |')
  finals = [r['class_accuracy'][-1] for r in results.values()]
  table = ('Class accuracy of the EBM (argmax_k f_k - c_k) on 5000 points of both arms, '
           f'{FLAGS.labels_per_class} labels per arm\n\n' + '\n'.join(lines) +
           f'\n\nFinal accuracy: mean {np.mean(finals):.3f} over seeds {list(results)}\n')
  with open(os.path.join(FLAGS.outdir, 'figure5.md'), 'w') as f:
    f.write(table)
  print(table)


if __name__ == '__main__':
  define_flags()
  startup.run(main)
