import numpy as np
import pytest

from train import schedule as schedule_lib


def _phases(schedule, accuracies, hold=False):
  return [schedule.record(a, hold=hold) for a in accuracies]


def test_ebm_until_above_threshold_then_flow_until_not_above():
  s = schedule_lib.AlternationSchedule(threshold=0.5)
  assert s.phase == 'ebm'
  assert _phases(s, [0.4, 0.5, 0.6, 0.55, 0.51, 0.45, 0.7]) == [
      'ebm', 'ebm', 'flow', 'flow', 'flow', 'ebm', 'flow']
  assert s.updates == {'ebm': 4, 'flow': 3}


def test_accuracy_pinned_at_the_threshold_hands_the_turn_to_the_ebm():
  """The degenerate case: an EBM calling every point 'data' scores exactly 0.5. Read literally
  ('the flow until below 0.5') the flow would keep the turn for ever; here the EBM gets it."""
  s = schedule_lib.AlternationSchedule(threshold=0.5)
  assert _phases(s, [0.8, 0.5, 0.5, 0.5]) == ['flow', 'ebm', 'ebm', 'ebm']
  assert s.updates == {'ebm': 3, 'flow': 1}


def test_hysteresis_band_and_running_mean_window():
  s = schedule_lib.AlternationSchedule(threshold=0.5, hysteresis=0.05)
  assert _phases(s, [0.54, 0.56, 0.47, 0.44]) == ['ebm', 'flow', 'flow', 'ebm']
  w = schedule_lib.AlternationSchedule(threshold=0.5, window=3)
  # Running means 0.9, 0.6, then 0.5: the flow keeps the turn through one low accuracy.
  assert _phases(w, [0.9, 0.3, 0.3]) == ['flow', 'flow', 'ebm']
  assert w.mean_score == pytest.approx(0.5)


def test_phase_caps_give_strict_alternation():
  s = schedule_lib.AlternationSchedule(threshold=0.5, max_flow_updates=1, max_ebm_updates=1)
  assert _phases(s, [0.1, 0.9, 0.1, 0.9]) == ['flow', 'ebm', 'flow', 'ebm']
  capped = schedule_lib.AlternationSchedule(threshold=0.5, max_flow_updates=2)
  assert _phases(capped, [0.9, 0.9, 0.9, 0.9]) == ['flow', 'flow', 'ebm', 'flow']


def test_hold_counts_ebm_updates_without_switching():
  s = schedule_lib.AlternationSchedule(threshold=0.5)
  assert _phases(s, [0.9, 0.9], hold=True) == ['ebm', 'ebm']
  assert s.updates == {'ebm': 2, 'flow': 0}
  assert s.record(0.9) == 'flow'


def test_value_rule_keeps_the_ebm_while_v_is_below_minus_log_4():
  """On V: a classifier right on most points but confidently wrong on a few (accuracy 0.6,
  V -1.8) keeps the EBM's turn, which the accuracy rule would hand to the flow."""
  s = schedule_lib.AlternationSchedule(metric='value')
  assert s.threshold == pytest.approx(-np.log(4.))
  assert s.mean_score == pytest.approx(-np.log(4.))  # nothing recorded yet
  assert _phases(s, [-1.8, -1.5, -1.3, -1.35, -np.log(4.), -1.2]) == [
      'ebm', 'ebm', 'flow', 'flow', 'ebm', 'flow']
  assert s.updates == {'ebm': 4, 'flow': 2}
  band = schedule_lib.AlternationSchedule(metric='value', value_threshold=-1.5, hysteresis=0.1)
  assert _phases(band, [-1.45, -1.39, -1.55, -1.61]) == ['ebm', 'flow', 'flow', 'ebm']
