import pytest

import configs


@pytest.mark.parametrize('name', configs.CONFIGS)
def test_every_config_loads(name):
  config = configs.get_config(name)
  assert config.data.name
  assert config.model.flow.coupling in ('additive', 'affine')


def test_paper_table7_settings():
  for name, k in (('svhn', 8), ('celeba', 16), ('cifar10', 32)):
    flow = configs.get_config(name).model.flow
    assert (flow.levels, flow.steps_per_level, flow.width, flow.coupling) == (3, k, 512, 'additive')
  flow = configs.get_config('toy2d').model.flow
  assert (flow.levels, flow.steps_per_level, flow.width, flow.coupling) == (1, 10, 128, 'affine')


def test_toy2d_paper_is_the_paper_rule_on_the_toy2d_models():
  paper, ours = configs.get_config('toy2d_paper'), configs.get_config('toy2d')
  assert paper.train.batch_size == ours.train.batch_size
  assert (paper.model.flow.scale_floor, ours.model.flow.scale_floor) == (0., 0.01)
  assert (paper.model.ebm.first_bias, ours.model.ebm.first_bias) == ('zeros', 'half')
  assert (paper.optim.ebm_lr_anneal, ours.optim.ebm_lr_anneal) == (0., 0.3)
  assert (paper.optim.ebm_clip_norm, ours.optim.ebm_clip_norm) == (0., 100.)
  assert (paper.model.ebm.width, ours.model.ebm.width) == (128, 256)  # FCE Table 5: fc128
  paper.model.flow.scale_floor = ours.model.flow.scale_floor
  paper.model.ebm.first_bias = ours.model.ebm.first_bias
  paper.model.ebm.width = ours.model.ebm.width
  assert paper.model == ours.model
  assert (paper.optim.flow_optimizer, paper.optim.flow_lr) == ('adamax', 1e-5)
  assert paper.train.schedule.threshold == 0.5
  assert (paper.train.schedule.max_flow_updates, paper.train.schedule.max_ebm_updates) == (0, 0)
  assert (paper.train.flow_mle_weight, paper.optim.flow_clip_norm) == (0., 0.)
  assert paper.train.ebm_aux_nce_weight == 0. and ours.train.ebm_aux_nce_weight == 1.


def test_unknown_config_names_the_valid_ones():
  with pytest.raises(ValueError, match="Unknown config 'imagenet'; valid configs: toy2d, toy2d_paper, svhn"):
    configs.get_config('imagenet')



def test_reading_a_misspelled_field_fails_loudly():
  with pytest.raises(AttributeError):
    _ = configs.get_config('svhn').model.flow.widht


def test_builtin_dataset_list_matches_the_sources():
  from data import images
  from data import toys
  assert configs.DATASETS == toys.ALL + tuple(images.TFDS_NAMES) + ('digits',)


def test_for_dataset_picks_the_dataset_config_and_user_shapes(tmp_path):
  import numpy as np
  assert configs.for_dataset('cifar10').model.flow.steps_per_level == 32
  assert configs.for_dataset('2spirals').data.num_classes == 2
  np.save(tmp_path / 'v.npy', np.zeros((4, 5), np.float32))
  config = configs.for_dataset(f'npy:{tmp_path}/v.npy', assignments=['train.steps=3'])
  assert tuple(config.data.shape) == (5,) and config.train.steps == 3
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
    configs.for_dataset('imagenet')


def test_celeba64_is_nt_ebm_a3_and_table5():
  config = configs.for_dataset('celeba64')
  assert tuple(config.data.shape) == (64, 64, 3) and config.data.name == 'celeba64'
  flow = config.model.flow
  assert (flow.levels, flow.steps_per_level, flow.width, flow.coupling) == (3, 16, 256, 'additive')
  assert config.model.ebm.arch == 'lipswish'
  assert (config.optim.ebm_lr, config.optim.ebm_beta1) == (1e-5, 0.99)


@pytest.mark.parametrize('dataset,nt_lr', [('svhn', 5e-5), ('cifar10', 5e-5), ('mnist', 5e-5),
                                           ('celeba', 1e-5), ('celeba64', 1e-5)])
def test_nt_ebm_settings_come_with_the_mode_and_yield_to_the_command_line(dataset, nt_lr):
  nt = configs.for_dataset(dataset, mode='nt')
  assert (nt.model.ebm.arch, nt.optim.ebm_lr, nt.optim.ebm_beta1) == ('lipswish', nt_lr, 0.99)
  assert (nt.train.batch_size, nt.train.steps) == (64, 40000)  # NT-EBM A.4
  nce = configs.for_dataset(dataset, mode='nt_nce')
  assert (nce.optim.ebm_lr, nce.train.batch_size, nce.train.steps) == (1e-5, 128, 80000)
  fce = configs.for_dataset(dataset, mode='fce')
  assert fce.optim.ebm_lr == configs.get_config(dataset).optim.ebm_lr
  assert configs.for_dataset(dataset, None, ['optim.ebm_lr=0.001'], 'nt').optim.ebm_lr == 1e-3


def test_2d_ssl_comes_with_vat_and_the_paper_config_without():
  ssl = configs.for_dataset('2spirals', mode='ssl')
  assert (ssl.train.vat_weight, ssl.train.vat_epsilon) == (10., 0.3)
  assert configs.for_dataset('2spirals', mode='fce').train.vat_weight == 0.
  assert configs.for_dataset('2spirals', 'toy2d_paper', mode='ssl').train.vat_weight == 0.


@pytest.mark.parametrize('name', configs.IMAGE_CONFIGS)
def test_image_fce_defaults_to_the_measured_setting_and_the_paper_keeps_its_own(name):
  """fce on images gets configs.base.PHOTO_FCE or DIGITS_FCE (docs/image_fce); `<name>_paper` is
  the same config with FCE as published, and keeps the other modes' defaults (NT-EBM's for nt)."""
  ours = configs.for_dataset(name, mode='fce')
  paper = configs.for_dataset(name, f'{name}_paper', mode='fce')
  assert ours.model.ebm.base == 'flow' and ours.train.schedule.max_flow_updates == 1
  assert (ours.model.ebm.support, ours.train.schedule.metric) == ('cube', 'value')
  assert (ours.train.schedule.window, ours.train.fce_init_steps) == (10, 500)
  edge = name in ('digits', 'mnist')  # mostly background: DIGITS_FCE and the cube Glow
  assert ours.optim.flow_lr == (1e-5 if edge else 1e-6) and paper.optim.flow_lr == 1e-5
  assert (paper.model.ebm.base, paper.model.ebm.support) == ('none', 'none')
  assert (paper.train.schedule.metric, paper.train.schedule.max_flow_updates) == ('accuracy', 0)
  assert paper.train.fce_init_steps == 0
  # The paper's Glow on R^D, in every mode (an mle run must match the fce run it starts);
  # digits and MNIST keep their samples in the pixel range.
  assert (ours.model.flow.support, paper.model.flow.support) == ('cube' if edge else 'none', 'none')
  assert configs.for_dataset(name, f'{name}_paper', mode='mle').model.flow.support == 'none'
  paper.model.flow.support = ours.model.flow.support
  assert paper.data.name == name and paper.model.flow == ours.model.flow
  assert configs.paper_config(name) == f'{name}_paper'
  assert configs.mode_defaults(f'{name}_paper', 'nt') == configs.mode_defaults(name, 'nt')
  assert configs.for_dataset(name, mode='ssl').model.ebm.base == 'none'  # ssl: the paper's
