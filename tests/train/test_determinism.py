"""--set train.deterministic=True: the same command and seed give the same run, bit for bit."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = '''
import sys
sys.path.insert(0, {root!r})
import numpy as np
from tests.train.test_trainer import _toy_config
from train import trainer as trainer_lib
config = _toy_config(**{{'train.steps': 30, 'train.deterministic': True}})
run = trainer_lib.Trainer(config, 'fce', {workdir!r})
run.run()
np.savez({out!r}, *[v.numpy() for v in list(run.flow.variables) + list(run.ebm.variables)])
'''


@pytest.mark.slow
def test_a_deterministic_run_repeated_gives_identical_variables(tmp_path):
  """Two processes (op determinism is process-wide), each with TF's default thread pools."""
  results = []
  for i in range(2):
    out = str(tmp_path / f'vars{i}.npz')
    code = RUN.format(root=ROOT, workdir=str(tmp_path / f'run{i}'), out=out)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('TF_NUM_', 'OMP_'))}
    done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as f:
      results.append([f[k] for k in f.files])
  assert len(results[0]) == len(results[1]) > 10
  for a, b in zip(*results):
    np.testing.assert_array_equal(a, b)
