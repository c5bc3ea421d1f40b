"""The mode table (train/modes.py) is what the trainer and evaluation read, for every mode."""

import os

import numpy as np
import pytest

import configs
from configs import overrides
from eval import run as eval_run
from models import glow
from models import noise as noise_lib
from train import modes
from train import trainer as trainer_lib


def _config(**fields):
  config = configs.for_dataset('2spirals')
  overrides.apply(config, ['model.flow.steps_per_level=2', 'model.flow.width=8',
                           'train.batch_size=32',
                           'train.steps=3', 'train.log_every=1', 'eval.every=1000',
                           'ssl.labels_per_class=2',
                           'fce.schedule.max_ebm_updates=1'] +  # fce, ssl: EBM, flow, EBM
                  [f'{k}={v}' for k, v in fields.items()])
  return config


def test_unknown_mode_lists_the_valid_ones():
  with pytest.raises(ValueError, match='valid: mle, nce, fce, ssl, nt, nt_nce'):
    modes.get('gan')


def test_configure_returns_a_copy_with_what_the_mode_implies():
  config = _config()
  ssl = modes.get('ssl').configure(config)
  assert ssl.model.ebm.conditional and not config.model.ebm.conditional
  assert modes.get('nce').configure(config, init_flow='runs/x').nce.noise == 'flow'
  assert modes.get('nce').configure(config).nce.noise == 'gaussian'
  assert modes.get('fce').configure(config, init_flow='runs/x').nce.noise == 'gaussian'
  assert modes.get('nt_nce').configure(config, init_flow='runs/x').nce.noise == 'flow'
  assert modes.get('fce').configure(config).fce.mle_pretrain_steps == 0


@pytest.mark.slow
@pytest.mark.parametrize('mode', modes.NAMES)
def test_every_mode_trains_what_its_record_says_and_eval_reports_those_models(tmp_path, mode):
  spec = modes.get(mode)
  workdir = str(tmp_path / mode)
  init_flow = None
  if spec.tilt:  # NT-EBM corrects a pretrained flow
    init_flow = str(tmp_path / 'backbone')
    trainer_lib.Trainer(_config(), 'mle', init_flow).run()
  run = trainer_lib.Trainer(_config(**{'nt.hmc_steps': 2}), mode, workdir, init_flow=init_flow)
  before = {name: [v.numpy() for v in model.trainable_variables]
            for name, model in (('ebm', run.ebm), ('flow', run.flow))}
  run.run()
  trained = {spec.model_of(o) for o in spec.optimizers}
  for name, model in (('ebm', run.ebm), ('flow', run.flow)):
    moved = any(not np.array_equal(a, b.numpy())
                for a, b in zip(before[name], model.trainable_variables))
    assert moved == (name in trained), name
  # The noise is set before anything reads it, and is the record's.
  expected_noise = {None: type(None), 'fixed': noise_lib.GaussianNoise, 'flow': glow.Flow}
  if spec.tilt and spec.noise:
    expected_noise['fixed'] = glow.Flow  # the backbone itself
  assert isinstance(run.noise, expected_noise[spec.noise])
  assert sorted(run.state.learning_rates()) == sorted(f'learning_rate/{o}' for o in spec.optimizers)

  points = str(tmp_path / 'points.npy')
  np.save(points, np.zeros((3, 2), np.float32))
  metrics = eval_run.evaluate(workdir, points)
  has_ebm, has_flow = spec.trains_ebm, spec.has_flow(run.config)
  for name in ('density.npz', 'points_logp.npz'):
    arrays = np.load(os.path.join(workdir, 'eval', name))
    assert ('ebm_logp' in arrays) == has_ebm and ('flow_logp' in arrays) == has_flow, name
  assert ('log_normalizer' in metrics) == has_ebm
  if spec.conditional_ebm:
    assert len(metrics['log_normalizer']) == 2 and 'class_accuracy' in metrics
