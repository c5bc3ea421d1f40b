"""Config values that make no sense, refused before a run writes anything (one message)."""

import math

# (field, test, what it must be), in the order of base.py's sections. Fields a config lacks are
# skipped.
_POSITIVE_INT = (lambda v: v >= 1, 'an integer >= 1')
_NON_NEGATIVE = (lambda v: v >= 0, '>= 0')
_POSITIVE = (lambda v: v > 0, '> 0')
_BETA = (lambda v: 0 <= v < 1, 'in [0, 1)')
_FRACTION = (lambda v: 0 <= v < 1, 'in [0, 1)')
RULES = {
    'data.test_fraction': _FRACTION,
    'model.flow.levels': _POSITIVE_INT,
    'model.flow.steps_per_level': _POSITIVE_INT,
    'model.flow.width': _POSITIVE_INT,
    'model.ebm.width': _POSITIVE_INT,
    'model.flow.scale_floor': _FRACTION,
    'optim.ebm_lr': _POSITIVE,
    'optim.flow_lr': _POSITIVE,
    'optim.flow_mle_lr': _POSITIVE,
    'optim.ebm_beta1': _BETA,
    'optim.flow_beta1': _BETA,
    'optim.ebm_clip_norm': _NON_NEGATIVE,
    'optim.flow_clip_norm': _NON_NEGATIVE,
    'optim.ebm_lr_anneal': (lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'train.steps': _POSITIVE_INT,
    'train.batch_size': _POSITIVE_INT,
    'train.log_every': _POSITIVE_INT,
    'train.checkpoint_every': _POSITIVE_INT,
    'train.keep_checkpoints': (lambda v: v >= 2, 'an integer >= 2 (one to fall back to)'),
    'train.snapshot_every': _NON_NEGATIVE,
    'eval.every': _POSITIVE_INT,
    'eval.examples': _NON_NEGATIVE,
    'eval.fid_samples': _NON_NEGATIVE,
    'eval.is_samples': _NON_NEGATIVE,
    'fce.ebm_updates': _NON_NEGATIVE,
    'fce.mle_pretrain_steps': _NON_NEGATIVE,
    'fce.init_steps': _NON_NEGATIVE,
    'fce.flow_mle_weight': _NON_NEGATIVE,
    'fce.ebm_f_penalty': _NON_NEGATIVE,
    'fce.ebm_aux_nce_weight': _NON_NEGATIVE,
    'fce.schedule.window': _POSITIVE_INT,
    'fce.schedule.max_flow_updates': _NON_NEGATIVE,
    'fce.schedule.max_ebm_updates': _NON_NEGATIVE,
    'fce.schedule.hysteresis': _NON_NEGATIVE,
    'fce.schedule.threshold': (lambda v: 0 < v < 1, 'in (0, 1)'),
    'fce.schedule.value_threshold': (lambda v: v < 0, 'below 0: V is a log-likelihood'),
    'nce.noise_std': _POSITIVE,
    'nce.nu': _POSITIVE_INT,
    'ssl.labels_per_class': _NON_NEGATIVE,
    'ssl.labeled_batch_size': _NON_NEGATIVE,
    'ssl.vat_weight': _NON_NEGATIVE,
    'ssl.vat_epsilon': _POSITIVE,
    'nt.hmc_steps': _POSITIVE_INT,
    'nt.hmc_leapfrog_steps': _POSITIVE_INT,
    'nt.hmc_step_size': _POSITIVE,
    'nt.hmc_target_accept': _FRACTION,
}


def _lookup(config, key):
  node = config
  for part in key.split('.'):
    if part not in node:
      return None
    node = node[part]
  return node


def choices():
  """The fields that take one of a few names, each with the names its implementation knows."""
  # pylint: disable=g-import-not-at-top
  from models import build  # the implementations import TensorFlow: only when checking
  from models import ebm
  from train import schedule
  from train import steps
  return {
      'model.ebm.arch': ebm.ARCHITECTURES,
      'model.ebm.activation': tuple(ebm.ACTIVATIONS),
      'model.ebm.first_bias': tuple(build.FIRST_BIAS_SHARE),
      'model.ebm.base': ('none', 'flow'),
      'model.ebm.support': tuple(build.SUPPORTS),
      'model.flow.support': tuple(build.SUPPORTS),
      'model.flow.coupling': ('additive', 'affine'),
      'optim.flow_optimizer': steps.FLOW_OPTIMIZERS,
      'nce.noise': ('gaussian', 'flow'),
      'fce.ebm_aux_noise': ('gaussian', 'base'),
      'fce.flow_passes': steps.FLOW_PASSES,
      'fce.schedule.metric': schedule.METRICS,
  }


def _one_of(names):
  quoted = [repr(n) for n in names]
  return ' or '.join(quoted) if len(quoted) == 2 else 'one of ' + ', '.join(quoted)


def problems(config):
  """The fields of `config` whose values make no sense, alone or together, as
  'field=value (must be ...)'."""
  out = []
  for key, (ok, must) in RULES.items():
    value = _lookup(config, key)
    if value is None or isinstance(value, bool):
      continue
    number = isinstance(value, (int, float)) and math.isfinite(value)
    if not number or not ok(value):
      out.append(f'{key}={value!r} (must be {must})')
  valid = set()  # the named fields whose names are valid, which the combinations below read
  for key, names in choices().items():
    value = _lookup(config, key)
    if value is None or value in names:
      valid.add(key)
    else:
      out.append(f'{key}={value!r} (must be {_one_of(names)})')
  return out + _combinations(config, valid)


def _combinations(config, valid):
  """Values that make sense alone but not together (of the named fields, only valid ones)."""
  from models import ebm  # pylint: disable=g-import-not-at-top
  get = lambda key: _lookup(config, key)
  shape = tuple(get('data.shape') or ())
  out = []
  if len(shape) not in (1, 3):
    out.append(f'data.shape={shape} (must be vectors (D,) or images (H, W, C))')
  if 'fce.ebm_aux_noise' in valid and get('fce.ebm_aux_noise') == 'base' and (
      get('model.ebm.base') != 'flow'):
    out.append("fce.ebm_aux_noise='base' (needs model.ebm.base='flow', the base it samples)")
  if 'model.flow.support' in valid and get('model.flow.support') == 'cube' and len(shape) != 3:
    out.append("model.flow.support='cube' on vector data (it is for images (H, W, C))")
  if 'model.ebm.support' in valid and get('model.ebm.support') == 'cube' and (
      get('fce.ebm_f_penalty')):
    out.append("model.ebm.support='cube' with fce.ebm_f_penalty > 0 (f is -inf outside the "
               "cube, where the penalty would be infinite)")
  if get('model.ebm.conditional') and (get('data.num_classes') or 0) < 2:
    out.append('model.ebm.conditional=True (needs labeled data, data.num_classes >= 2)')
  arch = get('model.ebm.arch')
  if 'model.ebm.arch' not in valid or arch is None:
    return out  # the other EBM fields depend on a valid architecture
  if arch == 'mlp' and len(shape) == 3:
    out.append("model.ebm.arch='mlp' on image data (it takes vectors (D,))")
  elif arch != 'mlp' and len(shape) == 1:
    out.append(f'model.ebm.arch={arch!r} on vector data (it takes images (H, W, C))')
  first_bias = get('model.ebm.first_bias')
  if 'model.ebm.first_bias' in valid and first_bias not in (None, 'zeros') and arch != 'mlp':
    out.append(f'model.ebm.first_bias={first_bias!r} is for the mlp EBM (use '
               'model.ebm.first_bias=zeros)')
  width = get('model.ebm.width')
  if width not in (None, ebm.MLP_WIDTH) and arch != 'mlp':
    out.append(f'model.ebm.width={width} is for the mlp EBM; {arch!r} has its own widths (use '
               f'model.ebm.width={ebm.MLP_WIDTH})')
  activation = get('model.ebm.activation')
  if ('model.ebm.activation' in valid and activation not in (None, 'lrelu')
      and arch not in ('mlp', 'conv')):
    out.append(f'model.ebm.activation={activation!r} is for the mlp and conv EBMs; {arch!r} has '
               'its own (use model.ebm.activation=lrelu)')
  return out


def check(config):
  """Raises ValueError naming every value of `config` that makes no sense, in one line.

  The one place config values are validated: models/, train/ and eval/ trust the config they
  are given (configs.with_defaults fills the fields an old saved config lacks).
  """
  found = problems(config)
  if found:
    raise ValueError('Config values that make no sense: ' + '; '.join(found) + '.')
