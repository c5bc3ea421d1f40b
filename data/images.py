"""Image and vector datasets as tf.data: TFDS, the user's .npy files and image folders.

Every source yields (x, label) pairs: x as stored (uint8 images, or float32 vectors), label an
int32 (-1 where there is none). `data.pipeline` turns them into training batches.

Dataset names:
  svhn, cifar10, celeba, mnist   TFDS ('svhn_cropped', 'cifar10', 'celeb_a', 'mnist'); CelebA is
                                 centre-cropped to 140x140 and resized to 32x32 (its TFDS test
                                 split, 19,962 images, is the paper's 20k test set); MNIST is
                                 zero-padded to 32x32 so three Glow levels fit.
  celeba64                       CelebA cropped the same way and resized to 64x64 (NT-EBM).
  digits                         scikit-learn's 8x8 handwritten digits (UCI, CC BY 4.0), shipped as
                                 data/digits.npz: 1797 images with 17 grey levels (0..16), a fixed
                                 stratified split of 1437 train / 360 test (36 per class).
  npy:PATH                       (N, D) float vectors or (N, H, W, C) uint8 images.
  folder:PATH                    a folder of image files (png, jpg, bmp, gif), all one size.
"""

import functools
import os

import numpy as np
import tensorflow as tf

TFDS_NAMES = {'svhn': 'svhn_cropped', 'cifar10': 'cifar10', 'celeba': 'celeb_a',
              'celeba64': 'celeb_a', 'mnist': 'mnist'}
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
CELEBA_CROP = 140
DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'digits.npz')


class DataError(ValueError):
  """A dataset that cannot be read as asked; the message says what to do."""


def _tfds_preprocess(name, shape):
  def fn(example):
    image = example['image']
    if name in ('celeba', 'celeba64'):  # the data.shape of the config: 32x32 or 64x64
      image = tf.image.resize_with_crop_or_pad(image, CELEBA_CROP, CELEBA_CROP)
      image = tf.image.resize(image, shape[:2], method='area', antialias=True)
      image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    elif name == 'mnist':
      pad_h, pad_w = shape[0] - 28, shape[1] - 28
      image = tf.pad(image, [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2],
                             [0, 0]])
    label = tf.cast(example['label'], tf.int32) if 'label' in example else tf.constant(-1)
    return image, label
  return fn


def _load_tfds(name, split, shape, data_dir, shuffle_files):
  import tensorflow_datasets as tfds  # imported here: slow, and only TFDS sources need it
  try:
    ds = tfds.load(TFDS_NAMES[name], split=split, data_dir=data_dir, shuffle_files=shuffle_files)
  except Exception as e:  # TFDS raises many types for a missing / unreachable dataset
    raise DataError(
        f'Could not load TFDS dataset {TFDS_NAMES[name]!r} split {split!r}: {e}. Download it '
        f'once on a machine with internet (python -c "import tensorflow_datasets as tfds; '
        f"tfds.load('{TFDS_NAMES[name]}')\") and point --set data.data_dir at its folder.") from e
  return ds.map(_tfds_preprocess(name, shape), num_parallel_calls=tf.data.AUTOTUNE)


def load_npy(path):
  """Reads an .npy of (N, D) float vectors or (N, H, W, C) uint8 images, checking both."""
  try:
    array = np.load(path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DataError(f'Cannot read {path} as a .npy array: {e}.') from e
  if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
    return np.asarray(array, np.float32)
  if array.ndim == 4 and array.dtype == np.uint8:
    return np.asarray(array)
  raise DataError(
      f'{path} holds a {array.dtype} array of shape {array.shape}; expected (N, D) float vectors '
      'or (N, H, W, C) uint8 images.')


def load_folder(path):
  """Reads every image file in a folder into an (N, H, W, C) uint8 array."""
  from PIL import Image  # imported here: only folder sources need it
  if not os.path.isdir(path):
    raise DataError(f'Image folder {path} does not exist.')
  files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise DataError(f'No image files ({", ".join(IMAGE_EXTENSIONS)}) in {path}.')
  images = []
  for f in files:
    try:
      with Image.open(os.path.join(path, f)) as im:
        im = im.convert('L' if im.mode in ('1', 'L', 'I;16', 'I') else 'RGB')
        images.append(np.asarray(im, np.uint8))
    except (OSError, ValueError) as e:
      raise DataError(f'Cannot read image {os.path.join(path, f)}: {e}. Remove or replace it.') \
          from e
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise DataError(f'Images in {path} have different sizes {sorted(shapes)}; resize them to one '
                    'size first.')
  array = np.stack(images)
  return array[..., None] if array.ndim == 3 else array


def _from_array(array):
  labels = np.full(len(array), -1, np.int32)
  return tf.data.Dataset.from_tensor_slices((array, labels))


def infer_shape(name):
  """The example shape of a user source (npy: / folder:), read from the data."""
  return tuple(_load_array(name).shape[1:])


@functools.lru_cache(maxsize=2)
def _load_array(name):
  """The whole user source; cached, since the config reads its shape before training reads it."""
  kind, _, path = name.partition(':')
  return load_npy(path) if kind == 'npy' else load_folder(path)


def load(name, split, shape, data_dir=None, shuffle_files=False):
  """An unbatched dataset of (x, label) for `name` and `split` ('train' or 'test').

  User sources (npy:, folder:) have no splits: both names give all of the data.
  """
  if name in TFDS_NAMES:
    return _load_tfds(name, split, tuple(shape), data_dir, shuffle_files)
  if name == 'digits':
    if split not in ('train', 'test'):
      raise DataError(f'digits has the splits train and test, not {split!r}.')
    with np.load(DIGITS_PATH) as f:
      x, labels = f[f'{split}_x'], f[f'{split}_y']
    if tuple(x.shape[1:]) != tuple(shape):
      raise DataError(f'digits are {x.shape[1:]} images; the config expects {tuple(shape)}.')
    return tf.data.Dataset.from_tensor_slices((x, labels.astype(np.int32)))
  if name.startswith(('npy:', 'folder:')):
    array = _load_array(name)
    if tuple(array.shape[1:]) != tuple(shape):
      raise DataError(f'{name} holds examples of shape {array.shape[1:]}, but the config expects '
                      f'{tuple(shape)}; set data.shape to match.')
    return _from_array(array)
  raise DataError(f'Unknown image dataset {name!r}; valid: {", ".join(TFDS_NAMES)}, digits, '
                  'npy:PATH, folder:PATH.')

