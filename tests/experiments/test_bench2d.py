"""The 2D benchmark end to end at toy size: every method runs, is scored, and is cached."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from experiments import bench2d

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bench(tmp_path, *extra):
  args = [sys.executable, '-m', 'experiments.bench2d', '--densities=unequal2', '--seeds=0',
          '--ebm_updates=4', '--evals=1', f'--outdir={tmp_path}/out',
          f'--workroot={tmp_path}/runs', '--set=model.flow.steps_per_level=2',
          '--set=model.flow.width=8', '--set=train.batch_size=64', *extra]
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_every_method_is_run_scored_and_cached(tmp_path):
  out = _bench(tmp_path, '--set_fce=fce.ebm_aux_nce_weight=1.0')
  assert out.returncode == 0, out.stderr[-3000:]
  with open(tmp_path / 'out' / 'results.json') as f:
    runs = {r['method']: r for r in json.load(f)['runs']}
  assert sorted(runs) == ['fce_mle', 'fce_rand', 'mle', 'nce']
  for method, run in runs.items():
    assert run['nan_stop'] == 0 and run['true_ll'] < 0, method
    assert ('ebm_ll' in run) == (method != 'mle') and ('flow_ll' in run) == (method != 'nce')
  assert runs['fce_rand']['ebm'] == 4  # stopped at the EBM update count
  assert runs['nce']['ebm_grad_norm_max'] > 0 and runs['nce']['ebm_clipped'] >= 0
  assert runs['mle']['flow_grad_norm_max'] > 0 and runs['mle']['flow_clipped'] >= 0
  assert 'ebm_grad_norm_max' not in runs['mle']  # no EBM in an mle run
  with open(tmp_path / 'runs' / 'unequal2' / 'seed0' / 'fce_rand' / 'config.json') as f:
    assert json.load(f)['config']['fce']['ebm_aux_nce_weight'] == 1.0  # --set_fce reached it
  table = (tmp_path / 'out' / 'results.md').read_text()
  assert 'Goals' in table
  assert f'| unequal2 | 1 | {runs["fce_rand"]["ebm_mse"]:.3f} |' in table  # one seed so far
  assert (tmp_path / 'out' / 'unequal2.png').stat().st_size > 0
  result = lambda m: tmp_path / 'runs' / 'unequal2' / 'seed0' / m / 'result.json'  # noqa: E731
  stamps = {m: os.path.getmtime(result(m)) for m in runs}
  again = _bench(tmp_path, '--set_fce=fce.ebm_aux_nce_weight=1.0')  # cached: none trained again
  assert again.returncode == 0, again.stderr[-3000:]
  assert {m: os.path.getmtime(result(m)) for m in runs} == stamps
  compare = _bench(tmp_path, f'--compare=A={tmp_path}/runs,B={tmp_path}/runs',
                   f'--baselines_from={tmp_path}/runs')
  assert compare.returncode == 0, compare.stderr[-3000:]
  rows = [line for line in compare.stdout.splitlines() if line.startswith('| ')]
  mse, ebm_ll = runs['fce_rand']['ebm_mse'], runs['fce_rand']['ebm_ll']
  assert rows[1].startswith('| unequal2 (seed 0) | ' + f'{runs["nce"]["ebm_mse"]:.3f}')
  # one row, so the geometric mean is the MSE itself; A and B are the same runs
  assert f'| {mse:.3f} | {mse:.3f} | {ebm_ll:.3f} | {ebm_ll:.3f} |' in rows[2], rows


@pytest.mark.slow
def test_recorded_runs_continue_without_the_workroot_and_settings_are_checked(tmp_path):
  """--outdir/runs is the benchmark's memory: with the run folders gone (another machine), a
  recorded run is not trained again and the committed figure is kept; a run recorded under
  other settings stops the benchmark with one message."""
  out = _bench(tmp_path, '--methods=nce,mle')
  assert out.returncode == 0, out.stderr[-3000:]
  records = sorted(os.listdir(tmp_path / 'out' / 'runs'))
  assert records == ['unequal2_seed0_mle.json', 'unequal2_seed0_nce.json']
  figure = tmp_path / 'out' / 'unequal2.png'
  stamp = os.path.getmtime(figure)
  with open(tmp_path / 'out' / 'results.json') as f:
    before = json.load(f)['runs']
  shutil.rmtree(tmp_path / 'runs')
  again = _bench(tmp_path, '--methods=nce,mle')
  assert again.returncode == 0, again.stderr[-3000:]
  assert not (tmp_path / 'runs' / 'unequal2').exists()  # nothing trained
  assert os.path.getmtime(figure) == stamp
  with open(tmp_path / 'out' / 'results.json') as f:
    assert json.load(f)['runs'] == before
  other = _bench(tmp_path, '--methods=nce,mle', '--ebm_updates=5')
  assert other.returncode != 0
  assert 'recorded under other settings' in other.stderr and 'Traceback' not in other.stderr
  # Defaults that changed since a run was recorded: same flags, another resolved config.
  record = tmp_path / 'out' / 'runs' / 'unequal2_seed0_nce.json'
  saved = json.loads(record.read_text())
  assert 'config' not in before[0] and saved['config']['model']['ebm']['activation'] == 'lrelu'
  saved['config']['model']['ebm']['activation'] = 'swish'
  saved['config']['data'].pop('test_fraction')  # a field added since: taken at its default
  record.write_text(json.dumps(saved))
  changed = _bench(tmp_path, '--methods=nce,mle')
  assert changed.returncode != 0 and 'Traceback' not in changed.stderr
  assert 'another config than this command resolves to today' in changed.stderr
  assert '(they differ in model.ebm.activation)' in changed.stderr


def _table(records):
  return bench2d._table(records)


def test_goals_count_only_densities_with_both_sides_and_truth_needs_no_mle_run():
  """An --outdir without Glow-MLE runs (a setting measured on FCE and NCE only) has no goal
  against Glow-MLE to report, rather than 0 of n; the true LL comes from any run."""

  def run(method, **scores):
    return dict(density='unequal2', seed=0, method=method, nan_stop=0, seconds=60.,
                true_ll=-2.5, **scores)

  table = _table([run('fce_rand', ebm_mse=0.05, ebm_ll=-2.6, flow_ll=-2.7),
                  run('nce', ebm_mse=0.2, ebm_ll=-2.8)])
  assert table.splitlines()[2].endswith('| nan | -2.500 | 0 | 2.0 |')  # no MLE; the truth
  assert "- EBM MSE <= NCE's: 1 of 1" in table and '- EBM MSE <= 0.1: 1 of 1' in table
  assert "within 0.5 nats of Glow-MLE's: no density has the runs to compare" in table
  assert "above Glow-MLE's: no density has the runs to compare" in table
  table = _table([run('fce_rand', ebm_mse=0.05, ebm_ll=-2.6, flow_ll=-3.3),
                  run('mle', flow_ll=-2.7)])
  assert "within 0.5 nats of Glow-MLE's: 0 of 1" in table  # -3.3 < -2.7 - 0.5
  assert "above Glow-MLE's: 1 of 1" in table and "NCE's: no density has" in table


@pytest.mark.slow
def test_draw_suite_draws_every_density(tmp_path):
  out = subprocess.run([sys.executable, '-m', 'experiments.bench2d', '--draw_suite',
                        f'--outdir={tmp_path}'], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert (tmp_path / 'suite.png').stat().st_size > 0 and not (tmp_path / 'runs').exists()
