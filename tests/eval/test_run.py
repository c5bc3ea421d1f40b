import json
import os

import numpy as np
import pytest
import tensorflow as tf

import configs
from configs import overrides
from eval import run as eval_run
from train import trainer as trainer_lib


@pytest.fixture(scope='module')
def fce_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run'))
  config = configs.get_config('toy2d')
  overrides.apply(config, ['model.flow.steps_per_level=2', 'model.flow.width=8',
                           'train.batch_size=64', 'train.steps=20', 'eval.every=1000'])
  run = trainer_lib.Trainer(config, 'fce', workdir)
  run.run()
  return workdir, run


@pytest.mark.slow
def test_eval_writes_the_2d_contract(fce_run, tmp_path):
  workdir, run = fce_run
  points = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
  np.save(tmp_path / 'points.npy', points)
  metrics = eval_run.evaluate(workdir, str(tmp_path / 'points.npy'))
  out = os.path.join(workdir, 'eval')
  assert metrics['step'] == 20 and metrics['mode'] == 'fce'
  assert {'ebm_logp_mse', 'flow_logp_mse', 'log_normalizer'} <= set(metrics)
  with open(os.path.join(out, 'metrics.json')) as f:
    assert json.load(f) == metrics
  assert os.path.exists(os.path.join(out, 'density.png'))
  density = np.load(os.path.join(out, 'density.npz'))
  cell = (density['grid_x'][1] - density['grid_x'][0]) ** 2
  np.testing.assert_allclose(np.exp(density['ebm_logp_renormalized']).sum() * cell, 1., rtol=1e-6)
  # Renormalising is a constant shift (float64: rounding relative to the log-densities' size).
  shift = density['ebm_logp'] - density['ebm_logp_renormalized']
  scale = np.abs(density['ebm_logp']).max() + abs(shift[0])
  np.testing.assert_allclose(shift, shift[0], rtol=0, atol=1e-12 * scale)
  at_points = np.load(os.path.join(out, 'points_logp.npz'))
  for key, fn in (('ebm_logp', run.ebm.marginal_log_prob), ('flow_logp', run.flow.log_prob)):
    direct = fn(tf.constant(points)).numpy()  # float32
    np.testing.assert_allclose(at_points[key], direct, rtol=1e-5,
                               atol=1e-6 * np.abs(direct).max())
  _assert_same_metrics(eval_run.evaluate(workdir), metrics)  # idempotent


def _assert_same_metrics(a, b):
  """Equal keys and non-float values; floats (recomputed) equal up to rounding."""
  assert sorted(a) == sorted(b)
  for key in a:
    if isinstance(b[key], (float, list)):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
    else:
      assert a[key] == b[key], key


@pytest.mark.slow
def test_eval_errors_are_clear(fce_run, tmp_path):
  with pytest.raises(eval_run.EvalError, match='no run'):
    eval_run.evaluate(str(tmp_path / 'nothing'))
  np.save(tmp_path / 'bad.npy', np.zeros((3, 5), np.float32))
  with pytest.raises(eval_run.EvalError, match=r'shape \(3, 5\)'):
    eval_run.evaluate(fce_run[0], str(tmp_path / 'bad.npy'))


@pytest.mark.slow
def test_sample_writes_flow_samples(fce_run):
  workdir, _ = fce_run
  npy, png = eval_run.sample(workdir, num_samples=10)
  assert np.load(npy).shape == (10, 2) and os.path.exists(png)


@pytest.mark.slow
def test_sample_of_an_image_run(tmp_path):
  np.save(tmp_path / 'images.npy',
          np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))
  config = configs.get_config('smoke')
  config.data.name = f'npy:{tmp_path}/images.npy'
  workdir = str(tmp_path / 'run')
  trainer_lib.Trainer(config, 'mle', workdir).run()
  npy, png = eval_run.sample(workdir, num_samples=5)
  samples = np.load(npy)
  assert samples.shape == (5, 8, 8, 3) and samples.dtype == np.uint8 and os.path.exists(png)
  with pytest.raises(eval_run.EvalError, match='vector data'):
    eval_run.evaluate(workdir, eval_points=str(tmp_path / 'images.npy'))


@pytest.mark.slow
def test_a_run_made_before_a_config_field_existed_still_loads(fce_run, tmp_path):
  """A config field added later (here model.flow.scale_floor) takes its default, which gives the
  old code's behaviour; a renamed one (model.flow.steps, now steps_per_level) its new name; the
  saved values win everywhere else."""
  workdir, run = fce_run
  old = str(tmp_path / 'old')
  tf.io.gfile.makedirs(old)
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  flow = saved['config']['model']['flow']
  flow.pop('scale_floor')
  flow['steps'] = flow.pop('steps_per_level')
  with open(os.path.join(old, 'config.json'), 'w') as f:
    json.dump(saved, f)
  config, mode = eval_run.load_run(old)
  assert mode == 'fce' and config.model.flow.scale_floor == 0.
  assert config.model.flow.steps_per_level == 2 and config.model.flow.width == 8


@pytest.mark.slow
@pytest.mark.parametrize('points,match', [
    (np.zeros((5, 3), np.float32), r'holds shape \(5, 3\); this run models vectors of shape'),
    (np.zeros((5, 2), np.int64), 'expected'),
])
def test_bad_eval_points_are_refused_before_anything_is_written(tmp_path_factory, points, match):
  workdir = str(tmp_path_factory.mktemp('run'))
  config = configs.get_config('toy2d')
  overrides.apply(config, ['model.flow.steps_per_level=1', 'model.flow.width=8',
                           'train.steps=1', 'eval.every=1000'])
  trainer_lib.Trainer(config, 'fce', workdir).run()
  path = os.path.join(workdir, 'points.npy')
  np.save(path, points)
  with pytest.raises(eval_run.EvalError, match=match):
    eval_run.evaluate(workdir, path)
  assert not os.path.exists(os.path.join(workdir, 'eval'))
