import pytest

import configs
from configs import overrides


def test_overrides_are_typed_by_the_field_they_replace():
  config = configs.get_config('toy2d')
  overrides.apply(config, ['train.steps=7', 'optim.ebm_lr=1', 'model.flow.coupling=additive',
                           'fce.schedule.threshold=0.6'])
  assert config.train.steps == 7
  assert config.optim.ebm_lr == 1. and isinstance(config.optim.ebm_lr, float)
  assert config.model.flow.coupling == 'additive'
  assert config.fce.schedule.threshold == 0.6


@pytest.mark.parametrize('assignment,match', [
    ('train.stesp=3', "Unknown config field 'train.stesp'; fields here: .*steps"),
    ('trian.steps=3', "no section 'trian'"),
    ('train.steps=many', "'train.steps' is int; got 'many'"),
    ('train.steps', 'not of the form key=value'),
    ('train=5', "'train' is a section, not a field: set one of its fields, e.g. train\\."),
    ('train.steps.every=5', "Unknown config field 'train.steps.every': no section 'every'|"
     "Unknown config field 'train.steps.every'\\.$"),
    ('data.shape=5', "'data.shape' is (tuple|list); got '5'"),
])
def test_bad_overrides_are_refused(assignment, match):
  with pytest.raises(ValueError, match=match):
    overrides.apply(configs.get_config('toy2d'), [assignment])


def test_old_field_names_are_taken_under_their_new_ones():
  """configs.RENAMED: a field moved out of `train` (and a field of a moved section) is set
  under its new name."""
  config = configs.get_config('toy2d')
  overrides.apply(config, ['train.hmc_steps=5', 'train.schedule.threshold=0.6',
                           'train.eval_every=7'])
  assert config.nt.hmc_steps == 5 and config.fce.schedule.threshold == 0.6
  assert config.eval.every == 7
  assert 'hmc_steps' not in config.train and 'schedule' not in config.train
