import numpy as np
import pytest
from PIL import Image
import tensorflow_datasets as tfds

from data import images


@pytest.mark.parametrize('name,shape', [('svhn', (32, 32, 3)), ('cifar10', (32, 32, 3)),
                                        ('celeba', (32, 32, 3)), ('celeba64', (64, 64, 3)),
                                        ('mnist', (32, 32, 1))])
def test_tfds_sources_give_uint8_images_of_the_config_shape(name, shape):
  with tfds.testing.mock_data(num_examples=6):
    ds = images.load(name, 'test', shape).batch(4)
    x, y = next(iter(ds))
  assert x.dtype == 'uint8' and tuple(x.shape) == (4, *shape)
  assert y.dtype == 'int32'
  if name.startswith('celeba'):
    assert np.all(y.numpy() == -1)  # no class labels


def test_npy_images_and_vectors(tmp_path):
  imgs = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
  np.save(tmp_path / 'imgs.npy', imgs)
  vecs = np.random.default_rng(0).standard_normal((7, 3))
  np.save(tmp_path / 'vecs.npy', vecs)
  x, _ = next(iter(images.load(f'npy:{tmp_path}/imgs.npy', 'train', (4, 4, 3)).batch(5)))
  np.testing.assert_array_equal(x.numpy(), imgs)
  assert images.infer_shape(f'npy:{tmp_path}/vecs.npy') == (3,)
  x, _ = next(iter(images.load(f'npy:{tmp_path}/vecs.npy', 'train', (3,)).batch(7)))
  np.testing.assert_allclose(x.numpy(), vecs.astype(np.float32))


@pytest.mark.parametrize('array,match', [
    (np.zeros((5, 4, 4, 3), np.float32), r'float32 array of shape \(5, 4, 4, 3\); expected'),
    (np.zeros((5,), np.float64), 'expected'),
    (np.zeros((5, 4, 4), np.uint8), 'expected'),
])
def test_npy_of_wrong_dtype_or_rank_is_refused(tmp_path, array, match):
  np.save(tmp_path / 'bad.npy', array)
  with pytest.raises(images.DataError, match=match):
    images.load(f'npy:{tmp_path}/bad.npy', 'train', array.shape[1:])


def test_npy_shape_must_match_config(tmp_path):
  np.save(tmp_path / 'imgs.npy', np.arange(128, dtype=np.uint8).reshape(2, 8, 8, 1))
  with pytest.raises(images.DataError, match='set data.shape'):
    images.load(f'npy:{tmp_path}/imgs.npy', 'train', (32, 32, 3))


def test_corrupt_npy_is_refused(tmp_path):
  (tmp_path / 'bad.npy').write_bytes(b'not an array')
  with pytest.raises(images.DataError, match='Cannot read'):
    images.load(f'npy:{tmp_path}/bad.npy', 'train', (2,))


def _truncated(path, keep):
  data = path.read_bytes()
  path.write_bytes(data[:keep(len(data))])
  return path


@pytest.mark.parametrize('name,keep', [
    ('empty.npy', lambda n: 0), ('cut.npy', lambda n: n // 2),
    ('empty.npz', lambda n: 0), ('cut.npz', lambda n: n // 2)])
def test_empty_or_truncated_files_are_one_data_error(tmp_path, name, keep):
  """An empty or cut-off .npy / .npz (a copy that stopped): one DataError naming the file, not
  numpy's EOFError or zipfile's BadZipFile."""
  x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
  path = tmp_path / name
  if name.endswith('.npy'):
    np.save(path, x)
  else:
    np.savez(path, x=x, x_test=x)
  _truncated(path, keep)
  with pytest.raises(images.DataError, match=f'Cannot read {path} as an? .np[yz]'):
    images.infer_shape(f'{name[-3:]}:{path}')


def test_npz_whose_test_examples_differ_in_shape_is_refused(tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / 'd.npz', x=rng.normal(size=(50, 2)).astype(np.float32),
           x_test=rng.normal(size=(50, 3)).astype(np.float32))
  with pytest.raises(images.DataError, match=r'x holds examples of shape \(2,\) and x_test of '
                     r'shape \(3,\); they must match'):
    images.infer_shape(f'npz:{tmp_path}/d.npz')


def test_folder_of_images(tmp_path):
  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f'{i}.png')
  array = images.load_folder(str(tmp_path))
  assert array.shape == (3, 8, 8, 3) and array.dtype == np.uint8
  Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / 'grey.png')
  with pytest.raises(images.DataError, match='different sizes'):
    images.load_folder(str(tmp_path))


def test_unreadable_image_in_folder_names_the_file(tmp_path):
  (tmp_path / 'broken.png').write_bytes(b'\x89PNG garbage')
  with pytest.raises(images.DataError, match='broken.png'):
    images.load_folder(str(tmp_path))


def test_unknown_dataset_lists_valid_ones():
  with pytest.raises(images.DataError, match="Unknown image dataset 'imagenet'; valid: svhn"):
    images.load('imagenet', 'train', (32, 32, 3))


def test_builtin_digits_have_17_levels_and_a_disjoint_balanced_test_split():
  def arrays(split):
    x, y = zip(*images.load('digits', split, (8, 8, 1)).as_numpy_iterator())
    return np.stack(x), np.array(y)
  train_x, train_y = arrays('train')
  test_x, test_y = arrays('test')
  assert train_x.shape == (1437, 8, 8, 1) and test_x.shape == (360, 8, 8, 1)
  assert train_x.dtype == np.uint8 and train_x.max() == 16 and train_x.min() == 0
  assert np.all(np.bincount(test_y) == 36) and set(train_y) == set(range(10))
  train_rows = {im.tobytes() for im in train_x}
  assert sum(im.tobytes() in train_rows for im in test_x) <= 2  # the split holds out images
  with pytest.raises(images.DataError, match='splits train and test'):
    images.load('digits', 'validation', (8, 8, 1))
  with pytest.raises(images.DataError, match='expects'):
    images.load('digits', 'train', (28, 28, 1))


def _all(name, split, shape, **kwargs):
  x, y = next(iter(images.load(name, split, shape, **kwargs).batch(10_000)))
  return x.numpy(), y.numpy()


def test_npy_with_a_test_file_has_two_splits(tmp_path):
  rng = np.random.default_rng(0)
  train, test = (rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8) for n in (6, 3))
  np.save(tmp_path / 'train.npy', train)
  np.save(tmp_path / 'test.npy', test)
  name = f'npy:{tmp_path}/train.npy,{tmp_path}/test.npy'
  np.testing.assert_array_equal(_all(name, 'train', (4, 4, 1))[0], train)
  np.testing.assert_array_equal(_all(name, 'test', (4, 4, 1))[0], test)
  assert images.has_test_split(name) and images.infer_shape(name) == (4, 4, 1)
  np.save(tmp_path / 'other.npy', np.zeros((2, 5, 5, 1), np.uint8))
  with pytest.raises(images.DataError, match='must match'):
    images.infer_shape(f'npy:{tmp_path}/train.npy,{tmp_path}/other.npy')


def test_test_fraction_holds_out_a_disjoint_split_that_is_the_same_every_time(tmp_path):
  vecs = np.arange(200, dtype=np.float32).reshape(100, 2)  # rows are distinct
  np.save(tmp_path / 'v.npy', vecs)
  name = f'npy:{tmp_path}/v.npy'
  assert not images.has_test_split(name) and images.has_test_split(name, 0.2)
  train, _ = _all(name, 'train', (2,), test_fraction=0.2)
  test, _ = _all(name, 'test', (2,), test_fraction=0.2)
  assert len(train) == 80 and len(test) == 20
  rows = lambda a: {tuple(r) for r in a}
  assert not rows(train) & rows(test) and rows(train) | rows(test) == rows(vecs)
  images._load_user.cache_clear()  # as a new process would read it
  np.testing.assert_array_equal(_all(name, 'test', (2,), test_fraction=0.2)[0], test)
  # Without a fraction both names give all of the data.
  np.testing.assert_array_equal(_all(name, 'test', (2,))[0], vecs)
  with pytest.raises(images.DataError, match='test_fraction'):
    _all(name, 'test', (2,), test_fraction=1.5)


def test_npz_with_labels_and_a_test_split(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
  y = np.array([0, 1, 2, -1, -1, 1, 0, -1])
  np.savez(tmp_path / 'd.npz', x=x, y=y, x_test=x[:3], y_test=y[:3])
  name = f'npz:{tmp_path}/d.npz'
  got_x, got_y = _all(name, 'train', (4, 4, 1))
  np.testing.assert_array_equal(got_x, x)
  np.testing.assert_array_equal(got_y, y)
  np.testing.assert_array_equal(_all(name, 'test', (4, 4, 1))[1], y[:3])
  assert images.user_num_classes(name) == 3
  np.savez(tmp_path / 'bad.npz', x=x, y=y[:5])
  with pytest.raises(images.DataError, match='labels must be 8 integers'):
    images.infer_shape(f'npz:{tmp_path}/bad.npz')
  np.savez(tmp_path / 'nox.npz', images=x)
  with pytest.raises(images.DataError, match='no array `x`'):
    images.infer_shape(f'npz:{tmp_path}/nox.npz')


def test_nan_in_vector_data_is_refused_when_loading(tmp_path):
  vecs = np.zeros((10, 2), np.float32)
  vecs[7, 1] = np.nan
  vecs[8, 0] = np.inf
  np.save(tmp_path / 'v.npy', vecs)
  with pytest.raises(images.DataError, match='2 of its 10 rows \\(the first: row 7\\)'):
    images.infer_shape(f'npy:{tmp_path}/v.npy')


def test_constant_data_is_refused(tmp_path):
  """Vectors with a column that never changes have no density (the flow's NLL fell to -135 on
  such data with no warning); identical images leave nothing to model."""
  x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
  x[:, 1] = 2.
  np.save(tmp_path / 'v.npy', x)
  with pytest.raises(images.DataError, match=r'column\(s\) 1 hold one value in every row'):
    images.infer_shape(f'npy:{tmp_path}/v.npy')
  np.save(tmp_path / 'i.npy', np.full((10, 4, 4, 1), 7, np.uint8))
  with pytest.raises(images.DataError, match='i.npy: all 10 images are the same image'):
    images.infer_shape(f'npy:{tmp_path}/i.npy')
