"""The run folder, WORKDIR: whose run it holds (config.json), who trains in it (the lock), where
its checkpoints go, and the flow another run lends it (--init_flow).

A workdir is refused when it holds a run with another mode, data or model config (its
"identity", recorded in config.json and in every checkpoint); the training settings may change
between resumes.
"""

import json
import os

from absl import logging
import tensorflow as tf

import configs
from configs import departures
from eval import run as eval_run
from train import checkpoints as ckpt_lib
from train import lock as lock_lib
from train import modes as modes_lib
from train.errors import TrainingError


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


def identity_changes(old, new):
  """The keys in which two run identities differ. Another mode is named alone, not with the
  mode-dependent fields (`Mode.checkpoint_fields`) that only one side then has."""
  diff = changed_keys(old, new)
  if 'mode' in diff:
    diff = [k for k in diff if k in old and k in new]
  return diff


def run_identity(config, mode):
  """What must match for a workdir to be resumed: the mode, the data, the models and the
  settings that shape the mode's checkpoint (`Mode.checkpoint_fields`)."""
  identity = flatten({'mode': mode, 'data': config.data.to_dict(),
                      'model': config.model.to_dict()})
  flat = flatten(config.to_dict())
  identity.update({field: flat[field] for field in modes_lib.get(mode).checkpoint_fields})
  return identity


def saved_identity(workdir):
  """The identity of the run in `workdir`, with fields added to the configs since then at their
  defaults (so a run made before a field existed still resumes)."""
  try:
    config, mode = eval_run.load_run(workdir)
  except eval_run.EvalError as e:  # a damaged config.json
    raise TrainingError(str(e)) from e
  return run_identity(config, mode)


IDENTITY_KEY = 'run_identity'
_IDENTITY_VALUE = f'{IDENTITY_KEY}/.ATTRIBUTES/VARIABLE_VALUE'


def identity_record(config, mode):
  """What each checkpoint records of its run, as the string variable `run_identity` (JSON): the
  mode and the config, from which `run_identity` takes what it compares."""
  return json.dumps({'mode': mode, 'config': json.loads(config.to_json())}, sort_keys=True)


def has_identity(path):
  """Whether checkpoint `path` records its run's identity (one saved before they did not)."""
  return _IDENTITY_VALUE in dict(tf.train.list_variables(path))


def checkpoint_identity(path):
  """The identity recorded in checkpoint `path`, with fields added to the configs since then at
  their defaults; None for a checkpoint saved before checkpoints recorded it."""
  if not has_identity(path):
    return None
  try:
    record = json.loads(tf.train.load_variable(path, _IDENTITY_VALUE))
    return run_identity(configs.with_defaults(record['config']), record['mode'])
  except (ValueError, KeyError, TypeError) as e:
    raise TrainingError(f'{path} holds an unreadable run_identity ({e}); move it aside, or '
                        'resume from an earlier checkpoint with --rollback=1.') from e


def _refuse_another_run(workdir, config, mode):
  """Refuses a workdir started with another mode / data / model config; True if it holds ours."""
  if not tf.io.gfile.exists(os.path.join(workdir, 'config.json')):
    return False
  diff = identity_changes(saved_identity(workdir), run_identity(config, mode))
  if diff:
    raise TrainingError(
        f'{workdir} holds a run with a different config ({", ".join(diff)}); it was not '
        'touched. Use another --workdir, or the settings of that run.')
  return True


def _write_config(workdir, config, mode):
  # Written whole: under multi-worker training the other workers read this file while the
  # chief writes it, and a half-written one would stop them on a JSON error.
  tf.io.gfile.makedirs(workdir)
  ckpt_lib.write_json(os.path.join(workdir, 'config.json'),
                      {'identity': run_identity(config, mode),
                       'config': json.loads(config.to_json()),
                       'departures': departures.for_config(config, mode)})


def check_workdir(workdir, config, mode, write):
  """Refuses a workdir started with another mode / data / model config; records ours if new."""
  if not _refuse_another_run(workdir, config, mode) and write:
    _write_config(workdir, config, mode)


def is_chief(strategy):
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == 'chief' or (
      resolver.task_type == 'worker' and resolver.task_id == 0 and
      'chief' not in resolver.cluster_spec().as_dict())


class RunFolder:
  """WORKDIR of one run, seen from one process of it (only the chief writes and locks).

  Opening it checks its identity and, if it exists, takes its lock before anything in it
  changes; `record()` writes config.json into a new folder once the run has been built (so a
  config that fails to build leaves no folder behind to refuse its corrected version) and
  takes the lock there.
  """

  def __init__(self, workdir, config, mode, strategy):
    self.workdir, self.strategy = workdir, strategy
    self.is_chief = is_chief(strategy)
    self._config, self._mode = config, mode
    self._recorded = _refuse_another_run(workdir, config, mode)
    self._locked = False
    if tf.io.gfile.exists(workdir):
      self.lock()

  def record(self):
    if not self._recorded and self.is_chief:
      _write_config(self.workdir, self._config, self._mode)
    self._recorded = True
    self.lock()

  def lock(self):
    """One process trains in a workdir (train/lock.py); the chief holds the lock."""
    if self.is_chief and not self._locked:
      try:
        lock_lib.acquire(self.workdir)
      except lock_lib.LockError as e:
        raise TrainingError(str(e)) from e
      self._locked = True

  def release(self):
    if self.is_chief and self._locked:
      lock_lib.release(self.workdir)
      self._locked = False

  def path(self, *names):
    return os.path.join(self.workdir, *names)

  def checkpoint_dir(self, name):
    if self.is_chief:
      return self.path(name)
    # Every worker must save (the save is collective); only the chief's copy is kept.
    return self.path('tmp', f'worker{self.strategy.cluster_resolver.task_id}', name)

  def readable_checkpoint(self, rollback):
    """The checkpoint to resume from (None: a new run): the newest that reads whole, after
    setting aside the newest `rollback` ones (--rollback) and any damaged one
    (`checkpoints.resume_point`). One saved by another run is refused first."""
    if rollback and not self.is_chief:
      raise TrainingError('--rollback is for the chief (or a single process).')
    try:
      return ckpt_lib.resume_point(self.workdir, rollback, check=self._refuse_another_checkpoint,
                                   write=self.is_chief)
    except ckpt_lib.CheckpointError as e:
      raise TrainingError(str(e)) from e

  def identity_record(self):
    return identity_record(self._config, self._mode)

  def _refuse_another_checkpoint(self, path):
    """Refuses checkpoint `path` if the run that saved it had another identity (config.json may
    be gone, or from another run)."""
    saved = checkpoint_identity(path)
    if saved is None:  # saved before checkpoints recorded their run
      return
    ours = run_identity(self._config, self._mode)
    diff = identity_changes(saved, ours)
    if diff:
      fields = ', '.join(f'{k}={saved.get(k)!r} there, {ours.get(k)!r} here' for k in diff)
      raise TrainingError(
          f'{path} was saved by a run with a different config ({fields}); it was not touched. '
          'Use another --workdir, or the settings of that run.')


def restore_flow_from(flow, workdir, config):
  """Loads the flow of another run (`--init_flow`), checking that its flow config matches."""
  if not tf.io.gfile.exists(os.path.join(workdir, 'config.json')):
    raise TrainingError(f'--init_flow={workdir}: no run there (no config.json). Train a flow '
                        'first, e.g. with --mode=mle --workdir=' + workdir)
  their_config, their_mode = eval_run.load_run(workdir)
  old = run_identity(their_config, their_mode)
  if not modes_lib.get(their_mode).reports(their_config).flow:
    raise TrainingError(f'--init_flow={workdir} is a --mode={their_mode} run whose noise is a '
                        'Gaussian: it has no trained flow. Pass the workdir of a --mode=mle (or '
                        'fce) run.')
  ours = run_identity(config, 'mle')
  if old.get('data.name') != ours['data.name']:
    # The flow is the backbone (nt), the noise (nce) or the start (fce) of a model of *this*
    # data: one fitted to other data would be a wrong q, silently.
    raise TrainingError(f'--init_flow={workdir} was trained on --dataset={old.get("data.name")}, '
                        f'not {ours["data.name"]}. Train a flow on this data first: --mode=mle '
                        f'--dataset={ours["data.name"]}.')
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
