"""Which update each training step makes, and how far the run has come.

Steps [0, mle_steps) train the flow by MLE ('mle': the MLE phase of fce / ssl, see
`train/state.py`). After it a mode makes its one update every step (`Single`), or the EBM and the
flow take turns under the alternation schedule (`Alternating`, FCE Sec. 4), which can also end
the run after fce.ebm_updates EBM updates. `train/modes.py` says which a mode uses.
"""

from train import watch


class Single:
  """The mode's one update, `name`, at every step after the MLE phase."""

  def __init__(self, train_config, name, mle_steps):
    self.t, self.name, self.mle_steps = train_config, name, mle_steps

  @property
  def total(self):
    """The step the run ends at: the MLE phase, then train.steps."""
    return self.mle_steps + self.t.steps

  def phase(self, step):
    """The update of step `step` + 1: 'mle' in the MLE phase, else the mode's."""
    return 'mle' if step < self.mle_steps else self._contrastive(step)

  def _contrastive(self, step):
    del step
    return self.name

  def record(self, phase, metrics, step):
    """Takes the metrics of the update `phase` just made at step `step` + 1."""

  def finished(self, step, stop):
    return step >= stop

  def progress(self, step):
    """How far the run is after the MLE phase, in [0, 1] (the EBM's learning-rate anneal)."""
    return (step - self.mle_steps) / self.t.steps

  def remaining(self, step):
    """Steps left: of the MLE phase, then of the rest."""
    done = max(step - self.mle_steps, 0)
    return max(self.mle_steps - step, 0) + self._left(done)

  def _left(self, done):
    return self.t.steps - done

  def scalars(self, phase):
    """What the progress line adds after update `phase`."""
    del phase
    return {}

  def begin(self, state, first_x):
    """At the start of the contrastive phase (step 0, or the end of the MLE phase)."""

  def check(self, logged, step):
    """Looks at each logged interval's metrics."""


class Alternating(Single):
  """FCE's alternation (Sec. 4): after FCE-init's fce.init_steps EBM updates against the
  frozen flow (Sec. 4.4, Table 4), the schedule (`train/schedule.py`) gives the turn to the EBM
  or the flow. Watches the flow for collapse (`watch.FlowCollapse`)."""

  def __init__(self, state):
    super().__init__(state.config.train, None, state.fce_start)
    self.fce = state.config.fce
    self.schedule = state.schedule
    self.collapse = watch.FlowCollapse(state.config, state.flow_nll_start)

  def _contrastive(self, step):
    return 'ebm' if self._fce_init(step) else self.schedule.phase

  def _fce_init(self, step):
    return step - self.mle_steps < self.fce.init_steps

  def record(self, phase, metrics, step):
    if phase != 'mle':
      self.schedule.record(metrics[self.schedule.metric], hold=self._fce_init(step))

  def _ebm_updates_reached(self):
    return bool(self.fce.ebm_updates) and self.schedule.updates['ebm'] >= self.fce.ebm_updates

  def finished(self, step, stop):
    return self._ebm_updates_reached() or step >= stop

  def progress(self, step):
    """Counted in EBM updates when fce.ebm_updates ends the run (the schedule is in the
    checkpoint, so a resumed run continues the same anneal)."""
    if self.fce.ebm_updates:
      return self.schedule.updates['ebm'] / self.fce.ebm_updates
    return super().progress(step)

  def _left(self, done):
    """Estimated from the EBM's share of the updates so far when fce.ebm_updates ends the
    run."""
    left, ebm_done = self.t.steps - done, self.schedule.updates['ebm']
    if self.fce.ebm_updates and ebm_done:
      left = min(left, (self.fce.ebm_updates - ebm_done) * done / ebm_done)
    return left

  def scalars(self, phase):
    if phase == 'mle':
      return {}
    return dict({f'{k}_updates': v for k, v in self.schedule.updates.items()},
                **{f'mean_{self.schedule.metric}': self.schedule.mean_score})

  def begin(self, state, first_x):
    """Records the flow's NLL that the collapse warning compares with, and checks how many of
    its samples the EBM's support holds."""
    state.flow_nll_start.assign(state.flow_nll(first_x))
    watch.check_support_coverage(state.flow, state.ebm, state.global_batch, state.config)

  def check(self, logged, step):
    self.collapse(logged.get('flow_nll'), step)
