"""Estimates of an EBM's log-normalizer log Z, relative to its learned c, with a flow's help.

In the latent space of x = g(z) of a flow q, an EBM p = exp(f - c) / (Z / e^c) is a tilt of
N(0, I) (NT-EBM eq. 9, here for any EBM):

  p(z) ∝ N(z; 0, I) exp(h(z)),   h(z) = log p_theta(g(z)) - log q(g(z)),   ∫ N exp(h) = Z / e^c,

where log p_theta = f - c (for an EBM on a frozen flow base, h = g - c). Three estimators of
log(Z / e^c):

  importance sampling   log mean exp h(z_i), z_i ~ N(0, I): the flow as proposal.
  AIS (forward)         annealed importance sampling (Neal 2001) from N(0, I) to p through
                        N exp(beta h), beta = 0 ... 1; a lower bound of log Z in expectation
                        (Jensen), as importance sampling's is.
  AIS (reverse)         the same path walked back from exact samples of p (bidirectional Monte
                        Carlo, Grosse, Ghahramani & Adams 2015): an upper bound in expectation.

Why not `tfp.mcmc.sample_annealed_importance_chain`: at each beta it hands the new HMC kernel the
previous step's kernel results, whose cached log-density and gradient belong to the previous
beta. No transition then leaves its annealed target invariant and the weights are biased (0.55
nats low at D = 16, K = 200; tests/eval/test_log_z.py). `anneal` re-bootstraps the kernel at
every beta, which costs one gradient per step and makes each transition an exact HMC step.
"""

import functools

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from eval import batching
from models import glow
from models import transport
from train.errors import ReportError

MIN_ESS = 100  # below this effective sample size an importance-sampled log Z is flagged
AIS_ESTIMATOR = 'rebootstrapped-hmc, support-aware'  # recorded with AIS results: earlier ones
# were biased (tfp's), or refused or loose on an EBM with a support


def log_mean_weight(log_w):
  """(log mean exp(log_w), its delta-method standard error std(w) / (sqrt(N) mean(w)), and the
  effective sample size of the weights w), computed stably in float64."""
  log_w = np.asarray(log_w, np.float64)
  m = log_w.max()
  w = np.exp(log_w - m)
  se = w.std(ddof=1) / (np.sqrt(len(w)) * w.mean()) if len(w) > 1 else float('nan')
  return float(m + np.log(w.mean())), float(se), float(w.sum() ** 2 / (w ** 2).sum())


def _check_weights(log_w, what):
  """Refuses log-weights with NaN or +inf (models that overflow), or all -inf (all weights 0);
  a -inf is a weight of 0 and counts as one. Returns the number of zero weights."""
  nan, pos_inf = int(np.isnan(log_w).sum()), int(np.isposinf(log_w).sum())
  if nan or pos_inf:
    raise ReportError(f'{nan} NaN and {pos_inf} +inf of the {len(log_w)} {what}: the models '
                      'overflow there, so no log Z estimate is given.')
  zeros = int(np.isneginf(log_w).sum())
  if zeros == len(log_w):
    raise ReportError(f'all {len(log_w)} {what} are -inf (weights 0): no log Z estimate is given.')
  return zeros


def importance_sampled(flow, ebm, num_samples, batch_size, seed):
  """Importance-sampled log(Z / e^c) with the flow as proposal.

  With w_i = exp(f(y_i) - c - log q(y_i)), y_i ~ q: Z/e^c ~= mean(w), se(log mean w) =
  std(w) / (sqrt(N) mean(w)) by the delta method. NaN or +inf log-weights refuse the estimate
  (ReportError) rather than compute it from the rest.

  Returns:
    (estimate, standard error, effective sample size, number of zero weights).
  """
  gen = tf.random.Generator.from_seed(seed)
  log_w = []
  for _, size in batching.spans(num_samples, batch_size):
    y, log_q = flow.sample_and_log_prob(size, generator=gen)
    log_w.append((ebm.marginal_log_prob(y) - log_q).numpy())
  log_w = np.concatenate(log_w).astype(np.float64)
  zeros = _check_weights(log_w, 'importance log-weights (EBM log p - flow log q at flow samples)')
  estimate, se, ess = log_mean_weight(log_w)
  return estimate, se, ess, zeros


def latent_log_ratio(flow, ebm):
  """h(z) = log p_theta(g(z)) - log q(g(z)), the EBM's tilt of N(0, I) in the flow's latent
  (`transport.LogRatio`, on g's own log q)."""
  ratio = transport.LogRatio(ebm, flow)

  def h(z):
    return ratio(*flow.generate(z))
  return h


def _anneal(h, z, betas, step_size, leapfrog_steps, seed):
  """One AIS pass along `betas` (increasing: forward; decreasing: reverse) from states z.

  At beta_k the chains' log-weights gain log gamma_k(z) - log gamma_{k-1}(z), with
  gamma_k = N(z) exp(beta_k h(z)), then (but after the last beta) one HMC transition leaves
  gamma_k invariant. The kernel is bootstrapped at every beta, so its cached log-density and
  gradient are gamma_k's (the bug of tfp's sample_annealed_importance_chain, module docstring);
  that bootstrap also gives log gamma_k(z) for the weight, so a step costs leapfrog_steps + 1
  gradients. Returns (log-weights [chains], acceptance rate of each transition [K - 1]).
  """
  num = tf.shape(betas)[0]
  # An EBM with a support (model.ebm.support=cube) has h = -inf outside it: gamma_0 = N(z)
  # still covers everything (0 * -inf would be NaN), and a chain whose weight has become 0
  # (log -inf) keeps it, where -inf - -inf would be NaN.
  tilt = lambda beta, x: tf.where(beta > 0., beta * h(x), 0.)  # noqa: E731
  target = lambda beta: lambda x: glow.standard_normal_log_prob(x) + tilt(beta, x)  # noqa: E731
  zero = lambda log_w: tf.math.is_inf(log_w) & (log_w < 0)  # noqa: E731
  add = lambda log_w, inc: tf.where(zero(log_w), log_w, log_w + inc)  # noqa: E731
  log_gamma = target(betas[0])(z)
  log_w = tf.zeros_like(log_gamma)
  accepted = tf.TensorArray(tf.float32, size=num - 2)

  def body(k, z, log_w, log_gamma_prev, seed, accepted):
    kernel = tfp.mcmc.HamiltonianMonteCarlo(target(betas[k]), step_size=step_size,
                                            num_leapfrog_steps=leapfrog_steps)
    results = kernel.bootstrap_results(z)
    log_w = add(log_w, results.accepted_results.target_log_prob - log_gamma_prev)
    step_seed, seed = tfp.random.split_seed(seed)
    z, results = kernel.one_step(z, results, seed=step_seed)
    accepted = accepted.write(k - 1, tf.reduce_mean(tf.cast(results.is_accepted, tf.float32)))
    return k + 1, z, log_w, results.accepted_results.target_log_prob, seed, accepted

  _, z, log_w, log_gamma, _, accepted = tf.while_loop(
      lambda k, *_: k < num - 1, body,
      (tf.constant(1), z, log_w, log_gamma, seed, accepted))
  log_w = add(log_w, target(betas[num - 1])(z) - log_gamma)
  return log_w, accepted.stack()


def anneal(h, z, num_steps, step_size, seed, leapfrog_steps=3, reverse=False):
  """AIS log-weights of chains started at latent states z [chains, D], over `num_steps`
  annealing steps on a linear beta schedule; forward (z ~ N(0, I), E[w] = Z / e^c) or reverse
  (z ~ the model, E[w] = e^c / Z).

  Returns:
    (log-weights as float64 [chains], mean HMC acceptance over the path).
  """
  if num_steps < 2:
    raise ValueError(f'AIS needs at least 2 annealing steps, got {num_steps}.')
  betas = tf.linspace(0., 1., num_steps + 1)
  if reverse:
    betas = betas[::-1]
  run = tf.function(functools.partial(_anneal, h, leapfrog_steps=leapfrog_steps))
  log_w, accepted = run(tf.convert_to_tensor(z, tf.float32), betas,
                        tf.constant(step_size, tf.float32), seed=tf.constant([seed, 8], tf.int32))
  return log_w.numpy().astype(np.float64), float(tf.reduce_mean(accepted))


def ais(flow, ebm, num_chains, num_steps, step_size, seed, leapfrog_steps=3):
  """log(Z / e^c) by forward AIS in the flow's latent space: N(0, I) chains annealed to the EBM.

  Like an importance weight, each chain's exp(log-weight) is an unbiased estimate of Z / e^c,
  so log mean exp is a lower bound in expectation; the annealing lets the chains reach where the
  EBM has mass the flow lacks, where plain importance sampling's weights collapse. Raise
  num_steps until the estimate stops moving (`ladder`).

  Returns:
    (estimate, its delta-method standard error, mean HMC acceptance).
  """
  estimate, se, _, acceptance = _forward(flow, ebm, num_chains, num_steps, step_size, seed,
                                         leapfrog_steps)
  return estimate, se, acceptance


def _forward(flow, ebm, num_chains, num_steps, step_size, seed, leapfrog_steps):
  """Forward AIS: (estimate, se, effective sample size of the weights, acceptance)."""
  z0 = tf.random.stateless_normal([num_chains, flow.latent_dim], seed=[seed, 7])
  log_w, acceptance = anneal(latent_log_ratio(flow, ebm), z0, num_steps, step_size, seed,
                             leapfrog_steps)
  _check_weights(log_w, 'AIS log-weights')
  return (*log_mean_weight(log_w), acceptance)


def reverse_ais(flow, ebm, z_model, num_steps, step_size, seed, leapfrog_steps=3):
  """log(Z / e^c) by reverse AIS from latent samples z_model of the EBM (BDMC's upper side).

  Each chain's exp(log-weight) estimates e^c / Z without bias when z_model are exact samples,
  so -log mean exp is an upper bound of log(Z / e^c) in expectation. From approximate samples
  (e.g. neural-transport chains) the bound is approximate too. For an EBM with a support the
  prior mass outside it, which the reverse path cannot see, is put back
  (`_log_prior_mass_inside`).

  Returns:
    (estimate, its delta-method standard error, mean HMC acceptance).
  """
  h = latent_log_ratio(flow, ebm)
  outside = int(np.sum(~np.isfinite(h(tf.convert_to_tensor(z_model, tf.float32)).numpy())))
  if outside:
    raise ReportError(f'{outside} of the {len(z_model)} reverse-AIS starts have no density under '
                      'the model (outside its support): they are not its samples. Run their '
                      'chains longer (--ais_reverse_steps).')
  log_w, acceptance = anneal(h, z_model, num_steps, step_size, seed, leapfrog_steps,
                             reverse=True)
  _check_weights(log_w, 'reverse AIS log-weights')
  estimate, se, _ = log_mean_weight(log_w)
  log_inside, inside_se = _log_prior_mass_inside(h, flow.latent_dim, seed)
  return -estimate + log_inside, float(np.hypot(se, inside_se)), acceptance


def _log_prior_mass_inside(h, latent_dim, seed, num_samples=20000, batch_size=500):
  """(log P(h > -inf) under N(0, I), its delta-method standard error). An EBM with a support
  has h = -inf outside it, so the reverse path, which never leaves the support, sees only the
  part of N(0, I) inside: its weights estimate e^c / (Z P(inside)), and log P(inside), counted
  here by plain Monte Carlo, puts the rest back (0 without a support)."""
  inside = 0
  for start, size in batching.spans(num_samples, batch_size):
    z = tf.random.stateless_normal([size, latent_dim], seed=[seed, 10 + start])
    inside += int(np.sum(np.isfinite(h(z).numpy())))
  if inside == num_samples:
    return 0., 0.
  if not inside:
    raise ReportError(f'none of {num_samples} N(0, I) latents lies in the model\'s support.')
  p = inside / num_samples
  return float(np.log(p)), float(np.sqrt((1 - p) / inside))


def _starts_inside(h, num_chains, latent_dim, seed, max_rounds=100):
  """`num_chains` draws of N(0, I) restricted to the model's support (h > -inf), by rejection.
  A chain started outside an EBM's support never moves (every proposal's density and gradient
  there is -inf or NaN), so it cannot become a sample of the model; without a support this is
  plain N(0, I). The draws are not reused as `_log_prior_mass_inside`'s count: at P(inside) of
  0.97, 64 starts would give its log to about +-0.02 nats, its own 20,000 draws to +-0.001."""
  kept, drawn = [], 0
  for r in range(max_rounds):
    z = tf.random.stateless_normal([num_chains, latent_dim], seed=[seed, 11 + 1000 * r])
    kept.append(z.numpy()[np.isfinite(h(z).numpy())])
    drawn += num_chains
    if sum(map(len, kept)) >= num_chains:
      return tf.constant(np.concatenate(kept)[:num_chains])
  raise ReportError(f'{sum(map(len, kept))} of {drawn} N(0, I) latents lie in the model\'s '
                    f'support, too few to start {num_chains} chains.')


def model_latents(flow, ebm, num_chains, num_steps, step_size, seed, leapfrog_steps=3):
  """Approximate latent samples of the EBM, where reverse AIS starts on a learned model (whose
  exact samples nobody has): `num_chains` neural-transport chains (NT-EBM Sec. 3.2) of
  `num_steps` HMC steps on N(z) exp(h(z)) from N(0, I) restricted to the model's support, the
  step size adapted towards transport.TARGET_ACCEPT in the first half and fixed in the second.

  Returns:
    (the chains' last states, the acceptance rate of the second half, the step size).
  """
  h = latent_log_ratio(flow, ebm)
  target = lambda z: h(z) + glow.standard_normal_log_prob(z)  # noqa: E731
  run = tf.function(lambda z, size, n, seed, adapt: transport.hmc(target, z, size, n,
                                                                  leapfrog_steps, seed, adapt))
  z = _starts_inside(h, num_chains, flow.latent_dim, seed)
  adapt = num_steps // 2
  z, _, size = run(z, tf.constant(step_size, tf.float32), adapt, tf.constant([seed, 12]), True)
  z, acceptance, _ = run(z, size, num_steps - adapt, tf.constant([seed, 13]), False)
  return z, float(acceptance), float(size)


def ladder(flow, ebm, num_chains, steps, step_size, seed, leapfrog_steps=3, min_ess=0.1):
  """Forward AIS at each number of annealing steps in `steps` (e.g. 100, 300, 1000, 3000), from
  the same starts: an estimate that still rises with K was annealed too fast (AIS is low in
  expectation, by less with more steps).

  The standard error of a log mean weight is only trustworthy when the weights are not ruled
  by a few chains, so the ladder has `settled` when its last two rungs each have an effective
  sample size of at least `min_ess` of the chains and agree within twice their combined
  standard error.

  Returns:
    {'rungs': [{'steps', 'estimate', 'se', 'ess', 'acceptance'}, ...], 'settled': bool, or
    None for a single rung}.
  """
  rungs = []
  for k in steps:
    estimate, se, ess, acceptance = _forward(flow, ebm, num_chains, k, step_size, seed,
                                             leapfrog_steps)
    rungs.append(dict(steps=int(k), estimate=estimate, se=se, ess=ess, acceptance=acceptance))
  settled = None
  if len(rungs) > 1:
    a, b = rungs[-2], rungs[-1]
    settled = bool(min(a['ess'], b['ess']) >= min_ess * num_chains and
                   abs(b['estimate'] - a['estimate']) <= 2 * np.hypot(a['se'], b['se']))
  return {'rungs': rungs, 'settled': settled}


def sandwich(flow, ebm, z_model, num_steps, step_size, seed, leapfrog_steps=3):
  """Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015): forward AIS from N(0, I) and
  reverse AIS from the model's latent samples z_model, over the same path; log(Z / e^c) lies
  between them in expectation when z_model are exact samples (approximate samples, e.g. long
  neural-transport chains, make the upper side approximate too).

  Returns:
    {'lower', 'lower_se', 'upper', 'upper_se', 'gap', 'acceptance'} (log(Z / e^c), nats).
  """
  lower, lower_se, acc_f = ais(flow, ebm, len(z_model), num_steps, step_size, seed,
                               leapfrog_steps)
  upper, upper_se, acc_r = reverse_ais(flow, ebm, z_model, num_steps, step_size, seed,
                                       leapfrog_steps)
  return dict(lower=lower, lower_se=lower_se, upper=upper, upper_se=upper_se,
              gap=upper - lower, acceptance=(acc_f + acc_r) / 2)
