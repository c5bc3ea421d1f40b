"""NT-EBM on 2D densities: does a correction exp(f) of a small flow beat the flow, and a larger
flow (NT-EBM Table 3's claim)? And do latent chains mix where data-space chains do not?

For each toy with an exact log-density and each seed:
  backbone   Glow-MLE with --backbone_k steps (a small flow, so there is something to correct)
  nt         its correction by maximum likelihood with neural-transport HMC (--mode=nt)
  nt_nce     its correction by NCE against it (--mode=nt_nce)
  large      Glow-MLE with the toy2d default K=10, as large a budget of MLE steps
scored on held-out points by the mean log-density (every model normalised by its Z on the
plotting grid) and FCE Figure 2's log-density MSE. On 8 gaussians, eval/mixing.py runs the
three samplers of the nt model from the same starts (R-hat, ESS, modes visited).

  python -m experiments.nt2d --seeds=0,1,2 --outdir=docs/nt2d
"""

import json
import os

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402

import experiments  # noqa: E402
from data import toys  # noqa: E402
from eval import density2d  # noqa: E402
from eval import figures  # noqa: E402
from eval import mixing  # noqa: E402
from eval import run as eval_run  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_list('toys', ['8gaussians', 'checkerboard', 'rings', 'banana'],
                    'Densities with an exact log-density (the toys and data/suite2d.py).')
  flags.DEFINE_list('seeds', ['0'], 'train.seed of the runs.')
  flags.DEFINE_integer('backbone_k', 2, 'Flow steps of the small backbone.')
  flags.DEFINE_integer('mle_steps', 3000, 'MLE steps of the backbone and of the large flow.')
  flags.DEFINE_integer('nt_steps', 1000, 'nt updates (each with nt.hmc_steps HMC steps).')
  flags.DEFINE_integer('nce_steps', 3000, 'nt_nce updates.')
  flags.DEFINE_integer('mixing_chains', 64, 'Chains per sampler of the mixing comparison.')
  flags.DEFINE_integer('mixing_steps', 400, 'Steps per chain of the mixing comparison.')
  experiments.define_run_flags('nt2d')


FLAGS = flags.FLAGS

NUM_TEST_POINTS = 20000


def _train(toy, seed, mode, steps, name, extra=(), init_flow=None):
  return experiments.train_run(os.path.join(FLAGS.workroot, f'{toy}_s{seed}', name), toy, mode,
                               steps, seed, list(extra) + FLAGS.set, init_flow, log_lines=5)


def _scores(workdir, test, true):
  """Held-out mean log-density and MSE of the run's model, every model normalised on the
  plotting grid (the tilted models have no other Z; the flows get the same treatment, so that
  mass outside the grid favours none of them)."""
  config, mode = eval_run.load_run(workdir)
  flow, model, _ = eval_run.restore_models(config, workdir, mode=mode)
  fn = flow.log_prob if mode == 'mle' else model.marginal_log_prob
  grid, _, cell = density2d.make_grid(figures.GRID_LIMIT, figures.GRID_SIZE)
  log_z = density2d.grid_log_normalizer(density2d.evaluate(fn, grid), cell)
  logp = density2d.evaluate(fn, test) - log_z
  return {'test_logp': float(np.mean(logp)), 'logp_mse': density2d.log_density_mse(logp, true)}


def main(argv):
  del argv
  os.makedirs(FLAGS.outdir, exist_ok=True)
  small = [f'model.flow.steps_per_level={FLAGS.backbone_k}']
  results = _load_results(FLAGS.outdir)  # seeds run before are kept: more seeds add rows
  for toy in FLAGS.toys:
    if toy not in toys.ALL or not toys.has_exact_log_density(toy):
      raise app.UsageError(f'{toy} has no exact log-density; choose among those that do.')
    for seed in map(int, FLAGS.seeds):
      rng = np.random.default_rng([seed, 99])
      test = toys.sample(toy, NUM_TEST_POINTS, rng).astype(np.float32)
      true = toys.log_density(toy, test)
      backbone = _train(toy, seed, 'mle', FLAGS.mle_steps, 'backbone', small)
      runs = {
          'backbone (K=%d)' % FLAGS.backbone_k: backbone,
          'nt': _train(toy, seed, 'nt', FLAGS.nt_steps, 'nt', small, backbone),
          'nt_nce': _train(toy, seed, 'nt_nce', FLAGS.nce_steps, 'nt_nce', small, backbone),
          'Glow-MLE (K=10)': _train(toy, seed, 'mle', FLAGS.mle_steps, 'large'),
      }
      row = {name: _scores(w, test, true) for name, w in runs.items()}
      row['truth'] = {'test_logp': float(np.mean(true))}
      if toy == '8gaussians':
        config, _ = eval_run.load_run(runs['nt'])
        flow, correction, _ = eval_run.restore_models(config, runs['nt'])
        mix = mixing.report(correction, flow, os.path.join(FLAGS.outdir, f'mixing_s{seed}'),
                            FLAGS.mixing_chains, FLAGS.mixing_steps, seed, dataset=toy)
        row['mixing'] = {k: {m: v[m] for m in ('acceptance', 'rhat_median', 'rhat_max',
                                                'ess_per_chain_median', 'modes_visited_mean',
                                                'chains_visiting_all_8')}
                         for k, v in mix.items()}
      results[f'{toy} seed {seed}'] = row
      logging.info('%s seed %d: %s', toy, seed, json.dumps(row))
      with open(os.path.join(FLAGS.outdir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
  write_table(results, FLAGS.outdir)


def _load_results(outdir):
  path = os.path.join(outdir, 'results.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def write_table(results, outdir):
  """table.md: one row per density and seed, then each density's mean (and standard
  deviation, with more than one seed) over its seeds."""
  models = [m for m in next(iter(results.values())) if m not in ('truth', 'mixing')]
  header = ' | '.join(models)
  lines = ['| density, seed | truth | ' + header + ' |', '|---|---|' + '---|' * len(models)]
  for key, row in sorted(results.items()):
    cells = [f'{row[m]["test_logp"]:.3f} / {row[m]["logp_mse"]:.3f}' for m in models]
    lines.append(f'| {key} | {row["truth"]["test_logp"]:.3f} | ' + ' | '.join(cells) + ' |')
  by_density = {}
  for key, row in results.items():
    by_density.setdefault(key.split(' seed ')[0], []).append(row)
  mean = lambda rows, m, k: _mean_sd([r[m][k] for r in rows])
  means = ['| density (seeds) | truth | ' + header + ' |', '|---|---|' + '---|' * len(models)]
  for density, rows in sorted(by_density.items()):
    cells = [f'{mean(rows, m, "test_logp")} / {mean(rows, m, "logp_mse")}' for m in models]
    means.append(f'| {density} ({len(rows)}) | {mean(rows, "truth", "test_logp")} | ' +
                 ' | '.join(cells) + ' |')
  with open(os.path.join(outdir, 'table.md'), 'w') as f:
    f.write('Held-out mean log-density / log-density MSE\n\n' + '\n'.join(lines) +
            '\n\nMean (± standard deviation) over seeds\n\n' + '\n'.join(means) + '\n')


def _mean_sd(values):
  if len(values) == 1:
    return f'{values[0]:.3f}'
  return f'{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}'


if __name__ == '__main__':
  define_flags()
  startup.run(main)
