"""FCE Figure 1: the six 2D toys, with data | Glow-MLE | Glow-FCE | EBM-FCE densities per toy.

For each toy, one Glow is trained by MLE and, separately, an EBM and a Glow by FCE from a random
Glow (the trainer of `main.py`, toy2d defaults plus --set overrides). Writes, in --outdir,
`<toy>.png` per toy, `figure1.png` (all toys, one row each) and `figure1.md`: the mean
log-density of held-out data points under each model (the EBM both with its learned c and
renormalised on the plotting grid) and, where the toy's density is exact, Figure 2's
log-density error.

  python -m experiments.figure1 --steps=5000 --mle_steps=5000 --outdir=docs/figure1
"""

import json
import os

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import configs  # noqa: E402
import experiments  # noqa: E402
from data import toys  # noqa: E402
from eval import density2d  # noqa: E402
from eval import figures  # noqa: E402
from eval import run as eval_run  # noqa: E402
from train import trainer as trainer_lib  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_list('toys', list(toys.TOYS), 'Toys to run.')
  flags.DEFINE_integer('steps', 5000, 'FCE steps (EBM + flow updates) per toy.')
  flags.DEFINE_integer('mle_steps', 5000, 'MLE steps of the Glow-MLE baseline per toy.')
  flags.DEFINE_integer('seed', 0, 'train.seed of every run.')
  experiments.define_run_flags('figure1')


FLAGS = flags.FLAGS

NUM_TEST_POINTS = 20000


def _train(toy, mode, steps, workdir):
  config = configs.for_dataset(toy, None, [
      f'train.seed={FLAGS.seed}', f'train.steps={steps}', f'eval.every={steps}',
      f'train.log_every={max(steps // 5, 1)}', f'train.checkpoint_every={steps}'] + FLAGS.set)
  trainer_lib.Trainer(config, mode, workdir).run()
  flow, ebm, _ = eval_run.restore_models(config, workdir)
  return flow, ebm


def _toy_panels(toy, mle_flow, fce_flow, ebm, rng):
  """Densities on the plotting grid and held-out scores of one toy."""
  grid, _, cell = density2d.make_grid(figures.GRID_LIMIT, figures.GRID_SIZE)
  test = toys.sample(toy, NUM_TEST_POINTS, rng).astype(np.float32)
  exact = toys.has_exact_log_density(toy)
  if exact:
    data = np.exp(toys.log_density(toy, grid))
  else:
    data = density2d.histogram_density(toys.sample(toy, 200000, rng), figures.GRID_LIMIT,
                                       figures.GRID_SIZE)
  ebm_grid = density2d.evaluate(ebm.marginal_log_prob, grid)
  # The grid renormalisation shifts log p by one constant: apply the same shift to test points.
  shift = density2d.renormalize_on_grid(ebm_grid, cell)[0] - ebm_grid[0]
  panels = {'data': data}
  scores = {}
  for name, model_logp in (('Glow-MLE', mle_flow.log_prob), ('Glow-FCE', fce_flow.log_prob)):
    panels[name] = np.exp(density2d.evaluate(model_logp, grid))
    scores[name] = density2d.evaluate(model_logp, test)
  panels['EBM-FCE'] = np.exp(ebm_grid + shift)
  scores['EBM-FCE (learned c)'] = density2d.evaluate(ebm.marginal_log_prob, test)
  scores['EBM-FCE (grid-normalised)'] = scores['EBM-FCE (learned c)'] + shift
  row = {name: {'test_logp': float(np.mean(s))} for name, s in scores.items()}
  if exact:
    true = toys.log_density(toy, test)
    row['data'] = {'test_logp': float(np.mean(true[np.isfinite(true)]))}
    for name, s in scores.items():
      row[name]['logp_mse'] = density2d.log_density_mse(s, true)
  return panels, row


def main(_):
  tf.io.gfile.makedirs(FLAGS.outdir)
  rows, all_panels = {}, {}
  for toy in FLAGS.toys:
    if toy not in toys.TOYS:
      raise app.UsageError(f'Unknown toy {toy!r}; valid: {", ".join(toys.TOYS)}.')
    root = os.path.join(FLAGS.workroot, toy)
    logging.info('%s: Glow by MLE', toy)
    mle_flow, _ = _train(toy, 'mle', FLAGS.mle_steps, os.path.join(root, 'mle'))
    logging.info('%s: EBM and Glow by FCE from a random Glow', toy)
    fce_flow, ebm = _train(toy, 'fce', FLAGS.steps, os.path.join(root, 'fce'))
    panels, rows[toy] = _toy_panels(toy, mle_flow, fce_flow, ebm, np.random.default_rng(1))
    density2d.plot_panels(panels, figures.GRID_SIZE, os.path.join(FLAGS.outdir, f'{toy}.png'),
                          figures.GRID_LIMIT)
    all_panels[toy] = panels
  _plot_all(all_panels, os.path.join(FLAGS.outdir, 'figure1.png'))
  with open(os.path.join(FLAGS.outdir, 'figure1.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  table = _table(rows)
  with open(os.path.join(FLAGS.outdir, 'figure1.md'), 'w') as f:
    f.write(table)
  print(table)


def _table(rows):
  models = ['Glow-MLE', 'Glow-FCE', 'EBM-FCE (learned c)', 'EBM-FCE (grid-normalised)']
  lines = ['Mean log-density of held-out data points (higher is better; "data" is the true '
           'density where it is exact)\n',
           '| toy | data | ' + ' | '.join(models) + ' |', '|---|' + '---|' * (len(models) + 1)]
  for toy, row in rows.items():
    data = f'{row["data"]["test_logp"]:.3f}' if 'data' in row else '–'
    lines.append(f'| {toy} | {data} | ' +
                 ' | '.join(f'{row[m]["test_logp"]:.3f}' for m in models) + ' |')
  exact = [t for t, row in rows.items() if 'data' in row]
  if exact:
    lines += ['\nLog-density MSE against the exact density (FCE Figure 2\'s metric)\n',
              '| toy | ' + ' | '.join(models) + ' |', '|---|' + '---|' * len(models)]
    for toy in exact:
      lines.append(f'| {toy} | ' + ' | '.join(f'{rows[toy][m]["logp_mse"]:.3f}'
                                             for m in models) + ' |')
  return '\n'.join(lines) + '\n'


def _plot_all(all_panels, path):
  import matplotlib.pyplot as plt  # density2d has set the Agg backend
  names = list(next(iter(all_panels.values())))
  fig, axes = plt.subplots(len(all_panels), len(names), figsize=(2.4 * len(names),
                                                                  2.4 * len(all_panels)),
                           squeeze=False)
  size, lim = figures.GRID_SIZE, figures.GRID_LIMIT
  for r, (toy, panels) in enumerate(all_panels.items()):
    for c, name in enumerate(names):
      ax = axes[r, c]
      ax.imshow(panels[name].reshape(size, size), origin='lower', cmap='viridis',
                extent=[-lim, lim, -lim, lim])
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(name)
      if c == 0:
        ax.set_ylabel(toy)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


if __name__ == '__main__':
  define_flags()
  startup.run(main)
