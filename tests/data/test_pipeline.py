import numpy as np
import pytest

import configs
from configs import overrides
from data import images
from data import pipeline


def _config(*assignments):
  config = configs.get_config('toy2d')
  overrides.apply(config, list(assignments))
  return config


def test_batches_are_a_function_of_seed_and_step():
  a = pipeline.BatchSource(_config(), 16, [2])
  b = pipeline.BatchSource(_config(), 16, [2])
  for step in (0, 5, 70000):  # 70000 * 16 > 10^6: crosses into a second epoch
    for key in ('x', 'z', 'label'):
      np.testing.assert_array_equal(a.batch(step)[key], b.batch(step)[key])
  assert not np.array_equal(a.batch(0)['x'], a.batch(1)['x'])
  c = pipeline.BatchSource(_config('train.seed=1'), 16, [2])
  assert not np.array_equal(a.batch(0)['x'], c.batch(0)['x'])


def test_an_epoch_visits_every_example_once(tmp_path):
  data = np.arange(40 * 4, dtype=np.uint8).reshape(40, 2, 2, 1)
  np.save(tmp_path / 'd.npy', data)
  config = _config()
  config.data.update(name=f'npy:{tmp_path}/d.npy', shape=(2, 2, 1), num_bins=256)
  source = pipeline.BatchSource(config, 8, [4])
  seen = np.concatenate([source.batch(s)['x'] for s in range(5)])
  # Dequantized values floor back to the stored integers; each example appears once.
  first_pixels = np.floor((seen[:, 0, 0, 0] + 0.5) * 256).astype(int)
  assert sorted(first_pixels) == sorted(data[:, 0, 0, 0].astype(int))


def test_labeled_subset_is_fixed_with_the_asked_count_per_class():
  config = _config()
  config.data.update(name='2spirals', num_classes=2)
  source = pipeline.BatchSource(config, 16, [2], labels_per_class=7, labeled_batch_size=5)
  assert len(source.labeled_index) == 14
  assert np.bincount(source.labels[source.labeled_index]).tolist() == [7, 7]
  batch = source.batch(3)
  assert batch['x_labeled'].shape == (5, 2) and batch['y_labeled'].shape == (5,)
  labeled_points = {tuple(p) for p in source.x[source.labeled_index]}
  assert all(tuple(p) in labeled_points for p in batch['x_labeled'])
  with pytest.raises(images.DataError, match='needs 7 labeled examples of class 0'):
    config.data.update(name='8gaussians')
    pipeline.BatchSource(config, 16, [2], labels_per_class=7, labeled_batch_size=5)
