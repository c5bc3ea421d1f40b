"""Semi-supervised FCE (FCE Sec. 3.4): class-conditional EBMs p_theta_k(x) = exp(f_k(x) - c_k).

The EBM maximises L_label (eq. 17) on labeled data plus V(theta, alpha) (eq. 12) on unlabeled
data, with the unconditional density the mixture (1/K) sum_k p_theta_k (eq. 18); the flow
minimises V as in unsupervised FCE (`losses.contrastive.flow_fce_loss` handles the mixture).
Virtual adversarial training (Miyato et al. 2018) is an optional extra loss on p(y|x).
"""

import tensorflow as tf

from losses import contrastive
from losses.contrastive import reduce_batch


def class_logits(ebm, x, training=False):
  """Logits of p(k | x, x is data) = softmax_k(f_k(x) - c_k) (FCE eqs. 15 and 17)."""
  return ebm.log_prob(x, training=training)


def label_loss(ebm, x, y, global_batch_size=None):
  """-L_label(theta) (FCE eq. 17): cross-entropy of softmax_k(f_k - c_k) at the labels."""
  logits = class_logits(ebm, x, training=True)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=logits)
  correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(y, tf.int32)),
                    tf.float32)
  return reduce_batch(ce, global_batch_size), {'label_loss': reduce_batch(ce, global_batch_size),
                                          'label_accuracy': reduce_batch(correct, global_batch_size)}


def _kl_from_logits(p_logits, q_logits):
  p_log = tf.nn.log_softmax(p_logits)
  return tf.reduce_sum(tf.exp(p_log) * (p_log - tf.nn.log_softmax(q_logits)), axis=-1)


def _unit_per_example(d):
  axes = list(range(1, d.shape.rank))
  return d / (tf.sqrt(tf.reduce_sum(tf.square(d), axis=axes, keepdims=True)) + 1e-12)


def vat_loss(ebm, x, epsilon, xi=1e-2, power_iterations=1, global_batch_size=None, start=None):
  """Virtual adversarial training loss (Miyato et al. 2018) on p(y | x) of the EBM.

  KL(p(.|x) || p(.|x + r_adv)), with r_adv of L2 norm `epsilon` per example found by
  `power_iterations` steps of the power method from a random direction (finite difference xi):
  `start`, any standard normal tensor with x's number of elements (the SSL step passes the
  batch's latents, so that the step is a function of its batch, as every step is: the same on
  one device or several replicas, and on resume); drawn here if None.

  All predictions are made with dropout off (training=False): with one dropout mask drawn per
  call, KL(p(.|x) || p(.|x + r)) would not vanish at r = 0, and the power method would chase the
  masks' difference rather than the direction most sensitive to x.
  """
  logits = tf.stop_gradient(class_logits(ebm, x, training=False))
  start = tf.random.normal(tf.shape(x)) if start is None else tf.reshape(start, tf.shape(x))
  d = _unit_per_example(start)
  for _ in range(power_iterations):
    with tf.GradientTape() as tape:
      tape.watch(d)
      kl = tf.reduce_mean(_kl_from_logits(logits, class_logits(ebm, x + xi * d, training=False)))
    d = _unit_per_example(tf.stop_gradient(tape.gradient(kl, d)))
  kl = _kl_from_logits(logits, class_logits(ebm, x + epsilon * d, training=False))
  return reduce_batch(kl, global_batch_size), {'vat_loss': reduce_batch(kl, global_batch_size)}


def ebm_ssl_loss(ebm, flow, x_labeled, y, x_unlabeled, z, vat_weight=0., vat_epsilon=1.,
                 global_batch_size=None, labeled_batch_size=None, aux_noise=None, aux_weight=0.):
  """EBM loss of semi-supervised FCE: -(L_label + V) (+ vat_weight * VAT on unlabeled data).

  Args:
    x_labeled, y: labeled batch. x_unlabeled: unlabeled batch; z: latents, as many.
    global_batch_size / labeled_batch_size: global sizes of the unlabeled / labeled batches under
      tf.distribute, or None for plain means.
    aux_noise, aux_weight: the auxiliary NCE term of `contrastive.ebm_fce_loss`, on the mixture.
  """
  neg_value, metrics = contrastive.ebm_fce_loss(ebm, flow, x_unlabeled, z, global_batch_size,
                                                aux_noise=aux_noise, aux_weight=aux_weight)
  lab, lab_metrics = label_loss(ebm, x_labeled, y, labeled_batch_size)
  metrics.update(lab_metrics)
  loss = neg_value + lab
  if vat_weight:
    vat, vat_metrics = vat_loss(ebm, x_unlabeled, vat_epsilon, global_batch_size=global_batch_size,
                                start=z)
    metrics.update(vat_metrics)
    loss += vat_weight * vat
  return loss, metrics
