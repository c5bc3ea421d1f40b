import math

from bench import ratios


def test_ratios_table_has_every_cost_with_a_positive_finite_ratio():
  """bench/ratios.py end to end at toy size: a one-step Glow, two HMC steps of one leapfrog."""
  tiny = ['model.flow.levels=1', 'model.flow.steps_per_level=1', 'model.flow.width=4']
  rows = ratios.measure('smoke', batch=2, reps=2, steps=1,
                        sets=tiny + ['nt.hmc_steps=2', 'nt.hmc_leapfrog_steps=1'],
                        batch_2d=8, sets_2d=tiny + ['model.ebm.width=4'])
  assert [r[0] for r in rows] == [r[0] for r in ratios.ROWS]
  for _, _, _, seconds, floor, ratio, _, first_cost, first_floor in rows:
    assert all(math.isfinite(v) and v > 0 for v in (seconds, floor, ratio, first_cost,
                                                    first_floor))
  # The same nt timings over K (L + 1) = 4 gradients and over tfp's K L + 1 = 3.
  nt, tfp_count = rows[-2], rows[-1]
  assert nt[3] == tfp_count[3] and math.isclose(tfp_count[4], nt[4] * 3 / 4)
  assert math.isclose(tfp_count[5], nt[5] * 4 / 3)
  lines = ratios.table(rows).splitlines()
  assert len(lines) == 2 + len(ratios.ROWS)
  assert lines[2].startswith('| FCE flow update |') and '| <= 1.5 |' in lines[2]
  assert [float(line.split('|')[5]) for line in lines[2:]] == [
      float(f'{r[5]:.2f}') for r in rows]
