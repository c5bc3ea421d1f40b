"""Noise contrastive estimation (FCE eqs. 4-6) and the FCE value function (FCE eq. 12).

Everything is computed in log space from log-densities, with the classifier's logit
r(x) = log p_theta(x) - log q(x) - log nu:
  log u(x)       = log sigmoid(r(x))        (data classified as data),
  log (1 - u(x)) = log sigmoid(-r(x))       (noise classified as noise),
never as log(p / (p + q)) on raw densities, which under- and overflows in high dimension.

The value functions are maximised by the EBM; the flow minimises V (FCE eq. 12).
"""

import numpy as np
import tensorflow as tf


def reduce_batch(terms, global_batch_size):
  """Mean over the batch, or (under tf.distribute) sum scaled by the global batch size.

  Every loss and every metric a step returns goes through this: `train.steps.compile_step` sums
  each metric over replicas, which gives the global batch mean only for values scaled by the
  global batch. tests/train/distributed_check.py checks every metric of every step on 2 replicas.
  """
  if global_batch_size is None:
    return tf.reduce_mean(terms)
  return tf.reduce_sum(terms) / tf.cast(global_batch_size, terms.dtype)


def nce_objective(logp_data, logq_data, logp_noise, logq_noise, nu=1.,
                  global_batch_size=None):
  """NCE objective J(theta) (FCE eqs. 4 and 6, divided by n), with nu noise samples per datum.

  The posterior of 'data' is u(x) = p(x) / (p(x) + nu q(x)) (Gutmann & Hyvarinen 2010), and
  J = mean_data log u(x) + nu * mean_noise log(1 - u(x~)). With nu = 1 this is FCE eq. 4.

  Args:
    logp_data, logq_data: [n] log p_theta and log q at the data.
    logp_noise, logq_noise: [m] the same at noise samples (m = nu * n in expectation).
    nu: ratio of noise to data samples.
    global_batch_size: if set (under tf.distribute), the global number of data examples: terms
      are summed and divided by it (and by nu * it for the noise), so replicas' values add up.

  Returns:
    (J, dict of scalars: the objective, the classifier's accuracy on each side and overall).
  """
  logp_data, logq_data, logp_noise, logq_noise = (
      tf.convert_to_tensor(t, dtype_hint=tf.float32)
      for t in (logp_data, logq_data, logp_noise, logq_noise))
  log_nu = float(np.log(nu))
  r_data = logp_data - logq_data - log_nu
  r_noise = logp_noise - logq_noise - log_nu
  noise_batch = None if global_batch_size is None else nu * global_batch_size
  data_term = reduce_batch(tf.math.log_sigmoid(r_data), global_batch_size)
  noise_term = reduce_batch(tf.math.log_sigmoid(-r_noise), noise_batch)
  objective = data_term + nu * noise_term
  # A tie (r = 0) counts as half right, so equal densities give accuracy 0.5 exactly.
  acc_data = reduce_batch(0.5 * (1. + tf.sign(r_data)), global_batch_size)
  acc_noise = reduce_batch(0.5 * (1. - tf.sign(r_noise)), noise_batch)
  metrics = {
      'value': objective,
      'accuracy': 0.5 * (acc_data + acc_noise),
      'accuracy_data': acc_data,
      'accuracy_noise': acc_noise,
  }
  return objective, metrics


def fce_value(logp_data, logq_data, logp_samples, logq_samples, global_batch_size=None):
  """FCE value function V(theta, alpha) (FCE eq. 12) and the implied classifier's accuracy.

  V = E_data[log p/(p + q)] + E_z[log q(g(z)) / (p(g(z)) + q(g(z)))]: NCE with nu = 1 and the
  flow as noise. V = -2 log 2 = -log 4 when p_theta = q_alpha; the accuracy (data called data,
  flow samples called samples, averaged over both) drives the alternation schedule.
  """
  return nce_objective(logp_data, logq_data, logp_samples, logq_samples, nu=1.,
                       global_batch_size=global_batch_size)


def ebm_fce_loss(ebm, flow, x, z, global_batch_size=None, f_penalty=0., aux_noise=None,
                 aux_weight=0.):
  """EBM update of FCE: the loss -V(theta, alpha) with the flow held fixed.

  Args:
    ebm: `models.ebm.EnergyModel` (its mixture density is used if class-conditional, eq. 18).
    flow: `models.glow.Flow` (or any noise with `log_prob` and `generate`).
    x: data batch. z: latent batch for the flow samples (same size as x).
    f_penalty: weight of mean f(x)^2 + mean f(x~)^2 over data and samples (0 = the paper), a
      regulariser that keeps f near the scale c absorbs; f is log p + c, so c is not penalised.
    aux_noise, aux_weight: if aux_weight > 0, add aux_weight times the NCE loss against the
      fixed `aux_noise` (e.g. a broad Gaussian; its samples are aux_noise.generate(z)). Not in
      the paper: V constrains f only where the data or the flow's samples are, so an EBM trained
      on V alone may put mass in regions both leave empty (docs/bench2d). The NCE optimum is
      p_theta = p_data too, so the sum keeps the consistency of either term.

  The loss keeps dropout on (a regulariser), but the metrics returned (value, accuracies, read
  by the alternation schedule) come from dropout-off log-densities, as in `flow_fce_loss`; this
  costs one more forward pass only if the EBM has dropout.
  """
  logq_data = tf.stop_gradient(flow.log_prob(x))
  samples, logq_samples = flow.generate(z)
  samples, logq_samples = tf.stop_gradient(samples), tf.stop_gradient(logq_samples)
  logp_data = ebm.marginal_log_prob(x, training=True)
  logp_samples = ebm.marginal_log_prob(samples, training=True)
  value, metrics = fce_value(logp_data, logq_data, logp_samples, logq_samples, global_batch_size)
  loss = -value
  if f_penalty:
    c = tf.reduce_mean(ebm.log_normalizer)
    penalty = reduce_batch(tf.square(logp_data + c) + tf.square(logp_samples + c),
                           global_batch_size)
    metrics['f_penalty'] = penalty
    loss += f_penalty * penalty
  if aux_weight:
    aux_samples, logg_samples = aux_noise.generate(z)
    aux_objective, _ = nce_objective(logp_data, aux_noise.log_prob(x),
                                     ebm.marginal_log_prob(aux_samples, training=True),
                                     logg_samples, global_batch_size=global_batch_size)
    metrics['aux_value'] = aux_objective
    loss -= aux_weight * aux_objective
  if getattr(ebm, 'has_dropout', False):
    metrics.update(fce_value(tf.stop_gradient(ebm.marginal_log_prob(x, training=False)),
                             logq_data,
                             tf.stop_gradient(ebm.marginal_log_prob(samples, training=False)),
                             logq_samples, global_batch_size)[1])
  metrics['flow_nll'] = reduce_batch(-logq_data, global_batch_size)
  return loss, metrics


def flow_fce_loss(ebm, flow, x, z, global_batch_size=None, mle_weight=0.):
  """Flow update of FCE: the loss +V(theta, alpha), minimised over alpha.

  The gradient reaches alpha through log q_alpha(x) at the data and, for the samples, through
  both x~ = g_alpha(z) (reparameterised, so also via log p_theta(x~)) and log q_alpha(x~) taken
  from the forward pass with no inversion. Approximately JSD minimisation (FCE eq. 13).

  mle_weight > 0 adds mle_weight * (the flow's NLL per dimension on the data) to the loss, a
  departure from the paper: V's data term log sigma(log p - log q) saturates where q << p, so
  by itself V gives the flow no gradient to cover a mode it has lost, and the flow then stops
  being a usable density model (docs/bench2d). The metrics include `flow_nll`, the flow's NLL
  on the data per example, whatever the weight.

  The loss is the sum of `flow_fce_data_loss` and `flow_fce_sample_loss`, which the training
  step differentiates one after the other (`train.steps.make_fce_steps`).
  """
  data_loss, data_side = flow_fce_data_loss(ebm, flow, x, global_batch_size, mle_weight)
  sample_loss, metrics = flow_fce_sample_loss(ebm, flow, z, data_side, global_batch_size)
  return data_loss + sample_loss, metrics


def flow_fce_data_loss(ebm, flow, x, global_batch_size=None, mle_weight=0.):
  """The data side of `flow_fce_loss`: the terms of the loss that depend on alpha through the
  inverse pass log q_alpha(x) (V's data term, and the NLL term if mle_weight > 0).

  Returns (loss, data_side): `data_side` holds log p_theta(x), log q_alpha(x) and the flow's
  NLL, which `flow_fce_sample_loss` takes as constants.
  """
  logq_data = flow.log_prob(x)
  logp_data = ebm.marginal_log_prob(x)
  loss = reduce_batch(tf.math.log_sigmoid(logp_data - logq_data), global_batch_size)  # eq. 12
  nll = reduce_batch(-logq_data, global_batch_size)
  if mle_weight:
    loss += mle_weight * nll / float(np.prod(x.shape[1:]))
  data_side = {'logp_data': logp_data, 'logq_data': logq_data, 'flow_nll': nll}
  return loss, tf.nest.map_structure(tf.stop_gradient, data_side)


def flow_fce_sample_loss(ebm, flow, z, data_side, global_batch_size=None):
  """The sample side of `flow_fce_loss`: V's sample term, whose gradient in alpha flows through
  the forward pass g_alpha(z) only. Returns (loss, metrics of all of V, with `data_side`)."""
  samples, logq_samples = flow.generate(z)
  logp_samples = ebm.marginal_log_prob(samples)
  loss = reduce_batch(tf.math.log_sigmoid(logq_samples - logp_samples), global_batch_size)
  _, metrics = fce_value(data_side['logp_data'], data_side['logq_data'], logp_samples,
                         logq_samples, global_batch_size)
  metrics['flow_nll'] = data_side['flow_nll']
  return loss, metrics


def ebm_nce_loss(ebm, noise, x, z, global_batch_size=None, nu=1.):
  """EBM loss -J(theta) of NCE against a fixed noise (Gaussian, or a frozen flow).

  Args:
    noise: object with `log_prob(x)` and `generate(z) -> (samples, log q(samples))`.
    z: [nu * batch, D] standard normal latents of the noise samples.
  """
  logq_data = tf.stop_gradient(noise.log_prob(x))
  samples, logq_noise = noise.generate(z)
  samples, logq_noise = tf.stop_gradient(samples), tf.stop_gradient(logq_noise)
  objective, metrics = nce_objective(ebm.marginal_log_prob(x, training=True), logq_data,
                                     ebm.marginal_log_prob(samples, training=True), logq_noise,
                                     nu=nu, global_batch_size=global_batch_size)
  return -objective, metrics
