"""What the training loop does every so many steps (in the spirit of vdm's periodic actions):
the progress line and TensorBoard scalars (`ProgressLog`, every train.log_every steps) and the
in-loop evaluation (`InLoopEval`, every eval.every). Checkpoints are `TrainState.save`
(every train.checkpoint_every); the health checks they report live in `train/watch.py`.
"""

import dataclasses
import functools
import os
import re
import shutil
import time

from absl import logging
import tensorflow as tf

from eval import fid as fid_lib
from eval import figures
from eval import image_eval
from train import progress
from train import watch
from train.errors import ReportError


class ProgressLog:
  """The progress line (steps/s, ETA, the interval's metrics and the last in-loop evaluation)
  and TensorBoard's training scalars; the MLE phase's scalars go under `mle_pretrain/`, and
  `phase` says which phase a step is in (0 MLE, 1 FCE) when the run has an MLE phase."""

  def __init__(self, label, turns, state, writer, step, latest_eval):
    self.label, self.turns, self.state, self.writer = label, turns, state, writer
    self.latest_eval = latest_eval
    self.gradients = watch.GradientNorms(state.config.optim)
    self._time, self._step = time.perf_counter(), step

  def observe(self, metrics):
    """Takes every step's metrics (gradient norms are reported over the whole interval)."""
    self.gradients.record(metrics)

  def __call__(self, step, phase, metrics):
    """Logs the metrics of the update `phase` that made step `step`; returns what it logged."""
    now = time.perf_counter()
    rate = (step - self._step) / (now - self._time)
    self._time, self._step = now, step
    in_mle = phase == 'mle'
    metrics = dict(metrics, **self.gradients.summary())
    logged = {f'mle_pretrain/{k}': v for k, v in metrics.items()} if in_mle else metrics
    logged.update(self.turns.scalars(phase))
    self.turns.check(logged, step)
    label = f'MLE phase {step}/{self.turns.mle_steps}' if in_mle else self.label
    shown = dict(logged, **self.latest_eval())
    logging.info('%s | step %d/%d  %.2f steps/s  ETA %s  %s', label, step, self.turns.total,
                 rate, progress.eta(self.turns.remaining(step) / rate),
                 '  '.join(f'{k}={v:.4g}' for k, v in sorted(shown.items())))
    with self.writer.as_default(step=step):
      for k, v in logged.items():
        tf.summary.scalar(k, v)
      tf.summary.scalar('steps_per_second', rate)
      if self.turns.mle_steps:
        tf.summary.scalar('phase', 0 if in_mle else 1)
      for k, v in self.state.learning_rates().items():
        tf.summary.scalar(k, v)
    return logged


def metrics_text(metrics, prefix=''):
  """`prefix` and 'k=v  k=v ...' in sorted order ('' without metrics)."""
  if not metrics:
    return ''
  return prefix + '  '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items()))


_NOT_METRICS = ('steps_per_second', 'phase', 'learning_rate/')


def last_logged(tensorboard_dir, step):
  """The metrics a run wrote to TensorBoard at step `step` (its last), without the rates; {} if
  there are none (a run trained before TensorBoard was written, or a folder copied without
  it)."""
  out = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(tensorboard_dir, 'events.out.tfevents.*'))):
    for record in _records(path):  # a file cut short by a killed run: what was read counts
      event = tf.compat.v1.Event.FromString(record)
      if event.step != step:
        continue
      for v in event.summary.value:
        if v.metadata.plugin_data.plugin_name == 'scalars' and not v.tag.startswith(
            _NOT_METRICS):
          out[v.tag] = float(tf.make_ndarray(v.tensor))
  return out


class InLoopEval:
  """Evaluation during training, by the chief: 2D densities (with FCE Figure 2's errors), or on
  images a sample grid, then held-out bits/dim and FID/KID by eval/image_eval.py (the code of
  --mode=eval) into WORKDIR/eval/train_eval_<step>.json and TensorBoard's eval/. An
  evaluation never stops a run: the checkpoint of its step is already saved."""

  def __init__(self, config, mode, reports, folder, flow, model):
    self.config, self.mode, self.reports, self.folder = config, mode, reports, folder
    self.flow, self.model = flow, model
    self.latest = {}  # the last image evaluation's scalars, shown in the progress line

  @functools.cached_property
  def evaluator(self):
    return image_eval.Evaluator(self.config, self.mode, image_eval.Options.for_training(
        self.config.eval, self.reports), self.reports)

  def check_fid_network(self):
    """On images, loads the FID network once at the start; without it, one warning, and the run
    trains and evaluates without FID."""
    if (not self.folder.is_chief or len(self.config.data.shape) != 3 or
        not self.config.eval.fid_samples or not self.reports.flow or not self.evaluator.fid):
      return
    try:
      self.evaluator.network  # pylint: disable=pointless-statement
    except fid_lib.FIDError as e:
      logging.warning('Training goes on without FID (held-out bits/dim are still written): %s '
                      'During training: --inception_graph=PATH, or --set eval.fid_samples=0 to '
                      'not ask for FID.', e)
      self._drop_fid()

  def _drop_fid(self):
    self.evaluator.options = dataclasses.replace(self.evaluator.options, fid_samples=0)

  def __call__(self, step, writer, has_ebm):
    """Evaluates the models after `step` updates (`has_ebm`: the EBM has begun training);
    returns the metrics."""
    if not self.folder.is_chief:
      return {}
    out_dir = self.folder.path('samples')
    tf.io.gfile.makedirs(out_dir)
    if len(self.config.data.shape) == 1:
      if tuple(self.config.data.shape) != (2,):
        return {}
      metrics, path = figures.density_report(self.config, self.flow, self.model, self.mode,
                                             out_dir, step)
    else:
      metrics, path = {}, figures.sample_grid(self.flow, self.config, out_dir, step)
    paths = [path] + self._transport_grid(out_dir, step, metrics)
    with writer.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(k, v)
      for path in paths:
        tf.summary.image(os.path.basename(path).rsplit('_', 1)[0], figures.read_png(path)[None])
    logging.info('step %d: wrote %s %s', step, ' '.join(paths),
                 '  '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
    if len(self.config.data.shape) == 3:
      metrics.update(self._images(step, writer, has_ebm))
    return metrics

  def _transport_grid(self, out_dir, step, metrics):
    """For a model sampled by neural transport (nt, nt_nce) on images, a grid of its own
    samples (the flow's grid shows the frozen backbone); [its path], or []."""
    if not (self.reports.transport_samples and len(self.config.data.shape) == 3):
      return []
    path, metrics['nt_sample_acceptance'] = figures.transport_grid(
        self.model, self.config, out_dir, step, self.evaluator.options.hmc_steps,
        self.config.nt.hmc_step_size)
    return [path]

  def _images(self, step, writer, has_ebm):
    """Held-out bits/dim of the flow and (once FCE has begun) of the EBM with its learned c,
    and FID/KID of eval.fid_samples flow samples."""
    evaluate = lambda: self.evaluator.evaluate(self.folder.workdir, self.flow, self.model, step,
                                               image_eval.TRAIN_REPORT, has_ebm=has_ebm,
                                               writer=writer)
    try:
      try:
        report = evaluate()
      except ReportError as e:  # FID failed after the start (e.g. a corrupt cache)
        logging.warning('step %d: %s. Training goes on without FID.', step, e)
        self._drop_fid()
        report = evaluate()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('step %d: the evaluation failed (%s: %s); training goes on. What it '
                      'wrote is in %s.', step, type(e).__name__, e, self.folder.path('eval'))
      return {}
    self.latest = image_eval.scalars(report)
    return dict(self.latest)


def drop_events_after(logdir, step):
  """Removes from the TensorBoard event files in `logdir` every event after `step`: on resume
  from a checkpoint at `step`, the steps a killed (or rolled-back) run logged past it are
  trained again, and would otherwise show twice. Each file that changes is rewritten whole
  (TFRecords of Event protos) and renamed over the old one. Returns how many events went."""
  from tensorflow.core.util import event_pb2  # pylint: disable=g-import-not-at-top
  dropped = 0
  for path in tf.io.gfile.glob(os.path.join(logdir, 'events.out.tfevents.*')):
    records = _records(path)
    kept = [r for r in records if event_pb2.Event.FromString(r).step <= step]
    if len(kept) == len(records):
      continue
    with tf.io.TFRecordWriter(path + '.tmp') as writer:
      for record in kept:
        writer.write(record)
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
    dropped += len(records) - len(kept)
  if dropped:
    logging.info('Dropped %d TensorBoard events logged after step %d, which this run trains '
                 'again.', dropped, step)
  return dropped


def _records(path):
  """The whole records of a TFRecord file (a kill mid-write leaves a torn last one: not kept)."""
  records = []
  try:
    for record in tf.data.TFRecordDataset(path):
      records.append(record.numpy())
  except tf.errors.DataLossError:
    pass
  return records


def set_aside_reports(workdir, step):
  """Moves the evaluation reports of steps after `step` (WORKDIR/eval/report_<S>.json and
  train_eval_<S>.json, S > step) to WORKDIR/rolled_back/eval/: a run resumed from `step` (after
  --rollback, or a damaged checkpoint set aside) trains those steps again, and a report cached
  under the same step and settings would otherwise be taken for the new trajectory's. Returns
  the paths moved."""
  eval_dir = os.path.join(workdir, 'eval')
  pattern = re.compile(r'^(report|train_eval)_(\d+)\.json$')
  moved = []
  for name in sorted(tf.io.gfile.listdir(eval_dir)) if tf.io.gfile.isdir(eval_dir) else []:
    match = pattern.match(name)
    if match and int(match.group(2)) > step:
      target = os.path.join(workdir, 'rolled_back', 'eval')
      tf.io.gfile.makedirs(target)
      shutil.move(os.path.join(eval_dir, name), os.path.join(target, name))
      moved.append(os.path.join(target, name))
  if moved:
    logging.info('Set %d evaluation report(s) of steps after %d aside in %s: this run trains '
                 'those steps again.', len(moved), step, os.path.dirname(moved[0]))
  return moved
