"""Progress lines of long work (train/progress.py)."""

import logging

from train import progress


def test_eta_reads_in_minutes_or_hours():
  assert progress.eta(249) == '4m09s'
  assert progress.eta(3725.9) == '1h02m'
  assert progress.eta(0) == '0m00s'


def test_a_progress_line_says_how_far_how_fast_and_how_long_still(caplog, monkeypatch):
  clock = iter([100., 110.])  # made at t = 100 s, 25 of 100 steps done at t = 110 s
  monkeypatch.setattr(progress.time, 'perf_counter', lambda: next(clock))
  shown = progress.Progress('long chain', 100, 'HMC steps')
  with caplog.at_level(logging.INFO):
    shown.log(25, acceptance=0.75)
  assert 'long chain | 25/100 HMC steps  2.50 HMC steps/s  ETA 0m30s  acceptance=0.75' in \
      caplog.text
