"""tf.distribute strategies by name."""

import json
import os

import tensorflow as tf

STRATEGIES = ('auto', 'one_device', 'mirrored', 'multi_worker')


def make_strategy(name='auto'):
  """auto: MultiWorkerMirrored if TF_CONFIG names a cluster, else Mirrored over the visible GPUs
  (if any), else the default one-device strategy."""
  if name not in STRATEGIES:
    raise ValueError(f'Unknown strategy {name!r}; valid: {", ".join(STRATEGIES)}.')
  if name == 'auto':
    if json.loads(os.environ.get('TF_CONFIG', '{}')).get('cluster'):
      name = 'multi_worker'
    elif tf.config.list_logical_devices('GPU'):
      name = 'mirrored'
    else:
      name = 'one_device'
  if name == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()
