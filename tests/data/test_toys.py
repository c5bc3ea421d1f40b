import numpy as np
import pytest

from data import toys


@pytest.mark.parametrize('name', toys.TOYS)
def test_samplers_give_finite_2d_points(name):
  x = toys.sample(name, 500, np.random.default_rng(0))
  assert x.shape == (500, 2) and x.dtype == np.float32 and np.all(np.isfinite(x))


@pytest.mark.parametrize('name', ['8gaussians', 'checkerboard', 'rings'])
def test_exact_density_integrates_to_one_and_matches_the_sampler(name):
  edges = np.linspace(-6, 6, 25)
  fine = np.linspace(-6, 6, 1201)
  centers = 0.5 * (fine[1:] + fine[:-1])
  xx, yy = np.meshgrid(centers, centers, indexing='ij')
  density = np.exp(toys.log_density(name, np.stack([xx.ravel(), yy.ravel()], 1)))
  cell = (fine[1] - fine[0]) ** 2
  assert abs(density.sum() * cell - 1.) < 0.01
  # Probability of each coarse bin: from the density vs from 200k samples.
  per_bin = density.reshape(24, 50, 24, 50).sum(axis=(1, 3)) * cell
  x = toys.sample(name, 200000, np.random.default_rng(1))
  hist, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
  np.testing.assert_allclose(hist / len(x), per_bin, atol=0.004)


def test_unknown_toy_and_missing_density_are_refused():
  with pytest.raises(ValueError, match="Unknown toy dataset 'swissroll'; valid: 8gaussians"):
    toys.sample('swissroll', 10, np.random.default_rng(0))
  with pytest.raises(ValueError, match='no closed-form density'):
    toys.log_density('moons', np.zeros((1, 2)))


def test_spirals_labels_follow_the_arms():
  x, y = toys.spirals_with_labels(1000, np.random.default_rng(0))
  assert set(np.unique(y)) == {0, 1}
  # The arms are point reflections of each other: their means have opposite signs.
  assert np.dot(x[y == 0].mean(0), x[y == 1].mean(0)) < 0
