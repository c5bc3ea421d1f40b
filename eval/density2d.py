"""2D density evaluation: log-densities on a grid, FCE Figure 2's log-density error, Figure 1 plots."""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

from eval import batching  # noqa: E402


def make_grid(limit, size):
  """A size x size grid on [-limit, limit]^2: (points [size^2, 2] float32, axis values, cell area)."""
  axis = np.linspace(-limit, limit, size, dtype=np.float32)
  xx, yy = np.meshgrid(axis, axis, indexing='xy')
  return np.stack([xx.ravel(), yy.ravel()], 1), axis, float((axis[1] - axis[0]) ** 2)


def evaluate(log_prob_fn, points, batch_size=20000):
  """log_prob_fn on many points in batches, as a float64 numpy array."""
  return batching.apply(log_prob_fn, points, batch_size, np.float64)


def grid_log_normalizer(log_p, cell_area):
  """log of the integral over the grid of exp(log_p) (a Riemann sum)."""
  return float(special.logsumexp(log_p) + np.log(cell_area))


def renormalize_on_grid(log_p, cell_area):
  """log-density normalised so that it integrates to one over the grid."""
  return log_p - grid_log_normalizer(log_p, cell_area)


def log_density_mse(model_log_p, true_log_p):
  """Mean squared error of log-densities (FCE Figure 2's metric), over finite true values."""
  ok = np.isfinite(true_log_p)
  return float(np.mean((model_log_p[ok] - true_log_p[ok]) ** 2))


def plot_panels(panels, size, path, limit):
  """Saves densities side by side (FCE Figure 1's layout). panels: {title: density [size^2]}."""
  fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
  for ax, (title, density) in zip(np.atleast_1d(axes), panels.items()):
    ax.imshow(density.reshape(size, size), origin='lower', cmap='viridis',
              extent=[-limit, limit, -limit, limit])
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def histogram_density(samples, limit, size):
  """A normalised 2D histogram of samples on the grid's cells, as a flat [size^2] density."""
  edges = np.linspace(-limit, limit, size + 1)
  hist, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=[edges, edges], density=True)
  return hist.ravel()
