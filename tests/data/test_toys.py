import numpy as np
import pytest

from data import suite2d
from data import toys


@pytest.mark.parametrize('name', toys.ALL)
def test_samplers_give_finite_2d_points(name):
  x = toys.sample(name, 500, np.random.default_rng(0))
  assert x.shape == (500, 2) and x.dtype == np.float32 and np.all(np.isfinite(x))


# The densities with many or sharp components need a fine grid: those run in the slow tier.
_FINE_GRID = ('grid25', 'spiral_arms', 'unequal8', 'mixed', 'sharp_broad')


@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.slow) if n in _FINE_GRID else n
    for n in ['8gaussians', 'checkerboard', 'rings', *suite2d.NAMES]])
def test_exact_density_integrates_to_one_and_matches_the_sampler(name):
  # Cells of 0.01 resolve the sharpest suite component (std 0.05); beyond +-6 lies < 0.3 % of
  # the heavy-tailed Student-t mass.
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
  # Sampling noise: 6 binomial standard errors per bin (seen: at most 4.1); quadrature of the
  # density: 1% of the largest bin.
  se = np.sqrt(per_bin * (1 - per_bin) / len(x))
  assert np.all(np.abs(hist / len(x) - per_bin) <= 6 * se + 0.01 * per_bin.max())


def test_unknown_toy_and_missing_density_are_refused():
  with pytest.raises(ValueError, match="Unknown 2D dataset 'swissroll'; valid: 8gaussians"):
    toys.sample('swissroll', 10, np.random.default_rng(0))
  with pytest.raises(ValueError, match='no closed-form density'):
    toys.log_density('moons', np.zeros((1, 2)))


def test_spirals_labels_follow_the_arms():
  x, y = toys.spirals_with_labels(1000, np.random.default_rng(0))
  assert set(np.unique(y)) == {0, 1}
  # The arms are point reflections of each other: their means have opposite signs.
  assert np.dot(x[y == 0].mean(0), x[y == 1].mean(0)) < 0


def test_suite_spans_what_the_benchmark_promises():
  """At least 10 densities; 2 to 25 modes; weights up to 1:10 or more; scales 0.05 to >= 1."""
  mixtures = suite2d.DENSITIES.values()
  assert len(suite2d.NAMES) >= 10 and not set(suite2d.NAMES) & set(toys.TOYS)
  sizes = [len(m.components) for m in mixtures]
  assert min(sizes) <= 2 and max(sizes) == 25
  assert max(max(m.weights) / min(m.weights) for m in mixtures) >= 10
  kinds = {type(c).__name__ for m in mixtures for c in m.components}
  assert kinds == {'Gauss', 'StudentT', 'Ring', 'Curve', 'Spiral'}


def test_student_t_component_matches_scipy():
  from scipy import stats
  t = suite2d.StudentT((0.5, -1.), (0.4, 0.2), 30., 3.)
  x = np.random.default_rng(0).normal(size=(20, 2))
  rot = suite2d._rotation(30.)
  shape = rot @ np.diag([0.4 ** 2, 0.2 ** 2]) @ rot.T
  np.testing.assert_allclose(t.log_prob(x), stats.multivariate_t([0.5, -1.], shape, df=3).logpdf(x),
                             rtol=1e-10)


def test_spiral_arms_are_the_2spirals_toy_with_an_exact_density():
  from scipy import special
  spiral = suite2d.DENSITIES['spiral_arms'].components[0]
  x = np.random.default_rng(0).normal(size=(500, 2)) * 2
  beads = spiral.centers()
  direct = special.logsumexp(-0.5 * np.sum((x[:, None] - beads) ** 2, -1) / spiral.width ** 2, 1)
  np.testing.assert_allclose(
      spiral.log_prob(x), direct - np.log(len(beads) * 2 * np.pi * spiral.width ** 2), rtol=1e-12)
  # The toy's points lie on the arms (a mirrored or unwound spiral scores < -10 here).
  rng = np.random.default_rng(1)
  own = suite2d.log_density('spiral_arms', suite2d.sample('spiral_arms', 5000, rng)).mean()
  toy = suite2d.log_density('spiral_arms', toys.sample('2spirals', 5000, rng)).mean()
  assert own - 0.5 < toy < own
