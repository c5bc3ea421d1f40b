"""The 2D benchmark suite: densities beyond FCE's six toys, each with a sampler and an exact
log-density, for choosing settings that hold on data nobody tuned for (experiments/bench2d.py).

Each density is a mixture of components in [-4.5, 4.5]^2 (the evaluation grid of eval/figures.py)
chosen to vary what breaks density estimators: the number of modes (2 to 25), unequal weights (up
to 1:10 and beyond), scales from 0.05 to 1.5, anisotropy and rotation, heavy tails (Student-t,
3 degrees of freedom), thin curves, a broad component beside sharp ones, a far-off mode, and
long thin arms that wind around each other (the 2spirals toy, given an exact density).

Components (all exact):
  Gauss(mean, std=(s1, s2), angle)     N(mean, R diag(s^2) R^T), R the rotation by `angle` degrees.
  StudentT(mean, scale, angle, df)     the bivariate t with scale matrix R diag(scale^2) R^T.
  Ring(center, radius, width)          angle uniform, radius ~ N(radius, width^2) truncated to
                                       r > 0: p(x) = N(r; radius, width) / (Phi(radius/width) 2 pi r).
  Curve(mean, kind, spread, width, a, b, angle)
                                       t ~ N(0, spread^2) along the curve, y = a sin(b t) ('sine')
                                       or a t^2 + b ('parabola') plus N(0, width^2) across it, then
                                       rotated and shifted: p = N(t) N(y - h(t)), a unit Jacobian.
  Spiral(width, beads)                 the two interleaved arms of the 2spirals toy, r = t / 3 for
                                       t in [0, 3 pi], each as `beads` equal Gaussians of std
                                       `width` spaced evenly along the arc: exact as a mixture.
"""

import dataclasses

import numpy as np
from scipy import special

_LOG_2PI = np.log(2 * np.pi)


def _rotation(degrees):
  a = np.deg2rad(degrees)
  return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@dataclasses.dataclass(frozen=True)
class Gauss:
  mean: tuple
  std: tuple
  angle: float = 0.

  def log_prob(self, x):
    u = (x - self.mean) @ _rotation(self.angle) / np.asarray(self.std)  # coordinates along axes
    return -0.5 * np.sum(u ** 2, 1) - _LOG_2PI - np.sum(np.log(self.std))

  def sample(self, n, rng):
    return np.asarray(self.mean) + (rng.standard_normal((n, 2)) * self.std) @ _rotation(
        self.angle).T


@dataclasses.dataclass(frozen=True)
class StudentT:
  mean: tuple
  scale: tuple
  angle: float = 0.
  df: float = 3.

  def log_prob(self, x):
    u = (x - self.mean) @ _rotation(self.angle) / np.asarray(self.scale)
    nu = self.df
    return (special.gammaln((nu + 2) / 2) - special.gammaln(nu / 2) - np.log(nu * np.pi)
            - np.sum(np.log(self.scale)) - (nu + 2) / 2 * np.log1p(np.sum(u ** 2, 1) / nu))

  def sample(self, n, rng):
    u = rng.standard_normal((n, 2)) / np.sqrt(rng.chisquare(self.df, (n, 1)) / self.df)
    return np.asarray(self.mean) + (u * self.scale) @ _rotation(self.angle).T


@dataclasses.dataclass(frozen=True)
class Ring:
  center: tuple
  radius: float
  width: float

  def log_prob(self, x):
    r = np.maximum(np.linalg.norm(x - self.center, axis=1), 1e-12)
    log_pr = (-0.5 * ((r - self.radius) / self.width) ** 2 - 0.5 * _LOG_2PI - np.log(self.width)
              - special.log_ndtr(self.radius / self.width))
    return log_pr - np.log(2 * np.pi * r)

  def sample(self, n, rng):
    r = np.empty(0)
    while len(r) < n:  # the truncation at r > 0 (rejection; it rejects almost nothing here)
      draw = self.radius + self.width * rng.standard_normal(2 * n)
      r = np.concatenate([r, draw[draw > 0]])
    theta = rng.uniform(0, 2 * np.pi, n)
    return np.asarray(self.center) + r[:n, None] * np.stack([np.cos(theta), np.sin(theta)], 1)


@dataclasses.dataclass(frozen=True)
class Curve:
  mean: tuple
  kind: str       # 'sine': h(t) = a sin(b t); 'parabola': h(t) = a t^2 + b
  spread: float   # std of the position t along the curve
  width: float    # std across the curve
  a: float
  b: float
  angle: float = 0.

  def _h(self, t):
    return self.a * np.sin(self.b * t) if self.kind == 'sine' else self.a * t ** 2 + self.b

  def log_prob(self, x):
    t, y = ((x - self.mean) @ _rotation(self.angle)).T
    return (-0.5 * (t / self.spread) ** 2 - 0.5 * ((y - self._h(t)) / self.width) ** 2
            - _LOG_2PI - np.log(self.spread * self.width))

  def sample(self, n, rng):
    t = self.spread * rng.standard_normal(n)
    y = self._h(t) + self.width * rng.standard_normal(n)
    return np.asarray(self.mean) + np.stack([t, y], 1) @ _rotation(self.angle).T


@dataclasses.dataclass(frozen=True)
class Spiral:
  width: float
  beads: int  # per arm; spiral_arms' 90 beads are 2.1 widths apart: the ridge ripples by 6%

  def centers(self):
    t = np.linspace(0, 3 * np.pi, 20001)
    arm = np.stack([-np.cos(t) * t, np.sin(t) * t], 1) / 3.  # the arm of data/toys.py
    arc = np.concatenate([[0.], np.cumsum(np.linalg.norm(np.diff(arm, axis=0), axis=1))])
    s = np.linspace(0, arc[-1], self.beads)
    arm = np.stack([np.interp(s, arc, arm[:, 0]), np.interp(s, arc, arm[:, 1])], 1)
    return np.concatenate([arm, -arm])  # the second arm is the first reflected through 0

  def log_prob(self, x):
    c = self.centers()
    out = np.empty(len(x))
    for i in range(0, len(x), 8192):  # in chunks: points x beads at once would not fit on a grid
      chunk = x[i:i + 8192]
      e = -0.5 * ((chunk[:, :1] - c[:, 0]) ** 2 + (chunk[:, 1:] - c[:, 1]) ** 2) / self.width ** 2
      top = e.max(1)
      # A logsumexp whose terms below e^-50 of the largest are set to e^-50: 2 x beads of them
      # change the result by < 1e-19, and exp() of denormals would make it 5x slower.
      out[i:i + 8192] = top + np.log(np.sum(np.exp(np.maximum(e - top[:, None], -50.)), 1))
    return out - np.log(2 * self.beads) - _LOG_2PI - 2 * np.log(self.width)

  def sample(self, n, rng):
    centers = self.centers()
    return centers[rng.integers(0, len(centers), n)] + self.width * rng.standard_normal((n, 2))


@dataclasses.dataclass(frozen=True)
class Mixture:
  """sum_k w_k p_k(x), weights given unnormalised."""
  weights: tuple
  components: tuple
  about: str = ''

  def log_prob(self, x):
    x = np.asarray(x, np.float64)
    log_w = np.log(np.asarray(self.weights, np.float64) / np.sum(self.weights))
    return special.logsumexp(
        np.stack([c.log_prob(x) for c in self.components], 1) + log_w, axis=1)

  def sample(self, n, rng):
    w = np.asarray(self.weights, np.float64)
    counts = rng.multinomial(n, w / w.sum())
    x = np.concatenate([c.sample(k, rng) for c, k in zip(self.components, counts) if k])
    return x[rng.permutation(n)]


def _grid25():
  """25 sharp modes on a 5 x 5 grid with weights spread over 1:10 (fixed, not seeded per run)."""
  centers = [(x, y) for y in np.linspace(-3.2, 3.2, 5) for x in np.linspace(-3.2, 3.2, 5)]
  weights = np.round(np.geomspace(1, 10, 25)[np.random.default_rng(25).permutation(25)], 3)
  return Mixture(tuple(weights), tuple(Gauss(c, (0.12, 0.12)) for c in centers),
                 '25 modes of std 0.12 on a grid, weights 1 to 10')


def _unequal8():
  """8 modes on a circle with weights 1..20 and scales 0.08..0.5 (8 gaussians, made uneven)."""
  angles = np.arange(8) * np.pi / 4
  centers = 2.8 * np.stack([np.cos(angles), np.sin(angles)], 1)
  weights = (20, 1, 8, 2, 12, 3, 5, 1.5)
  stds = (0.5, 0.08, 0.3, 0.12, 0.4, 0.1, 0.2, 0.06)
  return Mixture(weights, tuple(Gauss(tuple(c), (s, s)) for c, s in zip(centers, stds)),
                 '8 modes on a circle, weights 1 to 20, std 0.06 to 0.5')


DENSITIES = {
    'unequal2': Mixture(
        (10, 1), (Gauss((-1., -0.5), (0.8, 0.8)), Gauss((2.5, 1.5), (0.2, 0.2))),
        '2 modes, weights 10:1, std 0.8 and 0.2'),
    'sharp_broad': Mixture(
        (4, 1, 1, 1, 1),
        (Gauss((0., 0.), (1.2, 1.2)), Gauss((2., 2.), (0.05, 0.05)), Gauss((-2., 2.), (0.05, 0.05)),
         Gauss((2., -2.), (0.08, 0.08)), Gauss((-2., -2.), (0.1, 0.1))),
        'a broad mode (std 1.2) under 4 sharp ones (std 0.05 to 0.1)'),
    'aniso_rotated': Mixture(
        (1, 3, 6),
        (Gauss((-1.5, 1.5), (1.0, 0.06), 0.), Gauss((1.5, 1.), (1.0, 0.06), 60.),
         Gauss((0., -1.5), (1.2, 0.1), 135.)),
        '3 thin rotated modes (std 1.0 x 0.06), weights 1:3:6'),
    'grid25': _grid25(),
    'student_t': Mixture(
        (2, 1), (StudentT((-1.2, 0.), (0.4, 0.2), 30., 3.), StudentT((1.5, 1.), (0.3, 0.3), 0., 3.)),
        '2 heavy-tailed Student-t modes (3 degrees of freedom), one anisotropic'),
    'sine': Mixture(
        (4, 1), (Curve((0., 0.5), 'sine', 1.3, 0.08, 1.0, 1.5), Gauss((0., -3.), (0.3, 0.3))),
        'a thin sine curve (width 0.08) and a small mode'),
    'banana': Mixture(
        (1,), (Curve((0., 0.), 'parabola', 1.2, 0.15, 0.6, -1.5, 20.),),
        'a banana (a parabola of width 0.15)'),
    'far_mode': Mixture(
        (5, 5, 1),
        (Gauss((-1., -1.), (0.6, 0.6)), Gauss((0., 0.5), (1.0, 0.3), 30.),
         Gauss((3.6, 3.6), (0.15, 0.15))),
        'two modes near the origin and a far-off small one (weight 1:10)'),
    'ring_blob': Mixture(
        (3, 1), (Ring((0., 0.), 2.5, 0.1), Gauss((0., 0.), (0.4, 0.4))),
        'a thin ring (width 0.1) around a central mode'),
    'cross': Mixture(
        (1, 2), (Gauss((0., 0.), (1.5, 0.08), 45.), Gauss((0., 0.), (1.5, 0.08), -45.)),
        'two crossing thin modes (std 1.5 x 0.08), weights 1:2'),
    'mixed': Mixture(
        (1, 2, 3, 1, 3),
        (StudentT((-2.5, 2.5), (0.25, 0.25), 0., 3.), Gauss((2., 2.), (0.6, 0.1), 45.),
         Ring((0., -2.), 1., 0.06), Gauss((-2.8, -2.8), (0.05, 0.05)), Gauss((1., -1.), (1., 1.))),
        'a t mode, a thin rotated mode, a ring, a sharp mode and a broad one'),
    'unequal8': _unequal8(),
    'spiral_arms': Mixture(
        (1,), (Spiral(0.08, 90),),
        'the two thin arms of 2spirals (width 0.08) as an exact density'),
}
NAMES = tuple(DENSITIES)


def sample(name, n, rng):
  return DENSITIES[name].sample(n, rng).astype(np.float32)


def log_density(name, x):
  return DENSITIES[name].log_prob(x)
