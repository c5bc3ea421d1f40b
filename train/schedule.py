"""FCE's alternation rule (FCE Sec. 4): update the EBM until the classifier's accuracy is above
the threshold, then the flow until it is no longer above it.

`metric` chooses what is compared: 'accuracy' (the paper's rule, against `threshold`) or 'value',
the value function V itself (FCE eq. 12, the classifier's log-likelihood), against
`value_threshold`, by default V's equilibrium -log 4. The two differ when the classifier is
right on most points but confidently wrong on a few: the accuracy is above 0.5 while V is far
below -log 4, and the accuracy rule hands the flow turns in which it moves its samples further
to where the EBM overrates them (docs/image_fce). Under the V rule the EBM keeps the turn until
its log-loss is back at chance level.

The score compared is the mean over the last `window` updates (of either model); a
hysteresis band keeps the phase from flipping on noise (to the flow above threshold +
hysteresis, back to the EBM at or below threshold - hysteresis); `max_flow_updates` and
`max_ebm_updates` (0 = no limit) cap a phase at that many consecutive updates (both 1: strict
1:1 alternation).

At the threshold itself the EBM moves. This matters at 0.5: an EBM that calls every point
'data' (a log-normalizer c that is too small) scores exactly 0.5, data all right and samples
all wrong. Read literally ("the flow until the accuracy is below 0.5"), the flow would then
keep the turn forever, since no flow update can push that accuracy below 0.5, and the EBM
would starve. The state lives in tf.Variables so that checkpoints carry it.
"""

import numpy as np
import tensorflow as tf

METRICS = ('accuracy', 'value')


class AlternationSchedule(tf.Module):
  """Decides which model the next FCE update trains; counts both models' updates.

  The arguments are fce.schedule's fields, checked by configs/checks.py.
  """

  def __init__(self, threshold=0.5, hysteresis=0., window=1, max_flow_updates=0,
               max_ebm_updates=0, metric='accuracy', value_threshold=-np.log(4.)):
    super().__init__(name='schedule')
    self.metric = metric
    self.threshold = threshold if metric == 'accuracy' else value_threshold
    self.hysteresis = hysteresis
    self.window, self.max_flow_updates = window, max_flow_updates
    self.max_ebm_updates = max_ebm_updates
    self.flow_phase = tf.Variable(False, trainable=False, name='flow_phase')
    self.ebm_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='ebm_updates')
    self.flow_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='flow_updates')
    self.phase_length = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_length')
    self.recent = tf.Variable(tf.zeros([window]), trainable=False, name='recent_scores')
    self.num_recorded = tf.Variable(0, dtype=tf.int64, trainable=False, name='num_recorded')

  @property
  def phase(self):
    return 'flow' if bool(self.flow_phase.numpy()) else 'ebm'

  @property
  def mean_score(self):
    """The mean of the metric over the last `window` updates (the threshold before any)."""
    n = min(int(self.num_recorded.numpy()), self.window)
    return float(tf.reduce_mean(self.recent[:n])) if n else self.threshold

  def record(self, score, hold=False):
    """Records the metric (accuracy or V) measured by the update just made; returns the next
    phase.

    With hold=True (FCE-init: EBM updates against a frozen flow) the update is counted but
    the phase does not change.
    """
    counter = self.flow_updates if self.phase == 'flow' else self.ebm_updates
    counter.assign_add(1)
    self.phase_length.assign_add(1)
    slot = int(self.num_recorded.numpy()) % self.window
    self.recent[slot].assign(float(score))
    self.num_recorded.assign_add(1)
    if hold:
      return self.phase
    score, length = self.mean_score, int(self.phase_length.numpy())
    if self.phase == 'ebm' and (
        score > self.threshold + self.hysteresis or
        (self.max_ebm_updates and length >= self.max_ebm_updates)):
      self._switch(True)
    elif self.phase == 'flow' and (
        score <= self.threshold - self.hysteresis or
        (self.max_flow_updates and length >= self.max_flow_updates)):
      self._switch(False)
    return self.phase

  def _switch(self, to_flow):
    self.flow_phase.assign(to_flow)
    self.phase_length.assign(0)

  @property
  def updates(self):
    return {'ebm': int(self.ebm_updates.numpy()), 'flow': int(self.flow_updates.numpy())}
