import json

from experiments import nt2d


def _row(logp, mse):
  return {'backbone (K=2)': {'test_logp': logp, 'logp_mse': mse},
          'nt': {'test_logp': logp + 1., 'logp_mse': mse / 2},
          'truth': {'test_logp': -1.}}


def test_the_table_has_every_seed_and_each_density_s_mean_and_sd(tmp_path):
  results = {'rings seed 0': _row(-3., 1.), 'rings seed 1': _row(-2., 3.),
             'banana seed 0': _row(-1.5, 0.1)}
  nt2d.write_table(results, str(tmp_path))
  table = (tmp_path / 'table.md').read_text()
  assert '| rings seed 1 | -1.000 | -2.000 / 3.000 | -1.000 / 1.500 |' in table
  # rings: logp -3 and -2 give -2.5 +- 0.707 (sample sd); MSE 1 and 3 give 2 +- 1.414.
  assert '| rings (2) | -1.000 ± 0.000 | -2.500 ± 0.707 / 2.000 ± 1.414 |' in table
  assert '| banana (1) | -1.000 | -1.500 / 0.100 | -0.500 / 0.050 |' in table


def test_runs_of_more_seeds_add_to_the_results_already_there(tmp_path):
  (tmp_path / 'results.json').write_text(json.dumps({'rings seed 0': _row(-3., 1.)}))
  assert list(nt2d._load_results(str(tmp_path))) == ['rings seed 0']
  assert nt2d._load_results(str(tmp_path / 'absent')) == {}
