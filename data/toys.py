"""2D toy densities (FCE Sec. 4.1, Figure 1): samplers, and exact log-densities where analytic.

The samplers follow the definitions common to FFJORD / the FCE 2D code. Exact densities:
8gaussians (a mixture of 8 isotropic Gaussians), checkerboard (uniform on 8 squares) and
rings (4 rings, radial Gaussian noise; computed by 1D numerical integration of the angle-free
radial density). The others (2spirals, pinwheel, moons) are defined only by their samplers.
"""

import numpy as np
from scipy import special

from data import suite2d

TOYS = ('8gaussians', '2spirals', 'checkerboard', 'rings', 'pinwheel', 'moons')
# Every built-in 2D density: the six toys of FCE Figure 1 and the benchmark suite (data/suite2d.py).
ALL = TOYS + suite2d.NAMES

_GAUSS_SCALE = 4.
_GAUSS_STD = 0.5 / 1.414  # FFJORD: N(center, 0.5^2), then everything divided by 1.414
_RING_RADII = np.array([1., 1.75, 2.5, 3.25])
_RING_STD = 0.08


def _eight_centers():
  angles = np.arange(8) * np.pi / 4
  return _GAUSS_SCALE * np.stack([np.cos(angles), np.sin(angles)], 1) / 1.414


def sample(name, n, rng):
  """Draws n points of toy (or suite density) `name` as float32 [n, 2]."""
  if name in suite2d.DENSITIES:
    return suite2d.sample(name, n, rng)
  if name not in TOYS:
    raise ValueError(f'Unknown 2D dataset {name!r}; valid: {", ".join(ALL)}.')
  if name == '8gaussians':
    centers = _eight_centers()
    idx = rng.integers(0, 8, n)
    x = centers[idx] + rng.standard_normal((n, 2)) * _GAUSS_STD
  elif name == '2spirals':
    x = _spirals(n, rng)[0]
  elif name == 'checkerboard':
    x1 = rng.uniform(0, 1, n) * 4 - 2
    x2 = rng.uniform(0, 1, n) - rng.integers(0, 2, n) * 2.
    x2 = x2 + (np.floor(x1) % 2)
    x = np.stack([x1, x2], 1) * 2
  elif name == 'rings':
    idx = rng.integers(0, 4, n)
    theta = rng.uniform(0, 2 * np.pi, n)
    r = _RING_RADII[idx] + rng.standard_normal(n) * _RING_STD
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
  elif name == 'pinwheel':
    x = _pinwheel(n, rng)
  else:  # moons
    x = _moons(n, rng)
  return x.astype(np.float32)


def _spirals(n, rng):
  """Two interleaved spirals; also returns the arm (class) of each point, for Figure 5."""
  labels = rng.integers(0, 2, n)
  t = np.sqrt(rng.uniform(0, 1, n)) * 540 * (2 * np.pi) / 360
  d1 = np.stack([-np.cos(t) * t, np.sin(t) * t], 1)
  d1 = np.where(labels[:, None] == 0, d1, -d1)
  x = d1 + rng.uniform(0, 1, (n, 2)) * 0.5
  return x / 3., labels


def spirals_with_labels(n, rng):
  """2spirals points and their arm labels (0 or 1), for semi-supervised runs (FCE Figure 5)."""
  x, y = _spirals(n, rng)
  return x.astype(np.float32), y.astype(np.int32)


def _pinwheel(n, rng, radial_std=0.3, tangential_std=0.1, num_classes=5, rate=0.25):
  rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
  features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
  features[:, 0] += 1.
  labels = rng.integers(0, num_classes, n)
  angles = rads[labels] + rate * np.exp(features[:, 0])
  rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1)
  rotations = rotations.reshape(-1, 2, 2)
  return 2 * np.einsum('ti,tij->tj', features, rotations)


def _moons(n, rng, noise=0.1):
  labels = rng.integers(0, 2, n)
  t = rng.uniform(0, np.pi, n)
  outer = np.stack([np.cos(t), np.sin(t)], 1)
  inner = np.stack([1 - np.cos(t), 1 - np.sin(t) - 0.5], 1)
  x = np.where(labels[:, None] == 0, outer, inner) + rng.standard_normal((n, 2)) * noise
  return (x - [0.5, 0.25]) * 2.


def has_exact_log_density(name):
  return name in ('8gaussians', 'checkerboard', 'rings') or name in suite2d.DENSITIES


def log_density(name, x):
  """Exact log-density of toy `name` at points x [n, 2] (numpy float64)."""
  x = np.asarray(x, np.float64)
  if name in suite2d.DENSITIES:
    return suite2d.log_density(name, x)
  if name == '8gaussians':
    centers = _eight_centers()
    sq = np.sum((x[:, None, :] - centers[None]) ** 2, -1)
    log_comp = -0.5 * sq / _GAUSS_STD ** 2 - np.log(2 * np.pi * _GAUSS_STD ** 2)
    return special.logsumexp(log_comp, axis=1) - np.log(8.)
  if name == 'checkerboard':
    # Uniform on 8 unit squares of side 2 (total area 32) inside [-4, 4]^2.
    u = x / 2
    inside = (np.abs(u[:, 0]) < 2) & (u[:, 1] > -2) & (u[:, 1] < 2)
    on_board = ((np.floor(u[:, 0]) % 2) == (np.floor(u[:, 1]) % 2))
    with np.errstate(divide='ignore'):
      return np.where(inside & on_board, -np.log(32.), -np.inf)
  if name == 'rings':
    # theta uniform, r ~ mixture of N(R_k, s^2): p(x) = p(r) / (2 pi r), r = |x|.
    r = np.linalg.norm(x, axis=1)
    log_pr = special.logsumexp(
        -0.5 * ((r[:, None] - _RING_RADII[None]) / _RING_STD) ** 2
        - np.log(_RING_STD * np.sqrt(2 * np.pi)), axis=1) - np.log(4.)
    return log_pr - np.log(2 * np.pi * np.maximum(r, 1e-12))
  raise ValueError(f'Toy {name!r} has no closed-form density; those that do: '
                   '8gaussians, checkerboard, rings and the suite (data/suite2d.py).')
