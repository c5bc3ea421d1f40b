"""Config values that make no sense are refused before a run writes anything."""

import os
import re

import pytest

import configs
from configs import checks
from train import trainer as trainer_lib

BAD = [
    ('train.checkpoint_every=0', 'train.checkpoint_every=0'),
    ('train.log_every=0', 'train.log_every=0'),
    ('train.steps=-5', 'train.steps=-5'),
    ('optim.ebm_lr=-0.001', 'optim.ebm_lr=-0.001'),
    ('optim.flow_mle_lr=0.', 'optim.flow_mle_lr=0.0'),
    ('train.batch_size=0', 'train.batch_size=0'),
    ('data.test_fraction=1.', 'data.test_fraction=1.0'),
    ('optim.ebm_beta1=1.5', 'optim.ebm_beta1=1.5'),
    ('train.nce_nu=0', 'train.nce_nu=0'),
    ('train.ebm_aux_noise=base', "train.ebm_aux_noise='base' (needs model.ebm.base='flow'"),
    ('train.ebm_aux_noise=uniform', "train.ebm_aux_noise='uniform' (must be 'gaussian' or"),
    ('model.ebm.support=ball', "model.ebm.support='ball' (must be 'none' or 'cube')"),
]


@pytest.mark.parametrize('assignment,named', BAD)
def test_values_that_make_no_sense_are_refused(assignment, named):
  with pytest.raises(ValueError, match='make no sense: .*' + re.escape(named)):
    configs.for_dataset('digits', None, [assignment])


def test_a_non_integer_for_an_integer_field_is_refused_and_a_whole_float_taken():
  with pytest.raises(ValueError, match="'train.steps' is an integer; got '1.5'"):
    configs.for_dataset('digits', None, ['train.steps=1.5'])
  assert configs.for_dataset('digits', None, ['train.steps=1e3']).train.steps == 1000


def test_every_shipped_config_passes():
  for name in configs.CONFIGS:
    assert not checks.problems(configs.get_config(name)), name


def test_the_trainer_refuses_before_writing_anything(tmp_path):
  config = configs.for_dataset('digits')
  config.train.log_every = 0  # set directly, past for_dataset's check
  with pytest.raises(ValueError, match='train.log_every=0'):
    trainer_lib.Trainer(config, 'fce', str(tmp_path / 'run'))
  config = configs.for_dataset('digits', None, ['train.batch_size=5000'])
  with pytest.raises(trainer_lib.TrainingError, match='larger than the 1437 training examples'):
    trainer_lib.Trainer(config, 'fce', str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
