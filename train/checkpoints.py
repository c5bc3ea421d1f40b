"""Checkpoints that survive damage: the newest readable one, roll-back, and saves that fail cleanly.

A run keeps `train.keep_checkpoints` checkpoints (WORKDIR/checkpoints). They are found from
their files as well as from TF's state file (WORKDIR/checkpoints/checkpoint), so a missing,
unreadable or stale state file loses none; `resume_point` rewrites it. Reading one checks every
tensor (their CRCs), so a truncated or scrambled data file, an empty index or a missing file is
found before anything is restored; the run then says which file is damaged and uses the one
before it. `--rollback=N` sets the newest N aside (WORKDIR/rolled_back/, never deleted), for a
run whose newest saved state is finite but already diverging. `write_json` writes a run
folder's JSON records (config.json, evaluation reports) whole.
"""

import json
import os
import re
import shutil
import time

from absl import logging
from google.protobuf import text_format
import tensorflow as tf


class CheckpointError(RuntimeError):
  """No usable checkpoint, or a save that failed; the message says what to do."""


def write_json(path, obj):
  """Writes `obj` to a temporary file, then renames it to `path`: a reader (another worker, an
  evaluation in another process) sees the old file or the new one, never half of one."""
  try:
    with tf.io.gfile.GFile(path + '.tmp', 'w') as f:
      json.dump(obj, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
  except (OSError, tf.errors.OpError):  # e.g. a full disk: no half-written file left behind
    if tf.io.gfile.exists(path + '.tmp'):
      tf.io.gfile.remove(path + '.tmp')
    raise


_FILE = re.compile(r'^ckpt-(\d+)\.(index|data-\d{5}-of-\d{5})$')
STATE_FILE = 'checkpoint'


def read_state(directory):
  """The state file of `directory` (tf.train.CheckpointState), or None if it is missing or
  unreadable (TF's own reader raises on an empty one and one that is not UTF-8)."""
  try:
    return tf.train.get_checkpoint_state(directory)
  except (ValueError, tf.errors.OpError):
    return None


def on_disk(directory):
  """The checkpoints whose files (ckpt-N.index, ckpt-N.data-*) are in `directory`, newest first."""
  names = tf.io.gfile.listdir(directory) if tf.io.gfile.isdir(directory) else []
  steps = {int(m.group(1)) for m in map(_FILE.match, names) if m}
  return [os.path.join(directory, f'ckpt-{s}') for s in sorted(steps, reverse=True)]


def kept(directory):
  """Every checkpoint of `directory`, newest first: those its state file lists and those whose
  files are there (a lost or stale state file loses none)."""
  return _kept(directory, read_state(directory))


def _kept(directory, state):
  steps = set(_listed(state)) | {_step(p) for p in on_disk(directory)}
  return [os.path.join(directory, f'ckpt-{s}') for s in sorted(steps, reverse=True)]


def _listed(state):
  """The steps of the checkpoints `state` lists, oldest first (a name not ckpt-N is ignored)."""
  paths = (list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]) if state else []
  names = (re.match(r'^ckpt-(\d+)$', os.path.basename(p)) for p in paths)
  return [int(m.group(1)) for m in names if m]


def _step(path):
  return int(path.rsplit('-', 1)[-1])


def files_of(path):
  """The files of checkpoint `path` (its .index and .data-* shards)."""
  return sorted(tf.io.gfile.glob(path + '.index') + tf.io.gfile.glob(path + '.data-*'))


def check_readable(path):
  """Reads every tensor of checkpoint `path`; CheckpointError naming the damage if one fails."""
  if not tf.io.gfile.exists(path + '.index'):
    raise CheckpointError(f'{path}.index is missing.')
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, ValueError, IndexError, OSError, RuntimeError) as e:
    # (a truncated data file raises IndexError, 'Read less bytes than requested')
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    names = ', '.join(map(os.path.basename, files_of(path))) or 'no files'
    raise CheckpointError(f'{path} cannot be read ({names}): {first}') from e


def latest_readable(directory, paths=None):
  """(the newest checkpoint of `directory` that reads whole, or None if there is none at all;
  the damaged newer ones), among `paths` (newest first; default: every kept one).

  A damaged one is reported (warning) and skipped; if every one is damaged, a CheckpointError
  lists them.
  """
  problems, damaged = [], []
  for path in kept(directory) if paths is None else paths:
    try:
      check_readable(path)
    except CheckpointError as e:
      problems.append(str(e))
      damaged.append(path)
      logging.warning('Damaged checkpoint: %s. Using the one before it.', e)
      continue
    return path, damaged
  if problems:
    raise CheckpointError('Every kept checkpoint is damaged: ' + ' | '.join(problems) +
                          '. Start a new run in another --workdir, or replace these files from a '
                          'backup.')
  return None, []


def resume_point(workdir, rollback=0, check=None, write=True):
  """The checkpoint a run in WORKDIR resumes from (None: a new run): the newest that reads whole
  once the newest `rollback` are set aside (--rollback, for a run whose newest saved state is
  finite but already diverging).

  `check(path)` vets that checkpoint before anything changes. Then, if `write` (the chief): the
  leftovers of a killed save are removed, the rolled-back and the damaged newer checkpoints are
  moved to WORKDIR/rolled_back/ and WORKDIR/damaged/ (never deleted), and the state file is
  rewritten if it does not list every checkpoint left (`sync_state`).
  """
  directory = os.path.join(workdir, 'checkpoints')
  state = read_state(directory)
  paths = _kept(directory, state)
  if rollback and rollback >= len(paths):
    raise CheckpointError(f'--rollback={rollback}: {workdir} keeps {len(paths)} checkpoint(s) '
                          f'({", ".join(map(os.path.basename, paths)) or "none"}); at most '
                          f'{max(len(paths) - 1, 0)} can be rolled back.')
  latest, damaged = latest_readable(directory, paths[rollback:])
  if latest and check:
    check(latest)
  if not write:
    return latest
  for folder in (directory, os.path.join(workdir, 'snapshots')):
    remove_partial_saves(folder)
  if rollback:
    set_aside(workdir, paths[:rollback], 'rolled_back')
    logging.info('Rolled back %d checkpoint(s) (set aside in %s); resuming from %s.', rollback,
                 os.path.join(workdir, 'rolled_back'), latest)
  if damaged:
    set_aside(workdir, damaged, 'damaged')
    logging.warning('Set the damaged checkpoint(s) aside in %s; resuming from %s.',
                    os.path.join(workdir, 'damaged'), latest)
  sync_state(directory, [p for p in paths[rollback:] if p not in damaged], state)
  return latest


def set_aside(workdir, paths, folder):
  """Moves checkpoints out of WORKDIR/checkpoints into WORKDIR/<folder>/step_S/ (step_S.2, ...
  if that exists: kept, never deleted or overwritten)."""
  for path in paths:
    target = os.path.join(workdir, folder, f'step_{_step(path)}')
    n = 1
    while tf.io.gfile.exists(target if n == 1 else f'{target}.{n}'):
      n += 1
    target = target if n == 1 else f'{target}.{n}'
    tf.io.gfile.makedirs(target)
    for f in files_of(path):
      shutil.move(f, os.path.join(target, os.path.basename(f)))


def sync_state(directory, paths, state):
  """Makes the state file of `directory` (`state`, as read) list `paths` (its checkpoints, newest
  first) with their times, which tf.train.CheckpointManager needs to keep tracking and rotating
  each (without them it drops every one it did not save itself). Warns if the file had lost
  some, or was missing or unreadable."""
  path = os.path.join(directory, STATE_FILE)
  steps = [_step(p) for p in reversed(paths)]
  listed = _listed(state)
  if (paths and state and listed == steps and state.model_checkpoint_path == paths[0] and
      len(state.all_model_checkpoint_timestamps) == len(steps)):
    return
  existed = tf.io.gfile.exists(path)
  if not paths:
    if existed:
      tf.io.gfile.remove(path)
      if state is None:
        logging.warning('Removed %s: it could not be read and there is no checkpoint.', path)
    return
  write_state(directory, paths)
  names = ', '.join(f'ckpt-{s}' for s in steps)
  if state is None or set(steps) - set(listed):
    problem = (('could not be read' if existed else 'was missing') if state is None else
               f'listed only {len(set(steps) & set(listed))} of them')
    logging.warning('%s %s; rewrote it from the checkpoint files there (%s): resuming from %s.',
                    path, problem, names, os.path.basename(paths[0]))


def write_state(directory, paths):
  """Writes the state file of `directory` listing `paths` (newest first), whole."""
  oldest_first = list(reversed(paths))
  times = [_saved_time(p) for p in oldest_first]
  proto = tf.compat.v1.train.generate_checkpoint_state_proto(
      directory, os.path.basename(paths[0]),
      all_model_checkpoint_paths=[os.path.basename(p) for p in oldest_first],
      all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1.)
  path = os.path.join(directory, STATE_FILE)
  with tf.io.gfile.GFile(path + '.tmp', 'w') as f:
    f.write(text_format.MessageToString(proto))
  tf.io.gfile.rename(path + '.tmp', path, overwrite=True)


def _saved_time(path):
  """When checkpoint `path` was written (its newest file's time; now, if it has none)."""
  times = [tf.io.gfile.stat(f).mtime_nsec / 1e9 for f in files_of(path)]
  return max(times) if times else time.time()


def remove_partial_saves(directory):
  """Removes what a killed or failed save leaves behind (TF writes to <prefix>_temp/ first)."""
  leftovers = tf.io.gfile.glob(os.path.join(directory, '*_temp*'))
  for leftover in leftovers:
    if tf.io.gfile.isdir(leftover):
      tf.io.gfile.rmtree(leftover)
    else:
      tf.io.gfile.remove(leftover)
  if leftovers:
    logging.info('Removed what a save cut short left in %s: %s.', directory,
                 ', '.join(os.path.basename(p) for p in leftovers))
