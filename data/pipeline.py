"""Training batches for every source: dequantized data, flow latents and labels.

The training split is held in memory (the largest, CelebA at 32x32, is 0.5 GB) and batch `s` of
a run is a pure function of (seed, s): its examples are positions s*B .. (s+1)*B - 1 of an
endless sequence of epochs, each a permutation of the data drawn from (seed, epoch), and its
dequantization noise and flow latents come from a generator seeded by (seed, s). So:
  - resuming at step s needs only s (no iterator state in checkpoints, and no skipping);
  - a distributed step sees exactly the global batch a single-device step would (tf.distribute
    splits the global batch across replicas and workers).
For semi-supervised runs each batch also carries a labeled batch, drawn (with replacement) from a
fixed subset of `labels_per_class` examples of each class.
"""

import functools

import numpy as np
import tensorflow as tf

from data import images
from data import toys
from losses import flow as flow_losses

# 2D toys are sampled once into a fixed training set this large (effectively infinite in 2D).
TOY_TRAIN_SIZE = 1_000_000


@functools.lru_cache(maxsize=4)
def _cached_arrays(name, split, shape, num_bins, seed, data_dir, test_fraction):
  if name in toys.ALL:
    rng = np.random.default_rng([seed, 0 if split == 'train' else 1])
    if name == '2spirals':  # the arms are the classes (FCE Figure 5)
      return toys.spirals_with_labels(TOY_TRAIN_SIZE, rng)
    x = toys.sample(name, TOY_TRAIN_SIZE, rng)
    return x, np.full(len(x), -1, np.int32)
  ds = images.load(name, split, shape, data_dir or None, test_fraction=test_fraction).batch(4096)
  batches = list(ds.as_numpy_iterator())
  if not batches:
    return np.zeros((0, *shape)), np.zeros((0,), np.int32)
  xs, ys = zip(*batches)
  return np.concatenate(xs), np.concatenate(ys).astype(np.int32)


def load_arrays(config, split='train'):
  """All of `split` as numpy arrays (x as stored: uint8 images or float32 vectors, labels)."""
  d = config.data
  x, labels = _cached_arrays(d.name, split, tuple(d.shape), d.num_bins, config.train.seed,
                             d.data_dir, float(d.test_fraction))
  if len(x) == 0:
    raise images.DataError(f'Dataset {d.name} split {split!r} is empty.')
  return x, labels


def dequantize_numpy(x, num_bins, rng):
  """`losses.flow.dequantize` with u ~ U(0, 1) from `rng`; continuous data passes through (and
  draws nothing)."""
  return flow_losses.dequantize(x, num_bins, rng.random(x.shape, np.float32) if num_bins else 0.)


class BatchSource:
  """Batch s = f(seed, s) of the training split, see the module docstring."""

  def __init__(self, config, global_batch_size, latent_shape, split='train',
               labels_per_class=0, labeled_batch_size=0):
    self.x, self.labels = load_arrays(config, split)
    self.n = len(self.x)
    self.batch_size = global_batch_size
    self.latent_shape = tuple(latent_shape)
    self.num_bins = config.data.num_bins
    self.seed = config.train.seed
    self._perm_epoch, self._perm = None, None
    self.labeled_batch_size = labeled_batch_size
    self.labeled_index = (self._labeled_subset(labels_per_class, config.data.num_classes)
                          if labels_per_class else None)

  def _labeled_subset(self, per_class, num_classes):
    """Indices of `per_class` labeled examples of each class, fixed by the seed (FCE Sec. 4.4)."""
    rng = np.random.default_rng([self.seed, 3])
    chosen = []
    for k in range(num_classes):
      of_class = np.flatnonzero(self.labels == k)
      if len(of_class) < per_class:
        raise images.DataError(f'Semi-supervised learning needs {per_class} labeled examples of '
                               f'class {k}; the data has {len(of_class)}.')
      chosen.append(rng.choice(of_class, per_class, replace=False))
    return np.concatenate(chosen)

  def _permutation(self, epoch):
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng([self.seed, 2, epoch]).permutation(self.n)
      self._perm_epoch = epoch
    return self._perm

  def batch(self, step):
    positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
    epochs, offsets = np.divmod(positions, self.n)
    idx = np.empty(self.batch_size, np.int64)
    for epoch in np.unique(epochs):
      sel = epochs == epoch
      idx[sel] = self._permutation(int(epoch))[offsets[sel]]
    rng = np.random.default_rng([self.seed, 1, step])
    batch = {
        'x': dequantize_numpy(self.x[idx], self.num_bins, rng),
        'z': rng.standard_normal((self.batch_size, *self.latent_shape), np.float32),
        'label': self.labels[idx],
    }
    if self.labeled_index is not None:
      lab = rng.choice(self.labeled_index, self.labeled_batch_size)
      batch['x_labeled'] = dequantize_numpy(self.x[lab], self.num_bins, rng)
      batch['y_labeled'] = self.labels[lab]
    return batch

  def dataset(self, start_step=0):
    """An endless tf.data.Dataset of global batches from `start_step` on."""
    def gen():
      step = start_step
      while True:
        yield self.batch(step)
        step += 1

    spec = {
        'x': tf.TensorSpec((self.batch_size, *self.x.shape[1:]), tf.float32),
        'z': tf.TensorSpec((self.batch_size, *self.latent_shape), tf.float32),
        'label': tf.TensorSpec((self.batch_size,), tf.int32),
    }
    if self.labeled_index is not None:
      spec['x_labeled'] = tf.TensorSpec((self.labeled_batch_size, *self.x.shape[1:]), tf.float32)
      spec['y_labeled'] = tf.TensorSpec((self.labeled_batch_size,), tf.int32)
    ds = tf.data.Dataset.from_generator(gen, output_signature=spec)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(2)
