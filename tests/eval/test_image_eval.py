import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import configs
from data import pipeline
from eval import image_eval
from eval import run as eval_run
from models import build
from tests import helpers
from train import run_folder
from train import trainer as trainer_lib


class _RecordingModel(tf.Module):
  """Records what it is evaluated on; log p(y) = -|y|^2, so the result depends on the input."""

  def __init__(self):
    super().__init__()
    self.inputs = []

  def log_prob(self, y):
    self.inputs.append(y.numpy())
    return -tf.reduce_sum(tf.reshape(y, [tf.shape(y)[0], -1]) ** 2, 1)

  marginal_log_prob = log_prob


def test_log_probs_are_of_the_dequantized_test_split_in_order():
  # (bits/dim of these log-probs: tests/losses/test_flow.py.)
  config = configs.get_config('digits')
  x, _ = pipeline.load_arrays(config, 'test')
  k = config.data.num_bins
  flow = _RecordingModel()
  flow_lp, ebm_lp, n = image_eval.test_log_probs(config, flow, None, 100, 0, True, False)
  assert n == len(x) == 360 and ebm_lp is None
  assert [len(b) for b in flow.inputs] == [100, 100, 100, 60]
  y = np.concatenate(flow.inputs).astype(np.float64)
  np.testing.assert_allclose(flow_lp, -np.sum(y.reshape(n, -1) ** 2, 1), rtol=1e-6)
  # y = (x + u) / k - 0.5 with one uniform u per value: u in [0, 1] up to float32 rounding at the
  # scale k of x + u, and spread like U(0, 1) (std 1/sqrt(12)), not bin centres.
  u = (y + 0.5) * k - x
  assert u.min() >= -4 * np.finfo(np.float32).eps * k
  assert u.max() <= 1 + 4 * np.finfo(np.float32).eps * k
  np.testing.assert_allclose(u.std(), 1 / np.sqrt(12), rtol=0.02)
  # The EBM sees the same draw for the same seed, another one for another seed.
  ebm = _RecordingModel()
  flow_lp2, ebm_lp, _ = image_eval.test_log_probs(config, None, ebm, 100, 0, False, True)
  assert flow_lp2 is None
  np.testing.assert_array_equal(np.concatenate(ebm.inputs), y.astype(np.float32))
  other = _RecordingModel()
  image_eval.test_log_probs(config, other, None, 100, 1, True, False)
  assert np.mean(np.concatenate(other.inputs) != y.astype(np.float32)) > 0.99


@pytest.mark.parametrize('levels,expected', [(17, [0, 16, 255]), (256, [0, 16, 255])])
def test_images_are_stretched_to_8_bits_for_inception(levels, expected):
  x = np.array([0, 1, 16] if levels == 17 else [0, 16, 255], np.uint8)
  from losses import flow as flow_losses
  assert flow_losses.to_8bit(x, levels).tolist() == expected


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('digits_run'))
  config = configs.for_dataset('digits', None, [
      'model.flow.steps_per_level=2', 'model.flow.width=16', 'train.batch_size=32', 'train.steps=6',
      'eval.every=1000', 'train.snapshot_every=3', 'train.checkpoint_every=3',
      'fce.mle_pretrain_steps=0', 'eval.fid_samples=0'])
  trainer_lib.Trainer(config, 'fce', workdir).run()
  return workdir


def _options(tmp_path, **kw):
  graph = str(tmp_path / 'graph.pb')
  if not os.path.exists(graph):
    helpers.write_tiny_inception_graph(graph)
  defaults = dict(fid_samples=40, inception_graph=graph, fid_stats='', is_samples=64,
                  batch_size=32, temperatures=(1.0, 0.5))
  defaults.update(kw)
  return image_eval.Options(**defaults)


@pytest.mark.slow
def test_image_eval_writes_one_report_per_checkpoint_and_skips_what_is_done(
    digits_run, tmp_path, monkeypatch):
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path / 'cache'))
  reports = eval_run.evaluate(digits_run, options=_options(tmp_path), which='all')
  assert sorted(reports) == [3, 6]
  report = reports[6]
  with open(os.path.join(digits_run, 'eval', 'report_6.json')) as f:
    assert json.load(f) == report
  assert 0 < report['flow_bpd']['value'] < 20 and report['flow_bpd']['num_examples'] == 360
  ebm = report['ebm_bpd']
  assert np.isfinite([ebm['learned_c'], ebm['importance_sampled'], ebm['log_z_minus_c_se']]).all()
  # The two EBM figures differ by exactly the estimated log(Z / e^c), in bits per dimension.
  # (float64 rounding of the two bits/dim figures, relative to their size, bounds its error.)
  np.testing.assert_allclose(ebm['importance_sampled'] - ebm['learned_c'],
                             ebm['log_z_minus_c'] / (64 * np.log(2)), rtol=1e-9,
                             atol=1e-12 * abs(ebm['learned_c']))
  # An ESS below 100 is flagged; the zero weights are counted.
  assert ebm['reliable'] == (ebm['effective_sample_size'] >= 100) and ebm['zero_weights'] == 0
  fid = report['fid']
  assert fid['fid'] > 0 and fid['num_samples'] == 40 and fid['standard']
  assert fid['reference'] == 'digits train split' and fid['kid'] is not None
  assert os.path.exists(fid['reference_stats'])  # cached for the next evaluation
  assert all(os.path.exists(p) for p in report['samples']) and len(report['samples']) == 2
  logged = {}
  for path in tf.io.gfile.glob(os.path.join(digits_run, 'tensorboard', '*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        if v.tag.startswith('eval/'):
          logged[(v.tag, event.step)] = v
  assert {('eval/flow_bpd', 6), ('eval/fid', 6), ('eval/ebm_bpd_importance_sampled', 3)} <= \
      set(logged)
  assert any(tag.startswith('eval/samples_T0.5') for tag, _ in logged)

  # Re-running computes nothing that is done: blocks with unchanged settings are kept as they are.
  calls = []
  monkeypatch.setattr(image_eval, 'test_log_probs', lambda *a: calls.append(a))
  monkeypatch.setattr(image_eval, 'flow_sample_features', lambda *a: calls.append(a))
  monkeypatch.setattr(image_eval.figures, 'sample_grid', lambda *a, **k: calls.append(a))
  again = eval_run.evaluate(digits_run, options=_options(tmp_path))
  assert not calls and again[6] == report


@pytest.mark.slow
def test_fid_without_the_graph_fails_in_one_message_keeping_the_bits_per_dim(
    digits_run, tmp_path, monkeypatch):
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.setattr(image_eval.fid_lib, 'TTUR_URL', 'http://127.0.0.1:9/none.tgz')
  options = _options(tmp_path, inception_graph=str(tmp_path / 'missing.pb'), seed=5)
  with pytest.raises(eval_run.EvalError, match='FID not computed.*--fid_samples=0'):
    eval_run.evaluate(digits_run, options=options)
  with open(os.path.join(digits_run, 'eval', 'report_6.json')) as f:
    report = json.load(f)
  assert report['flow_bpd']['settings']['seed'] == 5 and 'ebm_bpd' in report


def _write_initial_checkpoint(config, workdir, x):
  """A run folder holding the models at their data-dependent initialisation (no training step:
  the trainer's steps on these configs are tested in tests/train)."""
  flow = build.build_flow(config.model.flow, tuple(config.data.shape))
  ebm = build.build_ebm(config.model.ebm, tuple(config.data.shape), config.data.num_classes)
  flow.data_init(x)
  checkpoint = tf.train.Checkpoint(step=tf.Variable(1, dtype=tf.int64), flow=flow, ebm=ebm)
  tf.train.CheckpointManager(checkpoint, os.path.join(workdir, 'checkpoints'), 1).save(1)
  run_folder.check_workdir(workdir, config, 'fce', write=True)


@pytest.mark.slow
@pytest.mark.parametrize('dataset', ['svhn', 'cifar10', 'celeba'])
def test_full_size_configs_evaluate_end_to_end(dataset, tmp_path, monkeypatch):
  """The paper's configs (TFDS replaced by mock data) give a complete report."""
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path / 'cache'))
  workdir = str(tmp_path / 'run')
  with tfds.testing.mock_data(num_examples=6):
    config = configs.for_dataset(dataset)
    x, _ = pipeline.load_arrays(config, 'train')
    _write_initial_checkpoint(config, workdir, pipeline.dequantize_numpy(
        x, 256, np.random.default_rng(0)))
    report = eval_run.evaluate(workdir, options=_options(
        tmp_path, fid_samples=4, is_samples=4, batch_size=4, temperatures=(0.7,),
        grid_samples=4))[1]
  assert report['flow_bpd']['num_examples'] == 6 and np.isfinite(report['flow_bpd']['value'])
  assert np.isfinite(report['ebm_bpd']['importance_sampled'])
  assert np.isfinite(report['fid']['fid']) and report['fid']['num_samples'] == 4
  assert report['fid']['reference'] == f'{dataset} train split'


@pytest.mark.slow
def test_an_ebm_on_a_flow_base_is_importance_sampled_from_its_base(tmp_path):
  """With g = 0 the EBM is exactly its base: log Z - c = -c, and every weight is equal (ESS
  = N), whatever the (different) flow of the run."""
  config = configs.for_dataset('digits', None, ['model.flow.width=8',
                                                'model.flow.steps_per_level=1',
                                                'model.ebm.base=flow'])
  shape = tuple(config.data.shape)
  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, 0, config.model.flow)
  x = tf.constant(pipeline.BatchSource(config, 16, [flow.latent_dim]).batch(0)['x'])
  flow.data_init(x)
  ebm.base.data_init(x * 0.5)  # another flow
  for w in ebm.network.weights:
    w.assign(tf.zeros_like(w))
  ebm.set_log_normalizer([0.7])
  options = image_eval.Options(fid_samples=0, is_samples=64, batch_size=32, temperatures=(),
                               ais_steps=(2, 3), ais_chains=4, ais_reverse_steps=4)
  report = image_eval.evaluate(str(tmp_path), config, 'fce', flow, ebm, 1, options)
  block = report['ebm_bpd']
  assert block['settings']['proposal'] == 'ebm_base'
  np.testing.assert_allclose(block['log_z_minus_c'], -0.7, atol=1e-5)
  np.testing.assert_allclose(block['effective_sample_size'], 64, rtol=1e-6)
  # AIS anneals in the base's latent space towards exp(g - c) = e^-0.7: every chain's
  # log-weight is -0.7 whatever its path.
  # Reverse AIS from the chains' states gives the same: both sides of the sandwich meet.
  ais = block['ais']
  assert block['settings']['ais_steps'] == [2, 3] and ais['chains'] == 4 and ais['steps'] == 3
  np.testing.assert_allclose(ais['log_z_minus_c'], -0.7, atol=1e-5)
  np.testing.assert_allclose(ais['bpd'], block['importance_sampled'], atol=1e-6)
  np.testing.assert_allclose(ais['upper_log_z_minus_c'], -0.7, atol=1e-5)
  np.testing.assert_allclose(ais['gap_bpd'], 0., atol=1e-6)
  assert ais['upper_approximate'] and ais['reverse_start']['hmc_steps'] == 4
  assert [r['steps'] for r in ais['ladder']] == [2, 3] and ais['settled']
  assert {'eval/ebm_bpd_ais_lower', 'eval/ebm_bpd_ais_upper'} <= set(image_eval.scalars(report))


@pytest.mark.parametrize('is_bpd, behind', [(4.130, True), (4.041, False), (4.000, False)])
def test_ais_behind_importance_sampling_is_not_settled(is_bpd, behind):
  """Both estimate log Z from below, so AIS well under importance sampling has missed mass: its
  ladder is not settled, whatever its rungs say (held-out photograph, seed 1: AIS 4.082,
  importance sampling 4.110 +- 0.013)."""
  block = {'importance_sampled': is_bpd, 'importance_sampled_se': 0.01,
           'ais': {'bpd': 4.040, 'bpd_se': 0.004, 'settled': True}}
  image_eval._check_against_importance_sampling(block)
  assert block['ais']['behind_importance_sampling'] is behind
  assert block['ais']['settled'] is (not behind)
