"""Configs are data: one module per dataset family, each with `get_config()`."""

import importlib

CONFIGS = ('toy2d', 'svhn', 'cifar10', 'celeba', 'mnist', 'digits', 'smoke')


def get_config(name):
  """Returns the default config `name`; an unknown name raises a ValueError listing valid ones."""
  if name not in CONFIGS:
    raise ValueError(f'Unknown config {name!r}; valid configs: {", ".join(CONFIGS)}.')
  return importlib.import_module(f'configs.{name}').get_config()
