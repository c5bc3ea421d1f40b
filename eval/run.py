"""`--mode=eval`: evaluates the latest checkpoint of a run folder, writing under WORKDIR/eval/.

2D data (the contract of the trainer issue):
  metrics.json      step, mode, the log-density errors of FCE Figure 2 where the toy's density
                    is exact, and the EBM's log-normalizer c
  density.npz       the grid (`grid_x`, `grid_y`, `points`), `ebm_logp` (with the learned c),
                    `ebm_logp_renormalized` (normalised on the grid), `flow_logp` (the models
                    the run trained: no EBM for mle, no flow for nce with Gaussian noise)
  density.png       data | flow | EBM, laid out like FCE Figure 1
  points_logp.npz   with --eval_points=PATH.npy: `ebm_logp` and `flow_logp` at those points
Evaluation is idempotent: re-running it rewrites the same files from the same checkpoint.

Images: bits/dim, FID/KID and sample grids in WORKDIR/eval/report_<step>.json, one per
checkpoint (the latest, or every kept snapshot too); see eval/image_eval.py.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

import configs
from data import images
from eval import density2d
from eval import figures
from eval import image_eval
from losses import flow as flow_losses
from models import build
from models import ebm as ebm_lib
from models import transport
from train import checkpoints as ckpt_lib
from train import errors
from train import modes


class EvalError(errors.UserError):
  """An evaluation that cannot run; the message says why."""


def load_run(workdir):
  """(config, mode) of the run in `workdir`, from its config.json."""
  path = os.path.join(workdir, 'config.json')
  if not tf.io.gfile.exists(path):
    raise EvalError(f'{workdir} holds no run (no config.json); train one first.')
  try:
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    config, mode = saved['config'], saved['identity']['mode']
  except (ValueError, KeyError, TypeError) as e:
    reason = ' '.join(str(e).split())
    raise EvalError(
        f'{path} is not a readable run record ({reason}). Its checkpoints were not touched: '
        'move config.json aside and re-run with the run\'s settings to write it again.') from e
  return configs.with_defaults(config), mode


def checkpoints(workdir, which='latest'):
  """Checkpoint paths to evaluate: the latest, or ('all') every kept snapshot and the latest."""
  try:  # the newest that reads whole: a damaged one is named, and the one before it used
    latest, _ = ckpt_lib.latest_readable(os.path.join(workdir, 'checkpoints'))
  except ckpt_lib.CheckpointError as e:
    raise EvalError(str(e)) from e
  if latest is None:
    raise EvalError(f'{workdir} has no checkpoint yet.')
  if which == 'latest':
    return [latest]
  state = tf.train.get_checkpoint_state(os.path.join(workdir, 'snapshots'))
  paths = list(state.all_model_checkpoint_paths) if state else []
  step_of = lambda p: int(p.rsplit('-', 1)[-1])
  if step_of(latest) not in map(step_of, paths):
    paths.append(latest)
  return sorted(paths, key=step_of)


def saved_value(checkpoint, name):
  """The value of the top-level variable `name` (a tf.train.Checkpoint keyword) saved in
  `checkpoint`, or None if that checkpoint has none (e.g. it predates the variable)."""
  key = f'{name}/.ATTRIBUTES/VARIABLE_VALUE'
  if key not in dict(tf.train.list_variables(checkpoint)):
    return None
  return tf.train.load_variable(checkpoint, key).item()


def hmc_step_size(config, checkpoint):
  """The initial HMC step size for sampling an nt / nt_nce model: the one nt adapted and saved in
  `checkpoint`, or (nt_nce, which adapts none) nt.hmc_step_size."""
  return float(saved_value(checkpoint, 'hmc_step_size') or config.nt.hmc_step_size)


def mle_phase_length(checkpoint):
  """The MLE steps before FCE of the run that saved `checkpoint` (0 if it had none)."""
  return int(saved_value(checkpoint, 'mle_pretrain_steps') or 0)


def restore_models(config, workdir, checkpoint=None, mode=None):
  """The run's flow and EBM at `checkpoint` (default: the latest), and its step. For a
  correction of the flow (nt, nt_nce: `mode`), the EBM is the tilted model exp(f - c) q."""
  shape = tuple(config.data.shape)
  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes, config.model.flow)
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = checkpoint or checkpoints(workdir)[0]
  tf.train.Checkpoint(flow=flow, ebm=ebm, step=step).restore(checkpoint).expect_partial()
  ebm_lib.restore_legacy_log_normalizer(ebm, checkpoint)
  if mode:
    ebm = modes.get(mode).model(ebm, flow)
  return flow, ebm, int(step.numpy())


def evaluate(workdir, eval_points=None, options=None, which='latest'):
  """Evaluates the run in `workdir`; returns the metrics written (metrics.json for vectors, the
  report of each evaluated checkpoint for images)."""
  config, mode = load_run(workdir)
  if len(config.data.shape) == 3:
    if eval_points:
      raise EvalError('--eval_points is for vector data; this run models images.')
    reports = {}
    options = options or image_eval.Options()
    reported = modes.get(mode).reports(config)
    for path in checkpoints(workdir, which):
      flow, ebm, step = restore_models(config, workdir, path, mode)
      ckpt_options = options
      if reported.transport_samples and not options.hmc_step_size:  # this checkpoint's own
        ckpt_options = dataclasses.replace(options, hmc_step_size=hmc_step_size(config, path))
      try:
        # A checkpoint of fce / ssl's MLE phase has no trained EBM yet: the flow only.
        reports[step] = image_eval.evaluate(workdir, config, mode, flow, ebm, step, ckpt_options,
                                            has_ebm=step > mle_phase_length(path))
      except errors.ReportError as e:
        raise EvalError(str(e)) from e
    return reports
  points = None
  if eval_points:  # checked before anything is written
    try:
      points = images.load_npy(eval_points)
    except images.DataError as e:
      raise EvalError(f'--eval_points: {e}') from e
    if points.ndim != 2 or points.shape[1:] != tuple(config.data.shape):
      raise EvalError(f'--eval_points={eval_points} holds shape {points.shape}; this run models '
                      f'vectors of shape {tuple(config.data.shape)}: give an (N, '
                      f'{config.data.shape[0]}) float array.')
  flow, ebm, step = restore_models(config, workdir, mode=mode)
  out_dir = os.path.join(workdir, 'eval')
  tf.io.gfile.makedirs(out_dir)
  # Only the models the run has are reported: an MLE run has no EBM, an NCE run no flow unless
  # it was the noise (train/modes.py).
  reports = modes.get(mode).reports(config)
  has_ebm, has_flow = reports.ebm, reports.flow
  metrics = {'step': step, 'mode': mode}
  if has_ebm:
    metrics['log_normalizer'] = [float(c) for c in ebm.log_normalizer.numpy()]
  log_z = 0.  # NT-EBM (nt, nt_nce): the tilted model's log Z on the 2D grid
  if tuple(config.data.shape) == (2,):
    grid, axis, cell = density2d.make_grid(figures.GRID_LIMIT, figures.GRID_SIZE)
    arrays = {'grid_x': axis, 'grid_y': axis, 'points': grid}
    if has_ebm:
      arrays['ebm_logp'] = density2d.evaluate(ebm.marginal_log_prob, grid)
      if reports.grid_log_z:
        log_z = density2d.grid_log_normalizer(arrays['ebm_logp'], cell)
        arrays['ebm_logp'] -= log_z
        metrics['log_z_grid'] = log_z
      arrays['ebm_logp_renormalized'] = density2d.renormalize_on_grid(arrays['ebm_logp'], cell)
    if has_flow:
      arrays['flow_logp'] = density2d.evaluate(flow.log_prob, grid)
    np.savez(os.path.join(out_dir, 'density.npz'), **arrays)
    report, png = figures.density_report(config, flow, ebm, mode, out_dir, step)
    tf.io.gfile.rename(png, os.path.join(out_dir, 'density.png'), overwrite=True)
    metrics.update(report)
  if points is not None:
    arrays = {}
    if has_ebm:
      arrays['ebm_logp'] = density2d.evaluate(ebm.marginal_log_prob, points) - log_z
    if has_flow:
      arrays['flow_logp'] = density2d.evaluate(flow.log_prob, points)
    np.savez(os.path.join(out_dir, 'points_logp.npz'), **arrays)
  ckpt_lib.write_json(os.path.join(out_dir, 'metrics.json'), metrics)
  return metrics



def sample(workdir, num_samples=64, temperature=1.0, seed=0, hmc_steps=200, step_size=0.,
           thin=0):
  """`--mode=sample`: samples of the latest checkpoint, as WORKDIR/samples/sample_<step>.npy
  (uint8 images or float vectors) and a PNG (an image grid, or a 2D scatter plot). Returns the
  paths written.

  A flow is sampled ancestrally (images at several temperatures). The model of an nt / nt_nce
  run, exp(f) q / Z, is sampled by neural transport (`models.transport.sample`): num_samples
  latent chains of `hmc_steps` HMC steps from `step_size` (0: the run's adapted one, or
  nt.hmc_step_size), adapted during the first half; `thin` = k > 0 keeps every k-th state
  after that.
  """
  config, mode = load_run(workdir)
  reports = modes.get(mode).reports(config)
  if not reports.flow:
    raise EvalError(f'{workdir} is an {mode} run against Gaussian noise: it has no flow to '
                    'sample.')
  path = checkpoints(workdir)[0]
  flow, correction, step = restore_models(config, workdir, path)
  out_dir = os.path.join(workdir, 'samples')
  tf.io.gfile.makedirs(out_dir)
  if reports.transport_samples:
    return _sample_tilted(config, flow, correction, step, out_dir, num_samples, seed, hmc_steps,
                          step_size or hmc_step_size(config, path), thin)
  x = flow.sample(num_samples, temperature, generator=tf.random.Generator.from_seed(seed))
  if len(config.data.shape) == 3:
    x = flow_losses.quantize(x, config.data.num_bins or 256)
    png = figures.sample_grid(flow, config, out_dir, step, num=num_samples, seed=seed)
  else:
    png = figures.scatter(x.numpy(), os.path.join(out_dir, f'sample_{step}.png'))
  path = os.path.join(out_dir, f'sample_{step}.npy')
  np.save(path, x.numpy())
  return [path, png]


def _sample_tilted(config, flow, correction, step, out_dir, num_chains, seed, hmc_steps, step_size,
                   thin):
  x, acceptance, final_size = transport.sample(
      correction, flow, num_chains, hmc_steps, step_size, seed, thin,
      leapfrog_steps=config.nt.hmc_leapfrog_steps)
  x = x.numpy()
  name = f'nt_sample_{step}'
  if len(config.data.shape) == 3:
    num_bins = config.data.num_bins or 256
    x = flow_losses.quantize(x, num_bins).numpy()
    grid = figures.tile(flow_losses.to_8bit(x[-num_chains:], num_bins),
                        int(np.ceil(np.sqrt(num_chains))))
    png = os.path.join(out_dir, f'{name}.png')
    tf.io.write_file(png, tf.io.encode_png(grid))
  else:
    png = figures.scatter(x, os.path.join(out_dir, f'{name}.png'))
  path = os.path.join(out_dir, f'{name}.npy')
  np.save(path, x)
  ckpt_lib.write_json(os.path.join(out_dir, f'{name}.json'), {
      'chains': num_chains, 'hmc_steps': hmc_steps, 'thin': thin, 'samples': len(x),
      'step_size_start': step_size, 'step_size': final_size,
      'acceptance_after_adaptation': acceptance})
  return [path, png]
