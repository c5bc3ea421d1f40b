"""Real-image sets that need no download: 8x8 grey patches of photographs.

Cuts patches at random positions from photographs shipped with the project's dependencies,
converted to grey (ITU-R 601 luma, 8 bits): `--photos=sklearn`, scikit-learn's two sample
photographs (china.jpg and flower.jpg), on which the image defaults were measured
(docs/image_fce), or `--photos=hopper`, matplotlib's sample portrait grace_hopper.jpg, kept out
of all tuning (docs/heldout). The held-out patches come from the right-most fifth of each
photograph and the training patches from the rest, so no pixel is in both splits. Writes an
.npz for `--dataset=npz:PATH`:

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
  flags.DEFINE_enum('photos', 'sklearn', list(PHOTOS), 'sklearn: china.jpg and flower.jpg '
                    '(the tuning set of docs/image_fce); hopper: matplotlib\'s grace_hopper.jpg '
                    '(held out from all tuning).')


FLAGS = flags.FLAGS
TEST_SHARE = 0.2  # the right-most fifth of each photograph is held out


PHOTOS = ('sklearn', 'hopper')


def grey_photographs(photos='sklearn'):
  """The photographs of `photos` (one of PHOTOS) in grey, uint8 [N, H, W]."""
  if photos == 'hopper':
    from matplotlib import cbook  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    path = cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    rgb = np.asarray(Image.open(path).convert('RGB'), np.float64)[None]
  else:
    from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
    rgb = np.stack(load_sample_images().images).astype(np.float64)
  return np.round(rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)


def cut(photos, n, size, columns, rng):
  """n patches at uniform positions whose columns lie in [columns[0], columns[1])."""
  k = rng.integers(0, len(photos), n)
  i = rng.integers(0, photos.shape[1] - size + 1, n)
  j = rng.integers(columns[0], columns[1] - size + 1, n)
  offsets = np.arange(size)
  rows = (i[:, None] + offsets)[:, :, None]
  cols = (j[:, None] + offsets)[:, None, :]
  return photos[k[:, None, None], rows, cols][..., None]


def make(n_train, n_test, size=8, seed=0, photos='sklearn'):
  """(train, test) uint8 patch arrays [N, size, size, 1] from disjoint columns."""
  photos = grey_photographs(photos)
  width = photos.shape[2]
  boundary = int(round(width * (1 - TEST_SHARE)))
  rng = np.random.default_rng(seed)
  return (cut(photos, n_train, size, (0, boundary), rng),
          cut(photos, n_test, size, (boundary, width), rng))


def main(_):
  train, test = make(FLAGS.train, FLAGS.test, FLAGS.size, FLAGS.seed, FLAGS.photos)
  np.savez(FLAGS.out, x=train, x_test=test)
  print(f'Wrote {FLAGS.out}: {len(train)} training and {len(test)} held-out '
        f'{FLAGS.size}x{FLAGS.size} grey patches.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
