"""The training state of a run: its models, optimisers, counters and its mode's extra variables,
and the checkpoints that hold them.

tf.train.Checkpoint keys (old run folders are read by them): step, flow, ebm, schedule,
flow_nll_start, run_identity (the run's mode, data and model configs as JSON: a resume with
another is refused, `run_folder.checkpoint_identity`), `<name>_optimizer` for each optimiser the
run steps, and what its mode adds (`Mode.extra_variables`: mle_pretrain_steps for fce / ssl,
chains and hmc_step_size for nt).
A checkpoint is saved only if the state is sound (`TrainState.save`).
"""

import os
import re

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras as keras

from eval import run as eval_run
from models import build
from models import ebm as ebm_lib
from train import checkpoints as ckpt_lib
from train import run_folder
from train import schedule as schedule_lib
from train import steps as steps_lib
from train import watch
from train.errors import DivergedError
from train.errors import TrainingError


def mle_phase_length(config, resume_from):
  """(steps of MLE before FCE, whether the checkpoint records them).

  A new run takes fce.mle_pretrain_steps (0 for mle / nce and with --init_flow: see
  `Mode.configure`); a resumed run the value it started with, from its checkpoint, so that it
  resumes in the phase where it stopped whatever the command line says now. A run saved before
  the MLE phase existed has none.
  """
  if resume_from is None:
    return int(config.fce.mle_pretrain_steps), True
  steps = eval_run.saved_value(resume_from, 'mle_pretrain_steps')
  if steps is None:
    return 0, False
  if steps != config.fce.mle_pretrain_steps:
    logging.info('This run began with %d MLE steps before FCE; fce.mle_pretrain_steps=%d '
                 'applies to new runs only.', steps, config.fce.mle_pretrain_steps)
  return steps, True


class TrainState:
  """What a checkpoint holds, built under `strategy`'s scope: the flow, the EBM, the optimisers
  the run steps (their slots built now: a slot created lazily after a restore would be missing
  from a checkpoint saved before that optimiser's first update), the step, the alternation
  schedule, the flow's NLL when FCE began (the collapse warning's reference) and the mode's
  extras. `fce_start` is the length of the MLE phase (0: none)."""

  def __init__(self, config, spec, strategy, folder, resume_from, global_batch):
    self.config, self.global_batch, self.folder = config, global_batch, folder
    self.num_replicas = strategy.num_replicas_in_sync
    keras.utils.set_random_seed(config.train.seed)  # the models' initial weights
    if config.train.deterministic:  # process-wide; there is no switching it off again
      tf.config.experimental.enable_op_determinism()
    shape = tuple(config.data.shape)
    with strategy.scope():
      self.flow = build.build_flow(config.model.flow, shape)
      self.ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes,
                                 config.model.flow)
      self.optimizers = steps_lib.make_optimizers(config.optim)
      self.schedule = schedule_lib.AlternationSchedule(**config.fce.schedule)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
      self.flow_nll_start = tf.Variable(0., trainable=False, name='flow_nll_start')
      self.extras = spec.extra_variables(config, global_batch, self.flow.latent_dim,
                                         lambda: mle_phase_length(config, resume_from))
      self.fce_start = int(self.extras['mle_pretrain_steps'].numpy()
                           if 'mle_pretrain_steps' in self.extras else 0)
      self.optimizer_names = spec.optimizers + (('flow_mle',) if self.fce_start else ())
      models = {'ebm': self.ebm, 'flow': self.flow}
      for name in self.optimizer_names:
        self.optimizers[name].build(models[spec.model_of(name)].trainable_variables)
    self.trains_ebm = 'ebm' in self.optimizer_names
    with tf.device('CPU:0'):  # a string: one copy, outside the strategy
      self.identity = tf.Variable(folder.identity_record(), trainable=False, name='run_identity')
    self.checkpoint = tf.train.Checkpoint(**self.tracked())
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, folder.checkpoint_dir('checkpoints'),
        max_to_keep=config.train.keep_checkpoints)
    self.snapshots = tf.train.CheckpointManager(
        self.checkpoint, folder.checkpoint_dir('snapshots'), max_to_keep=None)

  def tracked(self):
    """What the checkpoint holds, by its keys."""
    return {'step': self.step, 'flow': self.flow, 'ebm': self.ebm, 'schedule': self.schedule,
            'flow_nll_start': self.flow_nll_start, run_folder.IDENTITY_KEY: self.identity,
            **self.extras, **{f'{k}_optimizer': self.optimizers[k] for k in self.optimizer_names}}

  def restore(self, checkpoint):
    """Restores `checkpoint`. Every worker restores the chief's (the other workers' own saves
    are temporary), so under multi-worker training the workdir must be on storage that every
    worker reads. A checkpoint saved before checkpoints recorded their run's identity has none;
    the next save records it."""
    tracked = self.tracked()
    if not run_folder.has_identity(checkpoint):
      del tracked[run_folder.IDENTITY_KEY]
    status = tf.train.Checkpoint(**tracked).restore(checkpoint)
    if not ebm_lib.restore_legacy_log_normalizer(self.ebm, checkpoint):  # a pre-split c: set
      status.assert_existing_objects_matched()
    # The checkpoint stores the learning rates too; the config's values win, so that a resumed
    # run can lower them (e.g. after a divergence).
    for name, lr in steps_lib.learning_rates(self.config.optim).items():
      self.optimizers[name].learning_rate.assign(lr)
    self.identity.assign(self.folder.identity_record())  # as this code writes it
    logging.info('Resumed from %s at step %d', checkpoint, int(self.step.numpy()))

  def place_kinks(self, x):
    """Moves a share (model.ebm.first_bias) of the EBM's first-layer kinks onto data points."""
    share = build.FIRST_BIAS_SHARE[self.config.model.ebm.first_bias]
    if self.trains_ebm and share:
      ebm_lib.place_kinks_on_data(self.ebm.network, x, seed=[int(self.config.train.seed), 11],
                                  share=share)

  def init_log_normalizer(self, x, contrast_log_q):
    """Starts the EBM level with its noise: c_k = mean over the first batch of f_k(x) - log q(x).

    The EBM's classifier logit is f - c - log q (FCE eq. 12). On images a trained flow gives
    the data log q of the order of +100 nats (64 dims of 17 levels) to +5000 (32x32x3), so with
    c = 0 the EBM would first have to raise f by that much, which blows up its weights. With
    this c the two densities start level and the EBM learns shape. `contrast_log_q(x, f)` is
    the log q the logit is taken against (`Mode.contrast_log_q`).
    """
    if not (self.trains_ebm and self.config.train.init_log_normalizer):
      return
    x = tf.constant(x)
    f = self.ebm(x)
    log_q = contrast_log_q(x, f)
    f = f if self.ebm.num_classes else f[:, None]
    c = tf.reduce_mean(f - log_q[:, None], axis=0)
    self.ebm.set_log_normalizer(c)
    logging.info('EBM log-normalizer c initialised to %s (data log q: mean %.4g)',
                 np.round(c.numpy(), 3).tolist(), float(tf.reduce_mean(log_q)))

  def flow_nll(self, x):
    return float(tf.reduce_mean(-self.flow.log_prob(tf.constant(x))))

  def learning_rates(self):
    return {f'learning_rate/{n}': float(self.optimizers[n].learning_rate.numpy())
            for n in self.optimizer_names}

  def save(self, step, next_batch):
    """Saves the state after `step` updates if it is sound: finite variables, and finite model
    outputs on `next_batch` (a state that overflows there would stop every resumed run).
    A failed write (a full disk) removes its partial files and keeps the previous checkpoint."""
    problem = self.unsound(step, next_batch)
    if problem:
      raise DivergedError(
          f'The state after step {step} is not sound ({problem}); it was not saved. '
          f'{watch.kept_text(self.manager.directory)} Re-run with lower learning rates.')
    managers = [self.manager]
    if self.config.train.snapshot_every and step % self.config.train.snapshot_every == 0:
      managers.append(self.snapshots)
    for manager in managers:
      try:
        manager.save(checkpoint_number=step)
      except (tf.errors.OpError, OSError) as e:
        ckpt_lib.remove_partial_saves(manager.directory)
        previous = ckpt_lib.kept(manager.directory)
        raise TrainingError(
            f'Could not save the checkpoint of step {step} in {manager.directory} '
            f'({one_line(e)}); its partial files were removed. '
            + (f'The previous checkpoint, {os.path.basename(previous[0])}, is intact: free '
               'disk space and re-run to resume from it.' if previous else
               'Free disk space and re-run.')) from e
    if not self.folder.is_chief:
      tf.io.gfile.rmtree(self.folder.path('tmp'))

  def unsound(self, step, next_batch):
    """What is not finite in the state after `step` updates ('' if nothing): the variables, then
    the models' outputs on (one replica's share of) `next_batch`, that of update step + 1."""
    variables = {'flow': self.flow.variables, 'ebm': self.ebm.variables,
                 **{name: [v] for name, v in self.extras.items() if name == 'chains'}}
    for name, vs in variables.items():
      for v in vs:
        if not np.all(np.isfinite(v.numpy())):
          return f'the {name} variable {v.name} holds NaN or Inf'
    n = self.global_batch // self.num_replicas  # one replica's share fits
    x = tf.constant(next_batch['x'][:n])
    try:
      samples, log_q_samples = self.flow.generate(
          tf.reshape(tf.constant(next_batch['z'][:n]), [-1, self.flow.latent_dim]))
      outputs = {'log q of the next batch': self.flow.log_prob(x), 'flow samples': samples,
                 'log q of the flow samples': log_q_samples}
      if self.trains_ebm and step > self.fce_start:
        outputs['f of the next batch'] = self.ebm(x)
    except tf.errors.OpError as e:  # e.g. a 1x1 convolution no longer invertible
      return f'the models fail on the next batch: {one_line(e)}'
    for name, value in outputs.items():
      if not np.all(np.isfinite(value.numpy())):
        return f'{name} would hold NaN or Inf'
    return ''


def one_line(error):
  """A TF error's message without the op-wrapper decoration ('{{function_node ...}} ... [Op:X]')."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  return re.sub(r'\s*\[Op:\w+\]$', '', re.sub(r'^\{\{[^}]*\}\}\s*', '', text))
