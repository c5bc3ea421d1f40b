"""Nothing lost, ever (issue 35): a lost state file, roll-backs and damage that keep every kept
checkpoint, a run's identity in its checkpoints, leftovers of killed saves, and random sequences
of all of these.

Most tests work on the checkpoint layer: a one-variable tf.train.Checkpoint saved by a
tf.train.CheckpointManager as TrainState saves, and resumed through RunFolder.readable_checkpoint
as the trainer resumes.
"""

import json
import logging
import os
import random

import pytest
import tensorflow as tf

from tests.train.test_trainer import _toy_config
from train import run_folder
from train import state as state_lib
from train import trainer as trainer_lib

KEEP = 3


class _Tiny:
  """The checkpoint layer of a run: a step variable, saved as TrainState saves."""

  def __init__(self, workdir):
    self.step = tf.Variable(0, dtype=tf.int64)
    self.checkpoint = tf.train.Checkpoint(step=self.step)
    self.manager = tf.train.CheckpointManager(self.checkpoint, _dir(workdir), max_to_keep=KEEP)

  def save(self, step):
    self.step.assign(step)
    self.manager.save(checkpoint_number=step)


def _dir(workdir):
  return os.path.join(workdir, 'checkpoints')


def _resume(workdir, rollback=0):
  """(the tiny run resumed as the trainer resumes, the checkpoint it resumed from)."""
  folder = run_folder.RunFolder(workdir, _toy_config(), 'fce', tf.distribute.get_strategy())
  latest = folder.readable_checkpoint(rollback)
  tiny = _Tiny(workdir)
  if latest:
    tiny.checkpoint.restore(latest).assert_consumed()
  return tiny, latest


def _step_of(path):
  return None if path is None else int(path.rsplit('-', 1)[1])


def _listed(workdir):
  """The steps the state file lists, oldest first."""
  state = tf.train.get_checkpoint_state(_dir(workdir))
  return [_step_of(p) for p in state.all_model_checkpoint_paths]


def _on_disk(workdir):
  """The steps with a checkpoint file (index or data) in WORKDIR/checkpoints."""
  names = os.listdir(_dir(workdir)) if os.path.isdir(_dir(workdir)) else []
  return sorted({int(n.split('.')[0][5:]) for n in names
                 if n.startswith('ckpt-') and ('.index' in n or '.data-' in n)})


def _saved(workdir, steps):
  tiny, _ = _resume(workdir)
  for step in steps:
    tiny.save(step)
  return tiny


def _ckpt(workdir, step, suffix):
  return os.path.join(_dir(workdir), f'ckpt-{step}{suffix}')


DATA, INDEX = '.data-00000-of-00001', '.index'


def _truncate(workdir, step):
  with open(_ckpt(workdir, step, DATA), 'r+b') as f:
    f.truncate(os.path.getsize(_ckpt(workdir, step, DATA)) // 2)


def _state_file(workdir):
  return os.path.join(_dir(workdir), 'checkpoint')


def _garble_state(workdir):
  with open(_state_file(workdir), 'wb') as f:
    f.write(b'\x00\xffnot a checkpoint state {{{')


def _empty_state(workdir):
  open(_state_file(workdir), 'w').close()


def _delete_state(workdir):
  os.remove(_state_file(workdir))


def _stray_state(workdir):
  with open(_state_file(workdir), 'w') as f:
    f.write('model_checkpoint_path: "model.ckpt"\n')


@pytest.mark.parametrize('damage', [_garble_state, _empty_state, _delete_state, _stray_state])
def test_a_lost_state_file_resumes_from_the_checkpoint_files(tmp_path, damage, caplog):
  workdir = str(tmp_path / 'run')
  _saved(workdir, [10, 20, 30, 40, 50, 60])
  damage(workdir)
  tiny, latest = _resume(workdir)
  assert _step_of(latest) == 60 and int(tiny.step.numpy()) == 60
  assert _listed(workdir) == [40, 50, 60]  # rewritten
  warnings = [r.message for r in caplog.records if 'rewrote' in r.message]
  assert len(warnings) == 1 and 'ckpt-60' in warnings[0], warnings
  tiny.save(70)  # the run goes on: the oldest kept one rotates out, nothing else
  assert _on_disk(workdir) == [50, 60, 70] == _listed(workdir)


@pytest.mark.parametrize('damage', [_garble_state, _empty_state, _stray_state])
def test_a_damaged_state_file_without_checkpoints_starts_a_new_run(tmp_path, damage):
  workdir = str(tmp_path / 'run')
  os.makedirs(_dir(workdir))
  damage(workdir)
  tiny, latest = _resume(workdir)
  assert latest is None and not os.path.exists(_state_file(workdir))
  tiny.save(10)
  assert _listed(workdir) == [10]


def test_a_roll_back_keeps_the_older_checkpoints_listed(tmp_path):
  workdir = str(tmp_path / 'run')
  _saved(workdir, [10, 20, 30, 40])  # keeps 20, 30, 40
  tiny, latest = _resume(workdir, rollback=1)
  assert _step_of(latest) == 30
  tiny.save(35)
  assert _listed(workdir) == [20, 30, 35]
  _truncate(workdir, 35)
  _truncate(workdir, 30)
  tiny, latest = _resume(workdir)  # ckpt-20 is intact: it is used
  assert _step_of(latest) == 20 and int(tiny.step.numpy()) == 20


def test_a_damaged_checkpoint_set_aside_keeps_the_older_ones_listed(tmp_path):
  workdir = str(tmp_path / 'run')
  _saved(workdir, [10, 20, 30])
  _truncate(workdir, 30)
  tiny, latest = _resume(workdir)
  assert _step_of(latest) == 20
  tiny.save(30)
  assert _listed(workdir) == [10, 20, 30]
  _truncate(workdir, 30)
  _truncate(workdir, 20)
  assert _step_of(_resume(workdir)[1]) == 10


def test_the_fallback_finds_checkpoints_the_state_file_dropped(tmp_path):
  """A state file written by the earlier roll-back lists only the saves after the resume."""
  workdir = str(tmp_path / 'run')
  _saved(workdir, [10, 20, 30])
  tf.compat.v1.train.update_checkpoint_state(_dir(workdir), _ckpt(workdir, 30, ''))
  _truncate(workdir, 30)
  tiny, latest = _resume(workdir)
  assert _step_of(latest) == 20
  assert _listed(workdir) == [10, 20]


def test_leftovers_of_a_killed_save_are_removed_at_start(tmp_path, caplog):
  caplog.set_level(logging.INFO)
  workdir = str(tmp_path / 'run')
  _saved(workdir, [10, 20])
  os.makedirs(_ckpt(workdir, 30, '_temp'))  # a kill during the save of step 30
  os.makedirs(os.path.join(workdir, 'snapshots', 'ckpt-30_temp'))  # and of its snapshot
  _, latest = _resume(workdir)
  assert _step_of(latest) == 20
  assert sorted(os.listdir(_dir(workdir))) == [
      'checkpoint', 'ckpt-10' + DATA, 'ckpt-10' + INDEX, 'ckpt-20' + DATA, 'ckpt-20' + INDEX]
  assert not os.listdir(os.path.join(workdir, 'snapshots'))
  assert len([r for r in caplog.records if 'ckpt-30_temp' in r.message]) == 2


# Random sequences of saves, damage, roll-backs, kills and resumes.

def _damage_a_checkpoint(workdir, step, rng):
  data, index = _ckpt(workdir, step, DATA), _ckpt(workdir, step, INDEX)
  kinds = (['truncate', 'empty', 'garble', 'no data'] if os.path.exists(data) else []) + (
      ['empty index', 'no index'] if os.path.exists(index) else [])
  kind = rng.choice(kinds)  # a checkpoint on disk has one of its files at least
  if kind in ('truncate', 'empty'):
    with open(data, 'r+b') as f:
      f.truncate(os.path.getsize(data) // 2 if kind == 'truncate' else 0)
  elif kind == 'garble':
    size = os.path.getsize(data)
    with open(data, 'wb') as f:
      f.write(bytes(rng.randrange(256) for _ in range(size)))
  elif kind == 'empty index':
    open(index, 'w').close()
  else:
    os.remove(data if kind == 'no data' else index)


def _set_aside(workdir):
  """How many checkpoints were set aside (WORKDIR/rolled_back, WORKDIR/damaged)."""
  return sum(len(os.listdir(os.path.join(workdir, folder)))
             for folder in ('rolled_back', 'damaged')
             if os.path.isdir(os.path.join(workdir, folder)))


def _check_resume(workdir, damaged, rollback):
  """Resumes; asserts it starts from the newest sound checkpoint left after `rollback`, that the
  newer ones were set aside and that the state file lists every one left. Returns the tiny run,
  or None if no sound checkpoint is left (the resume must then say so)."""
  on_disk = _on_disk(workdir)[::-1]
  rollback = min(rollback, max(len(on_disk) - 1, 0))
  left = on_disk[rollback:]
  sound = [s for s in left if s not in damaged]
  if left and not sound:
    with pytest.raises(trainer_lib.TrainingError, match='Every kept checkpoint is damaged'):
      _resume(workdir, rollback)
    return None
  expected = sound[0] if sound else None
  before = _set_aside(workdir)
  tiny, latest = _resume(workdir, rollback)
  assert _step_of(latest) == expected
  assert int(tiny.step.numpy()) == (expected or 0)
  newer = [s for s in on_disk if expected is None or s > expected]
  assert _set_aside(workdir) == before + len(newer)  # nothing deleted
  assert _on_disk(workdir) == sorted(s for s in on_disk if s not in newer)
  if expected is not None:
    assert _listed(workdir) == _on_disk(workdir)
  assert not [n for n in os.listdir(_dir(workdir)) if '_temp' in n] if on_disk else True
  return tiny


def _random_sequence(workdir, rng):
  tiny, step, damaged = _check_resume(workdir, set(), 0), 0, set()
  for _ in range(rng.randint(10, 25)):
    op = rng.choice(['save'] * 4 + ['damage', 'damage state', 'rollback', 'kill', 'resume'])
    if op == 'save':
      step += rng.choice([1, 2, 5])
      tiny.save(step)
      assert _listed(workdir) == _on_disk(workdir)  # the manager tracks every kept one
      damaged &= set(_on_disk(workdir))  # rotated out
    elif op == 'damage' and _on_disk(workdir):
      target = rng.choice(_on_disk(workdir))
      _damage_a_checkpoint(workdir, target, rng)
      damaged.add(target)
    elif op == 'damage state' and os.path.exists(_state_file(workdir)):
      rng.choice([_garble_state, _empty_state, _delete_state, _stray_state])(workdir)
    elif op in ('rollback', 'kill', 'resume'):
      if op == 'kill' and rng.random() < 0.7:  # killed during the save of the next step
        os.makedirs(_ckpt(workdir, step + 1, '_temp'), exist_ok=True)
      rollback = rng.randint(1, 3) if op == 'rollback' else 0
      tiny = _check_resume(workdir, damaged, rollback)
      if tiny is None:
        return
      step = int(tiny.step.numpy())
      damaged &= set(_on_disk(workdir))


@pytest.mark.parametrize('seed', range(30))
def test_random_sequences_never_lose_the_newest_sound_checkpoint(tmp_path, seed):
  _random_sequence(str(tmp_path / 'run'), random.Random(seed))


# A run's identity in its checkpoints.

def _train(workdir, steps, **fields):
  config = _toy_config(**{'train.steps': steps, 'train.checkpoint_every': 2, **fields})
  return trainer_lib.Trainer(config, 'fce', workdir)


@pytest.mark.slow
def test_a_resume_with_another_identity_is_refused_without_config_json(tmp_path):
  workdir = str(tmp_path / 'run')
  _train(workdir, 2).run()
  os.remove(os.path.join(workdir, 'config.json'))
  with pytest.raises(trainer_lib.TrainingError, match=r'data.name=.8gaussians. there, .rings.'):
    _train(workdir, 4, **{'data.name': 'rings'})
  with pytest.raises(trainer_lib.TrainingError, match='model.flow.width'):
    _train(workdir, 4, **{'model.flow.width': 16})
  assert not os.path.exists(os.path.join(workdir, 'config.json'))
  assert _on_disk(workdir) == [2]
  run = _train(workdir, 4)  # its own settings resume, and write config.json again
  assert int(run.step.numpy()) == 2
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['identity']['data.name'] == '8gaussians'


@pytest.mark.slow
def test_a_checkpoint_saved_before_the_identity_existed_resumes(tmp_path, monkeypatch):
  workdir = str(tmp_path / 'run')
  tracked = state_lib.TrainState.tracked
  monkeypatch.setattr(state_lib.TrainState, 'tracked',
                      lambda self: {k: v for k, v in tracked(self).items() if k != 'run_identity'})
  _train(workdir, 2).run()
  assert 'run_identity' not in str(tf.train.list_variables(_ckpt(workdir, 2, '')))
  monkeypatch.undo()
  run = _train(workdir, 4)
  assert int(run.step.numpy()) == 2
  run.run()  # and its next saves record the identity
  assert 'run_identity' in str(tf.train.list_variables(_ckpt(workdir, 4, '')))
