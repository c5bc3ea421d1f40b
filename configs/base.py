"""Defaults shared by every config; each dataset's module overrides what differs."""

import math

import ml_collections


def get_base_config():
  config = ml_collections.ConfigDict()

  config.data = data = ml_collections.ConfigDict()
  data.name = ''            # dataset name (see data/); set by each config
  data.shape = (2,)         # one example's shape: (D,) for vectors, (H, W, C) for images
  data.num_bins = 0         # quantization levels of discrete data (256 for 8-bit); 0 = continuous
  data.num_classes = 0      # classes, for ssl / feature probes; 0 = unlabeled
  data.data_dir = ''        # TFDS data_dir ('' = TFDS's default, ~/tensorflow_datasets)
  data.test_fraction = 0.   # user sources without a test split: hold out this share of the
                            # data (a seeded split, the same in every run; data/images.py)

  config.model = model = ml_collections.ConfigDict()
  model.flow = flow = ml_collections.ConfigDict()
  flow.levels = 1           # L: multi-scale levels (images); vectors use one
  flow.steps_per_level = 10  # K: flow steps per level (ActNorm, invertible linear, coupling)
  flow.width = 128          # W: hidden width of each coupling network
  flow.coupling = 'affine'  # 'additive' or 'affine' (sigmoid(h + 2) scale)
  flow.scale_floor = 0.     # affine: scale e + (1 - e) sigmoid(h + 2), so a sample expands by
                            # at most 1/e per coupling (0 = openai/glow's unbounded expansion)
  flow.seed = 0             # seed of the invertible-linear initial rotations
  flow.support = 'none'     # 'cube': samples in (-0.5, 0.5)^D, the range of dequantized images,
                            # through a last sigmoid (models/bijectors.CubeSquash); images only
  model.ebm = ebm = ml_collections.ConfigDict()
  ebm.arch = 'mlp'          # one of models.ebm.ARCHITECTURES
  ebm.activation = 'lrelu'  # mlp and conv: 'lrelu' (FCE Table 5), 'swish' or 'softplus'
  ebm.first_bias = 'zeros'  # mlp: 'data' puts each first-layer unit's kink through a point of
                            # the first batch (models/ebm.py), 'half' half of them; 'zeros':
                            # Keras' start, every kink through the origin
  ebm.width = 128           # mlp: units per hidden layer (FCE Table 5: fc128 x3)
  ebm.conditional = False   # one f_k and c_k per class (FCE eq. 16), for ssl
  ebm.base = 'none'         # 'flow': f = network + log q of a frozen copy of the flow that FCE
                            # starts from (models/ebm.py); 'none': the paper's f = network
  ebm.support = 'none'      # 'cube': p = 0 outside [-0.5, 0.5]^D, the range of dequantized
                            # images (models/ebm.py); 'none': all of R^D (the paper)

  config.optim = optim = ml_collections.ConfigDict()
  optim.ebm_lr = 3e-4       # Adam, FCE Sec. 4
  optim.ebm_beta1 = 0.5     # Adam beta1 of the EBM: short memory for a two-player game, a
                            # departure from FCE's Adam (0.9), not measured (configs/departures.py)
  optim.flow_lr = 1e-5      # Adamax, FCE Sec. 4
  optim.flow_optimizer = 'adamax'  # the flow's FCE optimiser: 'adamax' (paper), 'adam' or 'sgd'
  optim.flow_beta1 = 0.9    # Adam beta1 of the flow, with flow_optimizer='adam'
  optim.ebm_clip_norm = 0.  # clip the EBM's gradient to this global norm (0 = off)
  optim.ebm_lr_anneal = 0.  # the EBM's learning rate falls linearly to 0 over this last fraction
                            # of its updates (fce.ebm_updates, or train.steps; 0 = constant)
  optim.flow_clip_norm = 0.  # clip the flow's gradient (FCE and MLE) to this global norm (0 = off)
  optim.flow_mle_lr = 1e-3  # Adam for MLE pretraining (openai/glow's default)

  config.train = train = ml_collections.ConfigDict()
  train.batch_size = 64     # data examples per step (flow samples per step: the same)
  train.steps = 100000      # total updates (EBM + flow in fce)
  train.seed = 0            # data order, dequantization noise and latents
  train.log_every = 100     # steps between log lines and TensorBoard scalars
  train.checkpoint_every = 1000  # steps between checkpoints
  train.keep_checkpoints = 3  # the newest checkpoints kept: a damaged one falls back to the one
                              # before, and --rollback=N can go back N
  train.snapshot_every = 10000  # steps between kept snapshots for evaluation (0 = none)
  train.jit_compile = False  # XLA-compile each replica's step
  train.deterministic = False  # TF's op determinism: the same command and seed give the same
                               # run bit for bit (cost: docs/benchmarks)
  train.init_log_normalizer = True  # fce, nce, ssl: start c level with the noise's log q on
                                    # data (train/state.py)

  # Evaluation in the training loop (eval/image_eval.py); --mode=eval takes its own flags.
  config.eval = evaluation = ml_collections.ConfigDict()
  evaluation.every = 1000   # steps between evaluations: 2D densities, or on images a sample
                            # grid, held-out bits/dim and FID
  evaluation.examples = 10000  # images: held-out bits/dim on this many test-split images (a
                               # fixed, seeded subset; 0 = the whole split)
  evaluation.fid_samples = 5000  # images: flow samples for FID/KID at each evaluation (0 = no
                                 # FID; --mode=eval uses 50,000, the published convention)
  evaluation.is_samples = 1000  # images, nt (which learns no c): flow proposals of the
                                # importance-sampled log Z behind its bits/dim in the loop
  evaluation.fid_network = 'ttur'  # 'ttur' (the standard Inception graph) or 'keras' (not
                                   # comparable)
  evaluation.inception_graph = ''  # classify_image_graph_def.pb ('' = the cache; main.py's
                                   # --inception_graph sets it)

  # FCE (fce, and ssl, which is FCE with labels): the game, its phases and its guards.
  config.fce = fce = ml_collections.ConfigDict()
  fce.ebm_updates = 0       # stop after this many EBM updates (0 = train.steps decides)
  fce.mle_pretrain_steps = 0  # MLE updates of the flow (Adam, optim.flow_mle_lr) before FCE,
                              # in the same run (FCE Sec. 4.2 starts images from an MLE Glow);
                              # train.steps counts the FCE updates after them. 0 = FCE from a
                              # random flow (the 2D protocol); --init_flow skips it
  fce.init_steps = 0        # EBM-only updates against the frozen flow first (FCE-init)
  fce.flow_mle_weight = 0.  # add this x the flow's NLL per dim on data to its loss
  fce.ebm_f_penalty = 0.    # add this x mean f^2 (data and flow samples) to the EBM's loss
  fce.ebm_aux_nce_weight = 0.  # add this x NCE against ebm_aux_noise to the EBM's loss, so
                               # that f is also held down where neither data nor flow samples go
  fce.ebm_aux_noise = 'gaussian'  # 'gaussian': NCE's (data mean, nce.noise_std x data std);
                                  # 'base': the EBM's frozen base flow (model.ebm.base='flow')
  fce.flow_nll_warn = 1.    # warn when the flow's data NLL per dim rises this far above its
                            # value at the start (a collapsing flow)
  fce.flow_passes = 'auto'  # the flow step's gradient, the same update either way: 'two' (V's
                            # data side, then its sample side: one pass's activations at a
                            # time), 'one' (V at once), 'auto' (two where one pass's activations
                            # are estimated over 1 GiB; train/steps.flow_two_pass)
  fce.schedule = schedule = ml_collections.ConfigDict()
  schedule.metric = 'accuracy'  # what the rule reads: 'accuracy' (FCE Sec. 4) or 'value' (V)
  schedule.threshold = 0.5  # FCE Sec. 4: EBM until accuracy > threshold, then flow until below
  schedule.value_threshold = -math.log(4.)  # the same rule on V (metric='value')
  schedule.hysteresis = 0.  # switch at threshold +/- hysteresis, in the metric's units
  schedule.window = 1       # the metric averaged over this many recent updates
  schedule.max_flow_updates = 0  # hand back to the EBM after this many flow updates (0 = never)
  schedule.max_ebm_updates = 0  # hand over to the flow after this many EBM updates (0 = never)

  # NCE with a fixed noise (nce; fce's auxiliary NCE term uses the Gaussian's settings).
  config.nce = nce = ml_collections.ConfigDict()
  nce.noise = 'gaussian'    # 'gaussian' or 'flow' (a frozen flow, --init_flow)
  nce.noise_std = 1.5       # the Gaussian: data mean, this times the data std
  nce.nu = 1                # noise samples per data sample

  # Semi-supervised FCE (ssl, FCE Sec. 3.3).
  config.ssl = ssl = ml_collections.ConfigDict()
  ssl.labels_per_class = 0  # labeled examples per class (a fixed, seeded subset)
  ssl.labeled_batch_size = 0  # labeled examples per step (0 = train.batch_size)
  ssl.vat_weight = 0.       # weight of the VAT loss on unlabeled data (0 = off)
  ssl.vat_epsilon = 1.      # L2 norm of VAT's adversarial perturbation per example

  # NT-EBM (nt, nt_nce): the persistent latent HMC chains (NT-EBM A.4).
  config.nt = nt = ml_collections.ConfigDict()
  nt.hmc_steps = 20         # HMC steps of the latent chains per update
  nt.hmc_leapfrog_steps = 3  # leapfrog steps per HMC step
  nt.hmc_step_size = 0.15   # the initial step size, adapted towards hmc_target_accept
  nt.hmc_target_accept = 0.651  # the acceptance rate the step size adapts to (0 = fixed)

  config.lock()  # a field set under a name the config lacks raises, not adds a field
  return config


def get_image32_config(name, steps_per_level, num_classes, mle_pretrain_steps):
  """FCE's 32x32 RGB setting: Glow L=3, W=512, additive (Table 7); EBM 4x4 convs (Table 5).

  The papers do not say how long their Glows were pretrained; `mle_pretrain_steps` is ours,
  sized to the model (not measured here: a CPU cannot train these Glows).
  """
  config = get_base_config()
  config.data.name = name
  config.data.shape = (32, 32, 3)
  config.data.num_bins = 256
  config.data.num_classes = num_classes
  config.model.flow.update(levels=3, steps_per_level=steps_per_level, width=512,
                           coupling='additive')
  config.model.ebm.arch = 'conv'
  config.train.batch_size = 64
  config.fce.mle_pretrain_steps = mle_pretrain_steps
  # An evaluation costs as much as a few hundred steps (docs/benchmarks): keep it rare.
  config.eval.every = 5000
  return config


# The Glow of images that are mostly background at the bottom of the pixel range (digits,
# MNIST): a last sigmoid keeps its samples in the range (a departure: configs/departures.py).
EDGE_FLOW_SUPPORT = 'cube'


def fce_on_images(config, flow_lr):
  """FCE on real images as measured in docs/image_fce: the EBM a tilt of the flow, confined to
  the cube, fitted to the flow first (FCE-init), the turn handed on V; each field is a
  departure from the paper (configs/departures.py), reverted by the `<name>_paper` configs.

  Args:
    config: the ConfigDict to edit in place.
    flow_lr: the flow's FCE learning rate (photographs: a tenth of the paper's).
  """
  config.model.ebm.update(base='flow', support='cube')
  config.fce.init_steps = 500
  config.fce.schedule.update(max_flow_updates=1, metric='value', window=10)
  config.optim.flow_lr = flow_lr


def nt_ebm(config, mode, nt_lr, nce_lr):
  """NT-EBM's settings for nt and nt_nce on images (NT-EBM A.3-A.4): the LipSwish EBM of its
  Tables 4-5 (nf=32), Adam with beta1 0.99; nt at `nt_lr`, batch 64, 40k updates; nt_nce at
  `nce_lr`, batch 128, 80k updates. Other modes are left as they are."""
  if mode == 'nt':
    lr, batch_size, steps = nt_lr, 64, 40000
  elif mode == 'nt_nce':
    lr, batch_size, steps = nce_lr, 128, 80000
  else:
    return
  config.model.ebm.arch = 'lipswish'
  config.optim.update(ebm_beta1=0.99, ebm_lr=lr)
  config.train.update(batch_size=batch_size, steps=steps)


def image_for_mode(config, mode, nt_lr=None, nce_lr=None, photographs=True):
  """An image config's `for_mode`: `fce_on_images` for fce (the flow at 1e-6 on photographs,
  1e-5 on digits and MNIST), and NT-EBM's settings for nt and nt_nce if their learning rates are
  given."""
  if mode == 'fce':
    fce_on_images(config, flow_lr=1e-6 if photographs else 1e-5)
  if nt_lr is not None:
    nt_ebm(config, mode, nt_lr, nce_lr)
