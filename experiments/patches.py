"""A second real-image set that needs no download: 8x8 grey patches of photographs.

Cuts patches at random positions from scikit-learn's two sample photographs (china.jpg and
flower.jpg, shipped with scikit-learn), converted to grey (ITU-R 601 luma, 8 bits). The held-out
patches come from the right-most fifth of each photograph and the training patches from the
rest, so no pixel is in both splits. Writes an .npz for `--dataset=npz:PATH`:

  python -m experiments.patches --out=/tmp/patches.npz
  python main.py --dataset=npz:/tmp/patches.npz --config=digits --mode=fce
"""

from absl import app
from absl import flags
import numpy as np


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_string('out', '/tmp/patches.npz', 'The .npz to write (x, x_test).')
  flags.DEFINE_integer('train', 40000, 'Training patches.')
  flags.DEFINE_integer('test', 5000, 'Held-out patches.')
  flags.DEFINE_integer('size', 8, 'Patch side in pixels.')
  flags.DEFINE_integer('seed', 0, 'Seed of the patch positions.')


FLAGS = flags.FLAGS
TEST_SHARE = 0.2  # the right-most fifth of each photograph is held out


def grey_photographs():
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  rgb = np.stack(load_sample_images().images).astype(np.float64)
  return np.round(rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)  # [2, H, W]


def cut(photos, n, size, columns, rng):
  """n patches at uniform positions whose columns lie in [columns[0], columns[1])."""
  k = rng.integers(0, len(photos), n)
  i = rng.integers(0, photos.shape[1] - size + 1, n)
  j = rng.integers(columns[0], columns[1] - size + 1, n)
  offsets = np.arange(size)
  rows = (i[:, None] + offsets)[:, :, None]
  cols = (j[:, None] + offsets)[:, None, :]
  return photos[k[:, None, None], rows, cols][..., None]


def make(n_train, n_test, size=8, seed=0):
  """(train, test) uint8 patch arrays [N, size, size, 1] from disjoint columns."""
  photos = grey_photographs()
  width = photos.shape[2]
  boundary = int(round(width * (1 - TEST_SHARE)))
  rng = np.random.default_rng(seed)
  return (cut(photos, n_train, size, (0, boundary), rng),
          cut(photos, n_test, size, (boundary, width), rng))


def main(_):
  train, test = make(FLAGS.train, FLAGS.test, FLAGS.size, FLAGS.seed)
  np.savez(FLAGS.out, x=train, x_test=test)
  print(f'Wrote {FLAGS.out}: {len(train)} training and {len(test)} held-out '
        f'{FLAGS.size}x{FLAGS.size} grey patches.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
