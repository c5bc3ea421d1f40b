"""Compiled update steps: flow MLE, and the two halves of an FCE iteration (FCE eq. 12).

The math lives in `losses/`; a step only differentiates, applies the gradients and returns the
scalars to log. `global_batch_size` is passed through for per-replica losses under
tf.distribute (None means plain batch means).
"""

import tensorflow as tf
import tf_keras as keras

from losses import contrastive
from losses import flow as flow_losses


def make_optimizers(optim_config):
  """The paper's optimisers (FCE Sec. 4): Adam for the EBM, Adamax for the flow."""
  return {
      'ebm': keras.optimizers.Adam(optim_config.ebm_lr, beta_1=optim_config.ebm_beta1),
      'flow': keras.optimizers.Adamax(optim_config.flow_lr),
      'flow_mle': keras.optimizers.Adam(optim_config.flow_mle_lr),
  }


def _apply(optimizer, loss, tape, variables):
  grads = tape.gradient(loss, variables)
  optimizer.apply_gradients(zip(grads, variables))
  return tf.linalg.global_norm(grads)


def make_mle_step(flow, optimizer, num_bins=None, global_batch_size=None, jit_compile=False):
  """One maximum-likelihood step of the flow on a (dequantized) data batch y."""
  variables = flow.trainable_variables

  @tf.function(jit_compile=jit_compile)
  def step(y):
    with tf.GradientTape() as tape:
      nll, metrics = flow_losses.flow_nll(flow, y, num_bins)
      loss = contrastive.reduce_batch(nll, global_batch_size)
    metrics['flow_grad_norm'] = _apply(optimizer, loss, tape, variables)
    return metrics

  return step


def make_fce_steps(ebm, flow, ebm_optimizer, flow_optimizer, global_batch_size=None,
                   jit_compile=False):
  """The EBM step (ascend V in theta) and the flow step (descend V in alpha) of FCE."""
  ebm_variables = ebm.trainable_variables
  flow_variables = flow.trainable_variables

  @tf.function(jit_compile=jit_compile)
  def ebm_step(x, z):
    with tf.GradientTape() as tape:
      loss, metrics = contrastive.ebm_fce_loss(ebm, flow, x, z, global_batch_size)
    metrics['ebm_grad_norm'] = _apply(ebm_optimizer, loss, tape, ebm_variables)
    return metrics

  @tf.function(jit_compile=jit_compile)
  def flow_step(x, z):
    with tf.GradientTape() as tape:
      loss, metrics = contrastive.flow_fce_loss(ebm, flow, x, z, global_batch_size)
    metrics['flow_grad_norm'] = _apply(flow_optimizer, loss, tape, flow_variables)
    return metrics

  return ebm_step, flow_step


def make_nce_step(ebm, noise, optimizer, nu=1., global_batch_size=None, jit_compile=False):
  """One NCE step of the EBM against a fixed noise distribution (FCE eqs. 4-6)."""
  variables = ebm.trainable_variables

  @tf.function(jit_compile=jit_compile)
  def step(x):
    num_noise = int(round(nu * x.shape[0]))
    with tf.GradientTape() as tape:
      loss, metrics = contrastive.ebm_nce_loss(ebm, noise, x, num_noise, global_batch_size, nu)
    metrics['ebm_grad_norm'] = _apply(optimizer, loss, tape, variables)
    return metrics

  return step
