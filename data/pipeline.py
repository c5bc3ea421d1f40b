"""Training batches for every source: dequantized data, flow latents and labels.

Each example of the (shuffled, repeated) stream gets its dequantization noise and its flow latent
z from stateless random ops seeded by its position in the stream. A batch is therefore a pure
function of the seed and the iterator's position: a resumed run (the iterator is checkpointed)
draws exactly the same numbers, and a distributed step sees the same global batch as a
single-device one.
"""

import numpy as np
import tensorflow as tf

from data import images
from data import toys

# 2D toys are sampled once into a fixed training set this large (effectively infinite in 2D).
TOY_TRAIN_SIZE = 1_000_000


def dataset_kind(name):
  return 'toy' if name in toys.TOYS else 'image'


def source(config, split='train'):
  """The unbatched (x, label) dataset of `config.data` and `split`."""
  name = config.data.name
  if name in toys.TOYS:
    seed = config.train.seed + (0 if split == 'train' else 1)
    x = toys.sample(name, TOY_TRAIN_SIZE, np.random.default_rng(seed))
    return tf.data.Dataset.from_tensor_slices((x, np.full(len(x), -1, np.int32)))
  return images.load(name, split, tuple(config.data.shape), config.data.data_dir or None,
                     shuffle_files=False)


def dequantize_fn(num_bins):
  """Maps (index, x, label) to {'x': y, 'label'} with y = (x + u)/k - 0.5, u seeded by index."""
  def fn(seed, index, x, label):
    if num_bins:
      u = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack([seed, index]))
      x = (tf.cast(x, tf.float32) + u) / num_bins - 0.5
    return tf.cast(x, tf.float32), label
  return fn


def training_batches(config, global_batch_size, latent_shape, seed=None, ds=None):
  """Infinite batches {'x', 'z', 'label'} for training: x dequantized, z ~ N(0, I) of shape
  `latent_shape` per example."""
  seed = config.train.seed if seed is None else seed
  ds = source(config) if ds is None else ds
  deq = dequantize_fn(config.data.num_bins)
  seed_t = tf.constant(seed, tf.int64)

  def add_noise(index, example):
    x, label = deq(seed_t, index, *example)
    z = tf.random.stateless_normal(latent_shape, seed=tf.stack([seed_t + 1, index]))
    return {'x': x, 'z': z, 'label': label}

  ds = ds.shuffle(config.data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat().enumerate().map(add_noise, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(global_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
