"""An EBM with a flow backbone, and its neural-transport HMC sampler (NT-EBM Secs. 3.3-3.4).

The model tilts a pretrained, frozen flow q_alpha by a correction f_theta (NT-EBM eq. 7):

  p_theta(x) = exp(f_theta(x)) q_alpha(x) / Z(theta),

and in the flow's latent space, with x = g_alpha(z) and z ~ q0 = N(0, I) under q_alpha, it is
(eq. 9) p(z) = exp(f_theta(g_alpha(z))) q0(z) / Z(theta): a tilt of N(0, I), with no Jacobian and
no inversion. HMC runs on p(z) (tfp.mcmc) and its states are pushed forward through g_alpha.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from models import glow

TARGET_ACCEPT = 0.651  # NT-EBM A.4 (Beskos et al. 2013)


class TiltedModel(tf.Module):
  """p_theta(x) = exp(f(x) - c) q(x) for evaluation: `marginal_log_prob` adds the backbone's
  log q to the correction's f - c, so that the code that evaluates an EBM (2D grids, bits/dim,
  the importance-sampled log Z with the flow as proposal) evaluates the tilted model. c is NCE's
  estimate of log Z (nt_nce); nt leaves it at its start, and evaluation normalises by the grid or
  by importance sampling."""

  def __init__(self, correction, flow):
    super().__init__(name='tilted_model')
    self.correction, self.flow = correction, flow
    self.num_classes = None

  @property
  def log_normalizer(self):
    return self.correction.log_normalizer

  def marginal_log_prob(self, x, training=False):
    return self.correction.marginal_log_prob(x, training) + self.flow.log_prob(x)

  log_prob = marginal_log_prob


class LogRatio:
  """h = log p - log q: a model p as a tilt of the flow q, p = exp(h) q / e^0 (NT-EBM eq. 7 for
  any EBM), called as h(x, log q(x)) with the log q that g's forward pass gives with x = g(z),
  so no inverse pass of the flow is made. For a tilted model of this flow (nt, nt_nce) h is its
  correction's f - c; for an EBM p = exp(f - c) (fce, nce, ssl; f may hold a frozen base flow)
  it is log p - log q, so that q is counted once (taking such an EBM's f as the correction would
  sample exp(f) q: q twice). A support of the model makes h -inf outside it."""

  def __init__(self, model, flow):
    self.model, self.flow = model, flow
    tilted = isinstance(model, TiltedModel) and model.flow is flow
    self._correction = model.correction if tilted else None

  def __call__(self, x, log_q):
    if self._correction is not None:
      return self._correction.marginal_log_prob(x)
    return self.model.marginal_log_prob(x) - log_q

  def data_log_prob(self, x):
    """log p(x) up to a constant, for samplers in data space."""
    return self.model.marginal_log_prob(x)


def correction_of(model, flow):
  """The model as a correction of the flow (`LogRatio`), for `latent_log_prob` and the samplers
  of eval.mixing and eval.longrun."""
  return LogRatio(model, flow)


def latent_log_prob(correction, flow):
  """log p(z) up to log Z (NT-EBM eq. 9): f(g(z)) + log N(z; 0, I), one value per row of z;
  `correction` is f (e.g. nt's network) or a `LogRatio`, which takes g's log q(x) too.
  A correction with a support (model.ebm.support=cube) is -inf where g(z) leaves it, as the
  model it evaluates is: HMC then rejects every move out of the support."""
  support = getattr(correction, 'support', None)

  def fn(z):
    x, log_q = flow.generate(z)
    h = correction(x, log_q) if isinstance(correction, LogRatio) else correction(x)
    log_p = h + glow.standard_normal_log_prob(z)
    if support is not None:
      log_p = tf.where(correction.in_support(x), log_p, tf.constant(-np.inf, log_p.dtype))
    return log_p
  return fn


def hmc(target_log_prob, z, step_size, num_steps, leapfrog_steps, seed, adapt=True,
        target_accept=TARGET_ACCEPT):
  """`num_steps` HMC steps (tfp.mcmc) from z, one chain per row.

  With `adapt`, tfp's SimpleStepSizeAdaptation moves the one step size shared by the chains
  multiplicatively towards `target_accept` (NT-EBM A.4: from 0.15, towards 0.651) at every step.
  `seed` is a stateless seed (two int32), so the chains are a function of it: the chains of
  tfp.mcmc.sample_chain for that seed, bit for bit, though only the last state is kept (a loop
  over the kernel's one_step). The kernel's bootstrap takes one value-and-gradient of the target,
  each HMC step `leapfrog_steps` more. Under XLA (train.jit_compile) the random numbers are
  XLA's, so the chains are another function of the seed.

  Returns:
    (the chains' last states, the acceptance rate over the steps and chains, the adapted step
    size to start from next time).
  """
  step_size = tf.convert_to_tensor(step_size, tf.float32)
  z = tf.convert_to_tensor(z)
  kernel = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob, step_size=step_size,
                                          num_leapfrog_steps=leapfrog_steps)
  if adapt:
    kernel = tfp.mcmc.SimpleStepSizeAdaptation(kernel, num_adaptation_steps=num_steps,
                                               target_accept_prob=target_accept)

  def body(i, z, results, seed, accepted):
    step_seed, seed = tfp.random.split_seed(seed)  # sample_chain's split, step by step
    z, results = kernel.one_step(z, results, seed=step_seed)
    inner = results.inner_results if adapt else results
    return i + 1, z, results, seed, accepted + tf.reduce_sum(tf.cast(inner.is_accepted, tf.int32))

  seed = tfp.random.sanitize_seed(seed, salt='mcmc.sample_chain')  # as sample_chain salts it
  _, z, results, _, accepted = tf.while_loop(
      lambda i, *_: i < num_steps, body,
      (tf.constant(0), z, kernel.bootstrap_results(z), seed, tf.constant(0)))
  # The mean of the num_steps x chains 0/1 acceptances, taken by tf.reduce_mean as sample_chain's
  # trace was (a division by a constant can be rewritten to a product with its rounded
  # reciprocal, one ulp off).
  rate = tf.reduce_mean(tf.cast(tf.range(num_steps * tf.shape(z)[0]) < accepted, tf.float32))
  return z, rate, results.new_step_size if adapt else step_size


class NeuralTransport:
  """Samples p(x) = exp(f) q / Z by neural transport: latent chains from q0, HMC on p(z) (eq. 9),
  pushed through g.

  The HMC program is compiled once per sampler and reused by every `sample` call with the same
  chain count and step counts, so a caller that samples in batches (FID of thousands of samples)
  traces the Glow a few times, not at every batch.
  """

  def __init__(self, correction, flow, leapfrog_steps=3):
    self.flow = flow
    target = latent_log_prob(correction, flow)
    self.run = tf.function(lambda z, size, n, seed, adapt: hmc(target, z, size, n,
                                                               leapfrog_steps, seed, adapt))

  def sample(self, num_chains, num_steps, step_size, seed, thin=0, adapt_steps=None):
    """`num_chains` chains of `num_steps` HMC steps from q0. The step size adapts (towards
    TARGET_ACCEPT) during the first `adapt_steps` steps (default: half of num_steps) and is fixed
    after. With `thin` = k > 0, every k-th state after the adaptation is kept from each chain
    (k, 2k, ... steps after it); else only the last one.

    Returns:
      (x [kept * num_chains, ...], time-major: all chains at the first kept time, then at the
      next; the acceptance rate after the adaptation; the final step size).
    """
    adapt_steps = num_steps // 2 if adapt_steps is None else adapt_steps
    z = tf.random.stateless_normal([num_chains, self.flow.latent_dim], seed=[seed, 0])
    size, kept, accepted = tf.constant(step_size, tf.float32), [], []
    if adapt_steps:
      z, _, size = self.run(z, size, adapt_steps, tf.constant([seed, 1]), True)
    after = num_steps - adapt_steps  # with thin = k, the steps after the last multiple of k are
    chunks = [thin] * (after // thin) if thin else [after] * (after > 0)  # not run
    for i, n in enumerate(chunks):
      z, acceptance, _ = self.run(z, size, n, tf.constant([seed, 2 + i]), False)
      accepted.append(float(acceptance) * n)
      if thin:
        kept.append(z)
    x = tf.concat([self.flow.generate(k)[0] for k in kept or [z]], axis=0)
    rate = sum(accepted) / sum(chunks) if chunks else float('nan')
    return x, rate, float(size)


def sample(correction, flow, num_chains, num_steps, step_size, seed, thin=0, adapt_steps=None,
           leapfrog_steps=3):
  """One `NeuralTransport.sample` call (see there). Callers that sample more than once keep a
  NeuralTransport instead, so that its HMC program is not traced again."""
  return NeuralTransport(correction, flow, leapfrog_steps).sample(
      num_chains, num_steps, step_size, seed, thin, adapt_steps)
