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
  npz:PATH                       an .npz with `x` (as npy:), optionally `y` (int labels, -1 for
                                 unlabeled) and `x_test` / `y_test` (a held-out split).
User sources take a held-out split as a second path (npy:TRAIN.npy,TEST.npy or
folder:TRAIN_DIR,TEST_DIR), from the .npz's x_test, or cut from the data by
`data.test_fraction` (a seeded split, the same in every run). With none of these, both split
names give all of the data.
"""

import functools
import os
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from train import errors

TFDS_NAMES = {'svhn': 'svhn_cropped', 'cifar10': 'cifar10', 'celeba': 'celeb_a',
              'celeba64': 'celeb_a', 'mnist': 'mnist'}
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
CELEBA_CROP = 140
DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'digits.npz')


class DataError(errors.UserError, ValueError):
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
  except (OSError, ValueError, EOFError) as e:  # EOFError: an empty or truncated file
    raise DataError(f'Cannot read {path} as a .npy array ({type(e).__name__}: {e}); write it '
                    'again with numpy.save.') from e
  return _check_array(path, array)


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


USER_KINDS = ('npy:', 'folder:', 'npz:')
SPLIT_SEED = 0  # the permutation behind data.test_fraction: fixed, so every run cuts the same


def is_user_source(name):
  return name.startswith(USER_KINDS)


def _check_labels(path, x, y):
  if y is None:
    return np.full(len(x), -1, np.int32)
  y = np.asarray(y)
  if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y < -1).any():
    raise DataError(f'{path}: labels must be {len(x)} integers >= -1 (-1 = unlabeled); got '
                    f'{y.dtype} of shape {y.shape}.')
  return y.astype(np.int32)


def load_npz(path):
  """Reads an .npz of `x` (as load_npy), optional `y` labels (-1 unlabeled) and a held-out
  `x_test` / `y_test`; returns {'train': (x, y)} and 'test' if it has one."""
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # truncated, empty
    raise DataError(f'Cannot read {path} as an .npz archive ({type(e).__name__}: {e}); write it '
                    'again with numpy.savez.') from e
  if 'x' not in arrays:
    raise DataError(f'{path} has no array `x` (it has {sorted(arrays)}); save the examples as x '
                    '(and labels as y, -1 for unlabeled).')
  out = {}
  for split, xk, yk in (('train', 'x', 'y'), ('test', 'x_test', 'y_test')):
    if xk in arrays:
      x = _check_array(f'{path}[{xk}]', arrays[xk])
      out[split] = (x, _check_labels(f'{path}[{yk}]', x, arrays.get(yk)))
  if 'test' in out and out['test'][0].shape[1:] != out['train'][0].shape[1:]:
    raise DataError(f'{path}: x holds examples of shape {out["train"][0].shape[1:]} and x_test '
                    f'of shape {out["test"][0].shape[1:]}; they must match.')
  return out


def _check_training_data(path, x):
  """Refuses training data with nothing to model: vectors with a column that never changes (no
  density exists there: the flow's NLL falls without bound) or images that are all one image."""
  if len(x) < 2:
    return
  if x.ndim == 2:
    constant = np.flatnonzero(np.all(x == x[:1], axis=0))
    if len(constant):
      raise DataError(f'{path}: column(s) {", ".join(map(str, constant[:5]))} hold one value in '
                      'every row. A density on real vectors is degenerate there (its '
                      'log-likelihood grows without bound): drop those columns.')
  elif np.all(x == x[:1]):
    raise DataError(f'{path}: all {len(x)} images are the same image; there is nothing to model.')


def _check_array(path, array):
  if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
    array = np.asarray(array, np.float32)
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
      raise DataError(f'{path} holds NaN or Inf in {int(bad.sum())} of its {len(array)} rows (the '
                      f'first: row {int(np.argmax(bad))}); remove or replace them.')
    return array
  if array.ndim == 4 and array.dtype == np.uint8:
    return np.asarray(array)
  raise DataError(
      f'{path} holds a {array.dtype} array of shape {array.shape}; expected (N, D) float vectors '
      'or (N, H, W, C) uint8 images.')


@functools.lru_cache(maxsize=2)
def _load_user(name):
  """{'train': (x, labels)[, 'test': ...]} of a user source, as given (no test_fraction cut);
  cached, since the config reads its shape before training reads it."""
  kind, _, paths = name.partition(':')
  if kind == 'npz':
    out = load_npz(paths)
    _check_training_data(f'{paths}[x]', out['train'][0])
    return out
  read = load_npy if kind == 'npy' else load_folder
  parts = paths.split(',')
  if len(parts) > 2:
    raise DataError(f'{name}: give one path, or two (TRAIN,TEST) separated by a comma.')
  out = {}
  for split, path in zip(('train', 'test'), parts):
    x = read(path)
    out[split] = (x, np.full(len(x), -1, np.int32))
  if len(parts) == 2 and out['train'][0].shape[1:] != out['test'][0].shape[1:]:
    raise DataError(f'{name}: the train examples are {out["train"][0].shape[1:]} and the test '
                    f'ones {out["test"][0].shape[1:]}; they must match.')
  _check_training_data(parts[0], out['train'][0])
  return out


def user_splits(name, test_fraction=0.):
  """{'train': (x, y), 'test': (x, y)} of a user source: its own test split, or the seeded cut
  of `test_fraction` of it, or (neither) all of the data under both names."""
  parts = _load_user(name)
  if 'test' in parts:
    return parts
  x, y = parts['train']
  if not test_fraction:
    return {'train': (x, y), 'test': (x, y)}
  if not 0 < test_fraction < 1:
    raise DataError(f'data.test_fraction must be in (0, 1); got {test_fraction}.')
  order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
  n_test = int(round(test_fraction * len(x)))
  if not 0 < n_test < len(x):
    raise DataError(f'data.test_fraction={test_fraction} of {len(x)} examples leaves an empty '
                    'split.')
  test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
  return {'train': (x[train], y[train]), 'test': (x[test], y[test])}


def has_test_split(name, test_fraction=0.):
  """Whether `name` has held-out data (built-in sets do; user sources as the docstring says)."""
  return not is_user_source(name) or bool(test_fraction) or 'test' in _load_user(name)


def user_num_classes(name):
  """Classes of a user source's labels (max label + 1), 0 if it has none."""
  y = _load_user(name)['train'][1]
  return int(y.max()) + 1 if len(y) and y.max() >= 0 else 0


def infer_shape(name):
  """The example shape of a user source (npy: / folder: / npz:), read from the data."""
  return tuple(_load_user(name)['train'][0].shape[1:])


def load(name, split, shape, data_dir=None, shuffle_files=False, test_fraction=0.):
  """An unbatched dataset of (x, label) for `name` and `split` ('train' or 'test').

  User sources (npy:, folder:, npz:) split as the module docstring says.
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
  if is_user_source(name):
    if split not in ('train', 'test'):
      raise DataError(f'{name} has the splits train and test, not {split!r}.')
    x, labels = user_splits(name, test_fraction)[split]
    if tuple(x.shape[1:]) != tuple(shape):
      raise DataError(f'{name} holds examples of shape {x.shape[1:]}, but the config expects '
                      f'{tuple(shape)}; set data.shape to match.')
    return tf.data.Dataset.from_tensor_slices((x, labels))
  raise DataError(f'Unknown image dataset {name!r}; valid: {", ".join(TFDS_NAMES)}, digits, '
                  'npy:PATH, folder:PATH, npz:PATH.')

