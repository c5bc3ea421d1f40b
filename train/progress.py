"""Progress lines for long work: how far, how fast, how long still (and the metrics so far)."""

import time

from absl import logging


def eta(seconds):
  """'1h05m' or '4m09s'."""
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else \
      f'{seconds // 60}m{seconds % 60:02d}s'


class Progress:
  """Logs `label | done/total unit  rate unit/s  ETA  metrics` on each `log` call; the rate is
  the mean since the object was made."""

  def __init__(self, label, total, unit='steps'):
    self.label, self.total, self.unit = label, total, unit
    self.start = time.perf_counter()

  def log(self, done, **metrics):
    rate = done / max(time.perf_counter() - self.start, 1e-9)
    logging.info('%s | %d/%d %s  %.2f %s/s  ETA %s  %s', self.label, done, self.total, self.unit,
                 rate, self.unit, eta((self.total - done) / rate) if rate > 0 else '?',
                 '  '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
