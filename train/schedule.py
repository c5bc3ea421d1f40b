"""FCE's alternation rule (FCE Sec. 4): update the EBM until the classifier's accuracy is above
the threshold, then the flow until it is below it.

The accuracy compared is the mean over the last `window` updates (of either model), and a
hysteresis band keeps the phase from flipping on noise: switch to the flow above
threshold + hysteresis, back to the EBM below threshold - hysteresis.
"""

import collections


class AlternationSchedule:
  """Decides which model the next FCE update trains; tracks both models' update counts."""

  def __init__(self, threshold=0.5, hysteresis=0., window=1):
    if not 0. < threshold < 1.:
      raise ValueError(f'The accuracy threshold must lie in (0, 1), got {threshold}.')
    if hysteresis < 0 or window < 1:
      raise ValueError(f'Need hysteresis >= 0 and window >= 1, got {hysteresis}, {window}.')
    self.threshold, self.hysteresis = threshold, hysteresis
    self._recent = collections.deque(maxlen=window)
    self.phase = 'ebm'
    self.updates = {'ebm': 0, 'flow': 0}

  @property
  def mean_accuracy(self):
    return sum(self._recent) / len(self._recent) if self._recent else 0.5

  def record(self, accuracy):
    """Records the accuracy measured by the update just made and picks the next phase."""
    self.updates[self.phase] += 1
    self._recent.append(float(accuracy))
    acc = self.mean_accuracy
    if self.phase == 'ebm' and acc > self.threshold + self.hysteresis:
      self.phase = 'flow'
    elif self.phase == 'flow' and acc < self.threshold - self.hysteresis:
      self.phase = 'ebm'
    return self.phase

  def state(self):
    return {'phase': self.phase, 'updates': dict(self.updates), 'recent': list(self._recent)}

  def restore(self, state):
    self.phase = state['phase']
    self.updates = dict(state['updates'])
    self._recent.clear()
    self._recent.extend(state['recent'])
