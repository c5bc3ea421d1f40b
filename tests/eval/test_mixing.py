"""Mixing diagnostics (eval/mixing.py): R-hat, autocorrelation, and the three samplers."""

import numpy as np
import pytest
import tensorflow as tf

from eval import mixing
from models import transport
from tests import helpers


def _two_modes(x):
  """f such that exp(f) N(x; 0, I) is an even mixture of N(+-4, 0.3^2 I) in 2D."""
  a = tf.constant([4., 0.])
  log_mix = tf.reduce_logsumexp(tf.stack([
      -0.5 * tf.reduce_sum(tf.square((x - a) / 0.3), 1),
      -0.5 * tf.reduce_sum(tf.square((x + a) / 0.3), 1)]), axis=0)
  return log_mix + 0.5 * tf.reduce_sum(tf.square(x), 1)


def test_rhat_is_near_one_on_one_mode_and_large_for_chains_stuck_in_two():
  flow = helpers.AffineFlow([0., 0.], 1.)
  z0 = tf.random.stateless_normal([16, 2], seed=[0, 0])
  zero = lambda x: tf.zeros(tf.shape(x)[:1])  # p = q = N(0, I)
  states, rate, _ = mixing.trace('data_hmc', zero, flow, z0, 400, step_size=0.5)
  rhat = mixing.diagnostics(states)['rhat']
  assert rate > 0.4 and np.all(rhat < 1.1), rhat
  # Half the chains start at each mode, 8 standard deviations of 0.3 apart twice over.
  starts = tf.constant([[4., 0.]] * 8 + [[-4., 0.]] * 8)
  states, _, _ = mixing.trace('data_hmc', _two_modes, flow, starts, 400, step_size=0.1)
  rhat = mixing.diagnostics(states)['rhat']
  assert rhat[0] > 3, rhat  # the axis that separates the modes
  assert np.all(np.sign(states[-1, :8, 0]) > 0) and np.all(np.sign(states[-1, 8:, 0]) < 0)


def test_autocorrelation_of_an_ar1_process_decays_as_its_coefficient():
  rng = np.random.default_rng(0)
  phi, x = 0.8, np.zeros((20000, 4))
  for t in range(1, len(x)):
    x[t] = phi * x[t - 1] + rng.standard_normal(4)
  acf = mixing.autocorrelation(x, 5)
  np.testing.assert_allclose(acf, phi ** np.arange(6), atol=0.03)


@pytest.mark.slow
def test_the_three_samplers_start_together_and_report(tmp_path):
  flow = helpers.AffineFlow([0., 0.], 1.)
  results = mixing.report(lambda x: tf.zeros(tf.shape(x)[:1]), flow, str(tmp_path), num_chains=8,
                          num_steps=40, dataset='8gaussians')
  assert set(results) == set(mixing.SAMPLERS)
  for r in results.values():
    assert np.isfinite([r['rhat_median'], r['ess_per_chain_median']]).all()
    assert r['autocorrelation'][0] == 1. and 0 <= r['chains_visiting_all_8'] <= 8
    assert r['step_size'] > 0
  assert (tmp_path / 'mixing.json').exists() and (tmp_path / 'mixing_paths.png').exists()


class _StandardNormalEBM(tf.Module):
  """An EBM whose log p_theta = f - c is log N(x; 0, I) exactly (c = D/2 log 2 pi)."""

  def __call__(self, x):
    return -0.5 * tf.reduce_sum(tf.square(x), 1)

  def marginal_log_prob(self, x, training=False):
    del training
    return self(x) - np.log(2 * np.pi)


@pytest.mark.slow
@pytest.mark.parametrize('sampler', ['latent_hmc', 'data_hmc'])
def test_an_ebm_is_sampled_as_itself_not_tilted_by_its_flow_again(sampler):
  """p = N(0, I) as an fce / nce EBM under an identity flow: the chains must have variance 1.
  Taking its f as a correction of the flow samples exp(f) q = N(0, I/2) (variance 0.5)."""
  flow = helpers.AffineFlow([0., 0.], 1.)
  correction = transport.correction_of(_StandardNormalEBM(), flow)
  z0 = tf.random.stateless_normal([64, 2], seed=[1, 2])
  states, rate, _ = mixing.trace(sampler, correction, flow, z0, 600, step_size=0.5)
  var = states[300:].reshape(-1, 2).var(axis=0)
  assert rate > 0.5 and np.all(np.abs(var - 1.) < 0.15), var
  tilted = transport.TiltedModel(_StandardNormalEBM(), flow)  # nt: p = exp(f) q = N(0, I/2)
  states, _, _ = mixing.trace(sampler, transport.correction_of(tilted, flow), flow, z0, 600,
                           step_size=0.5)
  assert np.all(np.abs(states[300:].reshape(-1, 2).var(axis=0) - 0.5) < 0.1)


@pytest.mark.parametrize('start', [0.001, 20.])
def test_hmc_adapts_its_step_size_in_the_burn_in_and_reports_after_it(start):
  """Dual averaging reaches the target acceptance from a step size 100 times off either way
  within the burn-in (200 steps); the acceptance reported is the one after it."""
  flow = helpers.AffineFlow([0., 0.], 1.)
  z0 = tf.random.stateless_normal([64, 2], seed=[3, 4])
  zero = lambda x: tf.zeros(tf.shape(x)[:1])  # p = q = N(0, I)
  _, rate, size = mixing.trace('latent_hmc', zero, flow, z0, 400, step_size=start)
  assert abs(rate - 0.651) < 0.1, rate
  assert 0.2 < size < 3., size
