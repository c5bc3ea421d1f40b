"""2D densities (FCE Sec. 4.1): Glow L=1, K=10, W=128, affine, fc; EBM fc x3 (Tables 5, 7).

The FCE settings below depart from the paper's on measured grounds: each is a record of
configs/departures.py, with its reason and the flags that revert it; `--config=toy2d_paper`
reverts them all.
"""

from configs import base


def get_config():
  config = base.get_base_config()
  config.data.name = '8gaussians'
  config.data.shape = (2,)
  config.model.flow.update(levels=1, steps_per_level=10, width=128, coupling='affine')
  config.model.ebm.arch = 'mlp'
  config.train.batch_size = 1000
  config.train.steps = 5000
  config.eval.every = 1000
  config.train.log_every = 500
  # The paper's rule starves the EBM on 2D data: the flow hands back after each update.
  config.fce.schedule.max_flow_updates = 1
  # A flow trained on V alone loses modes and overflows: an MLE term keeps it a density model,
  # MLE's optimiser (clipped) keeps it up with the EBM, a scale floor bounds its expansion.
  config.fce.flow_mle_weight = 1.
  config.optim.update(flow_optimizer='adam', flow_lr=1e-3, flow_clip_norm=10.)
  config.model.flow.scale_floor = 0.01
  # NCE against a broad Gaussian holds f down where neither data nor flow samples go.
  config.fce.ebm_aux_nce_weight = 1.
  # Half the first-layer kinks on data points: round small modes, at little cost on spirals.
  config.model.ebm.first_bias = 'half'
  config.optim.ebm_lr_anneal = 0.3  # the anneal removes the noise of the EBM's last iterates
  config.model.ebm.width = 256  # a lower EBM error for a few percent more time
  config.optim.ebm_clip_norm = 100.  # for far outliers of a heavy-tailed flow only
  # Warn earlier than the base: an MLE flow that left its optimum stays under 1 nat per
  # dimension while the EBM already stalls on its outlying samples (docs/bench2d).
  config.fce.flow_nll_warn = 0.5
  # 2D log-densities are O(1), so c = 0 is a fine start.
  config.train.init_log_normalizer = False
  return config


def for_mode(config, mode):
  # 2D semi-supervised FCE (Figure 5): VAT on p(y | x) carries the few labels along each arm;
  # perturbations of 0.3, a third of the gap between the spirals' arms.
  if mode == 'ssl':
    config.ssl.update(vat_weight=10., vat_epsilon=0.3)
