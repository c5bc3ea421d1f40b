"""Update steps: flow MLE, NCE against fixed noise, and the two halves of an FCE iteration.

The math lives in `losses/`; a step only differentiates, applies the gradients and returns
scalars to log. Steps take a batch dict {'x', 'z', 'label'} (see `data.pipeline`); `z` holds
the flow's (or the noise's) latents, so every random number of a step comes from the batch.

`make_*` return per-replica functions whose losses and metrics are scaled by the global batch
size; `compile_step` wraps one in a `tf.function` that runs it on every replica of a
tf.distribute strategy and sums the metrics (so they are global batch means).
"""

import tensorflow as tf
import tf_keras as keras

from losses import contrastive
from losses import flow as flow_losses
from losses import nt
from losses import ssl
from models import transport


def learning_rates(optim_config):
  return {'ebm': optim_config.ebm_lr, 'flow': optim_config.flow_lr,
          'flow_mle': optim_config.flow_mle_lr}


def annealed(lr, progress, anneal):
  """`lr` at `progress` in [0, 1] through the run: constant, then falling linearly to 0 over
  the last `anneal` of it (0 = constant throughout)."""
  if not anneal:
    return lr
  return lr * min(1., max(0., 1. - progress) / anneal)


FLOW_OPTIMIZERS = ('adamax', 'adam', 'sgd')


def make_optimizers(optim_config):
  """The paper's optimisers (FCE Sec. 4): Adam for the EBM, Adamax for the flow (FCE; or
  `optim.flow_optimizer`), and Adam for flow MLE pretraining.

  `optim.ebm_clip_norm` / `optim.flow_clip_norm` (0 = off) clip each model's gradient to that
  global norm; Keras clips after the gradients are summed over replicas, so the bound holds for
  the global gradient under tf.distribute too.
  """
  lr = learning_rates(optim_config)
  clip = lambda norm: {'global_clipnorm': float(norm)} if norm else {}
  kind = optim_config.flow_optimizer  # one of FLOW_OPTIMIZERS (configs/checks.py)
  flow_clip = clip(optim_config.flow_clip_norm)
  flow = {'adamax': lambda: keras.optimizers.Adamax(lr['flow'], **flow_clip),
          'adam': lambda: keras.optimizers.Adam(lr['flow'], beta_1=optim_config.flow_beta1,
                                                **flow_clip),
          'sgd': lambda: keras.optimizers.SGD(lr['flow'], **flow_clip)}[kind]()
  return {
      'ebm': keras.optimizers.Adam(lr['ebm'], beta_1=optim_config.ebm_beta1,
                                   **clip(optim_config.ebm_clip_norm)),
      'flow': flow,
      'flow_mle': keras.optimizers.Adam(lr['flow_mle'], **flow_clip),
  }


def apply(optimizer, grads, variables):
  """Applies this replica's share of a gradient; returns the global norm of the whole gradient
  (summed over replicas) before the optimizer clips it, divided by the number of replicas, as
  `compile_step` sums each metric over them.

  The sum is taken here rather than inside `apply_gradients`, so the norm logged is the one
  `optim.*_clip_norm` bounds.
  """
  pairs = optimizer.aggregate_gradients(list(zip(grads, variables)))
  optimizer.apply_gradients(pairs, skip_gradients_aggregation=True)
  replicas = tf.distribute.get_replica_context().num_replicas_in_sync
  return tf.linalg.global_norm([g for g, _ in pairs]) / replicas


def _descend(loss_fn, optimizer, variables, model):
  """A step applying `optimizer` to the gradient of `loss_fn(batch) -> (loss, metrics)`;
  `model` ('ebm' or 'flow') names the gradient norm it adds to the metrics."""
  def step(batch):
    with tf.GradientTape() as tape:
      loss, metrics = loss_fn(batch)
    norm = apply(optimizer, tape.gradient(loss, variables), variables)
    return dict(metrics, **{f'{model}_grad_norm': norm})
  return step


def make_mle_step(flow, optimizer, num_bins=None, global_batch_size=None):
  """Maximum likelihood of the flow on the batch's (dequantized) data."""
  def loss_fn(batch):
    nll, metrics = flow_losses.flow_nll(flow, batch['x'], num_bins, global_batch_size)
    return contrastive.reduce_batch(nll, global_batch_size), metrics

  return _descend(loss_fn, optimizer, flow.trainable_variables, 'flow')


def make_nce_step(ebm, noise, optimizer, nu=1., global_batch_size=None):
  """NCE of the EBM against a fixed noise (FCE eqs. 4-6); the batch's z give the noise samples.

  With nu > 1, z holds nu latents per example ([B, nu, D]).
  """
  def loss_fn(batch):
    z = tf.reshape(batch['z'], [-1, noise.latent_dim])
    return contrastive.ebm_nce_loss(ebm, noise, batch['x'], z, global_batch_size, nu)

  return _descend(loss_fn, optimizer, ebm.trainable_variables, 'ebm')


FLOW_PASSES = ('auto', 'one', 'two')  # fce.flow_passes
# 'auto' differentiates the flow step in two passes above this estimate of one pass's
# activations (`flow_activation_bytes`); below it, holding both costs little memory. One and
# two passes took the same time on the 2-core CPU (docs/benchmarks), so 'auto' spares memory;
# one pass leaves the two passes free to overlap where cores are idle.
TWO_PASS_BYTES = 2 ** 30


def flow_activation_bytes(flow_config, data_shape, batch_size):
  """An estimate of the float32 activations one pass of the Glow keeps for its gradient at
  `batch_size`: per flow step, the coupling network's two hidden layers (width W) and about four
  tensors of the step's own size, at every position of its level (docs/benchmarks compares it
  with measured peaks)."""
  f, shape = flow_config, tuple(int(d) for d in data_shape)
  per_step = lambda positions, channels: positions * (2 * f.width + 4 * channels)
  if len(shape) == 1:
    return 4 * batch_size * f.steps_per_level * per_step(1, shape[0])
  (h, w, c), floats = shape, 0
  for level in range(f.levels):
    h, w, c = h // 2, w // 2, 4 * c
    floats += f.steps_per_level * per_step(h * w, c)
    if level < f.levels - 1:
      c -= c // 2  # the split prior's half leaves
  return 4 * batch_size * floats


def flow_two_pass(passes, flow_config, data_shape, batch_size):
  """Whether the FCE flow step runs in two passes (`make_fce_steps`): `passes` is
  fce.flow_passes ('one', 'two', or 'auto': two if one pass's activations at the per-replica
  `batch_size` are estimated above TWO_PASS_BYTES)."""
  if passes != 'auto':
    return passes == 'two'
  return flow_activation_bytes(flow_config, data_shape, batch_size) > TWO_PASS_BYTES


def make_fce_steps(ebm, flow, ebm_optimizer, flow_optimizer, global_batch_size=None,
                   flow_mle_weight=0., ebm_f_penalty=0., aux_noise=None, aux_weight=0.,
                   two_pass=True):
  """The EBM step (ascend V in theta) and the flow step (descend V in alpha) of FCE eq. 12.

  flow_mle_weight > 0 adds that weight times the flow's NLL per dimension on the data to the
  flow's loss, ebm_f_penalty a penalty on f^2 to the EBM's, and aux_weight > 0 an NCE term
  against `aux_noise` to the EBM's (none is in the paper; see `contrastive.flow_fce_loss` and
  `contrastive.ebm_fce_loss`).

  two_pass: differentiate V's data side and sample side one after the other (`flow_two_pass`
  decides it from the config), which never holds the two flow passes' activations together;
  else V at once. The update is the same either way.
  """
  def ebm_loss(batch):
    return contrastive.ebm_fce_loss(ebm, flow, batch['x'], batch['z'], global_batch_size,
                                    ebm_f_penalty, aux_noise, aux_weight)

  flow_variables = flow.trainable_variables

  def flow_step(batch):
    """Descends V (+ the MLE term) differentiated at once: one tape, both passes' activations
    alive together until the gradient is taken."""
    with tf.GradientTape() as tape:
      loss, metrics = contrastive.flow_fce_loss(ebm, flow, batch['x'], batch['z'],
                                                global_batch_size, flow_mle_weight)
    norm = apply(flow_optimizer, tape.gradient(loss, flow_variables), flow_variables)
    return dict(metrics, flow_grad_norm=norm)

  def two_pass_flow_step(batch):
    """Descends V's two sides one after the other: the data side's inverse pass and its
    gradient, then the samples' forward pass and its gradient. V is their sum, so the update
    is the same as differentiating V at once, but the activations of the two passes are never
    held together, which halves the step's peak memory (docs/benchmarks)."""
    with tf.GradientTape() as tape:
      data_loss, data_side = contrastive.flow_fce_data_loss(ebm, flow, batch['x'],
                                                            global_batch_size, flow_mle_weight)
    data_grads = tape.gradient(data_loss, flow_variables)
    with tf.control_dependencies([g for g in data_grads if g is not None]):
      z = tf.identity(batch['z'])  # the sample pass starts once the data side's gradient exists
    with tf.GradientTape() as tape:
      sample_loss, metrics = contrastive.flow_fce_sample_loss(ebm, flow, z, data_side,
                                                              global_batch_size)
    sample_grads = tape.gradient(sample_loss, flow_variables)
    norm = apply(flow_optimizer, list(map(_add, data_grads, sample_grads)), flow_variables)
    return dict(metrics, flow_grad_norm=norm)

  return (_descend(ebm_loss, ebm_optimizer, ebm.trainable_variables, 'ebm'),
          two_pass_flow_step if two_pass else flow_step)


def _add(a, b):
  """a + b for two gradients of one variable, either of which may be None (no path)."""
  return b if a is None else a if b is None else a + b


def make_ssl_ebm_step(ebm, flow, optimizer, vat_weight=0., vat_epsilon=1.,
                      global_batch_size=None, labeled_batch_size=None, aux_noise=None,
                      aux_weight=0.):
  """The EBM step of semi-supervised FCE (Sec. 3.4): ascend L_label (eq. 17) + V (eqs. 12, 18),
  with VAT on the unlabeled batch if vat_weight > 0. The flow step is FCE's."""
  def loss_fn(batch):
    return ssl.ebm_ssl_loss(ebm, flow, batch['x_labeled'], batch['y_labeled'], batch['x'],
                            batch['z'], vat_weight, vat_epsilon, global_batch_size,
                            labeled_batch_size, aux_noise, aux_weight)

  return _descend(loss_fn, optimizer, ebm.trainable_variables, 'ebm')


def make_nt_step(correction, flow, optimizer, chains, step_size, seed_fn, hmc_steps=20,
                 leapfrog_steps=3, adapt=True, target_accept=transport.TARGET_ACCEPT,
                 global_batch_size=None):
  """One iteration of NT-EBM Algorithm 1: `hmc_steps` HMC steps of the persistent latent
  chains on p(z) (eq. 9), their push-forward g(z) as the model's samples, and the correction's
  update by eq. 6. `chains` ([m, D]) and `step_size` are variables (the checkpoint keeps them);
  `seed_fn()` gives the stateless seed of this iteration's HMC. Eq. 6 does not involve c, so
  only the network f is updated.

  Under a strategy with R > 1 replicas, replica r moves rows [r m/R, (r+1) m/R) of the chains
  with its own seed (the step's, folded with r) and adapts its own step size over the K HMC
  steps; the replicas then gather the chains back in order, and share the geometric mean of
  their step sizes and the mean of their acceptance rates. The variables must then be created
  with aggregation ONLY_FIRST_REPLICA (every replica assigns the same gathered value).
  """
  variables = correction.network.trainable_variables

  def step(batch):
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    z, seed = chains.read_value(), seed_fn()
    if replicas > 1:
      rows = z.shape[0] // replicas
      replica = ctx.replica_id_in_sync_group
      z = z[replica * rows:(replica + 1) * rows]
      seed = tf.random.experimental.stateless_fold_in(seed, replica)
    z, acceptance, new_step_size = transport.hmc(
        transport.latent_log_prob(correction, flow), z, step_size.read_value(), hmc_steps,
        leapfrog_steps, seed, adapt, target_accept)
    if replicas > 1:
      mean = lambda t: ctx.all_reduce(tf.distribute.ReduceOp.MEAN, t)
      acceptance, new_step_size = mean(acceptance), tf.exp(mean(tf.math.log(new_step_size)))
      chains.assign(ctx.all_gather(z, axis=0))
    else:
      chains.assign(z)
    step_size.assign(new_step_size)
    samples = flow.generate(z)[0]
    with tf.GradientTape() as tape:
      loss, metrics = nt.tilt_mle_loss(correction, batch['x'], samples, global_batch_size)
    norm = apply(optimizer, tape.gradient(loss, variables), variables)
    # compile_step sums metrics over replicas: these two are the same on every replica.
    return dict(metrics, acceptance=acceptance / replicas, step_size=new_step_size / replicas,
                ebm_grad_norm=norm)

  return step


def make_nt_nce_step(correction, flow, optimizer, nu=1., global_batch_size=None):
  """NCE of the correction against the frozen backbone (NT-EBM eq. 10); the batch's z give the
  backbone's samples (nu per example)."""
  def loss_fn(batch):
    return nt.tilt_nce_loss(correction, flow, batch['x'], batch['z'], global_batch_size, nu)

  return _descend(loss_fn, optimizer, correction.trainable_variables, 'ebm')


def compile_step(step, strategy=None, jit_compile=False):
  """A tf.function running `step` on every replica of `strategy`, metrics summed over replicas.

  With no strategy (or the default one) this is simply the compiled step.
  """
  strategy = strategy or tf.distribute.get_strategy()
  replica_step = tf.function(step, jit_compile=True) if jit_compile else step

  @tf.function
  def run(batch):
    per_replica = strategy.run(replica_step, args=(batch,))
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()}

  return run
