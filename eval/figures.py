"""Figures written during training and evaluation: 2D density panels and sample grids."""

import os

import numpy as np
import tensorflow as tf

from data import toys
from eval import density2d
from losses import flow as flow_losses
from train import modes

GRID_LIMIT = 4.5
GRID_SIZE = 200
TEMPERATURES = (1.0, 0.7)


def density_report(config, flow, ebm, mode, out_dir, step):
  """FCE Figure 2's log-density errors on data points and a Figure 1 panel PNG (2D data).

  Returns (metrics, path of the PNG). The EBM's error uses its learned log-normalizer c. The
  panels show the models the run of `mode` has (`train/modes.py`).
  """
  reports = modes.get(mode).reports(config)
  name = config.data.name
  rng = np.random.default_rng(config.train.seed + 1)
  grid, _, cell = density2d.make_grid(GRID_LIMIT, GRID_SIZE)
  metrics, panels = {}, {}
  exact = name in toys.ALL and toys.has_exact_log_density(name)
  if exact:
    points = toys.sample(name, 5000, rng)
    true_points = toys.log_density(name, points)
    panels['data'] = np.exp(toys.log_density(name, grid))
  elif name in toys.ALL:
    panels['data'] = density2d.histogram_density(toys.sample(name, 200000, rng), GRID_LIMIT,
                                                 GRID_SIZE)
  if reports.flow:
    if exact:
      metrics['flow_logp_mse'] = density2d.log_density_mse(
          density2d.evaluate(flow.log_prob, points), true_points)
    panels[f'Glow-{mode.upper()}'] = np.exp(density2d.evaluate(flow.log_prob, grid))
  if reports.ebm:
    grid_log_p = density2d.evaluate(ebm.marginal_log_prob, grid)
    # NT-EBM's tilted model is normalised by its log Z on the grid (nt learns no c); an EBM of
    # FCE / NCE is scored with its learned c, as in FCE Figure 2.
    log_z = density2d.grid_log_normalizer(grid_log_p, cell) if reports.grid_log_z else 0.
    if exact:
      metrics['ebm_logp_mse'] = density2d.log_density_mse(
          density2d.evaluate(ebm.marginal_log_prob, points) - log_z, true_points)
    panels[f'EBM-{mode.upper()}'] = np.exp(density2d.renormalize_on_grid(grid_log_p, cell))
    if ebm.num_classes:  # FCE Figure 5: each class-conditional EBM, and accuracy on all points
      per_class = density2d.evaluate(ebm.log_prob, grid)
      for k in range(ebm.num_classes):
        panels[f'EBM class {k}'] = np.exp(density2d.renormalize_on_grid(per_class[:, k], cell))
      if name == '2spirals':
        x, y = toys.spirals_with_labels(5000, rng)
        predicted = density2d.evaluate(ebm.log_prob, x).argmax(axis=1)
        metrics['class_accuracy'] = float(np.mean(predicted == y))
  path = os.path.join(out_dir, f'density_{step}.png')
  density2d.plot_panels(panels, GRID_SIZE, path, GRID_LIMIT)
  return metrics, path


def tile(images, columns):
  """[N, H, W, C] uint8 -> one [rows*H, columns*W, C] grid image (missing cells black)."""
  n, h, w, c = images.shape
  rows = -(-n // columns)
  canvas = np.zeros((rows * h, columns * w, c), np.uint8)
  for i, im in enumerate(images):
    r, col = divmod(i, columns)
    canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = im
  return canvas


def sample_grid(flow, config, out_dir, step, num=64, seed=0, temperatures=TEMPERATURES,
                name='flow_samples'):
  """Flow samples at several temperatures, side by side, as one PNG <name>_<step>.png; returns
  its path."""
  gen = tf.random.Generator.from_seed(seed)
  grids = []
  for t in temperatures:
    y = flow.sample(num, temperature=t, generator=gen)
    x = flow_losses.quantize(y, config.data.num_bins or 256).numpy()
    x = flow_losses.to_8bit(x, config.data.num_bins)  # 17 levels and the like, to view
    grids.append(tile(x, int(np.ceil(np.sqrt(num)))))
  gap = np.full((grids[0].shape[0], 4, grids[0].shape[2]), 255, np.uint8)
  image = np.concatenate(sum([[g, gap] for g in grids], [])[:-1], axis=1)
  path = os.path.join(out_dir, f'{name}_{step}.png')
  tf.io.write_file(path, tf.io.encode_png(image))
  return path


def transport_grid(model, config, out_dir, step, hmc_steps, step_size, num=64, seed=0):
  """Samples of a tilted model exp(f - c) q (nt, nt_nce) by neural transport (NT-EBM Sec. 3.2:
  `num` latent chains from q0, `hmc_steps` HMC steps, the step size adapted in the first half),
  as one PNG nt_samples_<step>.png beside the backbone's flow_samples. Returns (its path, the
  acceptance rate after the adaptation)."""
  from models import transport  # pylint: disable=g-import-not-at-top
  y, rate, _ = transport.sample(model.correction, model.flow, num, hmc_steps, step_size, seed,
                                leapfrog_steps=config.nt.hmc_leapfrog_steps)
  x = flow_losses.quantize(y, config.data.num_bins or 256).numpy()
  image = tile(flow_losses.to_8bit(x, config.data.num_bins), int(np.ceil(np.sqrt(num))))
  path = os.path.join(out_dir, f'nt_samples_{step}.png')
  tf.io.write_file(path, tf.io.encode_png(image))
  return path, rate


def scatter(points, path, limit=GRID_LIMIT):
  """A scatter plot of 2D points, saved as a PNG; returns the path."""
  import matplotlib.pyplot as plt  # density2d has set the Agg backend
  fig, ax = plt.subplots(figsize=(4, 4))
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
  ax.set_xlim(-limit, limit)
  ax.set_ylim(-limit, limit)
  ax.set_aspect('equal')
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def read_png(path):
  return tf.io.decode_png(tf.io.read_file(path))
