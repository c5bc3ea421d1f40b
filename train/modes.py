"""One record per training mode: what it trains, how, against which noise, and what it reports.

Everything that depends on the mode reads this table: the trainer (optimisers, steps, the order
of updates, checkpoint contents), main.py (the flag's choices and help), evaluation (what a run
reports: `Reports`) and the experiments. A new mode is one more record here plus its step
function (`make_steps`, from the makers of `train/steps.py`).

  mode  trains                   noise                        alternates  EBM
  mle   the flow (Adam, MLE)     -                            no          -
  nce   the EBM (Adam)           Gaussian, or a frozen flow   no          unconditional
  fce   EBM (Adam), flow (V)     the flow being trained       yes         unconditional
  ssl   EBM (Adam), flow (V)     the flow being trained       yes         class-conditional
  nt    the correction f (Adam)  - (HMC samples of the model) no          f tilts a frozen flow
  nt_nce  the correction f       the frozen flow              no          f tilts a frozen flow

fce and ssl first train the flow by MLE for fce.mle_pretrain_steps (the image configs' default;
0 on 2D data), unless --init_flow gives them a trained one.
"""

import copy
import dataclasses
import typing

import numpy as np
import tensorflow as tf

from models import transport
from train import steps as steps_lib
from train import turns as turns_lib
from train.errors import TrainingError


@dataclasses.dataclass(frozen=True)
class Reports:
  """What evaluation reports for a run of one mode.

  Attributes:
    flow: the run holds a flow worth reporting (trained, or NCE's frozen noise).
    ebm: the run trained an EBM.
    learns_c: the EBM's c estimates its log Z; if not (nt: eq. 6 is blind to c), its log Z comes
      from the 2D grid or from importance sampling.
    grid_log_z: on 2D data the model is normalised by its log Z on the grid, not by its c (a
      tilt exp(f - c) q of the flow, NT-EBM eq. 7).
    transport_samples: the model is sampled by neural transport (NT-EBM Sec. 3.2, a tilt of the
      flow): FID scores those samples beside the backbone's.
  """
  flow: bool
  ebm: bool
  learns_c: bool = True
  grid_log_z: bool = False
  transport_samples: bool = False


@dataclasses.dataclass(frozen=True)
class Mode:
  """What a mode trains and needs.

  Attributes:
    name: the --mode value.
    help: one line for --help.
    optimizers: the optimisers it steps (names of `steps.make_optimizers`), each with the model
      it trains: 'flow_mle' (the flow by MLE), 'ebm', 'flow' (the flow on V, FCE eq. 12).
    make_steps: run -> {update name: per-replica step}; `run` is the Trainer (its state, noise,
      config and batch sizes).
    alternates: the EBM and the flow take turns on V under the accuracy schedule (FCE Sec. 4).
    noise: the EBM's contrast distribution: None, 'fixed' (NCE: a Gaussian fitted to the data,
      or the frozen flow of --init_flow) or 'flow' (the flow being trained, FCE).
    conditional_ebm: one f_k, c_k per class (FCE eq. 16); implies labeled data.
    tilt: the EBM is a correction of the frozen flow of --init_flow, p = exp(f - c) q (NT-EBM
      eq. 7), so the flow is part of the model.
    persistent_chains: the run keeps latent HMC chains of the model (NT-EBM Alg. 1).
  """
  name: str
  help: str
  optimizers: tuple
  make_steps: typing.Callable
  alternates: bool = False
  noise: str = None
  conditional_ebm: bool = False
  tilt: bool = False
  persistent_chains: bool = False

  @property
  def trains_ebm(self):
    return 'ebm' in self.optimizers

  def model_of(self, optimizer):
    """'flow' or 'ebm': the model an optimiser of this mode updates."""
    return 'ebm' if optimizer == 'ebm' else 'flow'

  def has_flow(self, config):
    """Whether a run of this mode holds a flow worth reporting: trained, or NCE's frozen noise."""
    return 'flow' in map(self.model_of, self.optimizers) or self.tilt or (
        self.noise == 'fixed' and config.nce.noise == 'flow')

  def reports(self, config):
    """What evaluation reports for a run of this mode with `config`."""
    return Reports(flow=self.has_flow(config), ebm=self.trains_ebm,
                   learns_c=not self.persistent_chains, grid_log_z=self.tilt,
                   transport_samples=self.tilt)

  @property
  def checkpoint_fields(self):
    """Config fields, besides the data and the models, that shape this mode's checkpoint
    tensors, so a resume must keep them: the flow's FCE optimiser (its slots) and the batch
    size of persistent chains (one chain per example)."""
    fields = ('optim.flow_optimizer',) if 'flow' in self.optimizers else ()
    return fields + (('train.batch_size',) if self.persistent_chains else ())

  def configure(self, config, init_flow=None):
    """A copy of `config` with what this mode implies: a class-conditional EBM for ssl; for NCE
    given a flow (--init_flow), that flow as the noise; an MLE phase only where FCE trains a flow
    it was not given."""
    config = copy.deepcopy(config)
    if self.conditional_ebm:
      config.model.ebm.conditional = True
    if self.noise == 'fixed' and init_flow:
      config.nce.noise = 'flow'
    if init_flow or not self.alternates:
      config.fce.mle_pretrain_steps = 0
    if self.tilt:  # the correction tilts the flow already: a base would count it twice
      config.model.ebm.base = 'none'
    return config

  def check(self, config):
    """Refuses a config this mode cannot train (before anything is written)."""
    if self.conditional_ebm and config.data.num_classes < 2:
      raise TrainingError(f'--mode={self.name} needs labeled data (data.num_classes >= 2); '
                          f'{config.data.name} has {config.data.num_classes} classes.')
    if self.conditional_ebm and config.ssl.labels_per_class < 1:
      raise TrainingError(f'--mode={self.name} needs ssl.labels_per_class >= 1 (FCE Sec. '
                          '4.4 uses 7 on two spirals and 100 on SVHN).')

  def check_new_run(self, config, init_flow):
    """Refuses to start a run without the flow this mode builds on."""
    if self.tilt and not init_flow:
      raise TrainingError(f'--mode={self.name} corrects a pretrained flow: pass '
                          '--init_flow=WORKDIR of a --mode=mle run on the same data.')
    if self.noise == 'fixed' and config.nce.noise == 'flow' and not init_flow:
      raise TrainingError('NCE against a flow needs the flow: pass --init_flow=WORKDIR of an '
                          'MLE run.')

  def labels_per_class(self, config):
    """Labeled examples per class in each batch (ssl), else 0."""
    return config.ssl.labels_per_class if self.conditional_ebm else 0

  def noise_samples(self, config):
    """Noise samples per data example: nce.nu against a fixed noise (NCE), else 1."""
    return int(config.nce.nu) if self.noise == 'fixed' else 1

  def make_noise(self, config, flow, gaussian):
    """The EBM's contrast distribution: the flow (FCE, or NCE's frozen flow from --init_flow),
    `gaussian()` fitted to the data (NCE), or None (MLE, nt)."""
    if self.noise == 'fixed' and config.nce.noise != 'flow':
      return gaussian()
    return flow if self.noise else None

  def model(self, ebm, flow):
    """The EBM as evaluated: p = exp(f - c), or for a correction of the flow exp(f - c) q."""
    return transport.TiltedModel(ebm, flow) if self.tilt else ebm

  def contrast_log_q(self, noise, x, f):
    """The log-density that the EBM's logit is taken against at c's start: the noise's, or 0
    for a correction of the flow (its logit is f - c)."""
    return tf.zeros_like(f) if self.tilt else noise.log_prob(x)

  def extra_variables(self, config, global_batch, latent_dim, mle_phase):
    """The variables the checkpoint keeps for this mode beyond the models and counters.

    fce / ssl: mle_pretrain_steps, the length of the MLE phase before FCE, from `mle_phase()`
    -> (steps, whether the run records them: a run saved before the phase existed does not).
    nt: its persistent latent chains, one per example of a batch, and their adapted step size
    (NT-EBM Alg. 1).
    """
    extras = {}
    if self.alternates:
      steps, recorded = mle_phase()
      if recorded:
        extras['mle_pretrain_steps'] = tf.Variable(steps, dtype=tf.int64, trainable=False,
                                                   name='mle_pretrain_steps')
    if self.persistent_chains:
      # Every replica moves its share of the chains and assigns the gathered whole
      # (`steps.make_nt_step`): the first replica's value is everyone's.
      first = tf.VariableAggregation.ONLY_FIRST_REPLICA
      extras['chains'] = tf.Variable(tf.zeros([global_batch, latent_dim]), trainable=False,
                                     name='chains', aggregation=first)
      extras['hmc_step_size'] = tf.Variable(float(config.nt.hmc_step_size), trainable=False,
                                            name='hmc_step_size', aggregation=first)
    return extras

  def make_turns(self, state, steps):
    """Which update each step makes (`train/turns.py`), given the run's state and steps."""
    if self.alternates:
      return turns_lib.Alternating(state)
    return turns_lib.Single(state.config.train, next(iter(steps)), state.fce_start)

  def start_extras(self, extras, first_batch):
    """Starts the extra variables of a new run: Alg. 1's chains from q0 (the first batch's z)."""
    if 'chains' in extras:
      extras['chains'].assign(first_batch['z'])

  def check_backbone(self, flow, first_batch, init_flow):
    """NT-EBM's backbone must be a density model: finite log q on data, and finite samples."""
    if not self.tilt:
      return
    log_q = flow.log_prob(tf.constant(first_batch['x']))
    z = tf.reshape(first_batch['z'], [-1, flow.latent_dim])  # nu latents per example
    samples, log_q_samples = flow.generate(z)
    if not all(np.all(np.isfinite(v)) for v in (log_q, samples, log_q_samples)):
      raise TrainingError(f'The flow of --init_flow={init_flow} gives NaN or Inf (log q on the '
                          'data or its samples): its training diverged. Retrain it (--mode=mle '
                          'with a lower optim.flow_mle_lr) and pass that run.')


def _mle_steps(run):
  return {'flow': steps_lib.make_mle_step(run.flow, run.optimizers['flow_mle'],
                                          run.config.data.num_bins, run.global_batch)}


def _nce_steps(run):
  return {'ebm': steps_lib.make_nce_step(run.ebm, run.noise, run.optimizers['ebm'], run.nu,
                                         run.global_batch)}


def _fce_steps(run, conditional=False):
  f, opt = run.config.fce, run.optimizers
  aux_noise = None
  if f.ebm_aux_nce_weight:
    aux_noise = run.ebm.base if f.ebm_aux_noise == 'base' else run.gaussian_noise()
  two_pass = steps_lib.flow_two_pass(
      f.flow_passes, run.config.model.flow, run.config.data.shape,
      run.global_batch // run.strategy.num_replicas_in_sync)
  ebm_step, flow_step = steps_lib.make_fce_steps(
      run.ebm, run.flow, opt['ebm'], opt['flow'], run.global_batch, f.flow_mle_weight,
      f.ebm_f_penalty, aux_noise, f.ebm_aux_nce_weight, two_pass)
  if conditional:
    ssl = run.config.ssl
    ebm_step = steps_lib.make_ssl_ebm_step(run.ebm, run.flow, opt['ebm'], ssl.vat_weight,
                                           ssl.vat_epsilon, run.global_batch, run.labeled_batch,
                                           aux_noise, f.ebm_aux_nce_weight)
  return {'ebm': ebm_step, 'flow': flow_step}


def _nt_steps(run):
  nt, extras, seed_value = run.config.nt, run.state.extras, run.config.train.seed
  seed = lambda: tf.stack([tf.constant(seed_value, tf.int32), tf.cast(run.step, tf.int32)])
  return {'ebm': steps_lib.make_nt_step(
      run.ebm, run.flow, run.optimizers['ebm'], extras['chains'], extras['hmc_step_size'], seed,
      nt.hmc_steps, nt.hmc_leapfrog_steps, nt.hmc_target_accept > 0, nt.hmc_target_accept or 0.5,
      run.global_batch)}


def _nt_nce_steps(run):
  return {'ebm': steps_lib.make_nt_nce_step(run.ebm, run.flow, run.optimizers['ebm'], run.nu,
                                            run.global_batch)}


_MODES = (
    Mode('mle', 'the flow by maximum likelihood', optimizers=('flow_mle',),
         make_steps=_mle_steps),
    Mode('nce', 'the EBM against a fixed noise (a Gaussian fitted to the data, or the flow of '
         '--init_flow; FCE eqs. 4-6)', optimizers=('ebm',), make_steps=_nce_steps,
         noise='fixed'),
    Mode('fce', 'EBM and flow on the value function (FCE eq. 12)', optimizers=('ebm', 'flow'),
         make_steps=_fce_steps, alternates=True, noise='flow'),
    Mode('ssl', 'semi-supervised FCE with a class-conditional EBM (FCE Sec. 3.4)',
         optimizers=('ebm', 'flow'), make_steps=lambda run: _fce_steps(run, conditional=True),
         alternates=True, noise='flow', conditional_ebm=True),
    Mode('nt', 'NT-EBM: a correction exp(f) of the frozen flow of --init_flow, by maximum '
         'likelihood with neural-transport HMC samples (NT-EBM Alg. 1)', optimizers=('ebm',),
         make_steps=_nt_steps, tilt=True, persistent_chains=True),
    Mode('nt_nce', 'the same correction by NCE against the frozen flow of --init_flow (NT-EBM '
         'eq. 10)', optimizers=('ebm',), make_steps=_nt_nce_steps, noise='fixed', tilt=True),
)
MODES = {m.name: m for m in _MODES}
NAMES = tuple(MODES)


def get(name):
  """The record of mode `name`; an unknown name raises a ValueError listing the valid ones."""
  if name not in MODES:
    raise ValueError(f'Unknown mode {name!r}; valid: {", ".join(NAMES)}.')
  return MODES[name]
