import json
import os
import shlex
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from train import distribute

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.slow
def test_two_replica_step_equals_single_device_step():
  # A fresh process: logical devices must be configured before TensorFlow starts.
  out = subprocess.run([sys.executable, os.path.join(HERE, 'distributed_check.py')], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert 'DISTRIBUTED_OK' in out.stdout, out.stdout + out.stderr[-3000:]


@pytest.mark.slow
def test_two_replica_nt_step_splits_and_gathers_the_chains():
  out = subprocess.run([sys.executable, os.path.join(HERE, 'distributed_nt_check.py')], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert 'NT_DISTRIBUTED_OK' in out.stdout, out.stdout + out.stderr[-3000:]


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _readme_two_worker_command():
  """The README's two-worker example: `TF_CONFIG=... python main.py ARGS` (lines ending in \\)."""
  with open(os.path.join(ROOT, 'README.md')) as f:
    text = f.read()
  block = text.split('<!-- two-worker example -->')[1].split('```')[1]
  lines = [l.strip().rstrip('\\').strip() for l in block.strip().splitlines()]
  command = ' '.join(l for l in lines if l and not l.startswith('#'))
  return shlex.split(command.split('python ', 1)[1])


def _two_workers(workdir, args):
  workers = [f'127.0.0.1:{p}' for p in _free_ports(2)]
  procs = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}))
    procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=300)[0] for p in procs]
  # Every failed worker's output: the first to fail is often not the one that reports it.
  failed = [f'--- worker {i} (exit {p.returncode}):\n{out[-3000:]}'
            for i, (p, out) in enumerate(zip(procs, outs)) if p.returncode != 0]
  assert not failed, '\n'.join(failed)
  return outs


@pytest.mark.slow
def test_the_readme_two_worker_example_trains_and_resumes(tmp_path):
  args = _readme_two_worker_command()
  assert args[0] == 'main.py' and '--workdir=/tmp/two_workers' in args
  workdir = str(tmp_path / 'run')
  args = [a.replace('/tmp/two_workers', workdir) for a in args]
  outs = _two_workers(workdir, args)
  assert 'step 4/4' in outs[0]
  assert tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints')).endswith('ckpt-4')
  assert os.path.exists(os.path.join(workdir, 'samples', 'density_4.png'))
  # Only the chief keeps checkpoints; the other worker's temporary copies are removed.
  assert not os.path.exists(os.path.join(workdir, 'tmp'))
  # Both workers resume from the chief's checkpoint (a worker starting afresh would hang the
  # collective ops or train other weights).
  outs = _two_workers(workdir, args + ['--set', 'train.steps=6'])
  for out in outs:
    assert 'Resumed from' in out and 'ckpt-4' in out, out[-3000:]
  assert tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints')).endswith('ckpt-6')


def test_unknown_strategy_is_refused():
  with pytest.raises(ValueError, match="Unknown strategy 'tpu'"):
    distribute.make_strategy('tpu')
