"""Ctrl-C (SIGINT) and a scheduler's SIGTERM stop a run after its current step with a checkpoint
of that step, release the workdir and print one line; a rerun resumes from it
(train/interrupt.py)."""

import os
import signal
import time

import pytest
import tensorflow as tf

from tests.train.test_trainer import _main
from train import interrupt


def test_the_first_signal_is_noted_and_a_second_exits_at_once(monkeypatch):
  exits = []

  def fake_exit(code):
    exits.append(code)
    raise SystemExit(code)

  monkeypatch.setattr(os, '_exit', fake_exit)
  before = signal.getsignal(signal.SIGTERM)
  released = []
  with interrupt.StopSignals(before_exit=lambda: released.append(True)) as signals:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)  # the handler runs between bytecodes of the main thread
    assert signals.received == signal.SIGTERM and not exits and not released
    with pytest.raises(SystemExit):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.1)
  assert exits == [130] and released == [True]  # the second exits, releasing the lock first
  assert signal.getsignal(signal.SIGTERM) is before  # the previous handlers are back


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_a_signal_saves_the_step_reached_releases_the_workdir_and_a_rerun_resumes(tmp_path,
                                                                                 signum):
  workdir = str(tmp_path / 'run')
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  args = ['--mode=fce', '--set', 'train.steps=100000', '--set', 'train.checkpoint_every=20',
          '--set', 'train.log_every=20', '--set', 'train.batch_size=32',
          '--set', 'model.flow.width=8']  # (the first evaluation, at step 1000, is not reached)
  proc = _main(args, workdir)
  deadline = time.time() + 180
  while tf.train.latest_checkpoint(ckpt_dir) is None and time.time() < deadline:
    time.sleep(0.1)
  periodic = int(tf.train.latest_checkpoint(ckpt_dir).rsplit('-', 1)[1])
  assert periodic == 20
  time.sleep(0.3)  # a few steps past the periodic checkpoint
  proc.send_signal(signum)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 128 + signum, out
  assert 'Traceback' not in out and 'KeyboardInterrupt' not in out, out
  last = out.strip().splitlines()[-1]
  name = signal.Signals(signum).name
  step = int(last.split(' at step ')[1].split(':')[0])
  assert last == (f'Interrupted by {name} at step {step}: saved ckpt-{step}; rerun the same '
                  'command to resume.'), out
  assert step > periodic
  assert tf.train.latest_checkpoint(ckpt_dir) == os.path.join(ckpt_dir, f'ckpt-{step}')
  assert not os.path.exists(os.path.join(workdir, '.lock'))
  args[2] = f'train.steps={step + 2}'
  rerun = _main(args, workdir)
  out = rerun.communicate(timeout=300)[0]
  assert rerun.returncode == 0, out
  assert f'Resumed from {ckpt_dir}/ckpt-{step} at step {step}' in out
  assert tf.train.latest_checkpoint(ckpt_dir) == os.path.join(ckpt_dir, f'ckpt-{step + 2}')
