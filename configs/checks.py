"""Config values that make no sense, refused before a run writes anything (one message)."""

import math

# (field, test, what it must be). Fields a config lacks are skipped.
_POSITIVE_INT = (lambda v: v >= 1, 'an integer >= 1')
_NON_NEGATIVE = (lambda v: v >= 0, '>= 0')
_POSITIVE = (lambda v: v > 0, '> 0')
_BETA = (lambda v: 0 <= v < 1, 'in [0, 1)')
_FRACTION = (lambda v: 0 <= v < 1, 'in [0, 1)')
RULES = {
    'train.steps': _POSITIVE_INT,
    'train.batch_size': _POSITIVE_INT,
    'train.log_every': _POSITIVE_INT,
    'train.checkpoint_every': _POSITIVE_INT,
    'train.keep_checkpoints': (lambda v: v >= 2, 'an integer >= 2 (one to fall back to)'),
    'train.eval_every': _POSITIVE_INT,
    'train.snapshot_every': _NON_NEGATIVE,
    'train.ebm_updates': _NON_NEGATIVE,
    'train.mle_pretrain_steps': _NON_NEGATIVE,
    'train.fce_init_steps': _NON_NEGATIVE,
    'train.eval_examples': _NON_NEGATIVE,
    'train.fid_samples': _NON_NEGATIVE,
    'train.eval_is_samples': _NON_NEGATIVE,
    'train.flow_mle_weight': _NON_NEGATIVE,
    'train.ebm_f_penalty': _NON_NEGATIVE,
    'train.ebm_aux_nce_weight': _NON_NEGATIVE,
    'train.nce_noise_std': _POSITIVE,
    'train.nce_nu': _POSITIVE_INT,
    'train.ssl_labels_per_class': _NON_NEGATIVE,
    'train.ssl_labeled_batch_size': _NON_NEGATIVE,
    'train.vat_weight': _NON_NEGATIVE,
    'train.vat_epsilon': _POSITIVE,
    'train.hmc_steps': _POSITIVE_INT,
    'train.hmc_leapfrog_steps': _POSITIVE_INT,
    'train.hmc_step_size': _POSITIVE,
    'train.hmc_target_accept': _FRACTION,
    'train.schedule.window': _POSITIVE_INT,
    'train.schedule.max_flow_updates': _NON_NEGATIVE,
    'train.schedule.max_ebm_updates': _NON_NEGATIVE,
    'train.schedule.hysteresis': _NON_NEGATIVE,
    'train.schedule.threshold': (lambda v: 0 < v < 1, 'in (0, 1)'),
    'train.schedule.value_threshold': (lambda v: v < 0, 'below 0: V is a log-likelihood'),
    'optim.ebm_lr': _POSITIVE,
    'optim.flow_lr': _POSITIVE,
    'optim.flow_mle_lr': _POSITIVE,
    'optim.ebm_beta1': _BETA,
    'optim.flow_beta1': _BETA,
    'optim.ebm_clip_norm': _NON_NEGATIVE,
    'optim.flow_clip_norm': _NON_NEGATIVE,
    'optim.ebm_lr_anneal': (lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'data.test_fraction': _FRACTION,
    'model.flow.levels': _POSITIVE_INT,
    'model.flow.steps_per_level': _POSITIVE_INT,
    'model.flow.width': _POSITIVE_INT,
    'model.ebm.width': _POSITIVE_INT,
    'model.flow.scale_floor': _FRACTION,
}


def _lookup(config, key):
  node = config
  for part in key.split('.'):
    if part not in node:
      return None
    node = node[part]
  return node


def problems(config):
  """The fields of `config` whose values make no sense, as 'field=value (must be ...)'."""
  out = []
  for key, (ok, must) in RULES.items():
    value = _lookup(config, key)
    if value is None or isinstance(value, bool):
      continue
    number = isinstance(value, (int, float)) and math.isfinite(value)
    if not number or not ok(value):
      out.append(f'{key}={value!r} (must be {must})')
  return out


def _combinations(config):
  """Values that make sense alone but not together."""
  out = []
  if (_lookup(config, 'train.ebm_aux_noise') not in (None, 'gaussian', 'base')):
    out.append(f"train.ebm_aux_noise={config.train.ebm_aux_noise!r} (must be 'gaussian' or "
               "'base')")
  elif (_lookup(config, 'train.ebm_aux_noise') == 'base'
        and _lookup(config, 'model.ebm.base') != 'flow'):
    out.append("train.ebm_aux_noise='base' (needs model.ebm.base='flow', the base it samples)")
  if _lookup(config, 'train.schedule.metric') not in (None, 'accuracy', 'value'):
    out.append(f"train.schedule.metric={config.train.schedule.metric!r} (must be 'accuracy' or "
               "'value')")
  if _lookup(config, 'model.flow.support') not in (None, 'none', 'cube'):
    out.append(f"model.flow.support={config.model.flow.support!r} (must be 'none' or 'cube')")
  elif (_lookup(config, 'model.flow.support') == 'cube'
        and len(_lookup(config, 'data.shape') or ()) != 3):
    out.append("model.flow.support='cube' on vector data (it is for images (H, W, C))")
  if _lookup(config, 'model.ebm.support') not in (None, 'none', 'cube'):
    out.append(f"model.ebm.support={config.model.ebm.support!r} (must be 'none' or 'cube')")
  elif _lookup(config, 'model.ebm.support') == 'cube' and _lookup(config, 'train.ebm_f_penalty'):
    out.append("model.ebm.support='cube' with train.ebm_f_penalty > 0 (f is -inf outside the "
               "cube, where the penalty would be infinite)")
  return out


def check(config):
  """Raises ValueError naming every value of `config` that makes no sense."""
  found = problems(config) + _combinations(config)
  if found:
    raise ValueError('Config values that make no sense: ' + '; '.join(found) + '.')
