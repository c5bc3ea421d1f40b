from experiments import figure2


def test_summary_reads_each_seed_within_the_update_budget():
  curves = {'FCE rand': {0: [(500, 0.5), (1000, 0.08), (1500, 0.2), (2000, 0.06), (2500, 0.01)],
                         1: [(500, 0.3), (1000, 0.2), (2000, 0.12)]},
            # FCE's EBM-update counts are read from TensorBoard as floats.
            'FCE trained': {0: [(1000.0, 0.2), (1500.0, 0.09)], 1: [(1000.0, 0.05)]}}
  out = figure2.summary(curves, 2000, ['0', '1'])
  # Seed 0 ends at 0.06 (the 0.01 at 2500 updates is past the budget) and is first below 0.1 at
  # 1000 updates; seed 1 ends at 0.12 and is never below 0.1. Mean 0.09; the last three of both
  # seeds: (0.08 + 0.2 + 0.06 + 0.3 + 0.2 + 0.12) / 6 = 0.16.
  assert '| FCE rand | 0.060 / 0.120 | 0.090 | 0.160 | 1000 / - |' in out
  assert '| FCE trained | 0.090 / 0.050 | 0.070 | 0.113 | 1500 / 1000 |' in out
  assert 'at most 2000 EBM updates' in out
