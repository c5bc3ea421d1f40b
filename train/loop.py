"""The training loop for vector (2D toy) data: flow MLE, NCE with Gaussian noise, and FCE.

Alternates compiled updates, prints a progress line every `train.log_every` steps (steps/s,
ETA, the value function, accuracy, update counts, and the log-density error of Figure 2 where
the toy's density is exact), and writes a Figure-1-style density PNG and final metrics to the
workdir.
"""

import json
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from data import toys
from eval import density2d
from models import build
from models import noise as noise_lib
from train import schedule as schedule_lib
from train import steps as steps_lib

MODES = ('mle', 'nce', 'fce')
GRID_LIMIT = 4.5
GRID_SIZE = 200


class TrainingDiverged(RuntimeError):
  """A loss became NaN or Inf."""


def _density_report(config, flow, ebm, mode, workdir, step):
  """Log-density errors on data points (Figure 2) and the data | flow | EBM figure (Figure 1)."""
  name = config.data.name
  rng = np.random.default_rng(config.train.seed + 1)
  metrics = {}
  points = toys.sample(name, 5000, rng)
  grid, _, cell = density2d.make_grid(GRID_LIMIT, GRID_SIZE)
  panels = {}
  if toys.has_exact_log_density(name):
    true_points = toys.log_density(name, points)
    if mode != 'nce':
      metrics['flow_logp_mse'] = density2d.log_density_mse(
          density2d.evaluate(flow.log_prob, points), true_points)
    if mode != 'mle':
      metrics['ebm_logp_mse'] = density2d.log_density_mse(
          density2d.evaluate(ebm.log_prob, points), true_points)
    panels['data'] = np.exp(toys.log_density(name, grid))
  else:
    panels['data'] = density2d.histogram_density(toys.sample(name, 200000, rng), GRID_LIMIT,
                                                 GRID_SIZE)
  if mode != 'nce':
    panels[f'Glow-{mode.upper()}'] = np.exp(density2d.evaluate(flow.log_prob, grid))
  if mode != 'mle':
    ebm_grid = density2d.renormalize_on_grid(density2d.evaluate(ebm.log_prob, grid), cell)
    panels[f'EBM-{mode.upper()}'] = np.exp(ebm_grid)
  density2d.plot_panels(panels, GRID_SIZE, os.path.join(workdir, f'density_{step}.png'),
                        GRID_LIMIT)
  return metrics


def _check_finite(metrics, step):
  for key, value in metrics.items():
    if not np.isfinite(value):
      raise TrainingDiverged(f'{key} became {value} at step {step}. Lower the learning rates '
                             '(--set optim.ebm_lr=... / optim.flow_lr=...) and run again.')


def run(config, mode, workdir):
  """Trains on 2D toy data in `mode` for `config.train.steps` updates; returns final metrics."""
  if mode not in MODES:
    raise ValueError(f'Unknown mode {mode!r}; valid: {", ".join(MODES)}.')
  if len(config.data.shape) != 1:
    raise ValueError('This loop trains on vector data; image training is not built yet.')
  tf.io.gfile.makedirs(workdir)
  tf.random.set_seed(config.train.seed)
  rng = np.random.default_rng(config.train.seed)
  name, batch = config.data.name, config.train.batch_size
  shape = tuple(config.data.shape)

  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes)
  flow.data_init(toys.sample(name, 5000, rng))
  optimizers = steps_lib.make_optimizers(config.optim)
  generator = tf.random.Generator.from_seed(config.train.seed)
  schedule = schedule_lib.AlternationSchedule(**config.train.schedule)

  if mode == 'mle':
    mle_step = steps_lib.make_mle_step(flow, optimizers['flow_mle'])
  elif mode == 'nce':
    data = toys.sample(name, 5000, rng)
    noise = noise_lib.GaussianNoise(shape, data.mean(0), config.train.nce_noise_std * data.std(0))
    nce_step = steps_lib.make_nce_step(ebm, noise, optimizers['ebm'])
  else:
    ebm_step, flow_step = steps_lib.make_fce_steps(ebm, flow, optimizers['ebm'],
                                                   optimizers['flow'])

  start = time.perf_counter()
  metrics = {}
  for step in range(1, config.train.steps + 1):
    x = tf.constant(toys.sample(name, batch, rng))
    if mode == 'mle':
      out = mle_step(x)
    elif mode == 'nce':
      out = nce_step(x)
    else:
      z = flow.sample_latent(batch, generator=generator)
      out = (ebm_step if schedule.phase == 'ebm' else flow_step)(x, z)
      schedule.record(out['accuracy'])
    if step % config.train.log_every == 0 or step == config.train.steps:
      metrics = {k: float(v) for k, v in out.items()}
      _check_finite(metrics, step)
      if mode == 'fce':
        metrics.update(ebm_updates=schedule.updates['ebm'], flow_updates=schedule.updates['flow'])
      if step % config.train.eval_every == 0 or step == config.train.steps:
        metrics.update(_density_report(config, flow, ebm, mode, workdir, step))
      elapsed = time.perf_counter() - start
      rate = step / elapsed
      logging.info('step %d/%d  %.1f steps/s  ETA %.0fs  %s', step, config.train.steps, rate,
                   (config.train.steps - step) / rate,
                   '  '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items())))
  with tf.io.gfile.GFile(os.path.join(workdir, 'metrics.json'), 'w') as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
  return metrics
