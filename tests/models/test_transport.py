"""Neural-transport HMC on tilts with known answers (NT-EBM eq. 9), and the tilted model."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from losses import nt
from models import ebm as ebm_lib
from models import transport
from tests import helpers


def _quadratic(a, b):
  """f(x) = -a/2 |x - b|^2."""
  return lambda x: -0.5 * a * tf.reduce_sum(tf.square(x - b), axis=1)


def test_latent_hmc_samples_a_gaussian_tilt_of_a_gaussian_flow():
  # p(z) ~ exp(-a/2 |mu + s z - b|^2) N(z; 0, I) is N(m, v I) with 1/v = 1 + a s^2 and
  # m = v a s (b - mu); pushed through g: N(mu + s m, s^2 v I).
  mu, s, a, b = np.array([1., -2.]), 2., 0.5, np.array([3., 0.])
  flow = helpers.AffineFlow(mu, s)
  v = 1. / (1. + a * s * s)
  m = v * a * s * (b - mu)
  z0 = tf.random.stateless_normal([2000, 2], seed=[0, 1])
  target = transport.latent_log_prob(_quadratic(a, b.astype(np.float32)), flow)
  run = tf.function(lambda z, size, seed: transport.hmc(target, z, size, 40, 3, seed))
  z, acceptance, size = run(z0, 0.15, tf.constant([1, 2]))
  z, acceptance, size = run(z, size, tf.constant([1, 3]))
  x = flow.generate(z)[0].numpy()
  # 2000 nearly independent chains: standard errors of about sqrt(var / 2000).
  np.testing.assert_allclose(x.mean(0), mu + s * m, atol=5 * s * np.sqrt(v / 2000))
  np.testing.assert_allclose(x.var(0), s * s * v, rtol=0.12)
  assert float(acceptance) > 0.5  # (the adaptation itself: the next test)


class _SinhFlow(tf.Module):
  """g(z) = sinh(z), elementwise: a flow whose log-det, -sum log cosh z, varies with z."""

  def __init__(self, dim):
    super().__init__()
    self.latent_dim, self.event_shape = dim, (dim,)

  def generate(self, z):
    return tf.sinh(z), (_log_normal(z) -
                        tf.reduce_sum(tf.math.log(tf.cosh(z)), axis=1))

  def log_prob(self, x):
    z = tf.asinh(x)
    return _log_normal(z) - tf.reduce_sum(tf.math.log(tf.cosh(z)), axis=1)


def _log_normal(z):
  return -0.5 * tf.reduce_sum(tf.square(z), axis=1) - z.shape[1] * 0.5 * np.log(2 * np.pi)


class _Gaussian(tf.Module):
  """An EBM with log p_theta(x) = log N(x; 0, s^2 I), optionally on the cube [-1, 1]^D."""

  def __init__(self, s=1., support=None):
    super().__init__()
    self.s, self.support = s, support

  def __call__(self, x):
    return _log_normal(x / self.s) - x.shape[1] * np.log(self.s)

  marginal_log_prob = __call__

  def in_support(self, x):
    return tf.reduce_all(tf.abs(x) <= 1., axis=1)


def test_an_ebm_pulled_back_through_a_nonlinear_flow_keeps_its_own_density():
  """p = N(0, I) as an EBM, sampled in the latent of g(z) = sinh(z): the pull-back
  h(g(z)) + log N(z), h = log p - log q, must hold log q's log-det exactly, or g(z) would not
  be N(0, I) (an affine flow's constant log-det cannot show that)."""
  flow = _SinhFlow(2)
  target = transport.latent_log_prob(transport.correction_of(_Gaussian(), flow), flow)
  z0 = tf.random.stateless_normal([2000, 2], seed=[0, 1])
  run = tf.function(lambda z, size, seed: transport.hmc(target, z, size, 40, 3, seed))
  z, _, size = run(z0, 0.15, tf.constant([1, 2]))
  z, acceptance, _ = run(z, size, tf.constant([1, 3]))
  x = flow.generate(z)[0].numpy()
  np.testing.assert_allclose(x.mean(0), 0., atol=5 * np.sqrt(1 / 2000))
  np.testing.assert_allclose(x.var(0), 1., rtol=0.12)
  assert float(acceptance) > 0.5


@pytest.mark.slow
def test_latent_hmc_keeps_a_correction_with_a_support_inside_it():
  """nt with model.ebm.support=cube: p = 0 outside [-1, 1]^D, so no chain may leave it."""
  flow = helpers.AffineFlow([0., 0.], 1.)
  target = transport.latent_log_prob(_Gaussian(2., support=(-1., 1.)), flow)
  z0 = tf.random.stateless_uniform([500, 2], seed=[2, 3], minval=-0.9, maxval=0.9)
  z, acceptance, _ = transport.hmc(target, z0, 0.3, 50, 3, tf.constant([4, 5]))
  assert np.all(np.abs(z.numpy()) <= 1.) and float(acceptance) > 0.3
  # Unmasked, the same chains leave: p(z) ~ N(0, 0.8 I) puts a third of its mass outside.
  free = transport.latent_log_prob(_Gaussian(2.), flow)
  z, _, _ = transport.hmc(free, z0, 0.3, 50, 3, tf.constant([4, 5]))
  assert np.mean(np.any(np.abs(z.numpy()) > 1., axis=1)) > 0.2


@pytest.mark.slow
def test_step_size_adaptation_reaches_the_target_acceptance():
  target = lambda z: -0.5 * tf.reduce_sum(tf.square(z / [0.3, 3.]), axis=1)  # anisotropic
  z = tf.random.stateless_normal([500, 2], seed=[3, 4])
  for start in (0.05, 5.):  # 1% a step: about 250 steps to reach the right size from either
    _, _, size = transport.hmc(target, z, start, 400, 3, tf.constant([5, 6]))
    _, acceptance, same = transport.hmc(target, z, size, 50, 3, tf.constant([7, 8]), adapt=False)
    assert float(same) == float(size)
    assert abs(float(acceptance) - transport.TARGET_ACCEPT) < 0.08, (start, float(acceptance))


def test_hmc_is_a_function_of_its_seed():
  target = lambda z: -0.5 * tf.reduce_sum(tf.square(z), axis=1)
  z = tf.zeros([4, 3])
  first = transport.hmc(target, z, 0.3, 5, 3, tf.constant([1, 1]))
  again = transport.hmc(target, z, 0.3, 5, 3, tf.constant([1, 1]))
  other = transport.hmc(target, z, 0.3, 5, 3, tf.constant([1, 2]))
  np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
  assert not np.allclose(first[0].numpy(), other[0].numpy())


@pytest.mark.slow
def test_a_sampler_compiles_its_hmc_once_for_every_batch():
  flow = helpers.AffineFlow(np.array([0., 1.]), 1.5)
  sampler = transport.NeuralTransport(_quadratic(0.5, np.float32([1., 0.])), flow)
  for seed in range(4):  # batches of equal size: one trace for the adapted half, one after
    x, rate, size = sampler.sample(8, 6, 0.15, seed=seed, thin=3)
    assert x.shape == (8, 2) and 0. <= rate <= 1. and size > 0.
  assert sampler.run.experimental_get_tracing_count() == 2
  # The same draws as a sampler of its own (the one-call function), for the same seed.
  again = transport.sample(_quadratic(0.5, np.float32([1., 0.])), flow, 8, 6, 0.15, seed=3, thin=3)
  np.testing.assert_array_equal(x.numpy(), again[0].numpy())


def _zero_correction():
  net = ebm_lib.build_network('mlp', (2,))
  for w in net.weights:
    w.assign(tf.zeros_like(w))
  return ebm_lib.EnergyModel(net)


def test_nce_against_the_backbone_with_f_zero_is_minus_log_4_at_c_zero():
  correction, flow = _zero_correction(), helpers.AffineFlow([0., 0.], 1.)
  x = tf.random.stateless_normal([16, 2], seed=[0, 0])
  z = tf.random.stateless_normal([16, 2], seed=[0, 1])
  loss, metrics = nt.tilt_nce_loss(correction, flow, x, z)
  np.testing.assert_allclose(float(metrics['value']), -np.log(4.), rtol=1e-6)
  np.testing.assert_allclose(float(loss), np.log(4.), rtol=1e-6)
  # The logit is f - c = -c on both sides: V = log sigmoid(-c) + log sigmoid(c).
  correction.set_log_normalizer([1.5])
  _, metrics = nt.tilt_nce_loss(correction, flow, x, z)
  expected = -np.log1p(np.exp(1.5)) - np.log1p(np.exp(-1.5))
  np.testing.assert_allclose(float(metrics['value']), expected, rtol=1e-6)
  # nu = 2 noise samples per example: the logit is f - c - log 2, and
  # V = log sigmoid(-log 2) + 2 log sigmoid(log 2) = log(1/3) + 2 log(2/3) at c = 0.
  correction.set_log_normalizer([0.])
  z2 = tf.random.stateless_normal([16, 2, 2], seed=[0, 2])
  _, metrics = nt.tilt_nce_loss(correction, flow, x, z2, nu=2.)
  np.testing.assert_allclose(float(metrics['value']), np.log(1 / 3) + 2 * np.log(2 / 3),
                             rtol=1e-6)


def test_mle_loss_is_minus_the_gap_of_f_and_its_gradient_is_eq_6():
  correction = ebm_lib.EnergyModel(ebm_lib.build_network('mlp', (2,)))
  x = tf.random.stateless_normal([8, 2], seed=[1, 0])
  samples = tf.random.stateless_normal([8, 2], seed=[1, 1]) + 2.
  with tf.GradientTape(persistent=True) as tape:
    loss, metrics = nt.tilt_mle_loss(correction, x, samples)
    f_data, f_samples = tf.reduce_mean(correction(x)), tf.reduce_mean(correction(samples))
  np.testing.assert_allclose(float(loss), float(f_samples - f_data), rtol=1e-6)
  np.testing.assert_allclose(float(metrics['f_data']), float(f_data), rtol=1e-6)
  variables = correction.network.trainable_variables
  for g, gd, gs in zip(tape.gradient(loss, variables), tape.gradient(f_data, variables),
                       tape.gradient(f_samples, variables)):
    np.testing.assert_allclose(g.numpy(), (gs - gd).numpy(), rtol=1e-5, atol=1e-7)


def test_tilted_model_adds_the_backbone_log_density():
  correction, flow = _zero_correction(), helpers.AffineFlow([1., 0.], 2.)
  correction.set_log_normalizer([0.25])
  model = transport.TiltedModel(correction, flow)
  x = tf.constant([[0., 0.], [1., 3.]])
  np.testing.assert_allclose(model.marginal_log_prob(x).numpy(),
                             flow.log_prob(x).numpy() - 0.25, rtol=1e-6)


def _sample_chain_hmc(target_log_prob, z, step_size, num_steps, leapfrog_steps, seed, adapt=True,
                      target_accept=transport.TARGET_ACCEPT):
  """transport.hmc as it was before issue 36: tfp.mcmc.sample_chain, which keeps every state of
  the chains and traces every step's acceptance and step size (the reference of the next
  tests)."""
  step_size = tf.convert_to_tensor(step_size, tf.float32)
  kernel = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob, step_size=step_size,
                                          num_leapfrog_steps=leapfrog_steps)
  if adapt:
    kernel = tfp.mcmc.SimpleStepSizeAdaptation(kernel, num_adaptation_steps=num_steps,
                                               target_accept_prob=target_accept)

  def trace(_, results):
    if adapt:
      return results.inner_results.is_accepted, results.new_step_size
    return results.is_accepted, step_size

  states, (accepted, sizes) = tfp.mcmc.sample_chain(
      num_results=num_steps, current_state=z, kernel=kernel, trace_fn=trace, seed=seed)
  return states[-1], tf.reduce_mean(tf.cast(accepted, tf.float32)), sizes[-1]


def _sinh_target():
  """A tilt of the sinh flow: a latent target whose gradient varies with z (eq. 9)."""
  flow = _SinhFlow(3)
  return transport.latent_log_prob(_quadratic(0.7, np.float32([0.5, -1., 2.])), flow)


@pytest.mark.parametrize('adapt', [True, False])
def test_hmc_keeps_only_the_last_state_of_sample_chains_chains(adapt):
  """Issue 36: hmc's loop keeps the last state only; for a seed it must give sample_chain's
  chains bit for bit, the mean acceptance over all steps and chains, and the last step size."""
  target = _sinh_target()
  z = tf.random.stateless_normal([16, 3], seed=[5, 5])
  for seed in ([1, 2], [7, 3]):
    args = (target, z, 0.4, 7, 3, tf.constant(seed), adapt)
    new = tf.function(lambda: transport.hmc(*args))()
    old = tf.function(lambda: _sample_chain_hmc(*args))()
    assert 0. < float(old[1]) < 1.  # some moves rejected: the count means something
    for a, b in zip(new, old):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  eager = transport.hmc(*args)  # eagerly too (tests and scripts call it so)
  for a, b in zip(eager, old):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def test_hmc_under_xla_gives_the_same_chains_for_the_same_random_numbers(exact_random):
  """train.jit_compile compiles the nt step, HMC and all, with XLA. XLA's random numbers differ
  from TensorFlow's for a seed, so with tfp's samplers replaced by numbers both give
  (`helpers.ExactRandom`), the compiled chains must be the plain ones up to rounding."""
  del exact_random
  target = _sinh_target()
  z = tf.random.stateless_normal([16, 3], seed=[5, 6])
  args = (target, z, 0.4, 7, 3, tf.constant([3, 4]))
  plain = tf.function(lambda: transport.hmc(*args))()
  xla = tf.function(lambda: transport.hmc(*args), jit_compile=True)()
  assert 0. < float(plain[1]) < 1.
  np.testing.assert_allclose(xla[0].numpy(), plain[0].numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(float(xla[1]), float(plain[1]), rtol=1e-6)  # same accepts
  np.testing.assert_allclose(float(xla[2]), float(plain[2]), rtol=1e-5)
