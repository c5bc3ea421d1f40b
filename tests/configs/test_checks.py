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
    ('nce.nu=0', 'nce.nu=0'),
    ('fce.ebm_aux_noise=base', "fce.ebm_aux_noise='base' (needs model.ebm.base='flow'"),
    ('fce.ebm_aux_noise=uniform', "fce.ebm_aux_noise='uniform' (must be 'gaussian' or"),
    ('fce.flow_passes=three', "fce.flow_passes='three' (must be one of 'auto', 'one', 'two')"),
    ('model.ebm.support=ball', "model.ebm.support='ball' (must be 'none' or 'cube')"),
    ('model.flow.support=ball', "model.flow.support='ball' (must be 'none' or 'cube')"),
    ('model.ebm.base=tilt', "model.ebm.base='tilt' (must be 'none' or 'flow')"),
    ('model.flow.coupling=spline', "model.flow.coupling='spline' (must be 'additive' or "),
    ('optim.flow_optimizer=rmsprop',
     "optim.flow_optimizer='rmsprop' (must be one of 'adamax', 'adam', 'sgd')"),
    ('model.ebm.activation=tanh',
     "model.ebm.activation='tanh' (must be one of 'lrelu', 'swish', 'softplus')"),
    ('model.ebm.first_bias=random', "model.ebm.first_bias='random' (must be one of 'zeros', "),
    ('model.ebm.first_bias=data', "model.ebm.first_bias='data' is for the mlp EBM (use "),
    ('model.ebm.width=256', "model.ebm.width=256 is for the mlp EBM; 'conv' has its own"),
    ('model.ebm.arch=mlp', "model.ebm.arch='mlp' on image data (it takes vectors (D,))"),
    ('data.shape=(4, 4)', 'data.shape=(4, 4) (must be vectors (D,) or images (H, W, C))'),
    ('fce.schedule.threshold=1.', 'fce.schedule.threshold=1.0 (must be in (0, 1))'),
    ('fce.schedule.value_threshold=0.2', 'fce.schedule.value_threshold=0.2 (must be below 0'),
    ('fce.schedule.window=0', 'fce.schedule.window=0 (must be an integer >= 1)'),
    ('fce.schedule.hysteresis=-0.1', 'fce.schedule.hysteresis=-0.1 (must be >= 0)'),
    ('fce.schedule.max_ebm_updates=-1', 'fce.schedule.max_ebm_updates=-1 (must be >= 0)'),
    ('fce.schedule.metric=loss', "fce.schedule.metric='loss' (must be 'accuracy' or 'value')"),
]


@pytest.mark.parametrize('assignment,named', BAD)
def test_values_that_make_no_sense_are_refused(assignment, named):
  with pytest.raises(ValueError, match='make no sense: .*' + re.escape(named)):
    configs.for_dataset('digits', None, [assignment])


def test_an_unknown_name_is_named_alone_not_blamed_on_the_fields_that_depend_on_it():
  """Issue 35: toy2d's first_bias='half' and width=256 are for the mlp EBM; an unknown
  architecture is reported as such, not as a misplaced first_bias."""
  with pytest.raises(ValueError) as error:
    configs.for_dataset('8gaussians', None, ['model.ebm.arch=foo'])
  assert str(error.value) == (
      "Config values that make no sense: model.ebm.arch='foo' (must be one of 'mlp', 'conv', "
      "'lipswish', 'conv_small', 'conv_large').")
  with pytest.raises(ValueError, match="first_bias='half' is for the mlp EBM.*; model.ebm.width"):
    configs.for_dataset('8gaussians', None, ['model.ebm.arch=conv'])


def test_an_unknown_nce_noise_is_refused_not_read_as_the_gaussian():
  """Issue 35: the trainer takes any nce_noise but 'flow' for the Gaussian."""
  with pytest.raises(ValueError, match=re.escape(
      "nce.noise='banana' (must be 'gaussian' or 'flow')")):
    configs.for_dataset('8gaussians', None, ['nce.noise=banana'])


def test_fields_for_another_architecture_and_a_conditional_ebm_without_labels_are_refused():
  with pytest.raises(ValueError, match=re.escape(
      "model.ebm.activation='swish' is for the mlp and conv EBMs; 'lipswish' has its own")):
    configs.for_dataset('digits', None, ['model.ebm.arch=lipswish', 'model.ebm.activation=swish'])
  with pytest.raises(ValueError, match=re.escape("model.ebm.arch='conv' on vector data")):
    configs.for_dataset('8gaussians', 'toy2d_paper', ['model.ebm.arch=conv'])
  with pytest.raises(ValueError, match=re.escape('model.ebm.conditional=True (needs labeled')):
    configs.for_dataset('8gaussians', None, ['model.ebm.conditional=True'])
  assert configs.for_dataset('2spirals', None, ['model.ebm.conditional=True']).model.ebm.conditional


def test_a_non_integer_for_an_integer_field_is_refused_and_a_whole_float_taken():
  with pytest.raises(ValueError, match="'train.steps' is an integer; got '1.5'"):
    configs.for_dataset('digits', None, ['train.steps=1.5'])
  assert configs.for_dataset('digits', None, ['train.steps=1e3']).train.steps == 1000


@pytest.mark.parametrize('mode', [None, 'mle', 'nce', 'fce', 'ssl', 'nt', 'nt_nce'])
def test_every_shipped_config_passes_in_every_mode(mode):
  for name in configs.CONFIGS:
    assert not checks.problems(configs.get_config(name, mode)), name


@pytest.mark.slow
def test_the_trainer_refuses_before_writing_anything(tmp_path):
  config = configs.for_dataset('digits')
  config.train.log_every = 0  # set directly, past for_dataset's check
  with pytest.raises(ValueError, match='train.log_every=0'):
    trainer_lib.Trainer(config, 'fce', str(tmp_path / 'run'))
  config = configs.for_dataset('digits', None, ['train.batch_size=5000'])
  with pytest.raises(trainer_lib.TrainingError, match='larger than the 1437 training examples'):
    trainer_lib.Trainer(config, 'fce', str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
