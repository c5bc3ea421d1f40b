"""Checkpoints that survive damage: the newest readable one, roll-back, and saves that fail cleanly.

A run keeps `train.keep_checkpoints` checkpoints (WORKDIR/checkpoints). Reading one checks every
tensor (their CRCs), so a truncated or scrambled data file, an empty index or a missing file is
found before anything is restored; the run then says which file is damaged and uses the one
before it. `roll_back` sets the newest N aside (WORKDIR/rolled_back/, never deleted), for a run
whose newest saved state is finite but already diverging. `write_json` writes a run folder's
JSON records (config.json, evaluation reports) whole.
"""

import json
import os
import shutil

from absl import logging
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


def kept(directory):
  """The checkpoints the directory's state file lists, newest first."""
  state = tf.train.get_checkpoint_state(directory)
  if state is None:
    return []
  paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  return sorted(set(paths), key=_step, reverse=True)


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


def latest_readable(directory):
  """(the newest checkpoint of `directory` that reads whole, or None if there is none at all;
  the damaged newer ones).

  A damaged one is reported (warning) and skipped; if every kept one is damaged, a
  CheckpointError lists them.
  """
  problems, damaged = [], []
  for path in kept(directory):
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


def roll_back(workdir, n):
  """Sets the newest `n` checkpoints of WORKDIR/checkpoints aside, in WORKDIR/rolled_back/step_S/,
  so that the run resumes from the one before them. Returns the checkpoint it will resume from."""
  directory = os.path.join(workdir, 'checkpoints')
  paths = kept(directory)
  if n >= len(paths):
    raise CheckpointError(f'--rollback={n}: {workdir} keeps {len(paths)} checkpoint(s) '
                          f'({", ".join(os.path.basename(p) for p in paths) or "none"}); at most '
                          f'{max(len(paths) - 1, 0)} can be rolled back.')
  set_aside(workdir, paths[:n], 'rolled_back')
  logging.info('Rolled back %d checkpoint(s) (set aside in %s); resuming from %s.', n,
               os.path.join(workdir, 'rolled_back'), paths[n])
  return paths[n]


def set_aside(workdir, paths, folder):
  """Moves checkpoints out of WORKDIR/checkpoints into WORKDIR/<folder>/step_S/ (kept, never
  deleted) and makes the newest of the others the latest."""
  directory = os.path.join(workdir, 'checkpoints')
  remaining = [p for p in kept(directory) if p not in paths]
  for path in paths:
    target = os.path.join(workdir, folder, f'step_{_step(path)}')
    tf.io.gfile.makedirs(target)
    for f in files_of(path):
      shutil.move(f, os.path.join(target, os.path.basename(f)))
  if remaining:
    tf.compat.v1.train.update_checkpoint_state(
        directory, remaining[0], all_model_checkpoint_paths=list(reversed(remaining)))
  else:
    tf.io.gfile.remove(os.path.join(directory, 'checkpoint'))


def remove_partial_saves(directory):
  """Removes what a failed save leaves behind (TF writes to <prefix>_temp/ first)."""
  for leftover in tf.io.gfile.glob(os.path.join(directory, '*_temp*')):
    if tf.io.gfile.isdir(leftover):
      tf.io.gfile.rmtree(leftover)
    else:
      tf.io.gfile.remove(leftover)
