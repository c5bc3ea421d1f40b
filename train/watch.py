"""What the trainer watches in a run's health, and what it says when something goes wrong: each
model's gradient norms, non-finite metrics (with a hint of what to change), the flow's collapse
during FCE, and how many of the flow's samples the EBM's support holds."""

from absl import logging
import numpy as np
import tensorflow as tf

from train.errors import DivergedError


class GradientNorms:
  """Per log interval, each model's largest gradient norm (`ebm_grad_norm`, `flow_grad_norm`,
  from the steps' metrics) and, when `optim.*_clip_norm` is on, how many of its updates that
  bound clipped (`ebm_clipped`, `flow_clipped`). A single logged step would miss the rare huge
  gradient that clipping is for."""

  def __init__(self, optim_config):
    self.bounds = {'ebm': optim_config.ebm_clip_norm, 'flow': optim_config.flow_clip_norm}
    self._interval = {}

  def record(self, metrics):
    for model, bound in self.bounds.items():
      norm = metrics.get(f'{model}_grad_norm')
      if norm is not None:
        largest, clipped = self._interval.get(model, (0., 0))
        self._interval[model] = max(largest, norm), clipped + int(bool(bound) and norm > bound)

  def summary(self):
    """The interval's scalars; starts the next interval."""
    out = {}
    for model, (largest, clipped) in self._interval.items():
      out[f'{model}_grad_norm'] = largest
      if self.bounds[model]:
        out[f'{model}_clipped'] = clipped
    self._interval = {}
    return out


def stop_if_not_finite(metrics, phase, step, checkpoint_dir):
  """Raises DivergedError, with what to change, when a metric of update `phase` at step
  `step` + 1 is NaN or Inf; nothing of that step has been saved."""
  bad = [k for k, v in metrics.items() if not np.isfinite(v)]
  if not bad:
    return
  hint = ('Lower the learning rates (--set optim.ebm_lr=... optim.flow_lr=...) and re-run.'
          if phase != 'mle' else 'Lower the MLE phase\'s learning rate (--set '
          'optim.flow_mle_lr=...) and re-run.')
  if 'accuracy_noise' in bad and 'accuracy_data' not in bad:
    hint = ('The flow produced a non-finite sample (its forward pass overflowed; affine '
            'couplings can, additive ones rarely do): re-run with a lower flow learning '
            'rate or --set model.flow.coupling=additive in a new workdir.')
  raise DivergedError(
      f'{", ".join(bad)} became {metrics[bad[0]]} at step {step + 1} ({phase} update). Stopped '
      f'before saving: the last good checkpoint in {checkpoint_dir} is intact. '
      + hint + ' If it diverges again right after resuming, resume from an earlier '
      'checkpoint: --rollback=1.')


class FlowCollapse:
  """Warns once when the flow's NLL on the data per dimension has risen more than
  fce.flow_nll_warn above its value when FCE began (and once when it is back)."""

  def __init__(self, config, flow_nll_start):
    self.margin, self.start = config.fce.flow_nll_warn, flow_nll_start
    self.dims = int(np.prod(config.data.shape))
    self.warned = False

  def __call__(self, flow_nll, step):
    start = float(self.start.numpy())
    if flow_nll is None or not self.margin:
      return
    rise = (flow_nll - start) / self.dims
    if rise > self.margin and not self.warned:
      logging.warning(
          'step %d: the flow is collapsing: its NLL on data is %.4g nats, %.3g per dimension '
          'above the %.4g it had when FCE began (fce.flow_nll_warn=%g). Its samples no longer '
          'cover the data, so the EBM learns little where they are missing. Try '
          '--set fce.flow_mle_weight=... or a lower optim.flow_lr (docs/bench2d).',
          step, flow_nll, rise, start, self.margin)
      self.warned = True
    elif rise <= self.margin and self.warned:
      logging.info('step %d: the flow NLL on data is back within fce.flow_nll_warn of its '
                   'start (%.4g nats).', step, flow_nll)
      self.warned = False


def check_support_coverage(flow, ebm, num_samples, config):
  """Warns when few of the flow's samples lie in the EBM's support (model.ebm.support=cube).

  Samples outside it are 'noise' to the EBM for certain, so they give V no gradient; if most
  are outside, V's data side alone pushes c down without bound (NCE whose noise seldom lands
  in the model's support). An MLE Glow on digits puts most of its samples outside [-0.5, 0.5]^D
  (docs/image_fce); a Glow with model.flow.support=cube puts none. One batch of samples, from a
  fixed generator: the run's random stream is not touched.
  """
  if ebm.support is None:
    return
  low, high = ebm.support
  z = flow.sample_latent(num_samples, generator=tf.random.Generator.from_seed(0))
  inside = float(tf.reduce_mean(tf.cast(ebm.in_support(flow.generate(z)[0]), tf.float32)))
  logging.info('%.0f%% of the flow\'s samples lie in the EBM\'s support [%g, %g]^D.',
               100 * inside, low, high)
  if inside < 0.5:
    logging.warning(
        'Only %.0f%% of the flow\'s samples lie in the EBM\'s support [%g, %g]^D '
        '(model.ebm.support=%s): V gets no gradient from the others, and c will drift '
        'down without bound. Re-run in a new workdir with a Glow that stays in the cube '
        '(--set model.flow.support=cube, from an mle run with it too) or with --set '
        'model.ebm.support=none (docs/image_fce).', 100 * inside, low, high,
        config.model.ebm.support)
