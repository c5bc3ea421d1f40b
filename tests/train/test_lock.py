"""One training process per workdir (train/lock.py)."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.train import test_phases
from train import lock as lock_lib
from train import trainer as trainer_lib


def _hold(workdir, **holder):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, lock_lib.LOCK_NAME), 'w') as f:
    json.dump(holder, f)


def _sleeper():
  return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])


@pytest.mark.slow
def test_a_live_holder_is_refused_and_a_dead_or_reused_one_taken_over(tmp_path):
  workdir = str(tmp_path / 'run')
  config = test_phases._digits(**{'train.steps': 1, 'fce.mle_pretrain_steps': 0})
  other = _sleeper()
  try:
    me = dict(host=socket.gethostname(), pid=other.pid,
              start_time=lock_lib._start_time(other.pid))
    _hold(workdir, **me)
    with pytest.raises(trainer_lib.TrainingError, match=f'in use by process {other.pid} '):
      trainer_lib.Trainer(config, 'fce', workdir)
    # The same PID started at another time is another process (the PID was reused): stale.
    _hold(workdir, **dict(me, start_time=me['start_time'] + 1))
    trainer_lib.Trainer(config, 'fce', workdir)
    with open(os.path.join(workdir, lock_lib.LOCK_NAME)) as f:
      assert json.load(f)['pid'] == os.getpid()
  finally:
    other.kill()
    other.wait()
  _hold(workdir, **me)  # its process is gone now
  trainer_lib.Trainer(config, 'fce', workdir).run()
  assert not os.path.exists(os.path.join(workdir, lock_lib.LOCK_NAME))  # released at the end
  _hold(workdir, host='elsewhere', pid=1, start_time=0)
  with pytest.raises(trainer_lib.TrainingError, match='on host elsewhere. If that run has '
                     'stopped, remove'):
    trainer_lib.Trainer(config, 'fce', workdir)


@pytest.mark.slow
def test_a_second_process_on_a_running_workdir_gets_one_line(tmp_path):
  workdir = str(tmp_path / 'run')
  first = test_phases._start(workdir, 'train.steps=100000', 'fce.mle_pretrain_steps=0')
  try:
    for line in first.stdout:
      if 'fce | step 10/' in line:
        break
    second = test_phases._start(workdir, 'train.steps=100000', 'fce.mle_pretrain_steps=0')
    out = second.communicate(timeout=300)[0]
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  assert second.returncode == 1
  errors = [line for line in out.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1 and f'in use by process {first.pid} ' in errors[0], out[-2000:]
  assert 'Traceback' not in out


def test_a_workdir_that_is_a_file_or_cannot_be_written_is_one_line(tmp_path, monkeypatch):
  a_file = tmp_path / 'notes.txt'
  a_file.write_text('not a run')
  with pytest.raises(lock_lib.LockError, match='is a file, not a folder'):
    lock_lib.acquire(str(a_file))
  assert a_file.read_text() == 'not a run'

  def read_only(*_):
    raise PermissionError(13, 'Permission denied')

  monkeypatch.setattr(os, 'open', read_only)  # root ignores chmod: a read-only disk, simulated
  with pytest.raises(lock_lib.LockError, match=r'Cannot write in .* \(Permission denied\): a run '
                     'writes its checkpoints there'):
    lock_lib.acquire(str(tmp_path))
