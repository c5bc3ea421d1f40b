import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from train import distribute

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_two_replica_step_equals_single_device_step():
  # A fresh process: logical devices must be configured before TensorFlow starts.
  out = subprocess.run([sys.executable, os.path.join(HERE, 'distributed_check.py')], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert 'DISTRIBUTED_OK' in out.stdout, out.stdout + out.stderr[-3000:]


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_two_local_workers_train_together(tmp_path):
  workers = [f'127.0.0.1:{p}' for p in _free_ports(2)]
  workdir = str(tmp_path / 'run')
  procs = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}))
    procs.append(subprocess.Popen(
        [sys.executable, 'main.py', '--mode=mle', f'--workdir={workdir}', '--set',
         'train.steps=4', '--set', 'train.batch_size=16', '--set', 'model.flow.width=8',
         '--set', 'model.flow.steps_per_level=2', '--set', 'train.log_every=2', '--set',
         'train.checkpoint_every=2', '--set', 'train.eval_every=4'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert 'step 4/4' in outs[0]
  assert tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints')).endswith('ckpt-4')
  assert os.path.exists(os.path.join(workdir, 'samples', 'density_4.png'))
  # Only the chief keeps checkpoints; the other worker's temporary copies are removed.
  assert not os.path.exists(os.path.join(workdir, 'tmp'))


def test_unknown_strategy_is_refused():
  with pytest.raises(ValueError, match="Unknown strategy 'tpu'"):
    distribute.make_strategy('tpu')
