"""Objectives of an EBM with a flow backbone, p(x) = exp(f(x) - c) q(x) (NT-EBM eq. 7): the
correction f is learned by maximum likelihood with samples of the model (eq. 6), or by NCE
against the backbone itself (eq. 10)."""

import tensorflow as tf

from losses import contrastive


def tilt_mle_loss(correction, x, samples, global_batch_size=None):
  """Minus NT-EBM eq. 6 as a loss: its gradient in theta is E_model[grad f] - E_data[grad f].

  Args:
    correction: the EBM f (`models.ebm.EnergyModel`, unconditional).
    x: a data batch.
    samples: samples of the current model (neural-transport HMC), treated as constants.

  Returns:
    (loss, {'f_data', 'f_samples'}: the means of f on each side).
  """
  f_data = correction(x, training=True)
  f_samples = correction(tf.stop_gradient(samples), training=True)
  f_data_mean = contrastive.reduce_batch(f_data, global_batch_size)
  f_samples_mean = contrastive.reduce_batch(f_samples, global_batch_size)
  return f_samples_mean - f_data_mean, {'f_data': f_data_mean, 'f_samples': f_samples_mean}


def tilt_nce_loss(correction, flow, x, z, global_batch_size=None, nu=1.):
  """Minus the NCE objective of the correction against the frozen backbone (NT-EBM eq. 10).

  The noise is q itself, so the classifier's logit log p(x) - log q(x) is f(x) - c (minus
  log nu, eq. 10's log rho / (1 - rho)): the log q terms of `contrastive.nce_objective` are
  zero, and the backbone's samples g(z) are the noise; z holds nu latents per example.
  """
  samples = tf.stop_gradient(flow.generate(tf.reshape(z, [-1, flow.latent_dim]))[0])
  logit_data = correction.log_prob(x, training=True)
  logit_noise = correction.log_prob(samples, training=True)
  objective, metrics = contrastive.nce_objective(
      logit_data, tf.zeros_like(logit_data), logit_noise, tf.zeros_like(logit_noise), nu=nu,
      global_batch_size=global_batch_size)
  return -objective, metrics
