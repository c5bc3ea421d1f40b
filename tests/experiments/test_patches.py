import numpy as np

from experiments import patches


def test_patches_are_cut_from_the_columns_asked_and_are_contiguous():
  columns = np.tile(np.arange(100, dtype=np.uint8), (2, 30, 1))  # pixel value = its column
  rng = np.random.default_rng(0)
  train = patches.cut(columns, 500, 8, (0, 80), rng)
  test = patches.cut(columns, 500, 8, (80, 100), rng)
  assert train.shape == (500, 8, 8, 1) and train.dtype == np.uint8
  assert train.max() < 80 and test.min() >= 80  # no pixel in both splits
  np.testing.assert_array_equal(np.diff(train[..., 0], axis=2), 1)  # neighbouring columns


def test_the_photograph_patches_split():
  train, test = patches.make(50, 20, size=8, seed=1)
  assert train.shape == (50, 8, 8, 1) and test.shape == (20, 8, 8, 1)
  assert train.std() > 10  # photographs, not blank


def test_the_held_out_photograph_is_another_one():
  """--photos=hopper: matplotlib's portrait, not one of the photographs the defaults were
  measured on."""
  hopper, tuned = patches.grey_photographs('hopper'), patches.grey_photographs('sklearn')
  assert hopper.ndim == 3 and len(hopper) == 1 and hopper.dtype == np.uint8
  assert hopper.shape[1:] != tuned.shape[1:] and hopper.std() > 10
  train, test = patches.make(50, 20, size=8, seed=1, photos='hopper')
  assert train.shape == (50, 8, 8, 1) and test.shape == (20, 8, 8, 1)
