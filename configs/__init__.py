"""Configs are data: one module per dataset family, each with `get_config()`."""

import importlib
import json

IMAGE_CONFIGS = ('svhn', 'cifar10', 'celeba', 'celeba64', 'mnist', 'digits')
# `<image config>_paper`: the same config with FCE as the paper states it, without the fce
# entry of its MODE_DEFAULTS (configs.base.PHOTO_FCE or DIGITS_FCE), and with the paper's Glow
# (model.flow.support=none, in every mode); `toy2d_paper` is a module of its own.
PAPER = '_paper'
CONFIGS = ('toy2d', 'toy2d_paper', *IMAGE_CONFIGS, 'smoke',
           *(name + PAPER for name in IMAGE_CONFIGS))
# Built-in datasets (besides npy:PATH, folder:PATH and npz:PATH): the 2D toys of FCE Figure 1,
# the 2D benchmark suite (data/suite2d.py), the TFDS image sets and the shipped digits.
DATASETS = ('8gaussians', '2spirals', 'checkerboard', 'rings', 'pinwheel', 'moons',
            'unequal2', 'sharp_broad', 'aniso_rotated', 'grid25', 'student_t', 'sine', 'banana',
            'far_mode', 'ring_blob', 'cross', 'mixed', 'unequal8', 'spiral_arms',
            'svhn', 'cifar10', 'celeba', 'celeba64', 'mnist', 'digits')


# Fields renamed since runs were first saved: (section path, old name, new name).
RENAMED = ((('model', 'flow'), 'steps', 'steps_per_level'),)


def with_defaults(saved):
  """A saved config (a dict, e.g. from a run's config.json) with the fields added to the
  configs since it was saved set to their defaults, which reproduce the code it ran with, and
  renamed fields under their new names."""
  from configs import base  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  saved = json.loads(json.dumps(saved))  # a deep copy
  for path, old, new in RENAMED:
    section = saved
    for key in path:
      section = section.get(key, {})
    if old in section:
      section.setdefault(new, section.pop(old))
  config = base.get_base_config().to_dict()
  _merge(config, saved)
  return ml_collections.ConfigDict(config)


def _merge(into, update):
  for k, v in update.items():
    if isinstance(v, dict) and isinstance(into.get(k), dict):
      _merge(into[k], v)
    else:
      into[k] = v


def get_config(name):
  """Returns the default config `name`; an unknown name raises a ValueError listing valid ones."""
  config = _module(name).get_config()
  if _is_image_paper(name):
    config.model.flow.support = 'none'  # the paper's Glow: a density on all of R^D
  return config


def mode_defaults(name, mode):
  """A config's own settings for one mode, as `key=value` overrides (e.g. NT-EBM's optimiser
  for nt / nt_nce: `MODE_DEFAULTS` of configs/<name>.py); [] if it has none, and for fce under
  an `<image config>_paper` name."""
  if _is_image_paper(name) and mode == 'fce':
    return []
  return list(getattr(_module(name), 'MODE_DEFAULTS', {}).get(mode, ()))


def _is_image_paper(name):
  return name.endswith(PAPER) and name[:-len(PAPER)] in IMAGE_CONFIGS


def _module(name):
  if name not in CONFIGS:
    raise ValueError(f'Unknown config {name!r}; valid configs: {", ".join(CONFIGS)}.')
  return importlib.import_module(f'configs.{name[:-len(PAPER)] if _is_image_paper(name) else name}')


def default_config(dataset, shape=None):
  """The config a dataset gets without --config: toy2d for 2D and vector data, the dataset's
  own for the built-in image sets, svhn's for a user's images (`shape`: a user source's)."""
  from data import images  # pylint: disable=g-import-not-at-top
  from data import toys  # pylint: disable=g-import-not-at-top
  if dataset in toys.ALL or (shape is not None and len(shape) == 1):
    return 'toy2d'
  return dataset if dataset in (*images.TFDS_NAMES, 'digits') else 'svhn'


def paper_config(name):
  """The name under which config `name` trains FCE as the paper states it (toy2d_paper, or
  `<image config>_paper`); `name` itself if it has no such variant."""
  paper = ('toy2d' if name == 'toy2d_paper' else name) + PAPER
  return paper if paper in CONFIGS else name


def for_dataset(dataset, config_name=None, assignments=(), mode=None):
  """The config for `dataset`: its own default (or `config_name`), with the data fields of a
  user source (npy:/folder:/npz:) read from the data, then the config's defaults for `mode`
  (`mode_defaults`), then the `key=value` overrides."""
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
  config = get_config(config_name)
  config.data.name = dataset
  if dataset == '2spirals':
    config.data.num_classes = 2  # the arms (FCE Figure 5)
  if shape is not None:
    config.data.shape = shape
    config.data.num_classes = images.user_num_classes(dataset)  # npz: labels
    config.data.num_bins = 256 if len(shape) == 3 else 0
  overrides.apply(config, mode_defaults(config_name, mode) + list(assignments))
  checks.check(config)
  return config
