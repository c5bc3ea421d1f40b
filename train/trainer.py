"""The training loop for every dataset and mode, under a tf.distribute strategy.

One workdir per run (`train/run_folder.py`):
  config.json     the config the run was started with (a different model/data config is refused)
  checkpoints/    the latest state, every `train.checkpoint_every` steps (`train/state.py`):
                  models, optimizers, step, alternation schedule and what the mode adds; batch s
                  is a function of (seed, s) (see data/pipeline.py), so re-running the command
                  resumes exactly, in the phase where it stopped
  diverged/       a checkpoint saved as the run began to diverge (`watch.Health`), set aside
  snapshots/      kept checkpoints every `train.snapshot_every` steps, for evaluation
  tensorboard/    scalars (losses, V, accuracy, bpd, learning rates, steps/s), sample grids and
                  2D density images; steps continue across a resume
  samples/        the same figures as PNGs
  eval/           on images, train_eval_<step>.json every `eval.every` steps: held-out
                  bits/dim and FID/KID (the code of --mode=eval, eval/image_eval.py)

fce and ssl run in two phases when `fce.mle_pretrain_steps` > 0 (the image configs): the flow
by MLE for that many steps, then `train.steps` steps of FCE from it. The phase is in the progress
line and in TensorBoard (`phase`: 0 MLE, 1 FCE; the MLE phase's scalars under `mle_pretrain/`).
Which update each step makes is `train/turns.py`; what the loop does every so many steps,
`train/hooks.py`. Only the chief writes. NaN or Inf in a loss, or metrics out of every sane range
for many updates (`watch.Health`), stop the run before anything diverged is saved, leaving the
last good checkpoint intact; SIGINT / SIGTERM stop it after the current step with a checkpoint
of that step (`train/interrupt.py`).
"""

import functools
import signal

from absl import logging
import tensorflow as tf

from configs import checks as config_checks
from data import pipeline
from models import noise as noise_lib
from train import hooks
from train import interrupt
from train import modes as modes_lib
from train import run_folder
from train import state as state_lib
from train import steps as steps_lib
from train import watch
from train.errors import DivergedError  # noqa: F401  (re-exported: experiments catch it)
from train.errors import Interrupted
from train.errors import TrainingError


class Trainer:
  """Builds models, data and steps for `mode` (a name of `train/modes.py`); `run()` trains
  `config.train.steps` steps after the MLE phase (`fce.mle_pretrain_steps`, fce / ssl).
  `self.config` is `config` with what the mode implies (e.g. ssl's class-conditional EBM); the
  caller's config is not changed."""

  def __init__(self, config, mode, workdir, strategy=None, init_flow=None, rollback=0):
    self.spec = modes_lib.get(mode)
    config_checks.check(config)  # before anything is written
    config = self.spec.configure(config, init_flow)
    self.spec.check(config)
    self.config, self.mode, self.workdir = config, mode, workdir
    self.strategy = strategy or tf.distribute.get_strategy()
    self.folder = run_folder.RunFolder(workdir, config, mode, self.strategy)
    # Before anything in the folder changes: a roll-back, damaged checkpoints set aside.
    resume_from = self.folder.readable_checkpoint(rollback)
    self.global_batch = config.train.batch_size
    if self.global_batch % self.strategy.num_replicas_in_sync:
      raise TrainingError(f'train.batch_size={self.global_batch} is not divisible by the '
                          f'{self.strategy.num_replicas_in_sync} replicas.')
    self.state = state_lib.TrainState(config, self.spec, self.strategy, self.folder, resume_from,
                                      self.global_batch)
    self.flow, self.ebm = self.state.flow, self.state.ebm
    self.step, self.optimizers = self.state.step, self.state.optimizers
    self.schedule = self.state.schedule
    self.source = self._batch_source()
    if resume_from:
      self.state.restore(resume_from)
      if self.folder.is_chief:  # what the steps after the checkpoint logged is superseded
        hooks.drop_events_after(self.folder.path('tensorboard'), int(self.step.numpy()))
        hooks.set_aside_reports(self.workdir, int(self.step.numpy()))
    else:
      self._start(init_flow)
    # Batches are a function of the step (data/pipeline.py): resuming needs no iterator state.
    self.iterator = iter(self.strategy.experimental_distribute_dataset(
        self.source.dataset(start_step=int(self.step.numpy()))))
    self.noise = self.spec.make_noise(config, self.flow, self.gaussian_noise)
    self.step_fns = self._compile_steps()
    self.turns = self.spec.make_turns(self.state, self.step_fns)
    if not resume_from and not self.state.fce_start:
      self._begin_contrastive_phase()
    self.model = self.spec.model(self.ebm, self.flow)  # the EBM as evaluated
    self.health = watch.Health(config, self.spec, self.folder, self.state.manager.directory)
    self.evaluation = hooks.InLoopEval(config, mode, self.spec.reports(config), self.folder,
                                       self.flow, self.model)
    # Recorded only once everything above worked, so a config that fails to build leaves no
    # run folder behind to refuse its corrected version.
    self.folder.record()

  def _batch_source(self):
    """The run's batches: data, the noise's latents (nce.nu per example against a fixed
    noise) and, for ssl, the labeled examples."""
    config = self.config
    self.nu = self.spec.noise_samples(config)
    latent_shape = [self.nu, self.flow.latent_dim] if self.nu > 1 else [self.flow.latent_dim]
    self.labeled_batch = config.ssl.labeled_batch_size or self.global_batch
    source = pipeline.BatchSource(config, self.global_batch, latent_shape,
                                  labels_per_class=self.spec.labels_per_class(config),
                                  labeled_batch_size=self.labeled_batch)
    if self.global_batch > source.n:
      raise TrainingError(f'train.batch_size={self.global_batch} is larger than the '
                          f'{source.n} training examples of {config.data.name}: lower it.')
    return source

  @functools.cached_property
  def _first_batch(self):
    """The run's first global batch, made once: for the data init, the c init, the collapse
    warning's reference and the Gaussian noise's parameters."""
    return self.source.batch(0)

  def _start(self, init_flow):
    """A new run: the flow of --init_flow or initialised on the first batch, the EBM's first
    layer on data, and the mode's extra variables."""
    self.spec.check_new_run(self.config, init_flow)
    first = self._first_batch
    if init_flow:
      run_folder.restore_flow_from(self.flow, init_flow, self.config)
      self.spec.check_backbone(self.flow, first, init_flow)
    else:
      self.flow.data_init(first['x'])
    self.state.place_kinks(first['x'])
    self.spec.start_extras(self.state.extras, first)

  def _begin_contrastive_phase(self):
    """What the EBM's training starts from: a frozen base equal to the flow, c level with the
    noise, and (fce, ssl) the flow's NLL that the collapse warning compares with. At step 0, or
    when the MLE phase ends."""
    if self.ebm.base is not None:  # the EBM corrects the flow FCE starts from (frozen)
      for base, v in zip(self.ebm.base.variables, self.flow.variables, strict=True):
        base.assign(v)
    x = self._first_batch['x']
    self.state.init_log_normalizer(x, lambda x, f: self.spec.contrast_log_q(self.noise, x, f))
    self.turns.begin(self.state, x)

  def gaussian_noise(self):
    """N(data mean, (nce.noise_std x data std)^2) from the first batch."""
    x = self._first_batch['x']
    return noise_lib.GaussianNoise(x.shape[1:], x.mean(0),
                                   self.config.nce.noise_std * x.std(0) + 1e-3)

  def _compile_steps(self):
    """The mode's steps (`Mode.make_steps`) and the MLE phase's, each run on every replica."""
    steps = self.spec.make_steps(self)
    if self.state.fce_start:
      steps['mle'] = steps_lib.make_mle_step(self.flow, self.optimizers['flow_mle'],
                                             self.config.data.num_bins, self.global_batch)
    return {name: steps_lib.compile_step(fn, self.strategy, self.config.train.jit_compile)
            for name, fn in steps.items()}

  def run(self, until_step=None):
    """Trains to config.train.steps (after the MLE phase, if any), or to step `until_step`,
    saving a checkpoint there; returns the last logged metrics. SIGINT or SIGTERM stops it after
    the current step with a checkpoint of that step (`errors.Interrupted`)."""
    self.folder.lock()  # held since the constructor, unless an earlier run() released it
    try:
      with interrupt.StopSignals(before_exit=self.folder.release) as self.signals:
        return self._run(until_step)
    finally:
      self.folder.release()

  def _run(self, until_step):
    turns, fce_start = self.turns, self.state.fce_start
    step = int(self.step.numpy())
    stop = turns.total if until_step is None else min(until_step, turns.total)
    self.was_finished = turns.finished(step, stop)  # main.py then prints no 'Done:'
    if self.was_finished:  # no new event file, and the metrics it logged last
      logged = hooks.last_logged(self.folder.path('tensorboard'), step)
      if turns.finished(step, turns.total):
        logging.info('This run is already finished, at step %d of %d (fce.ebm_updates=%d): '
                     'nothing to train (raise train.steps to train further).%s', step,
                     turns.total, self.config.fce.ebm_updates,
                     hooks.metrics_text(logged, ' Its last metrics: '))
      else:
        logging.info('Already at step %d (of %d): nothing to train.', step, turns.total)
      return logged
    if fce_start:
      logging.info('%s in two phases: the flow by MLE to step %d, then %s to step %d; now at '
                   'step %d.', self.mode, fce_start, self.mode, turns.total, step)
    self.evaluation.check_fid_network()
    writer = (tf.summary.create_file_writer(self.folder.path('tensorboard'))
              if self.folder.is_chief else tf.summary.create_noop_writer())
    try:
      return self._loop(step, stop, writer)
    finally:
      writer.flush()

  def _loop(self, step, stop, writer):
    t, turns, fce_start = self.config.train, self.turns, self.state.fce_start
    log = hooks.ProgressLog(self.mode, turns, self.state, writer, step,
                            lambda: self.evaluation.latest)
    logged = {}
    while not turns.finished(step, stop):
      if step == fce_start and fce_start:
        logging.info('step %d: the MLE phase is done; %s begins from its flow.', step, self.mode)
        self._begin_contrastive_phase()
      phase = turns.phase(step)
      metrics = self._update(phase, step)
      log.observe(metrics)
      turns.record(phase, metrics, step)
      step += 1
      self.step.assign(step)
      # The run's last step and the MLE phase's last one are logged, saved and evaluated.
      milestone = turns.finished(step, stop) or step == fce_start
      if milestone or step % t.log_every == 0:
        logged = log(step, phase, metrics)
      saved = (milestone or step % t.checkpoint_every == 0) and self._save(step, milestone)
      # After the save: an evaluation never costs a checkpoint.
      if milestone or step % self.config.eval.every == 0:
        logged.update(self.evaluation(step, writer, has_ebm=step > fce_start))
      if self.signals.received and not turns.finished(step, stop):  # (finished: all saved)
        self._interrupted(step, saved)
    return logged

  def _save(self, step, final):
    """Saves the state after `step` updates unless the last update's metrics were out of range
    (`watch.Health.suspect`): then the save waits for a sound state, and at the run's end the
    run is stopped as diverged. Returns whether it saved."""
    if self.health.suspect:
      if final:
        self.health.stop()
      logging.warning('step %d: no checkpoint while the metrics are out of range (%s, %d '
                      'update(s) so far).', step, self.health.problem, self.health.streak)
      return False
    self.state.save(step, self.source.batch(step))
    return True

  def _interrupted(self, step, saved):
    """Stops the run on a signal, with a checkpoint of `step` (a sound one: see `_save`)."""
    signum = self.signals.received
    name = signal.Signals(signum).name
    if saved or self._save(step, final=False):
      what = f'saved ckpt-{step}; rerun the same command to resume.'
    else:
      what = ('its state, out of range, was not saved. '
              + watch.kept_text(self.state.manager.directory))
    raise Interrupted(f'Interrupted by {name} at step {step}: {what}', interrupt.exit_code(signum))

  def _update(self, phase, step):
    """Update `phase` on the next batch (the EBM's learning rate annealed first, if
    optim.ebm_lr_anneal); returns its metrics, all finite."""
    batch = next(self.iterator)
    optim = self.config.optim
    if phase == 'ebm' and optim.ebm_lr_anneal:
      self.optimizers['ebm'].learning_rate.assign(
          steps_lib.annealed(optim.ebm_lr, self.turns.progress(step), optim.ebm_lr_anneal))
    metrics = {k: float(v) for k, v in self.step_fns[phase](batch).items()}
    self.health(metrics, phase, step)  # DivergedError: NaN, or out of range for long
    return metrics
