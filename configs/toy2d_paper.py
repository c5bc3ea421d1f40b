"""The 2D setting as FCE Sec. 4 states it, kept by name (`--config=toy2d_paper`): the toy2d
models (openai/glow's coupling scale, no floor) and batch with the paper's optimisers and the
literal alternation rule (flow Adamax 1e-5, EBM until the accuracy is above 0.5, then the flow
until it is not, no caps, no clipping, no MLE term, no auxiliary NCE term, a constant EBM
learning rate, the EBM's first-layer biases at Keras' zeros, and its fc128 x3 of Table 5).
docs/schedule_2d.md and docs/bench2d measure where it loses to the toy2d defaults.
"""

from configs import base
from configs import toy2d


def get_config():
  config = toy2d.get_config()
  paper = base.get_base_config()
  config.optim = paper.optim
  config.train.schedule = paper.train.schedule
  config.model.flow.scale_floor = paper.model.flow.scale_floor
  config.model.ebm.first_bias = paper.model.ebm.first_bias
  config.model.ebm.width = paper.model.ebm.width
  for field in ('flow_mle_weight', 'ebm_f_penalty', 'fce_init_steps', 'ebm_aux_nce_weight'):
    config.train[field] = paper.train[field]
  return config
