import json

import pytest

import configs
from configs import base


@pytest.mark.parametrize('name', configs.CONFIGS)
def test_every_config_loads(name):
  config = configs.get_config(name)
  assert config.data.name
  assert config.model.flow.coupling in ('additive', 'affine')


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
  np.save(tmp_path / 'v.npy', np.arange(20, dtype=np.float32).reshape(4, 5))
  config = configs.for_dataset(f'npy:{tmp_path}/v.npy', assignments=['train.steps=3'])
  assert tuple(config.data.shape) == (5,) and config.train.steps == 3
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
    configs.for_dataset('imagenet')


@pytest.mark.parametrize('dataset', ['svhn', 'cifar10', 'mnist', 'celeba', 'celeba64'])
def test_nt_ebm_settings_come_with_the_mode_and_yield_to_the_command_line(dataset):
  """Precedence: the mode's settings over the config's, --set over both; other modes keep the
  config's own."""
  plain, nt = configs.for_dataset(dataset), configs.for_dataset(dataset, mode='nt')
  assert nt.model.ebm.arch == 'lipswish' and nt.optim.ebm_beta1 == 0.99  # NT-EBM A.4
  assert nt.to_dict() != plain.to_dict()
  assert configs.get_config(dataset, 'nt').to_dict() == nt.to_dict()
  assert configs.for_dataset(dataset, mode='nt_nce').to_dict() != nt.to_dict()
  assert configs.for_dataset(dataset, None, ['optim.ebm_lr=0.001'], 'nt').optim.ebm_lr == 1e-3
  assert configs.for_dataset(dataset, mode='mle').to_dict() == plain.to_dict()


def test_2d_ssl_comes_with_vat_and_the_paper_config_without():
  ssl = configs.for_dataset('2spirals', mode='ssl')
  assert ssl.ssl.vat_weight > 0
  assert configs.for_dataset('2spirals', mode='fce').ssl.vat_weight == 0.
  assert configs.for_dataset('2spirals', 'toy2d_paper', mode='ssl').ssl.vat_weight == 0.
  assert configs.for_dataset('2spirals', None, ['ssl.vat_weight=0.'], 'ssl').ssl.vat_weight == 0


@pytest.mark.parametrize('name', configs.IMAGE_CONFIGS)
def test_image_fce_defaults_to_the_measured_setting_and_the_paper_keeps_its_own(name):
  """fce on images gets configs.base.fce_on_images (docs/image_fce); `<name>_paper` is the same
  config with FCE as published, and keeps the other modes' settings (NT-EBM's for nt)."""
  ours = configs.for_dataset(name, mode='fce')
  paper = configs.for_dataset(name, f'{name}_paper', mode='fce')
  assert ours.model.ebm.base == 'flow' and ours.model.ebm.support == 'cube'
  assert (paper.model.ebm.base, paper.model.ebm.support) == ('none', 'none')
  assert paper.fce.schedule.to_dict() == base.get_base_config().fce.schedule.to_dict()
  assert paper.fce.init_steps == 0 and paper.optim.flow_lr == 1e-5  # FCE Sec. 4
  # The paper's Glow on R^D, in every mode (an mle run must match the fce run it starts);
  # digits and MNIST keep their samples in the pixel range.
  edge = name in ('digits', 'mnist')
  assert (ours.model.flow.support, paper.model.flow.support) == ('cube' if edge else 'none', 'none')
  assert configs.for_dataset(name, f'{name}_paper', mode='mle').model.flow.support == 'none'
  paper.model.flow.support = ours.model.flow.support
  assert paper.data.name == name and paper.model.flow == ours.model.flow
  assert configs.paper_config(name) == f'{name}_paper' == configs.paper_config(f'{name}_paper')
  assert (configs.get_config(f'{name}_paper', 'nt').optim.to_dict() ==
          configs.get_config(name, 'nt').optim.to_dict())
  assert configs.for_dataset(name, mode='ssl').model.ebm.base == 'none'  # ssl: the paper's


def test_paper_variant_comes_after_the_mode_and_before_the_command_line():
  """The documented precedence: base -> module -> mode -> paper variant -> --set."""
  assert configs.for_dataset('svhn', 'svhn_paper', mode='fce').model.ebm.base == 'none'
  assert configs.for_dataset('svhn', 'svhn_paper', ['model.ebm.base=flow'],
                             'fce').model.ebm.base == 'flow'
  assert configs.paper_config('toy2d') == 'toy2d_paper' == configs.paper_config('toy2d_paper')
  assert configs.paper_config('smoke') == 'smoke'


# A few resolved values, known before the configs became code over the ConfigDict (the five
# steps of configs/__init__.py); each (config, dataset, mode) shows one step's effect.
RESOLVED = [
    ('toy2d', '2spirals', 'ssl', 'ssl.vat_epsilon', 0.3),  # the mode
    ('toy2d_paper', '2spirals', 'ssl', 'ssl.vat_epsilon', 1.),  # the variant over the mode
    ('toy2d_paper', '8gaussians', 'fce', 'optim.flow_optimizer', 'adamax'),
    ('toy2d_paper', '8gaussians', 'fce', 'fce.flow_nll_warn', 0.5),  # not a departure: kept
    ('svhn', 'svhn', 'fce', 'optim.flow_lr', 1e-6),
    ('mnist', 'mnist', 'fce', 'optim.flow_lr', 1e-5),
    ('cifar10', 'cifar10', 'nt_nce', 'train.batch_size', 128),
    ('celeba64_paper', 'celeba64', 'fce', 'optim.ebm_beta1', 0.99),  # NT-EBM's, not ours
    ('celeba64_paper', 'celeba64', 'fce', 'optim.ebm_lr', 1e-5),
    ('digits_paper', 'digits', 'fce', 'model.flow.support', 'none'),
    ('digits_paper', 'digits', 'nce', 'optim.ebm_beta1', 0.9),  # FCE's Adam
    ('mnist_paper', 'mnist', 'nt', 'optim.ebm_beta1', 0.99),  # NT-EBM's Adam
]


@pytest.mark.parametrize('name,dataset,mode,field,value', RESOLVED)
def test_resolved_values(name, dataset, mode, field, value):
  node = configs.for_dataset(dataset, name, mode=mode)
  for part in field.split('.'):
    node = node[part]
  assert node == value and type(node) is type(value)


# Fields added since configs.RENAMED's moves: a run saved before them lacks them
# (configs.with_defaults gives them their defaults).
_ADDED_SINCE_THE_MOVES = ('fce.flow_passes',)


def _old_layout(config_dict):
  """`config_dict` laid out as a run saved before configs.RENAMED's moves would hold it."""
  import copy  # pylint: disable=g-import-not-at-top
  old = copy.deepcopy(config_dict)
  for key in _ADDED_SINCE_THE_MOVES:
    section, leaf = key.split('.')
    del old[section][leaf]
  for old_key, new_key in reversed(list(configs.RENAMED.items())):
    *new_path, new_leaf = new_key.split('.')
    parent = old
    for part in new_path:
      parent = parent[part]
    value = parent.pop(new_leaf)
    *old_path, old_leaf = old_key.split('.')
    node = old
    for part in old_path:
      node = node.setdefault(part, {})
    node[old_leaf] = value
  for section in ('eval', 'fce', 'nce', 'ssl', 'nt'):
    assert not old.pop(section), section  # every field of the new sections came from train
  return old


@pytest.mark.parametrize('name,mode', [('toy2d', 'ssl'), ('svhn', 'fce'), ('mnist', 'nt')])
def test_a_config_saved_under_the_old_names_loads_under_the_new(name, mode):
  """An old run's config.json (every moved field under its old name, with values other than
  the defaults) reads back as the config it was saved from."""
  config = configs.get_config(name, mode)
  config.nt.hmc_steps, config.fce.schedule.window, config.eval.every = 3, 4, 5
  saved = json.loads(config.to_json())  # as config.json holds it
  old = _old_layout(saved)
  assert 'hmc_steps' in old['train'] and old['train']['schedule']['window'] == 4
  assert json.loads(configs.with_defaults(old).to_json()) == saved
