"""Long-run chains and latent interpolation of an EBM with a flow backbone (NT-EBM Secs. 4.1-4.3).

  long chain     one latent HMC chain of p(z) ∝ exp(f(g(z))) q0(z) (eq. 9) run for many steps
                 at the run's adapted step size: a strip of its states pushed through g every
                 `strip_every` steps (Figures 4, 9, 10), and, given an FID network, the FID of
                 its first 1000, 2000, ... consecutive samples (Table 2).
  interpolation  magnetized over-damped Langevin dynamics from z1 towards z2 (Sec. 4.2, after
                 Hill et al. 2019): on U_gamma(z) = U(z) - gamma |z - z2|, U(z) = f(g(z)) +
                 log q0(z), whose gradient adds a pull of constant strength gamma towards z2,
                   z <- z + (s^2 / 2) grad U_gamma(z) + s eps,   eps ~ N(0, I),
                 for n steps; the path pushed through g, and U along it (Figure 5's energy
                 profile). NT-EBM asks for a small gamma, so that the model, not the pull,
                 shapes the path: gamma = 0 picks half the model's own force, the median of
                 |grad U| along the segment from z1 to z2 (`GAMMA_SHARE`). Such a path may stop
                 short of z2 in n steps; the report gives gamma / force and the distance left.

  python -m eval.longrun --workdir=runs/svhn_nt --chain_steps=2000 --strip_every=5

writes WORKDIR/eval/long_chain_<step>.png / .json and interpolation_<step>.png / .npz.
"""

import json
import os

from train import progress
from train import startup

startup.quiet()  # before anything imports TensorFlow

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from models import transport  # noqa: E402

CHUNK = 500  # HMC steps per compiled call of the long chain


def long_chain(correction, flow, num_steps, step_size, seed=0, leapfrog_steps=3, z0=None):
  """All `num_steps` states of one latent HMC chain ([num_steps, latent_dim]) at a fixed step
  size, from z0 (default: a draw of q0), and its acceptance rate."""
  target = transport.latent_log_prob(correction, flow)
  kernel = tfp.mcmc.HamiltonianMonteCarlo(target, step_size=float(step_size),
                                          num_leapfrog_steps=leapfrog_steps)
  run = tf.function(lambda z, n, s: tfp.mcmc.sample_chain(
      num_results=n, current_state=z, kernel=kernel, seed=s,
      trace_fn=lambda _, r: r.is_accepted))
  z = z0 if z0 is not None else tf.random.stateless_normal([1, flow.latent_dim], seed=[seed, 5])
  states, accepted = [], []
  shown = progress.Progress('long chain', num_steps, 'HMC steps')
  for i, start in enumerate(range(0, num_steps, CHUNK)):
    n = min(CHUNK, num_steps - start)
    chunk, acc = run(z, n, tf.constant([seed, 100 + i]))
    states.append(chunk[:, 0].numpy())
    accepted.append(acc.numpy())
    z = chunk[-1]
    shown.log(start + n, acceptance=float(np.mean(np.concatenate(accepted))))
  return np.concatenate(states), float(np.mean(np.concatenate(accepted)))


GAMMA_SHARE = 0.5  # the default pull, as a share of the model's own force


def model_force(target, z1, z2, points=11):
  """The median of |grad U(z)| at `points` points of the segment from z1 to z2 ([1, D] each)."""
  z = z1 + tf.linspace(0., 1., points)[:, None] * (z2 - z1)
  with tf.GradientTape() as tape:
    tape.watch(z)
    u = target(z)
  return float(np.median(tf.norm(tape.gradient(u, z), axis=1).numpy()))


def magnetized_langevin(correction, flow, z1, z2, num_steps=1000, step_size=0.05, gamma=0.,
                        seed=0):
  """The path of magnetized Langevin dynamics from z1 towards z2 (module docstring):
  (states [num_steps + 1, latent_dim], U at each, the gamma used, the model's force)."""
  z1 = tf.reshape(tf.convert_to_tensor(z1, tf.float32), [1, -1])
  z2 = tf.reshape(tf.convert_to_tensor(z2, tf.float32), [1, -1])
  target = transport.latent_log_prob(correction, flow)
  force = model_force(target, z1, z2)
  gamma = gamma or GAMMA_SHARE * force

  @tf.function
  def step(z, noise):
    with tf.GradientTape() as tape:
      tape.watch(z)
      u = target(z)
    grad = tape.gradient(u, z)
    d = z - z2
    pull = -gamma * d / tf.maximum(tf.norm(d, axis=1, keepdims=True), 1e-6)
    return z + 0.5 * step_size ** 2 * (grad + pull) + step_size * noise, u

  noise = tf.random.stateless_normal([num_steps, 1, z1.shape[1]], seed=[seed, 9])
  z, states, energies = z1, [z1.numpy()[0]], []
  for t in range(num_steps):
    z, u = step(z, noise[t])
    energies.append(float(u[0]))
    states.append(z.numpy()[0])
  energies.append(float(target(z)[0]))
  return np.stack(states), np.array(energies), gamma, force


def fid_of_growing_chain(features, ref, every=1000):
  """FID of the first every, 2 every, ... consecutive samples of a chain (NT-EBM Table 2)."""
  from eval import fid as fid_lib  # pylint: disable=g-import-not-at-top
  out = {}
  for n in range(every, len(features) + 1, every):
    mu, sigma = fid_lib.statistics(features[:n])
    out[n] = fid_lib.fid_from({'mu': mu, 'sigma': sigma, 'features': features[:n]}, ref)['fid']
  return out


def _to_images(flow, z, config):
  from losses import flow as flow_losses  # pylint: disable=g-import-not-at-top
  x = flow.generate(tf.constant(z, tf.float32))[0]
  num_bins = config.data.num_bins or 256
  return flow_losses.to_8bit(flow_losses.quantize(x, num_bins).numpy(), num_bins)


def report(workdir, chain_steps=2000, strip_every=5, strip_frames=100, fid_every=1000,
           interpolate_steps=1000, langevin_step_size=0.05, gamma=0., seed=0, fid_options=None):
  """Runs both on the latest checkpoint of an nt / nt_nce image run and writes the files of the
  module docstring; returns the JSON written. With `fid_options` (an image_eval.Options naming
  the FID network), the long chain's FID as it grows too."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from eval import figures  # pylint: disable=g-import-not-at-top
  from eval import image_eval  # pylint: disable=g-import-not-at-top
  from eval import run as eval_run  # pylint: disable=g-import-not-at-top
  config, mode = eval_run.load_run(workdir)
  if len(config.data.shape) != 3:
    raise eval_run.EvalError('eval.longrun is for image runs.')
  path = eval_run.checkpoints(workdir)[0]
  flow, model, step = eval_run.restore_models(config, workdir, path, mode=mode)
  correction = transport.correction_of(model, flow)  # the model's density, whatever the mode
  step_size = eval_run.hmc_step_size(config, path)
  out_dir = os.path.join(workdir, 'eval')
  tf.io.gfile.makedirs(out_dir)
  states, acceptance = long_chain(correction, flow, chain_steps, step_size, seed,
                                  config.nt.hmc_leapfrog_steps)
  shown = states[strip_every - 1::strip_every][:strip_frames]
  strip = figures.tile(_to_images(flow, shown, config), min(len(shown), 20))
  tf.io.write_file(os.path.join(out_dir, f'long_chain_{step}.png'), tf.io.encode_png(strip))
  result = {'step': step, 'mode': mode, 'chain_steps': chain_steps, 'step_size': step_size,
            'acceptance': acceptance, 'strip_every': strip_every, 'strip_frames': len(shown)}
  if fid_options is not None and chain_steps >= fid_every:
    evaluator = image_eval.Evaluator(config, mode, fid_options)
    ref, ref_path = evaluator._reference  # pylint: disable=protected-access
    size = fid_options.batch_size
    feats = np.concatenate([
        evaluator.network.features(_to_images(flow, states[i:i + size], config))
        for i in range(0, len(states), size)]).astype(np.float32)
    result['fid_of_first_n'] = {str(n): v for n, v in
                                fid_of_growing_chain(feats, ref, fid_every).items()}
    result.update(fid_network=evaluator.network.name, fid_reference=ref_path)

  z1, z2 = tf.unstack(tf.random.stateless_normal([2, 1, flow.latent_dim], seed=[seed, 7]))
  path_z, energies, used_gamma, force = magnetized_langevin(
      correction, flow, z1, z2, interpolate_steps, langevin_step_size, gamma, seed)
  frames = np.linspace(0, interpolate_steps, 11).astype(int)
  np.savez(os.path.join(out_dir, f'interpolation_{step}.npz'), z=path_z, energy=energies,
           z_start=z1.numpy(), z_target=z2.numpy(), gamma=used_gamma)
  fig = plt.figure(figsize=(11, 3.6))
  top = fig.add_axes([0.03, 0.45, 0.94, 0.5])
  top.imshow(np.squeeze(figures.tile(_to_images(flow, path_z[frames], config), len(frames))),
             cmap='gray')
  top.set_axis_off()
  top.set_title(f'magnetized Langevin from z1 to z2: steps {", ".join(map(str, frames))}',
                fontsize=8)
  bottom = fig.add_axes([0.07, 0.1, 0.9, 0.3])
  bottom.plot(-energies, lw=0.8)
  bottom.set(xlabel='Langevin step', ylabel='energy -U(z)')
  fig.savefig(os.path.join(out_dir, f'interpolation_{step}.png'), dpi=110)
  plt.close(fig)
  result['interpolation'] = {
      'steps': interpolate_steps, 'step_size': langevin_step_size, 'gamma': used_gamma,
      'model_force': force, 'gamma_to_force': used_gamma / force if force else None,
      'start_distance': float(np.linalg.norm(z1 - z2)),
      'end_distance': float(np.linalg.norm(path_z[-1] - z2.numpy()[0])),
      'energy_min': float(-energies.max()), 'energy_max': float(-energies.min())}
  with tf.io.gfile.GFile(os.path.join(out_dir, f'long_chain_{step}.json'), 'w') as f:
    json.dump(result, f, indent=2)
  return result


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from eval import image_eval  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  # The digits classifier needs no graph file; the Inception networks do (none: no FID).
  fid_options = (image_eval.Options(inception_graph=f.inception_graph, fid_network=f.fid_network)
                 if f.inception_graph or f.fid_network == 'digits' else None)
  # an eval_run.EvalError (no run there, ...) is printed as one line by startup.run
  result = report(f.workdir, f.chain_steps, f.strip_every, f.strip_frames, f.fid_every,
                  f.interpolate_steps, f.langevin_step_size, f.gamma, f.seed, fid_options)
  logging.info('Wrote %s', json.dumps(result))


if __name__ == '__main__':
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('workdir', None, 'An nt / nt_nce image run.', required=True)
  flags.DEFINE_integer('chain_steps', 2000, 'HMC steps of the long chain.')
  flags.DEFINE_integer('strip_every', 5, 'A frame of the strip every this many steps.')
  flags.DEFINE_integer('strip_frames', 100, 'Frames in the strip.')
  flags.DEFINE_integer('fid_every', 1000, 'FID of the first N, 2N, ... samples of the chain.')
  flags.DEFINE_string('inception_graph', '', 'TTUR graph for the chain\'s FID (none: no FID).')
  flags.DEFINE_enum('fid_network', 'ttur', ['ttur', 'keras', 'digits'],
                    'As main.py\'s --fid_network (digits: the 8x8 digits classifier).')
  flags.DEFINE_integer('interpolate_steps', 1000, 'Magnetized Langevin steps from z1 to z2.')
  flags.DEFINE_float('langevin_step_size', 0.05, 'Langevin step size s.')
  flags.DEFINE_float('gamma', 0., 'Magnetization (0: half the model\'s own force |grad U| '
                     'along the segment from z1 to z2).')
  flags.DEFINE_integer('seed', 0, 'Seed of the chain and the two latents.')
  startup.run(main)
