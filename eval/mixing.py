"""Mixing of the samplers of an EBM with a flow backbone (NT-EBM Sec. 4, Figure 2).

Three samplers of p(x) = exp(f) q / Z, run from the same starting latents z_0 ~ q0 (x_0 = g(z_0)):
  latent_hmc       HMC on p(z) (eq. 9), pushed through g: neural transport, what nt trains with
  data_hmc         HMC on log p(x) = f(x) + log q(x) in data space
  latent_langevin  unadjusted Langevin dynamics on p(z)
with diagnostics from tfp.mcmc on the data-space traces after a burn-in (the first half); the
acceptance rates and the modes visited are counted after it too:
  rhat             Gelman-Rubin potential scale reduction per dimension over the chains
                   (near 1 when the chains agree; well above 1 when they sit in different modes)
  ess              effective sample size per chain and dimension
  autocorrelation  mean over chains and dimensions, against the lag
HMC steps use `leapfrog_steps` leapfrog steps, with the step size adapted towards an acceptance
of 0.651 during the burn-in by dual averaging (tfp's DualAveragingStepSizeAdaptation, which
settles within a few dozen steps from a step size off by orders of magnitude, where the simple
scheme's 1% a step could not), then fixed; each sampler's final step size is reported. Langevin
uses `langevin_step_size`.

  python -m eval.mixing --workdir=runs/8gaussians_nt --chains=64 --steps=400

writes WORKDIR/eval/mixing.json and PNGs: R-hat histograms, autocorrelation curves, and for 2D
data the chains' paths. For 8 gaussians it also counts the modes each chain visits.
"""

import json
import os
import warnings

from train import startup

startup.quiet()  # before anything imports TensorFlow

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from models import transport  # noqa: E402

SAMPLERS = ('latent_hmc', 'data_hmc', 'latent_langevin')


def _run_kernel(kernel, state, num_steps, burn_in, seed):
  """(states, acceptance rate after the burn-in, the final step size: 0 without adaptation)."""
  def trace_fn(_, r):
    accepted = getattr(getattr(r, 'inner_results', r), 'is_accepted', tf.constant(True))
    return accepted, getattr(r, 'new_step_size', tf.constant(0.))

  states, (accepted, sizes) = tfp.mcmc.sample_chain(
      num_results=num_steps, current_state=state, kernel=kernel, seed=seed, trace_fn=trace_fn)
  return states, tf.reduce_mean(tf.cast(accepted[burn_in:], tf.float32)), sizes[-1]


def _hmc_kernel(target, step_size, leapfrog_steps, burn_in):
  return tfp.mcmc.DualAveragingStepSizeAdaptation(
      tfp.mcmc.HamiltonianMonteCarlo(target, step_size, leapfrog_steps),
      num_adaptation_steps=burn_in, target_accept_prob=transport.TARGET_ACCEPT)


def trace(sampler, correction, flow, z0, num_steps, seed=0, step_size=0.1, leapfrog_steps=3,
          langevin_step_size=0.01):
  """The data-space states of `sampler` ([num_steps, chains, *event]) from latents z0 (one chain
  per row), its acceptance rate after the burn-in (1 for Langevin, which accepts every move) and
  its final step size."""
  if sampler not in SAMPLERS:
    raise ValueError(f'Unknown sampler {sampler!r}; valid: {", ".join(SAMPLERS)}.')
  seed = tf.constant([seed, 17])
  burn_in = num_steps // 2
  latent_target = transport.latent_log_prob(correction, flow)
  if sampler == 'data_hmc':
    event_shape = flow.event_shape

    def data_target(x_flat):
      x = tf.reshape(x_flat, [-1, *event_shape])
      if isinstance(correction, transport.LogRatio):
        return correction.data_log_prob(x)  # the model itself: no inverse pass to add log q
      return correction(x) + flow.log_prob(x)

    x0 = tf.reshape(flow.generate(z0)[0], [z0.shape[0], -1])
    states, rate, size = tf.function(lambda: _run_kernel(
        _hmc_kernel(data_target, step_size, leapfrog_steps, burn_in), x0, num_steps, burn_in,
        seed))()
    return (tf.reshape(states, [num_steps, z0.shape[0], *event_shape]).numpy(), float(rate),
            float(size))
  if sampler == 'latent_hmc':
    kernel = _hmc_kernel(latent_target, step_size, leapfrog_steps, burn_in)
  else:
    kernel = tfp.mcmc.UncalibratedLangevin(latent_target, langevin_step_size)
  with warnings.catch_warnings():  # Langevin is uncalibrated on purpose (no MH correction)
    warnings.filterwarnings('ignore', message='supplied `TransitionKernel` is not calibrated')
    states, rate, size = tf.function(lambda: _run_kernel(kernel, z0, num_steps, burn_in, seed))()
  x = tf.map_fn(lambda z: flow.generate(z)[0], states)
  if sampler == 'latent_langevin':
    return x.numpy(), 1., langevin_step_size
  return x.numpy(), float(rate), float(size)


def diagnostics(states, max_lag=50):
  """R-hat, ESS and autocorrelation of data-space states [T, chains, ...] after the first half."""
  kept = states[len(states) // 2:]
  kept = tf.constant(np.reshape(kept, kept.shape[:2] + (-1,)), tf.float64)
  rhat = tfp.mcmc.potential_scale_reduction(kept, independent_chain_ndims=1).numpy()
  # Geyer's initial positive sequence, as Stan: the autocorrelations are summed while pairs of
  # them stay positive.
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel('ERROR')  # tfp's FFT casts complex128 to float64 on purpose; TF warns each time
  try:
    ess = tfp.mcmc.effective_sample_size(kept, filter_beyond_positive_pairs=True).numpy()
  finally:
    logger.setLevel(level)
  return {'rhat': rhat, 'ess': ess, 'autocorrelation': autocorrelation(kept.numpy(), max_lag)}


def autocorrelation(x, max_lag):
  """Autocorrelation of x [T, ...] along time for lags 0..max_lag, averaged over the other axes
  (those with no variance left out), by FFT."""
  t = len(x)
  x = np.reshape(x - x.mean(0), (t, -1))
  spectrum = np.fft.rfft(x, n=2 * t, axis=0)
  acov = np.fft.irfft(spectrum * np.conj(spectrum), axis=0)[:min(max_lag, t - 1) + 1]
  with np.errstate(invalid='ignore', divide='ignore'):
    acf = acov / acov[:1]
  return np.nanmean(acf[:, acov[0] > 0], axis=1)


def modes_visited(states, centres, radius):
  """Per chain, how many of `centres` ([M, 2]) its 2D states came within `radius` of."""
  d = np.linalg.norm(states[:, :, None, :] - centres[None, None], axis=-1)  # [T, C, M]
  return (d < radius).any(axis=0).sum(axis=1)


def eight_gaussian_centres():
  angles = np.arange(8) * np.pi / 4
  return 2. * np.sqrt(2.) * np.stack([np.cos(angles), np.sin(angles)], 1)


def report(correction, flow, out_dir, num_chains=64, num_steps=400, seed=0, step_size=0.1,
           leapfrog_steps=3, langevin_step_size=0.01, dataset=''):
  """Runs every sampler from the same z0 and writes mixing.json and PNGs to `out_dir`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  tf.io.gfile.makedirs(out_dir)
  z0 = tf.random.stateless_normal([num_chains, flow.latent_dim], seed=[seed, 3])
  results, traces = {}, {}
  for sampler in SAMPLERS:
    states, rate, final_size = trace(sampler, correction, flow, z0, num_steps, seed, step_size,
                                     leapfrog_steps, langevin_step_size)
    d = diagnostics(states)
    traces[sampler] = states
    results[sampler] = {
        'acceptance': rate, 'step_size': final_size,
        'rhat_median': float(np.nanmedian(d['rhat'])),
        'rhat_max': float(np.nanmax(d['rhat'])),
        'ess_per_chain_median': float(np.nanmedian(d['ess'])),
        'autocorrelation': [float(a) for a in d['autocorrelation']],
        'rhat': [float(r) for r in d['rhat'].ravel()]}
    if dataset == '8gaussians':
      visited = modes_visited(states[num_steps // 2:], eight_gaussian_centres(), 0.7)
      results[sampler]['modes_visited_mean'] = float(visited.mean())
      results[sampler]['chains_visiting_all_8'] = int((visited == 8).sum())
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for sampler, r in results.items():
    axes[0].hist(np.clip(r['rhat'], 1., 3.), bins=30, alpha=0.5, label=sampler)
    axes[1].plot(r['autocorrelation'], label=sampler)
  axes[0].set_xlabel('R-hat per dimension (clipped at 3)')
  axes[1].set_xlabel('lag')
  axes[1].set_ylabel('autocorrelation')
  axes[1].legend()
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, 'mixing.png'), dpi=100)
  plt.close(fig)
  if flow.event_shape == (2,):
    fig, axes = plt.subplots(1, len(SAMPLERS), figsize=(4 * len(SAMPLERS), 4))
    for ax, sampler in zip(axes, SAMPLERS):
      for c in range(min(num_chains, 8)):
        ax.plot(traces[sampler][:, c, 0], traces[sampler][:, c, 1], lw=0.5)
      ax.set_xlim(-4.5, 4.5)
      ax.set_ylim(-4.5, 4.5)
      ax.set_title(sampler)
    fig.savefig(os.path.join(out_dir, 'mixing_paths.png'), dpi=100)
    plt.close(fig)
  settings = {'chains': num_chains, 'steps': num_steps, 'burn_in': num_steps // 2, 'seed': seed,
              'step_size_start': step_size, 'leapfrog_steps': leapfrog_steps,
              'langevin_step_size': langevin_step_size}
  with tf.io.gfile.GFile(os.path.join(out_dir, 'mixing.json'), 'w') as f:
    json.dump({'settings': settings, 'samplers': results}, f, indent=2)
  return results


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from eval import run as eval_run  # pylint: disable=g-import-not-at-top
  from train import modes  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  config, mode = eval_run.load_run(f.workdir)
  if not modes.get(mode).trains_ebm:
    raise eval_run.EvalError(f'{f.workdir} is a --mode={mode} run: it has no EBM to sample.')
  flow, model, _ = eval_run.restore_models(config, f.workdir, mode=mode)
  correction = transport.correction_of(model, flow)  # the model's density, whatever the mode
  results = report(correction, flow, os.path.join(f.workdir, 'eval'), f.chains, f.steps, f.seed,
                   f.step_size, f.leapfrog_steps, f.langevin_step_size, config.data.name)
  for sampler, r in results.items():
    logging.info('%-16s acceptance %.3f  R-hat median %.3f max %.3f  ESS/chain median %.1f%s',
                 sampler, r['acceptance'], r['rhat_median'], r['rhat_max'],
                 r['ess_per_chain_median'],
                 f'  chains visiting all 8 modes: {r["chains_visiting_all_8"]}'
                 if 'chains_visiting_all_8' in r else '')


if __name__ == '__main__':
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('workdir', None, 'An nt / nt_nce run.', required=True)
  flags.DEFINE_integer('chains', 64, 'Chains per sampler (the same starts for each).')
  flags.DEFINE_integer('steps', 400, 'Steps per chain; the first half is burn-in.')
  flags.DEFINE_integer('seed', 0, 'Seed of the starts and the samplers.')
  flags.DEFINE_float('step_size', 0.1, 'Initial HMC step size (adapted in the burn-in).')
  flags.DEFINE_integer('leapfrog_steps', 3, 'Leapfrog steps per HMC step.')
  flags.DEFINE_float('langevin_step_size', 0.01, 'Step size of latent Langevin.')
  startup.run(main)
