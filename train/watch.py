"""What the trainer watches in a run's health, and what it says when something goes wrong: each
model's gradient norms, metrics that are not finite or out of every sane range (`Health`, with
the learning rate to change), the flow's collapse during FCE, and how many of the flow's
samples the EBM's support holds."""

import os

from absl import logging
import numpy as np
import tensorflow as tf

from train import checkpoints as ckpt_lib
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


def learning_rate_flag(spec, phase, optim):
  """(the config key of the learning rate update `phase` of mode `spec` steps with, its value):
  the MLE phase's and --mode=mle's is optim.flow_mle_lr, FCE's flow update optim.flow_lr, every
  EBM update optim.ebm_lr."""
  name = 'flow_mle' if phase == 'mle' else next(
      o for o in spec.optimizers if o == phase or spec.model_of(o) == phase)
  return f'optim.{name}_lr', float(getattr(optim, f'{name}_lr'))


def kept_text(checkpoint_dir):
  """What a stopped run can resume from, as a sentence: the newest kept checkpoint, or none."""
  paths = ckpt_lib.kept(checkpoint_dir)
  if not paths:
    return (f'No checkpoint had been saved yet in {checkpoint_dir}: re-running starts the run '
            'afresh.')
  text = f'The last good checkpoint, {os.path.basename(paths[0])} in {checkpoint_dir}, is intact.'
  if len(paths) > 1:
    text += (' If the resumed run diverges again at once, resume from an earlier one: '
             '--rollback=1.')
  return text


def _lower(key, value):
  return f'Lower {key} (now {value:g}): re-run with --set {key}={value / 10:g}.'


# Out of every sane range, though finite. A healthy run of any mode meets none of these bounds,
# and a run is stopped only after DIVERGED_AFTER consecutive updates beyond one of them:
# - V (FCE eq. 12), NCE's J and the auxiliary NCE's value are means of log-probabilities of a
#   binary classifier whose logit is a log-density ratio r = log p - log q: they are <= 0, and
#   -log 4 at the equilibrium, where the run starts (c is set level with the noise,
#   `TrainState.init_log_normalizer`). Below -B the classifier is wrong by more than B nats on
#   average. B = 1e3 + 10 D nats: a density of data scaled to [-0.5, 0.5]^D with 256 levels a
#   dimension has log q between about -5 D and +5.5 D (D log 256), so two sane models never
#   differ by 10 D nats on a whole batch; 1e3 keeps the bound far off in 2D too, where healthy
#   runs give V > -3 (and 8gaussians with optim.ebm_lr=10, V ~ -1e10 from its first updates).
# - The same bound holds NT-EBM's mean correction f (a tilt of the flow by e^f) and ssl's
#   label cross-entropy and VAT KL (cross-entropies of classifiers whose logits are such r).
# - Gradient norms and the flow's NLL grow more than GROWTH times their early magnitude (median of
#   the first EARLY updates of each phase, at least 1): healthy runs move them by a few orders of
#   magnitude at most.
DIVERGED_AFTER = 20
GROWTH, EARLY = 1e6, 10
_BELOW = ('value', 'aux_value')
_ABOVE = ('f_data', 'f_samples', 'label_loss', 'vat_loss')
_GROWING = ('ebm_grad_norm', 'flow_grad_norm', 'nll', 'bpd', 'flow_nll')


class Health:
  """Stops a run whose update metrics are NaN or Inf (at once) or out of every sane range for
  DIVERGED_AFTER consecutive updates (see the bounds above), with one line naming the learning
  rate of the update that went wrong and what is kept. Nothing of a bad update is saved:
  `suspect` holds while the latest update's metrics are out of range (the trainer saves no
  checkpoint then), and the checkpoint of the step a divergence began at, if any, is set
  aside in WORKDIR/diverged/ (never deleted) when the run is stopped."""

  def __init__(self, config, spec, folder, checkpoint_dir):
    self.optim, self.spec, self.folder = config.optim, spec, folder
    self.checkpoint_dir = checkpoint_dir
    self.bound = 1e3 + 10 * float(np.prod(config.data.shape))
    self.early = {}  # (phase, metric) -> the first EARLY magnitudes
    self.streak, self.first, self.first_phase, self.problem = 0, None, None, ''
    self.flagged = 0  # updates out of range in this process, stopped or not

  @property
  def suspect(self):
    return self.streak > 0

  def __call__(self, metrics, phase, step):
    """Takes the metrics of update `phase` made at step `step` + 1 (computed on the state after
    `step` updates); raises DivergedError if the run is to stop."""
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
      self._stop_not_finite(bad, metrics, phase, step)
    self.problem = self.out_of_range(metrics, phase)
    if not self.problem:
      self.streak = 0
      return
    if not self.streak:
      self.first, self.first_phase = step, phase
    self.streak += 1
    self.flagged += 1
    if self.streak >= DIVERGED_AFTER:
      self.stop()

  def out_of_range(self, metrics, phase):
    """The first metric beyond its bound, as words ('' if none)."""
    for k in _BELOW:
      if k in metrics and metrics[k] < -self.bound:
        return f'{k} below -{self.bound:.4g} (now {metrics[k]:.4g})'
    for k in _ABOVE:
      if k in metrics and abs(metrics[k]) > self.bound:
        return f'|{k}| above {self.bound:.4g} (now {metrics[k]:.4g})'
    for k in _GROWING:
      if k not in metrics:
        continue
      early = self.early.setdefault((phase, k), [])
      if len(early) < EARLY:
        early.append(abs(metrics[k]))
      elif abs(metrics[k]) > GROWTH * max(float(np.median(early)), 1.):
        return (f'{k} above {GROWTH:g} times its early {np.median(early):.4g} (now '
                f'{metrics[k]:.4g})')
    return ''

  def stop(self):
    """Stops a run whose metrics have been out of range since update `self.first` + 1."""
    key, value = learning_rate_flag(self.spec, self.first_phase, self.optim)
    set_aside = self._set_aside_diverged()
    raise DivergedError(
        f'The run diverged: {self.problem} for {self.streak} consecutive updates, since the '
        f'{self.first_phase} update of step {self.first + 1}; most likely {key}={value:g} is too '
        f'high. Stopped before saving the diverged state{set_aside}. '
        f'{kept_text(self.checkpoint_dir)} {_lower(key, value)}')

  def _set_aside_diverged(self):
    """Moves the checkpoints of steps >= `first` (their state gave the bad metrics) to
    WORKDIR/diverged/; says so."""
    if not self.folder.is_chief:
      return ''
    kept = ckpt_lib.kept(self.checkpoint_dir)
    paths = [p for p in kept if int(p.rsplit('-', 1)[-1]) >= self.first]
    if not paths:
      return ''
    state = ckpt_lib.read_state(self.checkpoint_dir)
    ckpt_lib.set_aside(self.folder.workdir, paths, 'diverged')
    ckpt_lib.sync_state(self.checkpoint_dir, [p for p in kept if p not in paths], state)
    names = ', '.join(os.path.basename(p) for p in paths)
    return f' ({names}, saved as it began, set aside in {self.folder.path("diverged")})'

  def _stop_not_finite(self, bad, metrics, phase, step):
    """Stops at once on NaN or Inf (setting aside a checkpoint saved as an excursion began)."""
    set_aside = self._set_aside_diverged() if self.streak else ''
    key, value = learning_rate_flag(self.spec, phase, self.optim)
    hint = _lower(key, value)
    if 'accuracy_noise' in bad and 'accuracy_data' not in bad:
      hint = ('The flow produced a non-finite sample (its forward pass overflowed; affine '
              'couplings can, additive ones rarely do): re-run with a lower flow learning '
              'rate or --set model.flow.coupling=additive in a new workdir.')
    raise DivergedError(
        f'{", ".join(bad)} became {metrics[bad[0]]} at step {step + 1} ({phase} update). '
        f'Stopped before saving{set_aside}. {kept_text(self.checkpoint_dir)} {hint}')


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
