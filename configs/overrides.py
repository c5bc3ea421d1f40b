"""`key=value` overrides of config fields, typed by the field they replace."""

import ast

from absl import logging
import ml_collections


def apply(config, assignments):
  """Applies ['train.steps=500', ...] to `config`; unknown keys or bad values raise ValueError."""
  for assignment in assignments:
    key, sep, text = assignment.partition('=')
    if not sep:
      raise ValueError(f'Override {assignment!r} is not of the form key=value.')
    key = _current(key.strip())
    *parents, leaf = key.split('.')
    node = config
    for part in parents:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ValueError(f'Unknown config field {key!r}: no section {part!r}.')
      node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      fields = f'; fields here: {", ".join(sorted(node))}' if isinstance(
          node, ml_collections.ConfigDict) else ''
      raise ValueError(f'Unknown config field {key!r}{fields}.')
    old = node[leaf]
    if isinstance(old, ml_collections.ConfigDict):
      raise ValueError(f'{key!r} is a section, not a field: set one of its fields, e.g. '
                       f'{key}.{sorted(old)[0]}=...')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text  # a bare string
    if isinstance(old, bool) != isinstance(value, bool) or (
        isinstance(old, (int, float)) and not isinstance(value, (int, float))):
      raise ValueError(f'Config field {key!r} is {type(old).__name__}; got {text!r}.')
    if isinstance(old, float) and isinstance(value, int):
      value = float(value)
    if isinstance(old, int) and not isinstance(old, bool) and isinstance(value, float):
      if not value.is_integer():
        raise ValueError(f'Config field {key!r} is an integer; got {text!r}.')
      value = int(value)
    try:
      node[leaf] = value
    except TypeError as e:  # e.g. a number for a list field
      raise ValueError(f'Config field {key!r} is {type(old).__name__}; got {text!r}.') from e


def _current(key):
  """`key` under today's name (configs.RENAMED), with a note when it was renamed."""
  import configs  # pylint: disable=g-import-not-at-top
  new = configs.current_name(key)
  if new != key:
    logging.warning('--set %s: this field is now %s; set it under that name.', key, new)
  return new
