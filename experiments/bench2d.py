"""The 2D benchmark: FCE against NCE and Glow-MLE on densities beyond the six toys.

For each density of data/suite2d.py and each seed, at equal EBM updates:
  fce_rand   FCE from a random Glow (the 2D protocol of the paper)
  fce_mle    FCE from the Glow-MLE run below (--init_flow)
  nce        NCE against a Gaussian fitted to the data (1.5 x its std)
  mle        Glow-MLE, as many steps as EBM updates
Every run is the trainer of `main.py` with the toy2d defaults plus --set overrides, so the
defaults are what is measured. Scores on held-out points drawn from the exact density:
  ebm_mse / flow_mse     FCE Figure 2's metric: the mean squared error of the log-density, the
                         EBM's with its learned log-normalizer c
  ebm_ll / flow_ll       mean log-likelihood; the EBM's normalised on a fine grid over
                         [-4.5, 4.5]^2 (its learned c: ebm_ll_c); true_ll is the data's own
  nan_stop, seconds      whether the run stopped on a NaN, and its wall time
Each finished run is also recorded in --outdir/runs/ (its scores, curve, flags and resolved
config, no checkpoints), and a recorded run is not run again, nor reused once the defaults have
changed under it (its config differs from the one the command resolves to today, with fields added
since taken at their defaults): an interrupted benchmark resumes, several
processes with disjoint --densities or --seeds can share one --outdir, and a benchmark whose
--outdir is committed continues on another machine. Writes results.json (every recorded run),
results.md (means over seeds, per density, and the issue's goals) and <density>.png (data |
Glow-MLE | Glow-FCE | EBM-FCE | EBM-NCE, lowest seed; only when every panel's checkpoint is at
hand, so a committed figure is not replaced by a partial one) to --outdir.

  # full: 13 densities x 3 seeds x 5000 EBM updates (hours on 2 cores; it resumes), as in
  # docs/bench2d/README.md, whose records this reads back
  python -m experiments.bench2d --outdir=docs/bench2d --set=model.ebm.first_bias=half \
      --set=optim.ebm_clip_norm=100 --set=model.ebm.width=256
  # reduced (under an hour on 2 cores): 4 densities, 1 seed, 1500 EBM updates, no fce_mle
  python -m experiments.bench2d --densities=unequal2,aniso_rotated,far_mode,cross --seeds=0 \
      --ebm_updates=1500 --methods=fce_rand,nce,mle --outdir=/tmp/bench2d_reduced
"""

import json
import os
import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import configs  # noqa: E402
import experiments  # noqa: E402
from data import suite2d  # noqa: E402
from eval import density2d  # noqa: E402
from eval import figures  # noqa: E402
from eval import run as eval_run  # noqa: E402
from train import modes  # noqa: E402
from train import run_folder  # noqa: E402
from train import trainer as trainer_lib  # noqa: E402

METHODS = ('mle', 'fce_rand', 'fce_mle', 'nce')


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_list('densities', list(suite2d.NAMES), 'Densities of data/suite2d.py to run.')
  flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds (train.seed).')
  flags.DEFINE_list('methods', list(METHODS), f'Which of {", ".join(METHODS)} to run.')
  flags.DEFINE_integer('ebm_updates', 5000, 'EBM updates per run (MLE: as many steps).')
  flags.DEFINE_integer('evals', 5, 'In-run log-density evaluations (TensorBoard curves).')
  experiments.define_run_flags('bench2d')
  flags.DEFINE_string('baselines_from', '', 'Workroot whose mle and nce runs to reuse (or make), '
                      'so that FCE settings can be compared against one set of baselines.')
  flags.DEFINE_multi_string('set_fce', [], 'Config overrides for the FCE runs only.')
  flags.DEFINE_bool('draw_suite', False, 'Instead of running: draw every density of the suite '
                    'into --outdir/suite.png.')
  flags.DEFINE_list('compare', [], 'Instead of running: NAME=WORKROOT pairs of finished benchmarks '
                    'whose fce_rand runs to tabulate side by side (with --baselines_from).')


FLAGS = flags.FLAGS

NUM_TEST_POINTS = 5000
FINE_GRID = 600  # cells of 0.015 on [-4.5, 4.5]^2 for the EBM's normaliser: the sharpest
                 # suite component has std 0.05


def _config(density, seed, method, steps):
  overrides = [f'train.seed={seed}', f'train.steps={steps}',
               f'eval.every={max(steps // FLAGS.evals, 1)}',
               f'train.log_every={max(steps // FLAGS.evals, 1)}',
               f'train.checkpoint_every={max(steps // FLAGS.evals, 1)}',
               'train.snapshot_every=0'] + FLAGS.set
  if method.startswith('fce'):
    # Up to 4 updates per EBM update are allowed; the run stops at the EBM update count.
    overrides += [f'fce.ebm_updates={FLAGS.ebm_updates}', f'train.steps={5 * steps}']
    overrides += FLAGS.set_fce
  return configs.for_dataset(density, None, overrides)


def _workdir(density, seed, method):
  """A run's folder; the baselines' under --baselines_from when it is given."""
  shared = method in ('mle', 'nce') and FLAGS.baselines_from
  root = FLAGS.baselines_from if shared else FLAGS.workroot
  return os.path.join(root, density, f'seed{seed}', method)


def _scores(density, config, workdir, mode):
  flow, ebm, step = eval_run.restore_models(config, workdir)
  rng = np.random.default_rng([int(config.train.seed), 7])
  test = suite2d.sample(density, NUM_TEST_POINTS, rng)
  true = suite2d.log_density(density, test)
  out = {'true_ll': float(true.mean()), 'step': step}
  spec = modes.get(mode)
  if spec.has_flow(config):
    logq = density2d.evaluate(flow.log_prob, test)
    out.update(flow_mse=density2d.log_density_mse(logq, true), flow_ll=float(logq.mean()))
  if spec.trains_ebm:
    logp = density2d.evaluate(ebm.log_prob, test)
    grid, _, cell = density2d.make_grid(figures.GRID_LIMIT, FINE_GRID)
    log_z = float(np.log(cell) + np.logaddexp.reduce(density2d.evaluate(ebm.log_prob, grid)))
    out.update(ebm_mse=density2d.log_density_mse(logp, true), ebm_ll_c=float(logp.mean()),
               ebm_ll=float(logp.mean() - log_z), ebm_log_z_grid=log_z)
  return out


def _settings():
  """What a recorded run was trained under; a record is reused only under the same."""
  return {'ebm_updates': FLAGS.ebm_updates, 'evals': FLAGS.evals, 'set': FLAGS.set,
          'set_fce': FLAGS.set_fce}


def _record_path(density, seed, method):
  return os.path.join(FLAGS.outdir, 'runs', f'{density}_seed{seed}_{method}.json')


def _write(path, text):
  """Writes through a temporary file, so that a reader (another process) never sees half."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)


def _write_json(path, value):
  _write(path, json.dumps(value, indent=1))


def _records():
  """Every run recorded in --outdir/runs, in suite order."""
  folder = os.path.join(FLAGS.outdir, 'runs')
  out = []
  for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
    if name.endswith('.json'):
      with open(os.path.join(folder, name)) as f:
        out.append(json.load(f))
  order = {d: i for i, d in enumerate(suite2d.NAMES)}
  return sorted(out, key=lambda r: (order.get(r['density'], len(order)), r['seed'],
                                    METHODS.index(r['method'])))


def _run(density, seed, method, need_checkpoint=False):
  """Trains (or loads the result of) one run; returns its result dict. A recorded run whose
  checkpoints are gone (another machine) is trained again only if `need_checkpoint`. A run
  recorded under a resolved config other than today's (the defaults changed since) is refused."""
  workdir = _workdir(density, seed, method)
  path = os.path.join(workdir, 'result.json')
  record = _record_path(density, seed, method)
  config = _config(density, seed, method, FLAGS.ebm_updates)
  saved = json.loads(config.to_json())  # what a record keeps, and is checked against
  usable = not need_checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints'))
  if os.path.exists(path) and usable:
    result = _reuse(path, saved)
  elif os.path.exists(record) and not need_checkpoint:
    return _reuse(record, saved)
  else:
    result = dict(_train(density, seed, method, workdir, config), config=saved)
    _write_json(path, result)
  if not os.path.exists(record):
    _write_json(record, dict(result, settings=_settings()))
  return result


def config_changes(saved, config):
  """The dotted keys whose values differ between a saved config (fields added to the configs
  since then taken at their defaults, as a resumed run does) and `config` (both dicts)."""
  flat = lambda c: run_folder.flatten(configs.with_defaults(c).to_dict())  # noqa: E731
  return run_folder.changed_keys(flat(saved), flat(config))


def _reuse(path, config):
  """A finished run's result, if it was trained under `config`. Records made before the config
  was stored in them (2026-12-06) cannot be checked: their `settings` say what was --set."""
  with open(path) as f:
    result = json.load(f)
  changed = config_changes(result['config'], config) if 'config' in result else []
  if changed:
    shown = ', '.join(changed[:6]) + (' ...' if len(changed) > 6 else '')
    raise app.UsageError(
        f'{path} was trained under another config than this command resolves to today (they '
        f'differ in {shown}): the defaults may have changed since. Give another --outdir and '
        '--workroot, or --set the values it was run with to continue it.')
  return result


def _train(density, seed, method, workdir, config):
  mode = 'fce' if method.startswith('fce') else method
  init_flow = None
  if method == 'fce_mle':
    init_flow = _workdir(density, seed, 'mle')
    _run(density, seed, 'mle', need_checkpoint=True)
  start = time.perf_counter()
  result = {'density': density, 'seed': seed, 'method': method, 'nan_stop': 0}
  logging.info('%s seed %d: %s', density, seed, method)
  try:
    trainer = trainer_lib.Trainer(config, mode, workdir, init_flow=init_flow)
    trainer.run()
    if modes.get(mode).alternates:
      result.update(trainer.schedule.updates)
  except trainer_lib.DivergedError as e:  # any other TrainingError (a held workdir) stops us
    logging.warning('%s seed %d %s: %s', density, seed, method, e)
    result.update(nan_stop=1, error=str(e))
  result['seconds'] = time.perf_counter() - start
  try:  # a run stopped on a NaN is scored at its last good checkpoint, and flagged
    result.update(_scores(density, config, workdir, mode))
  except eval_run.EvalError:
    pass
  result['curve'] = _curve(workdir, mode)
  result.update(_gradient_stats(workdir))
  return result


def _gradient_stats(workdir):
  """Each model's largest gradient norm in the run, and how many of its updates were clipped
  (when optim.*_clip_norm is on)."""
  out = {}
  for model in ('ebm', 'flow'):
    norms = experiments.scalars(workdir, f'{model}_grad_norm')
    if norms:
      out[f'{model}_grad_norm_max'] = max(norms.values())
    clipped = experiments.scalars(workdir, f'{model}_clipped')
    if clipped:
      out[f'{model}_clipped'] = int(sum(clipped.values()))
  return out


def _curve(workdir, mode):
  """[(EBM updates, EBM MSE, flow MSE)] from the run's in-training evaluations."""
  ebm = experiments.scalars(workdir, 'ebm_logp_mse')
  flow = experiments.scalars(workdir, 'flow_logp_mse')
  updates = experiments.scalars(workdir, 'ebm_updates') if modes.get(mode).alternates else {}
  steps = sorted(set(ebm) | set(flow))
  return [(updates.get(s, s), ebm.get(s), flow.get(s)) for s in steps]


def _panels(density, seed):
  """data | Glow-MLE | Glow-FCE (random start) | EBM-FCE | EBM-NCE on the plotting grid."""
  grid, _, cell = density2d.make_grid(figures.GRID_LIMIT, figures.GRID_SIZE)
  panels = {density: np.exp(suite2d.log_density(density, grid))}
  sources = (('mle', 'Glow-MLE', 'flow'), ('fce_rand', 'Glow-FCE', 'flow'),
             ('fce_rand', 'EBM-FCE', 'ebm'), ('nce', 'EBM-NCE', 'ebm'))
  have = {m: tf.train.latest_checkpoint(os.path.join(_workdir(density, seed, m), 'checkpoints'))
          for m, _, _ in sources}
  missing = [m for m in FLAGS.methods if m in have and not have[m]]
  if missing:  # recorded on another machine: the committed figure stays
    logging.info('%s: no figure, the checkpoints of %s are not here', density, missing)
    return None
  for method, title, which in sources:
    if not have[method]:
      continue
    workdir = _workdir(density, seed, method)
    config, _ = eval_run.load_run(workdir)
    flow, ebm, _ = eval_run.restore_models(config, workdir)
    fn = flow.log_prob if which == 'flow' else ebm.log_prob
    panels[title] = np.exp(density2d.renormalize_on_grid(density2d.evaluate(fn, grid), cell))
  path = os.path.join(FLAGS.outdir, f'{density}.png')
  density2d.plot_panels(panels, figures.GRID_SIZE, path, figures.GRID_LIMIT)
  return path


def _mean(results, density, method, key):
  values = [r[key] for r in results if r['density'] == density and r['method'] == method
            and key in r]
  return float(np.mean(values)) if values else float('nan')


# The goals for FCE from a random Glow, on means over seeds.
GOALS = (('ebm_le_nce', "EBM MSE <= NCE's"), ('ebm_le_0.1', 'EBM MSE <= 0.1'),
         ('flow_within_0.5', "flow held-out LL within 0.5 nats of Glow-MLE's"),
         ('ebm_beats_mle', "EBM held-out LL above Glow-MLE's"))


def _table(results):
  """Per density: means over seeds of each method's scores, then the issue's goals."""
  densities = list(dict.fromkeys(r['density'] for r in results))
  head = ('| density | seeds | EBM MSE: FCE rand | FCE mle | NCE | flow MSE: FCE rand | FCE mle | '
          'MLE | EBM LL: FCE rand | NCE | flow LL: FCE rand | FCE mle | MLE | truth | NaN stops |'
          ' minutes |')
  lines = [head, '|' + '---|' * 16]
  # [holds, compared] per goal: a density counts only where both sides of the goal have runs
  # (an --outdir without mle runs has no Glow-MLE to compare with).
  goals = {key: [0, 0] for key, _ in GOALS}

  def tally(name, holds, *values):
    if np.all(np.isfinite(values)):
      goals[name][0] += bool(holds)
      goals[name][1] += 1

  for d in densities:
    m = lambda method, key: _mean(results, d, method, key)  # noqa: E731
    nan = sum(r['nan_stop'] for r in results if r['density'] == d)
    minutes = sum(r['seconds'] for r in results if r['density'] == d) / 60
    seeds = len({r['seed'] for r in results if r['density'] == d})
    # Every method of a seed is scored on the same points: one true LL per seed, from any run.
    truth = float(np.mean(list({r['seed']: r['true_ll'] for r in results
                                if r['density'] == d and 'true_ll' in r}.values()) or np.nan))
    lines.append(
        f'| {d} | {seeds} | {m("fce_rand", "ebm_mse"):.3f} | {m("fce_mle", "ebm_mse"):.3f} | '
        f'{m("nce", "ebm_mse"):.3f} | {m("fce_rand", "flow_mse"):.3f} | '
        f'{m("fce_mle", "flow_mse"):.3f} | {m("mle", "flow_mse"):.3f} | '
        f'{m("fce_rand", "ebm_ll"):.3f} | {m("nce", "ebm_ll"):.3f} | '
        f'{m("fce_rand", "flow_ll"):.3f} | {m("fce_mle", "flow_ll"):.3f} | '
        f'{m("mle", "flow_ll"):.3f} | {truth:.3f} | {nan} | {minutes:.1f} |')
    fce, nce, mle = m('fce_rand', 'ebm_mse'), m('nce', 'ebm_mse'), m('mle', 'flow_ll')
    flow_ll, ebm_ll = m('fce_rand', 'flow_ll'), m('fce_rand', 'ebm_ll')
    tally('ebm_le_nce', fce <= nce, fce, nce)
    tally('ebm_le_0.1', fce <= 0.1, fce)
    tally('flow_within_0.5', flow_ll >= mle - 0.5, flow_ll, mle)
    tally('ebm_beats_mle', ebm_ll > mle, ebm_ll, mle)
  n = len(densities)
  nan_total = sum(r['nan_stop'] for r in results)
  lines += ['', f'Goals (FCE from a random Glow, means over seeds, {n} densities):']
  for key, label in GOALS:
    holds, compared = goals[key]
    lines.append(f'- {label}: ' + (f'{holds} of {compared}' if compared else
                                  'no density has the runs to compare'))
  lines.append(f'- NaN stops: {nan_total} of {len(results)} runs')
  return '\n'.join(lines)


def _load(root, density, seed, method):
  path = os.path.join(root, density, f'seed{seed}', method, 'result.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _compare_table(pairs):
  """FCE-rand under several settings, per density and seed, beside the NCE and Glow-MLE
  baselines: EBM MSE, EBM and flow held-out LL; then one summary row over the rows every
  setting finished: the geometric mean of the EBM MSEs, the mean LLs, and the NaN stops."""
  names = [p.split('=', 1)[0] for p in pairs]
  roots = [p.split('=', 1)[1] for p in pairs]
  base = FLAGS.baselines_from
  columns = [('ebm_mse', 'EBM MSE'), ('ebm_ll', 'EBM LL'), ('flow_ll', 'flow LL')]
  lines = ['| density | NCE EBM MSE | ' +
           ' | '.join(f'{n} {title}' for key, title in columns for n in names) +
           ' | Glow-MLE flow LL |',
           '|' + '---|' * (3 + len(columns) * len(names))]

  def fmt(r, k):
    if r is None:
      return '–'
    if k not in r:
      return 'NaN stop' if r.get('nan_stop') else '–'
    return f'{r[k]:.3f}' + (' (NaN stop)' if r.get('nan_stop') else '')

  finished = []  # rows where every setting has every score
  for density in FLAGS.densities:
    for seed in map(int, FLAGS.seeds):
      runs = [_load(root, density, seed, 'fce_rand') for root in roots]
      if not any(runs):
        continue
      nce, mle = _load(base, density, seed, 'nce'), _load(base, density, seed, 'mle')
      lines.append(f'| {density} (seed {seed}) | {fmt(nce, "ebm_mse")} | ' +
                   ' | '.join(fmt(r, key) for key, _ in columns for r in runs) +
                   f' | {fmt(mle, "flow_ll")} |')
      if all(r is not None and all(k in r for k, _ in columns) for r in runs):
        finished.append(runs)
  if finished:
    summary = lambda i, key: (np.exp(np.mean([np.log(row[i][key]) for row in finished]))
                              if key == 'ebm_mse' else np.mean([row[i][key] for row in finished]))
    nan_stops = [sum(row[i].get('nan_stop', 0) for row in finished) for i in range(len(names))]
    lines.append(f'| **{len(finished)} rows: geometric mean (MSE), mean (LL)** | |' +
                 ''.join(f' {summary(i, key):.3f} |' for key, _ in columns
                         for i in range(len(names))) + ' |')
    lines.append('\nNaN stops in those rows: ' +
                 ', '.join(f'{n} {k}' for n, k in zip(names, nan_stops)))
  return '\n'.join(lines)


def _draw_suite():
  grid, _, _ = density2d.make_grid(figures.GRID_LIMIT, figures.GRID_SIZE)
  panels = {name: np.exp(suite2d.log_density(name, grid)) for name in suite2d.NAMES}
  path = os.path.join(FLAGS.outdir, 'suite.png')
  density2d.plot_panels(panels, figures.GRID_SIZE, path, figures.GRID_LIMIT)
  print(f'wrote {path}')


def main(_):
  if FLAGS.draw_suite:
    os.makedirs(FLAGS.outdir, exist_ok=True)
    _draw_suite()
    return
  if FLAGS.compare:
    bad = [p for p in FLAGS.compare if '=' not in p or not os.path.isdir(p.split('=', 1)[1])]
    if bad:
      raise app.UsageError(f'--compare takes NAME=WORKROOT pairs of existing folders; not: {bad}.')
    print(_compare_table(FLAGS.compare))
    return
  unknown = sorted(set(FLAGS.densities) - set(suite2d.NAMES)) + sorted(
      set(FLAGS.methods) - set(METHODS))
  if unknown:
    raise app.UsageError(f'Unknown densities or methods {unknown}; densities: '
                         f'{", ".join(suite2d.NAMES)}; methods: {", ".join(METHODS)}.')
  os.makedirs(FLAGS.outdir, exist_ok=True)
  other = [r for r in _records() if r.get('settings') != _settings()]
  if other:
    raise app.UsageError(
        f'{FLAGS.outdir}/runs holds {len(other)} runs recorded under other settings '
        f'({other[0].get("settings")}, not {_settings()}). Give another --outdir, or the same '
        'settings to continue it.')
  for density in FLAGS.densities:
    for seed in map(int, FLAGS.seeds):
      for method in FLAGS.methods:
        _run(density, seed, method)
    results = _records()
    _panels(density, min(r['seed'] for r in results if r['density'] == density))
    _write_json(os.path.join(FLAGS.outdir, 'results.json'),  # each run's config is in runs/
                dict(_settings(), runs=[{k: v for k, v in r.items() if k != 'config'}
                                        for r in results]))
    table = _table(results)
    _write(os.path.join(FLAGS.outdir, 'results.md'),
           f'At {FLAGS.ebm_updates} EBM updates; --set {FLAGS.set} --set_fce {FLAGS.set_fce}; '
           f'{len(results)} runs, seeds {",".join(sorted({str(r["seed"]) for r in results}))}'
           f'\n\n{table}\n')
  print(table)


if __name__ == '__main__':
  define_flags()
  startup.run(main)
