"""Configs are data: one module per dataset family, each with `get_config()`.

A config resolves in five steps, each editing the ConfigDict the one before left:
  1. configs/base.py `get_base_config()`: the defaults every config shares;
  2. configs/<module>.py `get_config()`: what its datasets change;
  3. the module's `for_mode(config, mode)`, if it has one: its settings for one training mode
     (NT-EBM's optimiser for nt, the measured FCE setting on images for fce, VAT for 2D ssl);
  4. the variant of the config's name: `<module>_paper` reverts every departure from the papers
     that fits (configs/departures.py), after the mode's settings, so it wins over them;
  5. `--set key=value` overrides (configs/overrides.py).
Then configs/checks.py refuses values that make no sense, with one message.
"""

import importlib
import json

IMAGE_CONFIGS = ('svhn', 'cifar10', 'celeba', 'celeba64', 'mnist', 'digits')
# Config name -> (module of configs/, whether it is the papers' variant: configs.departures.paper
# after the mode's settings).
_NAMES = {'toy2d': ('toy2d', False), 'toy2d_paper': ('toy2d', True),
          **{name: (name, False) for name in IMAGE_CONFIGS}, 'smoke': ('smoke', False),
          **{f'{name}_paper': (name, True) for name in IMAGE_CONFIGS}}
CONFIGS = tuple(_NAMES)
# Built-in datasets (besides npy:PATH, folder:PATH and npz:PATH): the 2D toys of FCE Figure 1,
# the 2D benchmark suite (data/suite2d.py), the TFDS image sets and the shipped digits.
DATASETS = ('8gaussians', '2spirals', 'checkerboard', 'rings', 'pinwheel', 'moons',
            'unequal2', 'sharp_broad', 'aniso_rotated', 'grid25', 'student_t', 'sine', 'banana',
            'far_mode', 'ring_blob', 'cross', 'mixed', 'unequal8', 'spiral_arms',
            'svhn', 'cifar10', 'celeba', 'celeba64', 'mnist', 'digits')


# Fields renamed or moved since runs were first saved: old dotted path -> new one (a section
# moves whole). A saved config.json is read, and `--set` takes, either name.
RENAMED = {
    'model.flow.steps': 'model.flow.steps_per_level',
    # 2026-12-07, the train section split by concern into train, eval, fce, nce, ssl and nt:
    'train.eval_every': 'eval.every', 'train.eval_examples': 'eval.examples',
    'train.fid_samples': 'eval.fid_samples', 'train.eval_is_samples': 'eval.is_samples',
    'train.fid_network': 'eval.fid_network', 'train.inception_graph': 'eval.inception_graph',
    'train.ebm_updates': 'fce.ebm_updates', 'train.mle_pretrain_steps': 'fce.mle_pretrain_steps',
    'train.fce_init_steps': 'fce.init_steps', 'train.flow_mle_weight': 'fce.flow_mle_weight',
    'train.ebm_f_penalty': 'fce.ebm_f_penalty',
    'train.ebm_aux_nce_weight': 'fce.ebm_aux_nce_weight',
    'train.ebm_aux_noise': 'fce.ebm_aux_noise', 'train.flow_nll_warn': 'fce.flow_nll_warn',
    'train.schedule': 'fce.schedule',
    'train.nce_noise': 'nce.noise', 'train.nce_noise_std': 'nce.noise_std',
    'train.nce_nu': 'nce.nu',
    'train.ssl_labels_per_class': 'ssl.labels_per_class',
    'train.ssl_labeled_batch_size': 'ssl.labeled_batch_size',
    'train.vat_weight': 'ssl.vat_weight', 'train.vat_epsilon': 'ssl.vat_epsilon',
    'train.hmc_steps': 'nt.hmc_steps', 'train.hmc_leapfrog_steps': 'nt.hmc_leapfrog_steps',
    'train.hmc_step_size': 'nt.hmc_step_size', 'train.hmc_target_accept': 'nt.hmc_target_accept',
}


def current_name(key):
  """The dotted config path `key` under today's names (RENAMED; a field under a moved section
  moves with it); `key` itself if it was never renamed."""
  for old, new in RENAMED.items():
    if key == old or key.startswith(old + '.'):
      return new + key[len(old):]
  return key


def with_defaults(saved):
  """A saved config (a dict, e.g. from a run's config.json) with the fields added to the
  configs since it was saved set to their defaults, which reproduce the code it ran with, and
  renamed or moved fields under their new names."""
  from configs import base  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  saved = json.loads(json.dumps(saved))  # a deep copy
  for old, new in RENAMED.items():
    *old_path, old_leaf = old.split('.')
    parent = _section(saved, old_path)
    if parent is not None and old_leaf in parent:
      *new_path, new_leaf = new.split('.')
      _section(saved, new_path, create=True).setdefault(new_leaf, parent.pop(old_leaf))
  config = base.get_base_config().to_dict()
  _merge(config, saved)
  return ml_collections.ConfigDict(config)


def _section(d, path, create=False):
  for key in path:
    if not isinstance(d.get(key), dict):
      if not create:
        return None
      d[key] = {}
    d = d[key]
  return d


def _merge(into, update):
  for k, v in update.items():
    if isinstance(v, dict) and isinstance(into.get(k), dict):
      _merge(into[k], v)
    else:
      into[k] = v


def get_config(name, mode=None):
  """The config `name` for training in `mode` (None: no mode's settings), steps 1-4 of the
  module docstring; an unknown name raises a ValueError listing the valid ones."""
  module, _ = _resolve(name)
  return _specialise(module.get_config(), name, mode)


def _resolve(name):
  if name not in _NAMES:
    raise ValueError(f'Unknown config {name!r}; valid configs: {", ".join(CONFIGS)}.')
  module, paper = _NAMES[name]
  return importlib.import_module(f'configs.{module}'), paper


def _specialise(config, name, mode):
  """Steps 3 and 4: the mode's settings of config `name`'s module, then its variant."""
  from configs import departures  # pylint: disable=g-import-not-at-top
  module, paper = _resolve(name)
  if mode is not None and hasattr(module, 'for_mode'):
    module.for_mode(config, mode)
  if paper:
    departures.paper(config, mode)
  return config


def default_config(dataset, shape=None):
  """The config a dataset gets without --config: toy2d for 2D and vector data, the dataset's
  own for the built-in image sets, svhn's for a user's images (`shape`: a user source's)."""
  from data import images  # pylint: disable=g-import-not-at-top
  from data import toys  # pylint: disable=g-import-not-at-top
  if dataset in toys.ALL or (shape is not None and len(shape) == 1):
    return 'toy2d'
  return dataset if dataset in (*images.TFDS_NAMES, 'digits') else 'svhn'


def paper_config(name):
  """The name under which config `name` trains as the papers state it (`<module>_paper`);
  `name` itself if it has no such variant."""
  if name in _NAMES and _NAMES[name][1]:
    return name
  paper = f'{_NAMES[name][0] if name in _NAMES else name}_paper'
  return paper if paper in _NAMES else name


def for_dataset(dataset, config_name=None, assignments=(), mode=None):
  """The config for `dataset`: its own default (or `config_name`), with the data fields of a
  user source (npy:/folder:/npz:) read from the data, then the mode's settings and the name's
  variant (`get_config`), then the `key=value` overrides, checked (configs/checks.py)."""
  from configs import checks  # pylint: disable=g-import-not-at-top
  from configs import overrides  # pylint: disable=g-import-not-at-top
  from data import images  # pylint: disable=g-import-not-at-top
  user_source = images.is_user_source(dataset)
  if not (dataset in DATASETS or user_source):
    raise ValueError(f'Unknown dataset {dataset!r}; valid: {", ".join(DATASETS)}, npy:PATH, '
                     'folder:PATH, npz:PATH.')
  shape = images.infer_shape(dataset) if user_source else None
  if config_name is None:
    config_name = default_config(dataset, shape)
  module, _ = _resolve(config_name)
  config = module.get_config()
  config.data.name = dataset
  if dataset == '2spirals':
    config.data.num_classes = 2  # the arms (FCE Figure 5)
  if shape is not None:
    config.data.shape = shape
    config.data.num_classes = images.user_num_classes(dataset)  # npz: labels
    config.data.num_bins = 256 if len(shape) == 3 else 0
  _specialise(config, config_name, mode)
  overrides.apply(config, list(assignments))
  checks.check(config)
  return config
