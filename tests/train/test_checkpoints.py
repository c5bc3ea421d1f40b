"""Checkpoints that survive damage, roll-back, unsound states and a full disk (issue 10.6-8)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from eval import run as eval_run
from tests.train.test_trainer import _toy_config
from train import checkpoints as ckpt_lib
from train import trainer as trainer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(workdir, steps=4, **kwargs):
  config = _toy_config(**{'train.steps': steps, 'train.checkpoint_every': 2})
  return trainer_lib.Trainer(config, 'fce', workdir, **kwargs)


def _data_file(path):
  return path + '.data-00000-of-00001'


def _truncate(path):
  with open(_data_file(path), 'r+b') as f:
    f.truncate(os.path.getsize(_data_file(path)) // 2)


def _scramble(path):
  with open(_data_file(path), 'r+b') as f:
    f.seek(os.path.getsize(_data_file(path)) // 3)
    f.write(np.random.default_rng(0).bytes(2000))


def _empty_index(path):
  open(path + '.index', 'w').close()


def _missing(path):
  os.remove(_data_file(path))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A run with checkpoints at steps 2 and 4 (copied by each test before damaging it)."""
  workdir = str(tmp_path_factory.mktemp('run') / 'run')
  _run(workdir).run()
  return workdir


def _copy(trained, tmp_path):
  workdir = str(tmp_path / 'run')
  subprocess.run(['cp', '-r', trained, workdir], check=True)
  with open(os.path.join(workdir, 'checkpoints', 'checkpoint')) as f:  # absolute paths inside
    state = f.read().replace(trained, workdir)
  with open(os.path.join(workdir, 'checkpoints', 'checkpoint'), 'w') as f:
    f.write(state)
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('damage', [_truncate, _scramble, _empty_index, _missing])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(trained, tmp_path, damage,
                                                                  caplog):
  workdir = _copy(trained, tmp_path)
  latest = os.path.join(workdir, 'checkpoints', 'ckpt-4')
  damage(latest)
  # --mode=eval reads the one before, and says which is damaged.
  assert eval_run.checkpoints(workdir) == [os.path.join(workdir, 'checkpoints', 'ckpt-2')]
  assert any('Damaged checkpoint' in r.message and 'ckpt-4' in r.message for r in caplog.records)
  run = _run(workdir, steps=6)
  assert int(run.step.numpy()) == 2
  assert os.listdir(os.path.join(workdir, 'damaged')) == ['step_4']  # set aside, not deleted
  run.run()
  assert int(run.step.numpy()) == 6
  assert ckpt_lib.latest_readable(os.path.join(workdir, 'checkpoints'))[0].endswith('ckpt-6')


@pytest.mark.slow
def test_every_checkpoint_damaged_is_one_clear_error(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  for step in (2, 4):
    _truncate(os.path.join(workdir, 'checkpoints', f'ckpt-{step}'))
  with pytest.raises(trainer_lib.TrainingError, match='Every kept checkpoint is damaged.*ckpt-4'):
    _run(workdir)
  with pytest.raises(eval_run.EvalError, match='Every kept checkpoint is damaged'):
    eval_run.checkpoints(workdir)


@pytest.mark.slow
def test_rollback_resumes_from_an_earlier_checkpoint(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  with pytest.raises(trainer_lib.TrainingError, match='at most 1 can be rolled back'):
    _run(workdir, rollback=2)
  run = _run(workdir, rollback=1)
  assert int(run.step.numpy()) == 2
  assert sorted(os.listdir(os.path.join(workdir, 'rolled_back', 'step_4'))) == [
      'ckpt-4.data-00000-of-00001', 'ckpt-4.index']
  again = _run(workdir)  # the roll-back holds: the next start resumes there too
  assert int(again.step.numpy()) == 2


@pytest.mark.slow
def test_a_state_that_overflows_on_the_next_batch_is_not_saved(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  run = _run(workdir, steps=6)
  head = run.ebm.network.layers[-1].kernel
  head.assign(tf.fill(head.shape, 3e38))  # finite, but f overflows
  with pytest.raises(trainer_lib.TrainingError, match='f of the next batch would hold NaN or Inf'):
    run.state.save(5, run.source.batch(5))
  assert not tf.io.gfile.glob(os.path.join(workdir, 'checkpoints', 'ckpt-5*'))
  head.assign(tf.fill(head.shape, np.nan))
  with pytest.raises(trainer_lib.TrainingError, match='ebm variable .* holds NaN'):
    run.state.save(5, run.source.batch(5))


FULL_DISK = '''
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
sys.path.insert(0, {root!r})
from tests.train.test_checkpoints import _run
from train import trainer as trainer_lib
run = _run({workdir!r})
run.run(until_step=2)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))
try:
  run.run()
except trainer_lib.TrainingError as e:
  print('ERROR', e)
'''


@pytest.mark.slow
def test_a_save_that_cannot_be_written_leaves_no_partial_files(tmp_path):
  """A file-size limit below the checkpoint's size makes the save fail for real, as a full disk
  does (EFBIG there, ENOSPC here)."""
  workdir = str(tmp_path / 'run')
  out = subprocess.run([sys.executable, '-c', FULL_DISK.format(root=ROOT, workdir=workdir)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  errors = [line for line in out.stdout.splitlines() if line.startswith('ERROR')]
  assert len(errors) == 1, out.stdout[-2000:] + out.stderr[-3000:]
  assert 'Could not save the checkpoint of step 4' in errors[0]
  assert 'The previous checkpoint, ckpt-2, is intact' in errors[0]
  assert '{{' not in errors[0]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      'checkpoint', 'ckpt-2.data-00000-of-00001', 'ckpt-2.index']
  run = _run(workdir)  # and the run resumes from it
  assert int(run.step.numpy()) == 2
