"""What a run prints: no TensorFlow noise in the middle of training (each save's "Sharding
callback duration", the deprecation of update_checkpoint_state), and a finished run rerun says
it is finished, with its last metrics, without adding an event file."""

import os

import pytest
import tensorflow as tf

from tests.train.test_trainer import _main

ARGS = ['--mode=fce', '--set', 'train.steps=30', '--set', 'train.checkpoint_every=10',
        '--set', 'train.log_every=10', '--set', 'train.batch_size=32',
        '--set', 'model.flow.width=8']
NOISE = ('Sharding callback duration', 'update_checkpoint_state', 'is deprecated')


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  """A run trained to its end (step 30), and what it printed."""
  workdir = str(tmp_path_factory.mktemp('finished') / 'run')
  proc = _main(ARGS, workdir)
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out
  return workdir, out


def _event_files(workdir):
  return sorted(tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', 'events.out.tfevents.*')))


@pytest.mark.slow
def test_training_prints_no_tensorflow_noise(finished):
  workdir, out = finished
  assert 'Done: ' in out
  assert not [line for line in out.splitlines() if any(n in line for n in NOISE)], out
  # --rollback rewrites the checkpoint state file (tf.compat.v1's update_checkpoint_state).
  proc = _main(ARGS + ['--rollback=1'], workdir)
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out
  assert 'Resumed from' in out and 'ckpt-20 at step 20' in out
  assert not [line for line in out.splitlines() if any(n in line for n in NOISE)], out


@pytest.mark.slow
def test_a_finished_run_rerun_says_so_with_its_last_metrics_and_no_new_event_file(finished):
  workdir, _ = finished
  events = _event_files(workdir)
  proc = _main(ARGS, workdir)
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out
  assert 'Done:' not in out
  line = next(line for line in out.splitlines()
              if 'This run is already finished, at step 30 of 30' in line)
  assert 'Its last metrics: ' in line and ' value=' in line and 'flow_nll=' in line, line
  assert 'steps_per_second' not in line and 'learning_rate' not in line
  assert 'is deprecated' not in out, out  # (reading the event files)
  assert _event_files(workdir) == events
