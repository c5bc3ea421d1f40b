"""NT-EBM in the trainer: nt (persistent latent HMC chains, NT-EBM Alg. 1) and nt_nce (eq. 10) on
a frozen backbone from --init_flow, resume, and the errors of a bad backbone."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import configs
from configs import overrides
from eval import run as eval_run
from tests import helpers
from train import trainer as trainer_lib


def _config(**fields):
  config = configs.get_config('toy2d')
  overrides.apply(config, ['model.flow.steps_per_level=2', 'model.flow.width=8',
                           'train.batch_size=16', 'train.log_every=1', 'eval.every=1000',
                           'nt.hmc_steps=3'] + [f'{k}={v}' for k, v in fields.items()])
  return config


@pytest.fixture(scope='module')
def backbone(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('backbone'))
  trainer_lib.Trainer(_config(**{'train.steps': 20}), 'mle', workdir).run()
  return workdir


def _values(module):
  return [v.numpy() for v in module.trainable_variables]


@pytest.mark.slow
def test_nt_resumes_with_the_same_chains_and_keeps_the_backbone(tmp_path, backbone):
  config = _config(**{'train.steps': 4})
  straight = trainer_lib.Trainer(config, 'nt', str(tmp_path / 'a'), init_flow=backbone)
  start = straight.state.extras['chains'].numpy().copy()
  flow_before = _values(straight.flow)
  np.testing.assert_array_equal(start, straight.source.batch(0)['z'])  # from q0 (Alg. 1)
  metrics = straight.run()
  assert {'f_data', 'f_samples', 'acceptance', 'step_size'} <= set(metrics)
  assert not np.allclose(straight.state.extras['chains'].numpy(), start)
  for a, b in zip(flow_before, _values(straight.flow)):
    np.testing.assert_array_equal(a, b)  # the backbone is frozen
  workdir = str(tmp_path / 'b')
  trainer_lib.Trainer(config, 'nt', workdir, init_flow=backbone).run(until_step=2)
  resumed = trainer_lib.Trainer(config, 'nt', workdir, init_flow=backbone)
  assert int(resumed.step.numpy()) == 2
  resumed.run()
  np.testing.assert_allclose(resumed.state.extras['chains'].numpy(),
                             straight.state.extras['chains'].numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(resumed.state.extras['hmc_step_size'].numpy()),
                             float(straight.state.extras['hmc_step_size'].numpy()), rtol=1e-6)
  for a, b in zip(_values(straight.ebm), _values(resumed.ebm)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_nt_nce_learns_the_correction_against_the_backbone(tmp_path, backbone):
  config = _config(**{'train.steps': 3, 'train.init_log_normalizer': True})
  run = trainer_lib.Trainer(config, 'nt_nce', str(tmp_path / 'nce'), init_flow=backbone)
  # c starts level with the backbone: the logit f - c averages 0 on the first batch.
  x = tf.constant(run.source.batch(0)['x'])
  np.testing.assert_allclose(float(tf.reduce_mean(run.ebm.log_prob(x))), 0., atol=1e-5)
  flow_before = _values(run.flow)
  metrics = run.run()
  assert np.isfinite(metrics['value']) and 0 <= metrics['accuracy'] <= 1
  for a, b in zip(flow_before, _values(run.flow)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_nt_without_a_backbone_or_with_a_bad_one_is_refused(tmp_path, backbone):
  with pytest.raises(trainer_lib.TrainingError, match='--init_flow=WORKDIR of a --mode=mle run'):
    trainer_lib.Trainer(_config(), 'nt', str(tmp_path / 'none'))
  # A backbone of other data: 3-D vectors.
  np.save(tmp_path / 'v3.npy', np.random.default_rng(0).standard_normal((64, 3)))
  other = configs.for_dataset(f'npy:{tmp_path}/v3.npy', None, [
      'model.flow.steps_per_level=2', 'model.flow.width=8', 'train.batch_size=16',
      'train.steps=1', 'eval.every=1000'])
  trainer_lib.Trainer(other, 'mle', str(tmp_path / 'v3')).run()
  with pytest.raises(trainer_lib.TrainingError, match='trained on --dataset=npy:'):
    trainer_lib.Trainer(_config(), 'nt_nce', str(tmp_path / 'x'), init_flow=str(tmp_path / 'v3'))
  with pytest.raises(trainer_lib.TrainingError, match='different flow or data.*model.flow.width'):
    trainer_lib.Trainer(_config(**{'model.flow.width': 16}), 'nt_nce', str(tmp_path / 'x2'),
                        init_flow=backbone)
  # A backbone of other 2-D data (issue 35: accepted silently, though q must model this data).
  with pytest.raises(trainer_lib.TrainingError, match='trained on --dataset=8gaussians, not '
                     'rings.*--mode=mle --dataset=rings'):
    trainer_lib.Trainer(_config(**{'data.name': 'rings'}), 'nt', str(tmp_path / 'z'),
                        init_flow=backbone)
  assert not os.path.exists(os.path.join(tmp_path, 'z'))
  # A backbone whose training diverged.
  diverged = str(tmp_path / 'diverged')
  run = trainer_lib.Trainer(_config(**{'train.steps': 1}), 'mle', diverged)
  run.run()
  run.flow.trainable_variables[0].assign(tf.fill(run.flow.trainable_variables[0].shape, np.nan))
  run.state.manager.save(checkpoint_number=2)  # past the trainer's own check, which refuses it
  with pytest.raises(trainer_lib.TrainingError, match='NaN or Inf.*diverged'):
    trainer_lib.Trainer(_config(), 'nt', str(tmp_path / 'y'), init_flow=diverged)
  assert not os.path.exists(os.path.join(tmp_path, 'y', 'config.json'))


@pytest.mark.slow
def test_nt_run_is_sampled_by_neural_transport_and_evaluated_normalised(tmp_path, backbone):
  workdir = str(tmp_path / 'nt')
  trainer_lib.Trainer(_config(**{'train.steps': 2}), 'nt', workdir, init_flow=backbone).run()
  # 7 steps: 3 adapting, then 4 with states kept every 2 (2 and 4 steps after the adaptation).
  path, png = eval_run.sample(workdir, num_samples=50, hmc_steps=7, thin=2)
  x = np.load(path)
  assert x.shape == (100, 2) and np.isfinite(x).all() and os.path.exists(png)
  with open(path.replace('.npy', '.json')) as f:
    info = json.load(f)
  assert info['samples'] == 100 and 0 <= info['acceptance_after_adaptation'] <= 1
  # The run's own adapted step size is the default start.
  assert info['step_size_start'] == pytest.approx(float(tf.train.load_variable(
      tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints')),
      'hmc_step_size/.ATTRIBUTES/VARIABLE_VALUE')))
  metrics = eval_run.evaluate(workdir)
  arrays = np.load(os.path.join(workdir, 'eval', 'density.npz'))
  cell = float(arrays['grid_x'][1] - arrays['grid_x'][0]) ** 2
  # ebm_logp is the tilted model f + log q - log Z, normalised by its Z on the grid.
  np.testing.assert_allclose(np.exp(arrays['ebm_logp']).sum() * cell, 1., rtol=1e-6)
  assert np.isfinite(metrics['log_z_grid']) and 'ebm_logp_mse' in metrics


def nt_image_run(tmp_path, steps):
  """(config, workdir) of an nt run of `steps` updates on 8x8 random images (the smoke config),
  on a backbone of `steps` MLE updates."""
  np.save(tmp_path / 'images.npy',
          np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
  config = configs.get_config('smoke')
  config.data.name = f'npy:{tmp_path}/images.npy'
  config.train.steps = steps
  config.nt.hmc_steps = 1
  backbone = str(tmp_path / 'mle')
  trainer_lib.Trainer(config, 'mle', backbone).run()
  workdir = str(tmp_path / 'nt')
  trainer_lib.Trainer(config, 'nt', workdir, init_flow=backbone).run()
  return config, workdir


@pytest.mark.slow
def test_nt_on_images_trains_and_reports_the_tilted_models_bits_per_dim(tmp_path):
  config, workdir = nt_image_run(tmp_path, steps=2)
  with open(os.path.join(workdir, 'eval', 'train_eval_2.json')) as f:
    during = json.load(f)
  # nt learns no c: the loop reports the bits/dim with an importance-sampled log Z, and no
  # "learned c" figure.
  assert 'learned_c' not in during['ebm_bpd'] and 'fid' not in during
  assert np.isfinite([during['ebm_bpd']['importance_sampled'],
                      during['ebm_bpd']['unnormalised']]).all()
  assert during['ebm_bpd']['num_proposals'] == config.eval.is_samples
  from eval import image_eval  # pylint: disable=g-import-not-at-top
  graph = str(tmp_path / 'graph.pb')
  helpers.write_tiny_inception_graph(graph)
  report = eval_run.evaluate(workdir, options=image_eval.Options(
      fid_samples=8, is_samples=16, batch_size=8, temperatures=(1.0,), grid_samples=4,
      inception_graph=graph, hmc_steps=4))[2]
  ebm = report['ebm_bpd']
  # log Z of exp(f - c) q by importance sampling with q as the proposal: the weights are
  # exp(f - c), finite, and the two figures differ by exactly that estimate.
  assert np.isfinite([ebm['importance_sampled'], ebm['effective_sample_size']]).all()
  np.testing.assert_allclose(ebm['importance_sampled'] - ebm['unnormalised'],
                             ebm['log_z_minus_c'] / (8 * 8 * 3 * np.log(2)), rtol=1e-6)
  # FID of the model's neural-transport samples, beside its backbone's ancestral ones (Table 1).
  assert report['fid']['settings']['sampler'] == 'neural-transport HMC'
  assert report['fid']['num_samples'] == report['fid_backbone']['num_samples'] == 8
  assert report['fid']['fid'] != report['fid_backbone']['fid']
  assert 0 < report['fid']['acceptance_after_adaptation'] <= 1


@pytest.mark.slow
def test_in_loop_evaluation_of_an_nt_image_run_shows_the_models_own_samples(tmp_path):
  """Issue 34: the TensorBoard grid of an nt run showed only the frozen backbone's samples; the
  model's neural-transport samples now have a grid of their own beside it."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from models import build  # pylint: disable=g-import-not-at-top
  from train import hooks  # pylint: disable=g-import-not-at-top
  from train import modes  # pylint: disable=g-import-not-at-top
  config = configs.for_dataset('digits', None, [
      'model.flow.width=8', 'model.flow.steps_per_level=1', 'eval.fid_samples=0',
      'eval.examples=16', 'eval.is_samples=16'], mode='nt')
  spec = modes.get('nt')
  config = spec.configure(config, init_flow='backbone')
  shape = tuple(config.data.shape)
  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, 0, config.model.flow)
  folder = types.SimpleNamespace(is_chief=True, path=lambda *p: os.path.join(tmp_path, *p))
  evaluation = hooks.InLoopEval(config, 'nt', spec.reports(config), folder, flow,
                                spec.model(ebm, flow))
  evaluation.evaluator.options = dataclasses.replace(evaluation.evaluator.options, hmc_steps=4)
  writer = tf.summary.create_file_writer(str(tmp_path / 'tb'))
  metrics = evaluation(3, writer, has_ebm=True)
  writer.flush()
  assert os.path.exists(tmp_path / 'samples' / 'nt_samples_3.png')
  assert os.path.exists(tmp_path / 'samples' / 'flow_samples_3.png')
  assert 0 <= metrics['nt_sample_acceptance'] <= 1
  tags = {v.tag for path in tf.io.gfile.glob(str(tmp_path / 'tb' / '*'))
          for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value}
  assert {'nt_samples', 'flow_samples'} <= tags
