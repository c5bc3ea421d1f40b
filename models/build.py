"""Builds the flow and the EBM a config describes."""

from models import ebm as ebm_lib
from models import glow

# model.ebm.first_bias: the share of the mlp's first-layer units whose kink the trainer moves
# onto a data point of the first batch (models/ebm.place_kinks_on_data).
FIRST_BIAS_SHARE = {'zeros': 0., 'half': 0.5, 'data': 1.}


def build_flow(flow_config, data_shape):
  """q_alpha for data of `data_shape`: VectorGlow for (D,), multi-scale ImageGlow for (H, W, C)."""
  data_shape = tuple(int(d) for d in data_shape)
  f = flow_config
  if len(data_shape) == 1:
    if support_range(f.get('support', 'none')) is not None:
      raise ValueError("model.flow.support='cube' is for images (H, W, C); vectors have no "
                       'fixed range. Use model.flow.support=none.')
    bijector = glow.VectorGlow(data_shape[0], f.steps_per_level, f.width, f.coupling,
                               seed=f.seed, scale_floor=f.scale_floor)
  elif len(data_shape) == 3:
    bijector = glow.ImageGlow(data_shape, f.levels, f.steps_per_level, f.width, f.coupling,
                              seed=f.seed, scale_floor=f.scale_floor,
                              support=support_range(f.get('support', 'none')))
  else:
    raise ValueError(f'Data must be vectors (D,) or images (H, W, C); got shape {data_shape}.')
  return glow.Flow(bijector, data_shape)


def build_ebm(ebm_config, data_shape, num_classes=0, flow_config=None):
  """p_theta for data of `data_shape`; class-conditional with `num_classes` heads if asked.

  With ebm_config.base = 'flow', f_theta adds log q of a frozen flow built from `flow_config`
  (`models.ebm.EnergyModel`); the trainer copies the trained flow into it when FCE begins.
  """
  classes = num_classes if ebm_config.conditional else 0
  if ebm_config.conditional and num_classes < 2:
    raise ValueError('A class-conditional EBM needs data.num_classes >= 2.')
  base = ebm_config.get('base', 'none')
  if base not in ('none', 'flow'):
    raise ValueError(f"model.ebm.base must be 'none' or 'flow'; got {base!r}.")
  if base == 'flow' and flow_config is None:
    raise ValueError("model.ebm.base='flow' needs the flow's config to build the base.")
  support = support_range(ebm_config.get('support', 'none'), 'model.ebm.support')
  first_bias = ebm_config.get('first_bias', 'zeros')
  if first_bias not in FIRST_BIAS_SHARE:
    raise ValueError("model.ebm.first_bias must be 'zeros', 'half' or 'data'; got "
                     f'{first_bias!r}.')
  if first_bias != 'zeros' and ebm_config.arch != 'mlp':
    raise ValueError(f"model.ebm.first_bias='{first_bias}' is for the mlp EBM; use "
                     'model.ebm.first_bias=zeros.')
  network = build_network(ebm_config, data_shape, outputs=classes or 1)
  base_flow = build_flow(flow_config, data_shape) if base == 'flow' else None
  return ebm_lib.EnergyModel(network, num_classes=classes or None, base=base_flow,
                             support=support)


def build_network(ebm_config, data_shape, outputs=1):
  """The energy network model.ebm describes (arch, activation, width), without c or a base."""
  kwargs = {}
  width = ebm_config.get('width', ebm_lib.MLP_WIDTH)
  if ebm_config.arch == 'mlp':
    kwargs['width'] = width
  elif width != ebm_lib.MLP_WIDTH:
    raise ValueError(f'model.ebm.width is for the mlp EBM; {ebm_config.arch!r} has its own '
                     f'widths. Use model.ebm.width={ebm_lib.MLP_WIDTH}.')
  activation = ebm_config.get('activation', 'lrelu')
  if activation != 'lrelu':
    if ebm_config.arch not in ('mlp', 'conv'):
      raise ValueError(f'model.ebm.activation is for the mlp and conv EBMs; {ebm_config.arch!r} '
                       "has its own. Use model.ebm.activation=lrelu.")
    kwargs['activation'] = activation
  return ebm_lib.build_network(ebm_config.arch, data_shape, outputs=outputs, **kwargs)


# model.ebm.support and model.flow.support: none, or the cube of dequantized image data
# (losses.flow.dequantize).
SUPPORTS = {'none': None, 'cube': (-0.5, 0.5)}


def support_range(name, field='model.flow.support'):
  """(low, high) of a support's name, or None for 'none'."""
  if name not in SUPPORTS:
    raise ValueError(f"{field} must be one of {', '.join(SUPPORTS)}; got {name!r}.")
  return SUPPORTS[name]
