"""Builds the flow and the EBM a config describes.

The config is trusted: configs/checks.py has refused values that make no sense (unknown names,
an EBM field for another architecture, a cube support on vectors), and configs.with_defaults
gives an old saved config every field.
"""

from models import ebm as ebm_lib
from models import glow

# model.ebm.first_bias: the share of the mlp's first-layer units whose kink the trainer moves
# onto a data point of the first batch (models/ebm.place_kinks_on_data).
FIRST_BIAS_SHARE = {'zeros': 0., 'half': 0.5, 'data': 1.}

# model.ebm.support and model.flow.support: none, or the cube of dequantized image data
# (losses.flow.dequantize).
SUPPORTS = {'none': None, 'cube': (-0.5, 0.5)}


def build_flow(flow_config, data_shape):
  """q_alpha for data of `data_shape`: VectorGlow for (D,), multi-scale ImageGlow for (H, W, C)."""
  data_shape = tuple(int(d) for d in data_shape)
  f = flow_config
  if len(data_shape) == 1:
    bijector = glow.VectorGlow(data_shape[0], f.steps_per_level, f.width, f.coupling,
                               seed=f.seed, scale_floor=f.scale_floor)
  else:
    bijector = glow.ImageGlow(data_shape, f.levels, f.steps_per_level, f.width, f.coupling,
                              seed=f.seed, scale_floor=f.scale_floor,
                              support=SUPPORTS[f.support])
  return glow.Flow(bijector, data_shape)


def build_ebm(ebm_config, data_shape, num_classes=0, flow_config=None):
  """p_theta for data of `data_shape`; class-conditional with `num_classes` heads if asked.

  With ebm_config.base = 'flow', f_theta adds log q of a frozen flow built from `flow_config`
  (`models.ebm.EnergyModel`); the trainer copies the trained flow into it when FCE begins.
  """
  if ebm_config.base == 'flow' and flow_config is None:
    raise ValueError("model.ebm.base='flow' needs the flow's config to build the base.")
  classes = num_classes if ebm_config.conditional else 0
  network = build_network(ebm_config, data_shape, outputs=classes or 1)
  base_flow = build_flow(flow_config, data_shape) if ebm_config.base == 'flow' else None
  return ebm_lib.EnergyModel(network, num_classes=classes or None, base=base_flow,
                             support=SUPPORTS[ebm_config.support])


def build_network(ebm_config, data_shape, outputs=1):
  """The energy network model.ebm describes (arch, activation, width), without c or a base."""
  kwargs = {}
  if ebm_config.arch == 'mlp':
    kwargs['width'] = ebm_config.width
  if ebm_config.arch in ('mlp', 'conv'):
    kwargs['activation'] = ebm_config.activation
  return ebm_lib.build_network(ebm_config.arch, data_shape, outputs=outputs, **kwargs)
