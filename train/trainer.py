"""The training loop for every dataset and mode, under a tf.distribute strategy.

One workdir per run:
  config.json     the config the run was started with (a different model/data config is refused)
  checkpoints/    the latest state, every `train.checkpoint_every` steps: models, optimizers,
                  step, alternation schedule and the length of the MLE phase; batch s is a
                  function of (seed, s) (see data/pipeline.py), so re-running the command
                  resumes exactly, in the phase where it stopped
  snapshots/      kept checkpoints every `train.snapshot_every` steps, for evaluation
  tensorboard/    scalars (losses, V, accuracy, bpd, learning rates, steps/s), sample grids and
                  2D density images; steps continue across a resume
  samples/        the same figures as PNGs
  eval/           on images, train_eval_<step>.json every `train.eval_every` steps: held-out
                  bits/dim and FID/KID (the code of --mode=eval, eval/image_eval.py)

fce and ssl run in two phases when `train.mle_pretrain_steps` > 0 (the image configs): the flow
by MLE for that many steps, then `train.steps` steps of FCE from it. The phase is in the progress
line and in TensorBoard (`phase`: 0 MLE, 1 FCE; the MLE phase's scalars under `mle_pretrain/`).
Only the chief writes; NaN or Inf in a loss stops the run before anything is saved, leaving the
last good checkpoint intact.
"""

import dataclasses
import functools
import json
import os
import re
import time

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras as keras

from configs import checks as config_checks
from data import pipeline
from eval import fid as fid_lib
from eval import figures
from eval import image_eval
from eval import run as eval_run
from models import build
from models import ebm as ebm_lib
from models import noise as noise_lib
from models import transport
from train import checkpoints as ckpt_lib
from train.errors import DivergedError
from train.errors import ReportError
from train.errors import TrainingError
from train import lock as lock_lib
from train import modes as modes_lib
from train import progress
from train import schedule as schedule_lib
from train import steps as steps_lib


def flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  return out


def changed_keys(old, new):
  """The keys of two flat dicts whose values differ; a key that one side lacks counts."""
  return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def run_identity(config, mode):
  """What must match for a workdir to be resumed: the mode, the data and the models."""
  return flatten({'mode': mode, 'data': config.data.to_dict(), 'model': config.model.to_dict()})


def saved_identity(workdir):
  """The identity of the run in `workdir`, with fields added to the configs since then at their
  defaults (so a run made before a field existed still resumes)."""
  try:
    config, mode = eval_run.load_run(workdir)
  except eval_run.EvalError as e:  # a damaged config.json
    raise TrainingError(str(e)) from e
  return run_identity(config, mode)


def check_workdir(workdir, config, mode, write):
  """Refuses a workdir started with another mode / data / model config; records ours if new."""
  path = os.path.join(workdir, 'config.json')
  identity = run_identity(config, mode)
  if tf.io.gfile.exists(path):
    old = saved_identity(workdir)
    diff = changed_keys(old, identity)
    if diff:
      raise TrainingError(
          f'{workdir} holds a run with a different config ({", ".join(diff)}); it was not '
          'touched. Use another --workdir, or the settings of that run.')
  elif write:
    # Written whole: under multi-worker training the other workers read this file while the
    # chief writes it, and a half-written one would stop them on a JSON error.
    tf.io.gfile.makedirs(workdir)
    ckpt_lib.write_json(path, {'identity': identity, 'config': json.loads(config.to_json())})


def restore_flow_from(flow, workdir, config):
  """Loads the flow of another run (`--init_flow`), checking that its flow config matches."""
  path = os.path.join(workdir, 'config.json')
  if not tf.io.gfile.exists(path):
    raise TrainingError(f'--init_flow={workdir}: no run there (no config.json). Train a flow '
                        'first, e.g. with --mode=mle --workdir=' + workdir)
  their_config, their_mode = eval_run.load_run(workdir)
  old = run_identity(their_config, their_mode)
  if not modes_lib.get(their_mode).has_flow(their_config):
    raise TrainingError(f'--init_flow={workdir} is a --mode={their_mode} run whose noise is a '
                        'Gaussian: it has no trained flow. Pass the workdir of a --mode=mle (or '
                        'fce) run.')
  ours = run_identity(config, 'mle')
  diff = sorted(k for k in ours if k.startswith(('model.flow', 'data.shape', 'data.num_bins'))
                and old.get(k) != ours[k])
  if diff:
    fields = ', '.join(f'{k}={old.get(k)!r} there, {ours[k]!r} here' for k in diff)
    raise TrainingError(f'--init_flow={workdir} has a different flow or data ({fields}). Use '
                        'that run\'s config, or --set these fields to its values.')
  try:
    latest, _ = ckpt_lib.latest_readable(os.path.join(workdir, 'checkpoints'))
  except ckpt_lib.CheckpointError as e:
    raise TrainingError(f'--init_flow={workdir}: {e}') from e
  if latest is None:
    raise TrainingError(f'--init_flow={workdir} has no checkpoint yet.')
  tf.train.Checkpoint(flow=flow).restore(latest).expect_partial().assert_existing_objects_matched()
  logging.info('Initialised the flow from %s', latest)


def _is_chief(strategy):
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == 'chief' or (
      resolver.task_type == 'worker' and resolver.task_id == 0 and
      'chief' not in resolver.cluster_spec().as_dict())


class GradientNorms:
  """Per log interval, each model's largest gradient norm (`ebm_grad_norm`, `flow_grad_norm`,
  from the steps' metrics) and, when `optim.*_clip_norm` is on, how many of its updates that
  bound clipped (`ebm_clipped`, `flow_clipped`). A single logged step would miss the rare huge
  gradient that clipping is for."""

  def __init__(self, optim_config):
    self.bounds = {'ebm': optim_config.ebm_clip_norm, 'flow': optim_config.flow_clip_norm}
    self._interval = {}

  def record(self, metrics):
    for model, bound in self.bounds.items():
      norm = metrics.get(f'{model}_grad_norm')
      if norm is not None:
        largest, clipped = self._interval.get(model, (0., 0))
        self._interval[model] = max(largest, norm), clipped + int(bool(bound) and norm > bound)

  def summary(self):
    """The interval's scalars; starts the next interval."""
    out = {}
    for model, (largest, clipped) in self._interval.items():
      out[f'{model}_grad_norm'] = largest
      if self.bounds[model]:
        out[f'{model}_clipped'] = clipped
    self._interval = {}
    return out


class Trainer:
  """Builds models, data and steps for `mode` (a name of `train/modes.py`); `run()` trains
  `config.train.steps` steps after the MLE phase (`train.mle_pretrain_steps`, fce / ssl). `self.config` is `config` with what the mode implies (e.g. ssl's
  class-conditional EBM); the caller's config is not changed."""

  def __init__(self, config, mode, workdir, strategy=None, init_flow=None, rollback=0):
    self.spec = modes_lib.get(mode)
    config_checks.check(config)  # before anything is written
    config = self.spec.configure(config, init_flow)
    self.config, self.mode, self.workdir = config, mode, workdir
    self.strategy = strategy or tf.distribute.get_strategy()
    self.is_chief = _is_chief(self.strategy)
    check_workdir(workdir, config, mode, write=False)
    if tf.io.gfile.exists(workdir):
      self._lock()  # before anything in it changes (a roll-back, damaged checkpoints set aside)
    self._resume_from = self._readable_checkpoint(rollback)
    labels_per_class = 0
    if self.spec.conditional_ebm:
      if config.data.num_classes < 2:
        raise TrainingError(f'--mode={mode} needs labeled data (data.num_classes >= 2); '
                            f'{config.data.name} has {config.data.num_classes} classes.')
      labels_per_class = config.train.ssl_labels_per_class
      if labels_per_class < 1:
        raise TrainingError(f'--mode={mode} needs train.ssl_labels_per_class >= 1 (FCE Sec. 4.4 '
                            'uses 7 on two spirals and 100 on SVHN).')
    shape = tuple(config.data.shape)
    self.global_batch = config.train.batch_size
    if self.global_batch % self.strategy.num_replicas_in_sync:
      raise TrainingError(f'train.batch_size={self.global_batch} is not divisible by the '
                          f'{self.strategy.num_replicas_in_sync} replicas.')

    keras.utils.set_random_seed(config.train.seed)  # the models' initial weights
    if config.train.deterministic:  # process-wide; there is no switching it off again
      tf.config.experimental.enable_op_determinism()
    with self.strategy.scope():
      self.flow = build.build_flow(config.model.flow, shape)
      self.ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes,
                                 config.model.flow)
      self.optimizers = steps_lib.make_optimizers(config.optim)
      self.schedule = schedule_lib.AlternationSchedule(**config.train.schedule)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
      # The flow's NLL on the first batch when FCE began: the collapse warning's reference.
      self.flow_nll_start = tf.Variable(0., trainable=False, name='flow_nll_start')
      # Steps of the MLE phase before FCE (0: none); a resumed run keeps its own.
      self.fce_start, phase_in_checkpoint = self._mle_phase_length(init_flow)
      self.mle_pretrain_steps = tf.Variable(self.fce_start, dtype=tf.int64, trainable=False,
                                            name='mle_pretrain_steps')
      self.optimizer_names = self.spec.optimizers + (('flow_mle',) if self.fce_start else ())
      # NT-EBM's persistent latent chains, one per example of a batch, and their step size.
      chains = {}
      if self.spec.persistent_chains:
        # Every replica moves its share of the chains and assigns the gathered whole
        # (`steps_lib.make_nt_step`): the first replica's value is everyone's.
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        chains = {'chains': tf.Variable(tf.zeros([self.global_batch, self.flow.latent_dim]),
                                        trainable=False, name='chains', aggregation=first),
                  'hmc_step_size': tf.Variable(float(config.train.hmc_step_size),
                                               trainable=False, name='hmc_step_size',
                                               aggregation=first)}
      self.chains = chains.get('chains')
      self.hmc_step_size = chains.get('hmc_step_size')
      # The optimizers this run uses, with their slots built now: a slot created lazily after a
      # restore would be missing from a checkpoint saved before that optimizer's first update.
      models = {'ebm': self.ebm, 'flow': self.flow}
      for name in self.optimizer_names:
        self.optimizers[name].build(models[self.spec.model_of(name)].trainable_variables)

    nu = int(config.train.nce_nu) if self.spec.noise == 'fixed' else 1
    latent_shape = [nu, self.flow.latent_dim] if nu > 1 else [self.flow.latent_dim]
    self.labeled_batch = config.train.ssl_labeled_batch_size or self.global_batch
    self.source = pipeline.BatchSource(config, self.global_batch, latent_shape,
                                       labels_per_class=labels_per_class,
                                       labeled_batch_size=self.labeled_batch)
    if self.global_batch > self.source.n:
      raise TrainingError(f'train.batch_size={self.global_batch} is larger than the '
                          f'{self.source.n} training examples of {config.data.name}: lower it.')
    phase = {'mle_pretrain_steps': self.mle_pretrain_steps} if phase_in_checkpoint else {}
    self.checkpoint = tf.train.Checkpoint(
        step=self.step, flow=self.flow, ebm=self.ebm, schedule=self.schedule,
        flow_nll_start=self.flow_nll_start, **phase, **chains,
        **{f'{k}_optimizer': self.optimizers[k] for k in self.optimizer_names})
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self._checkpoint_dir('checkpoints'),
        max_to_keep=config.train.keep_checkpoints)
    self.snapshots = tf.train.CheckpointManager(
        self.checkpoint, self._checkpoint_dir('snapshots'), max_to_keep=None)
    fresh = not self._restore_or_initialise(init_flow)
    # Batches are a function of the step (data/pipeline.py): resuming needs no iterator state.
    self.iterator = iter(self.strategy.experimental_distribute_dataset(
        self.source.dataset(start_step=int(self.step.numpy()))))
    self.noise = self._noise()  # the EBM's contrast distribution (None for mle)
    self._steps = self._build_steps(nu)
    if fresh and not self.fce_start:
      self._begin_contrastive_phase()
    self._collapse_warned = False
    self._gradients = GradientNorms(config.optim)
    self._latest_eval = {}  # the last in-loop image evaluation, shown in the progress line
    # Recorded only once everything above worked, so a config that fails to build leaves no
    # run folder behind to refuse its corrected version.
    check_workdir(workdir, config, mode, write=self.is_chief)
    self._lock()

  def _readable_checkpoint(self, rollback):
    """The checkpoint to resume from: the newest that reads whole, after setting aside the
    newest `rollback` ones (--rollback) and any damaged one (train/checkpoints.py)."""
    try:
      if rollback:
        if not self.is_chief:
          raise TrainingError('--rollback is for the chief (or a single process).')
        ckpt_lib.roll_back(self.workdir, rollback)
      latest, damaged = ckpt_lib.latest_readable(os.path.join(self.workdir, 'checkpoints'))
    except ckpt_lib.CheckpointError as e:
      raise TrainingError(str(e)) from e
    if damaged and self.is_chief:
      ckpt_lib.set_aside(self.workdir, damaged, 'damaged')
      logging.warning('Set the damaged checkpoint(s) aside in %s; resuming from %s.',
                      os.path.join(self.workdir, 'damaged'), latest)
    return latest

  def _lock(self):
    """One process trains in a workdir (train/lock.py); the chief holds the lock."""
    if self.is_chief:
      try:
        lock_lib.acquire(self.workdir)
      except lock_lib.LockError as e:
        raise TrainingError(str(e)) from e

  def _checkpoint_dir(self, name):
    if self.is_chief:
      return os.path.join(self.workdir, name)
    # Every worker must save (the save is collective); only the chief's copy is kept.
    return os.path.join(self.workdir, 'tmp', f'worker{self.strategy.cluster_resolver.task_id}',
                        name)

  def _mle_phase_length(self, init_flow):
    """(steps of MLE before FCE, whether the checkpoint records them).

    A new run takes train.mle_pretrain_steps (0 for mle / nce and with --init_flow: see
    `Mode.configure`); a resumed run the value it started with, from its checkpoint, so that it
    resumes in the phase where it stopped whatever the command line says now. A run saved before
    the MLE phase existed has none.
    """
    if not self.spec.alternates:
      return 0, False
    latest = self._resume_from
    if latest is None:
      return int(self.config.train.mle_pretrain_steps), True
    steps = eval_run.saved_value(latest, 'mle_pretrain_steps')
    if steps is None:
      return 0, False
    if steps != self.config.train.mle_pretrain_steps:
      logging.info('This run began with %d MLE steps before FCE; train.mle_pretrain_steps=%d '
                   'applies to new runs only.', steps, self.config.train.mle_pretrain_steps)
    return steps, True

  def _begin_contrastive_phase(self):
    """What the EBM's training starts from: c level with the noise, and the flow's NLL that the
    collapse warning compares with. At step 0, or when the MLE phase ends."""
    if self.ebm.base is not None:  # the EBM corrects the flow FCE starts from (frozen)
      for base, v in zip(self.ebm.base.variables, self.flow.variables, strict=True):
        base.assign(v)
    if self.spec.trains_ebm and self.config.train.init_log_normalizer:
      self._init_log_normalizer()
    if self.spec.alternates:
      self.flow_nll_start.assign(float(tf.reduce_mean(-self.flow.log_prob(
          tf.constant(self._first_batch['x'])))))
      self._check_support_coverage()

  def _check_support_coverage(self):
    """Warns when few of the flow's samples lie in the EBM's support (model.ebm.support=cube).

    Samples outside it are 'noise' to the EBM for certain, so they give V no gradient; if most
    are outside, V's data side alone pushes c down without bound (NCE whose noise seldom lands
    in the model's support). On digits 93 % of an MLE Glow's samples had a pixel outside
    [-0.5, 0.5] (docs/image_fce); a Glow with model.flow.support=cube has none. One batch of
    samples (a size the run holds anyway), from a fixed generator: the run's random stream is
    not touched.
    """
    if self.ebm.support is None:
      return
    low, high = self.ebm.support
    z = self.flow.sample_latent(self.global_batch, generator=tf.random.Generator.from_seed(0))
    inside = float(tf.reduce_mean(tf.cast(self.ebm.in_support(self.flow.generate(z)[0]),
                                          tf.float32)))
    logging.info('%.0f%% of the flow\'s samples lie in the EBM\'s support [%g, %g]^D.',
                 100 * inside, low, high)
    if inside < 0.5:
      logging.warning(
          'Only %.0f%% of the flow\'s samples lie in the EBM\'s support [%g, %g]^D '
          '(model.ebm.support=%s): V gets no gradient from the others, and c will drift '
          'down without bound. Re-run in a new workdir with a Glow that stays in the cube '
          '(--set model.flow.support=cube, from an mle run with it too) or with --set '
          'model.ebm.support=none (docs/image_fce).', 100 * inside, low, high,
          self.config.model.ebm.support)

  @functools.cached_property
  def _first_batch(self):
    """The run's first global batch, made once: for the data init, the c init, the collapse
    warning's reference and the Gaussian noise's parameters."""
    return self.source.batch(0)

  def _restore_or_initialise(self, init_flow):
    """Restores the latest checkpoint (returns True) or initialises a new run (False).

    Every worker restores the chief's checkpoint, WORKDIR/checkpoints (the other workers' own
    saves are temporary), so under multi-worker training the workdir must be on storage that
    every worker reads.
    """
    latest = self._resume_from
    if latest:
      status = self.checkpoint.restore(latest)
      if not ebm_lib.restore_legacy_log_normalizer(self.ebm, latest):  # a pre-split c: set
        status.assert_existing_objects_matched()
      # The checkpoint stores the learning rates too; the config's values win, so that a
      # resumed run can lower them (e.g. after a divergence).
      for name, lr in steps_lib.learning_rates(self.config.optim).items():
        self.optimizers[name].learning_rate.assign(lr)
      logging.info('Resumed from %s at step %d', latest, int(self.step.numpy()))
      return True
    if self.spec.tilt and not init_flow:
      raise TrainingError(f'--mode={self.mode} corrects a pretrained flow: pass '
                          '--init_flow=WORKDIR of a --mode=mle run on the same data.')
    if self.spec.noise == 'fixed' and self.config.train.nce_noise == 'flow' and not init_flow:
      raise TrainingError('NCE against a flow needs the flow: pass --init_flow=WORKDIR of an '
                          'MLE run.')
    if init_flow:
      restore_flow_from(self.flow, init_flow, self.config)
      if self.spec.tilt:
        self._check_backbone(init_flow)
    else:
      self.flow.data_init(self._first_batch['x'])
    share = build.FIRST_BIAS_SHARE[self.config.model.ebm.get('first_bias', 'zeros')]
    if self.spec.trains_ebm and share:
      ebm_lib.place_kinks_on_data(self.ebm.network, self._first_batch['x'],
                                  seed=[int(self.config.train.seed), 11], share=share)
    if self.spec.persistent_chains:  # Alg. 1: the chains start from q0
      self.chains.assign(self._first_batch['z'])
    return False

  def _check_backbone(self, init_flow):
    """NT-EBM's backbone must be a density model: finite log q on data, and finite samples."""
    x = tf.constant(self._first_batch['x'])
    log_q = self.flow.log_prob(x)
    z = tf.reshape(self._first_batch['z'], [-1, self.flow.latent_dim])  # nu latents per example
    samples, log_q_samples = self.flow.generate(z)
    if not (np.all(np.isfinite(log_q)) and np.all(np.isfinite(samples)) and
            np.all(np.isfinite(log_q_samples))):
      raise TrainingError(f'The flow of --init_flow={init_flow} gives NaN or Inf (log q on the '
                          'data or its samples): its training diverged. Retrain it (--mode=mle '
                          'with a lower optim.flow_mle_lr) and pass that run.')

  def _init_log_normalizer(self):
    """Starts the EBM level with the noise: c_k = mean over the first batch of f_k(x) - log q(x).

    The EBM's classifier logit is f - c - log q (FCE eq. 12). On images a trained flow gives the
    data log q of the order of +100 nats (64 dims of 17 levels) to +5000 (32x32x3), so with c = 0
    the EBM would first have to raise f by that much, which blows up its weights (NaN within
    ~30 steps on digits). With this c the two densities start level and the EBM learns shape.
    """
    x = tf.constant(self._first_batch['x'])
    f = self.ebm(x)
    # A correction of the flow (NT-EBM) has the logit f - c against it: c = mean f.
    log_q = tf.zeros_like(f) if self.spec.tilt else self.noise.log_prob(x)
    f = f if self.ebm.num_classes else f[:, None]
    c = tf.reduce_mean(f - log_q[:, None], axis=0)
    self.ebm.set_log_normalizer(c)
    logging.info('EBM log-normalizer c initialised to %s (data log q: mean %.4g)',
                 np.round(c.numpy(), 3).tolist(), float(tf.reduce_mean(log_q)))

  def _build_steps(self, nu):
    opt, gb = self.optimizers, self.global_batch
    compile_ = lambda fn: steps_lib.compile_step(fn, self.strategy, self.config.train.jit_compile)
    mle = lambda: compile_(steps_lib.make_mle_step(self.flow, opt['flow_mle'],
                                                   self.config.data.num_bins, gb))
    t = self.config.train
    if self.spec.persistent_chains:
      seed = lambda: tf.stack([tf.constant(t.seed, tf.int32), tf.cast(self.step, tf.int32)])
      return {'ebm': compile_(steps_lib.make_nt_step(
          self.ebm, self.flow, opt['ebm'], self.chains, self.hmc_step_size, seed, t.hmc_steps,
          t.hmc_leapfrog_steps, t.hmc_target_accept > 0, t.hmc_target_accept or 0.5, gb))}
    if self.spec.tilt:
      return {'ebm': compile_(steps_lib.make_nt_nce_step(self.ebm, self.flow, opt['ebm'], nu,
                                                         gb))}
    if self.spec.noise is None:
      return {'flow': mle()}
    if self.spec.noise == 'fixed':
      return {'ebm': compile_(steps_lib.make_nce_step(self.ebm, self.noise, opt['ebm'], nu, gb))}
    aux_noise = None
    if t.ebm_aux_nce_weight:
      aux_noise = self.ebm.base if t.ebm_aux_noise == 'base' else self._gaussian_noise()
    ebm_step, flow_step = steps_lib.make_fce_steps(self.ebm, self.flow, opt['ebm'], opt['flow'], gb,
                                                   t.flow_mle_weight, t.ebm_f_penalty,
                                                   aux_noise, t.ebm_aux_nce_weight)
    if self.spec.conditional_ebm:
      ebm_step = steps_lib.make_ssl_ebm_step(self.ebm, self.flow, opt['ebm'], t.vat_weight,
                                             t.vat_epsilon, gb, self.labeled_batch, aux_noise,
                                             t.ebm_aux_nce_weight)
    steps = {'ebm': compile_(ebm_step), 'flow': compile_(flow_step)}
    if self.fce_start:
      steps['mle'] = mle()
    return steps

  def _noise(self):
    """The EBM's noise: the flow (FCE, or NCE's frozen flow from --init_flow), a Gaussian fitted
    to the data (NCE), or None (MLE)."""
    if self.spec.noise == 'fixed' and self.config.train.nce_noise != 'flow':
      return self._gaussian_noise()
    return self.flow if self.spec.noise else None

  def _gaussian_noise(self):
    """N(data mean, (train.nce_noise_std x data std)^2) from the first batch."""
    x = self._first_batch['x']
    return noise_lib.GaussianNoise(x.shape[1:], x.mean(0),
                                   self.config.train.nce_noise_std * x.std(0) + 1e-3)

  def _learning_rates(self):
    return {f'learning_rate/{n}': float(self.optimizers[n].learning_rate.numpy())
            for n in self.optimizer_names}

  def _save(self, step):
    """Saves the state after `step` updates if it is sound: finite variables, and finite model
    outputs on the next batch (a state that overflows there would stop every resumed run).
    A failed write (a full disk) removes its partial files and keeps the previous checkpoint."""
    problem = self._unsound_state(step)
    if problem:
      raise DivergedError(
          f'The state after step {step} is not sound ({problem}); it was not saved. The last '
          f'good checkpoint in {self.manager.directory} is intact: re-run with lower learning '
          'rates, or from an earlier checkpoint with --rollback=1.')
    managers = [self.manager]
    if self.config.train.snapshot_every and step % self.config.train.snapshot_every == 0:
      managers.append(self.snapshots)
    for manager in managers:
      try:
        manager.save(checkpoint_number=step)
      except (tf.errors.OpError, OSError) as e:
        ckpt_lib.remove_partial_saves(manager.directory)
        reason = _one_line(e)
        previous = ckpt_lib.kept(manager.directory)
        raise TrainingError(
            f'Could not save the checkpoint of step {step} in {manager.directory} ({reason}); '
            'its partial files were removed. '
            + (f'The previous checkpoint, {os.path.basename(previous[0])}, is intact: free '
               'disk space and re-run to resume from it.' if previous else
               'Free disk space and re-run.')) from e
    if not self.is_chief:
      tf.io.gfile.rmtree(os.path.join(self.workdir, 'tmp'))

  def _unsound_state(self, step):
    """What is not finite in the state after `step` updates ('' if nothing): the models'
    variables, then their outputs on (one replica's share of) the batch of update step + 1."""
    variables = {'flow': self.flow.variables, 'ebm': self.ebm.variables,
                 'chains': [self.chains] if self.chains is not None else []}
    for name, vs in variables.items():
      for v in vs:
        if not np.all(np.isfinite(v.numpy())):
          return f'the {name} variable {v.name} holds NaN or Inf'
    batch = self.source.batch(step)
    n = self.global_batch // self.strategy.num_replicas_in_sync  # one replica's share fits
    x = tf.constant(batch['x'][:n])
    try:
      samples, log_q_samples = self.flow.generate(
          tf.reshape(tf.constant(batch['z'][:n]), [-1, self.flow.latent_dim]))
      outputs = {'log q of the next batch': self.flow.log_prob(x), 'flow samples': samples,
                 'log q of the flow samples': log_q_samples}
      if self.spec.trains_ebm and step > self.fce_start:
        outputs['f of the next batch'] = self.ebm(x)
    except tf.errors.OpError as e:  # e.g. a 1x1 convolution no longer invertible
      return f'the models fail on the next batch: {_one_line(e)}'
    for name, value in outputs.items():
      if not np.all(np.isfinite(value.numpy())):
        return f'{name} would hold NaN or Inf'
    return ''

  def _phase(self, step):
    """The update of step `step` + 1: 'mle' (the MLE phase), 'ebm' or 'flow' (alternating modes),
    or the mode's only step."""
    if step < self.fce_start:
      return 'mle'
    if not self.spec.alternates:
      return next(iter(self._steps))
    # FCE-init (FCE Sec. 4.4, Table 4): the first fce_init_steps update only the EBM.
    return 'ebm' if self._fce_init(step) else self.schedule.phase

  def _fce_init(self, step):
    return self.spec.alternates and step - self.fce_start < self.config.train.fce_init_steps

  def run(self, until_step=None):
    """Trains to config.train.steps (after the MLE phase, if any), or to step `until_step`,
    saving a checkpoint there; returns the last logged metrics."""
    self._lock()
    try:
      return self._run(until_step)
    finally:
      if self.is_chief:
        lock_lib.release(self.workdir)

  def _run(self, until_step):
    t = self.config.train
    writer = (tf.summary.create_file_writer(os.path.join(self.workdir, 'tensorboard'))
              if self.is_chief else tf.summary.create_noop_writer())
    step = int(self.step.numpy())
    total = self.fce_start + t.steps
    stop = total if until_step is None else min(until_step, total)

    def finished():
      if self.spec.alternates and t.ebm_updates and self.schedule.updates['ebm'] >= t.ebm_updates:
        return True
      return step >= stop

    if finished():
      logging.info('Already trained to step %d of %d (train.ebm_updates=%d); nothing to do.',
                   step, total, t.ebm_updates)
    elif self.fce_start:
      logging.info('%s in two phases: the flow by MLE to step %d, then %s to step %d; now at '
                   'step %d.', self.mode, self.fce_start, self.mode, total, step)
    if not finished():
      self._check_fid_network()
    t_last, s_last = time.perf_counter(), step
    logged = {}
    while not finished():
      if step == self.fce_start and self.fce_start:
        logging.info('step %d: the MLE phase is done; %s begins from its flow.', step, self.mode)
        self._begin_contrastive_phase()
      batch = next(self.iterator)
      phase = self._phase(step)
      if phase == 'ebm' and self.config.optim.ebm_lr_anneal:
        self._anneal_ebm_lr(step)
      out = {k: float(v) for k, v in self._steps[phase](batch).items()}
      bad = [k for k, v in out.items() if not np.isfinite(v)]
      if bad:
        hint = ('Lower the learning rates (--set optim.ebm_lr=... optim.flow_lr=...) and re-run.'
                if phase != 'mle' else 'Lower the MLE phase\'s learning rate (--set '
                'optim.flow_mle_lr=...) and re-run.')
        if 'accuracy_noise' in bad and 'accuracy_data' not in bad:
          hint = ('The flow produced a non-finite sample (its forward pass overflowed; affine '
                  'couplings can, additive ones rarely do): re-run with a lower flow learning '
                  'rate or --set model.flow.coupling=additive in a new workdir.')
        raise DivergedError(
            f'{", ".join(bad)} became {out[bad[0]]} at step {step + 1} ({phase} update). Stopped '
            f'before saving: the last good checkpoint in {self.manager.directory} is intact. '
            + hint + ' If it diverges again right after resuming, resume from an earlier '
            'checkpoint: --rollback=1.')
      self._gradients.record(out)
      if phase != 'mle' and self.spec.alternates:
        self.schedule.record(out[self.schedule.metric], hold=self._fce_init(step))
      step += 1
      self.step.assign(step)
      # The run's last step and the MLE phase's last one are logged, saved and evaluated.
      milestone = finished() or step == self.fce_start
      if step % t.log_every == 0 or milestone:
        now = time.perf_counter()
        rate = (step - s_last) / (now - t_last)
        t_last, s_last = now, step
        in_mle = phase == 'mle'
        out = dict(out, **self._gradients.summary())  # each model's, over the whole interval
        logged = {f'mle_pretrain/{k}': v for k, v in out.items()} if in_mle else dict(out)
        if self.spec.alternates and not in_mle:
          logged.update({f'{k}_updates': v for k, v in self.schedule.updates.items()},
                        **{f'mean_{self.schedule.metric}': self.schedule.mean_score})
        self._check_flow_collapse(logged.get('flow_nll'), step)
        label = f'MLE phase {step}/{self.fce_start}' if in_mle else self.mode
        shown = dict(logged, **self._latest_eval)
        logging.info('%s | step %d/%d  %.2f steps/s  ETA %s  %s', label, step, total, rate,
                     progress.eta(self._remaining(step) / rate),
                     '  '.join(f'{k}={v:.4g}' for k, v in sorted(shown.items())))
        with writer.as_default(step=step):
          for k, v in logged.items():
            tf.summary.scalar(k, v)
          tf.summary.scalar('steps_per_second', rate)
          if self.fce_start:
            tf.summary.scalar('phase', 0 if in_mle else 1)
          for k, v in self._learning_rates().items():
            tf.summary.scalar(k, v)
      if step % t.checkpoint_every == 0 or milestone:
        self._save(step)  # before evaluating: an evaluation never costs a checkpoint
      if step % t.eval_every == 0 or milestone:
        logged.update(self.evaluate(step, writer))
    writer.flush()
    return logged

  def _anneal_ebm_lr(self, step):
    """Sets the EBM's learning rate for the coming update (optim.ebm_lr_anneal). Progress is
    counted in EBM updates when train.ebm_updates ends the run, else in steps; both live in the
    checkpoint, so a resumed run continues the same schedule."""
    t = self.config.train
    if self.spec.alternates and t.ebm_updates:
      progress = self.schedule.updates['ebm'] / t.ebm_updates
    else:
      progress = (step - self.fce_start) / t.steps
    self.optimizers['ebm'].learning_rate.assign(
        steps_lib.annealed(self.config.optim.ebm_lr, progress, self.config.optim.ebm_lr_anneal))

  def _remaining(self, step):
    """Steps left: of the MLE phase, then of FCE (estimated from the EBM's share of the updates
    so far when train.ebm_updates ends the run)."""
    t = self.config.train
    done = max(step - self.fce_start, 0)
    left = t.steps - done
    ebm_done = self.schedule.updates['ebm']
    if self.spec.alternates and t.ebm_updates and ebm_done:
      left = min(left, (t.ebm_updates - ebm_done) * done / ebm_done)
    return max(self.fce_start - step, 0) + left

  def _check_flow_collapse(self, flow_nll, step):
    """Warns once when the flow's NLL on the data per dimension has risen more than
    train.flow_nll_warn above its value when FCE began (and once when it is back)."""
    start, margin = float(self.flow_nll_start.numpy()), self.config.train.flow_nll_warn
    if flow_nll is None or not self.spec.alternates or not margin:
      return
    dims = int(np.prod(self.config.data.shape))
    rise = (flow_nll - start) / dims
    if rise > margin and not self._collapse_warned:
      logging.warning(
          'step %d: the flow is collapsing: its NLL on data is %.4g nats, %.3g per dimension '
          'above the %.4g it had when FCE began (train.flow_nll_warn=%g). Its samples no longer '
          'cover the data, so the EBM learns little where they are missing. Try '
          '--set train.flow_mle_weight=... or a lower optim.flow_lr (docs/bench2d).',
          step, flow_nll, rise, start, margin)
      self._collapse_warned = True
    elif rise <= margin and self._collapse_warned:
      logging.info('step %d: the flow NLL on data is back within train.flow_nll_warn of its '
                   'start (%.4g nats).', step, flow_nll)
      self._collapse_warned = False

  def evaluate(self, step, writer):
    """Evaluation during training: 2D densities (with Figure 2's errors), or on images a sample
    grid, held-out bits/dim and FID/KID (`_evaluate_images`)."""
    if not self.is_chief:
      return {}
    out_dir = os.path.join(self.workdir, 'samples')
    tf.io.gfile.makedirs(out_dir)
    if len(self.config.data.shape) == 1:
      if tuple(self.config.data.shape) != (2,):
        return {}
      metrics, path = figures.density_report(self.config, self.flow, self.model, self.mode,
                                             out_dir, step)
    else:
      metrics, path = {}, figures.sample_grid(self.flow, self.config, out_dir, step)
    with writer.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(k, v)
      tf.summary.image(os.path.basename(path).rsplit('_', 1)[0], figures.read_png(path)[None])
    logging.info('step %d: wrote %s %s', step, path,
                 '  '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
    if len(self.config.data.shape) == 3:
      metrics.update(self._evaluate_images(step, writer))
    return metrics

  @functools.cached_property
  def model(self):
    """The EBM as evaluated: p = exp(f - c), or for a correction of the flow (nt, nt_nce)
    exp(f - c) q."""
    return transport.TiltedModel(self.ebm, self.flow) if self.spec.tilt else self.ebm

  @functools.cached_property
  def _image_evaluator(self):
    return image_eval.Evaluator(self.config, self.mode, image_eval.Options.for_training(
        self.config.train, learns_c=not self.spec.persistent_chains, tilt=self.spec.tilt))

  def _check_fid_network(self):
    """On images, loads the FID network once at the start; without it, one warning, and the run
    trains and evaluates without FID."""
    t = self.config.train
    if (not self.is_chief or len(self.config.data.shape) != 3 or not t.fid_samples or
        not self.spec.has_flow(self.config) or not self._image_evaluator.fid):
      return
    evaluator = self._image_evaluator
    try:
      evaluator.network  # pylint: disable=pointless-statement
    except fid_lib.FIDError as e:
      logging.warning('Training goes on without FID (held-out bits/dim are still written): %s '
                      'During training: --inception_graph=PATH, or --set train.fid_samples=0 to '
                      'not ask for FID.', e)
      evaluator.options = dataclasses.replace(evaluator.options, fid_samples=0)

  def _evaluate_images(self, step, writer):
    """Held-out bits/dim of the flow and (once FCE has begun) of the EBM with its learned c, and
    FID/KID of train.fid_samples flow samples: eval/image_eval.py, the code of --mode=eval, into
    WORKDIR/eval/train_eval_<step>.json and TensorBoard's eval/."""
    evaluator = self._image_evaluator
    evaluate = lambda: evaluator.evaluate(self.workdir, self.flow, self.model, step,
                                          image_eval.TRAIN_REPORT,
                                          has_ebm=step > self.fce_start, writer=writer)
    try:
      try:
        report = evaluate()
      except ReportError as e:  # FID failed after the start (e.g. a corrupt cache)
        logging.warning('step %d: %s. Training goes on without FID.', step, e)
        evaluator.options = dataclasses.replace(evaluator.options, fid_samples=0)
        report = evaluate()
    except Exception as e:  # pylint: disable=broad-except
      # An evaluation must never stop a run (the checkpoint of this step is already saved).
      logging.warning('step %d: the evaluation failed (%s: %s); training goes on. What it '
                      'wrote is in %s.', step, type(e).__name__, e,
                      os.path.join(self.workdir, 'eval'))
      return {}
    self._latest_eval = image_eval.scalars(report)
    return dict(self._latest_eval)


def _one_line(error):
  """A TF error's message without the op-wrapper decoration ('{{function_node ...}} ... [Op:X]')."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  return re.sub(r'\s*\[Op:\w+\]$', '', re.sub(r'^\{\{[^}]*\}\}\s*', '', text))
