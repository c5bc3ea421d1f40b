"""One record per training mode: what it trains, how, against which noise, and what it reports.

Everything that depends on the mode reads this table: the trainer (optimisers, steps, schedule,
checkpoint contents), main.py (the flag's choices and help), evaluation (which models a run has)
and the experiments. A new mode is one more record here plus its steps in `train/steps.py`.

  mode  trains                   noise                        alternates  EBM
  mle   the flow (Adam, MLE)     -                            no          -
  nce   the EBM (Adam)           Gaussian, or a frozen flow   no          unconditional
  fce   EBM (Adam), flow (V)     the flow being trained       yes         unconditional
  ssl   EBM (Adam), flow (V)     the flow being trained       yes         class-conditional
  nt    the correction f (Adam)  - (HMC samples of the model) no          f tilts a frozen flow
  nt_nce  the correction f       the frozen flow              no          f tilts a frozen flow

fce and ssl first train the flow by MLE for train.mle_pretrain_steps (the image configs' default;
0 on 2D data), unless --init_flow gives them a trained one.
"""

import copy
import dataclasses


@dataclasses.dataclass(frozen=True)
class Mode:
  """What a mode trains and needs.

  Attributes:
    name: the --mode value.
    help: one line for --help.
    optimizers: the optimisers it steps (names of `steps.make_optimizers`), each with the model
      it trains: 'flow_mle' (the flow by MLE), 'ebm', 'flow' (the flow on V, FCE eq. 12).
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
        self.noise == 'fixed' and config.train.nce_noise == 'flow')

  def configure(self, config, init_flow=None):
    """A copy of `config` with what this mode implies: a class-conditional EBM for ssl; for NCE
    given a flow (--init_flow), that flow as the noise; an MLE phase only where FCE trains a flow
    it was not given."""
    config = copy.deepcopy(config)
    if self.conditional_ebm:
      config.model.ebm.conditional = True
    if self.noise == 'fixed' and init_flow:
      config.train.nce_noise = 'flow'
    if init_flow or not self.alternates:
      config.train.mle_pretrain_steps = 0
    if self.tilt:  # the correction tilts the flow already: a base would count it twice
      config.model.ebm.base = 'none'
    return config


_MODES = (
    Mode('mle', 'the flow by maximum likelihood', optimizers=('flow_mle',)),
    Mode('nce', 'the EBM against a fixed noise (a Gaussian fitted to the data, or the flow of '
         '--init_flow; FCE eqs. 4-6)', optimizers=('ebm',), noise='fixed'),
    Mode('fce', 'EBM and flow on the value function (FCE eq. 12)', optimizers=('ebm', 'flow'),
         alternates=True, noise='flow'),
    Mode('ssl', 'semi-supervised FCE with a class-conditional EBM (FCE Sec. 3.4)',
         optimizers=('ebm', 'flow'), alternates=True, noise='flow', conditional_ebm=True),
    Mode('nt', 'NT-EBM: a correction exp(f) of the frozen flow of --init_flow, by maximum '
         'likelihood with neural-transport HMC samples (NT-EBM Alg. 1)', optimizers=('ebm',),
         tilt=True, persistent_chains=True),
    Mode('nt_nce', 'the same correction by NCE against the frozen flow of --init_flow (NT-EBM '
         'eq. 10)', optimizers=('ebm',), noise='fixed', tilt=True),
)
MODES = {m.name: m for m in _MODES}
NAMES = tuple(MODES)


def get(name):
  """The record of mode `name`; an unknown name raises a ValueError listing the valid ones."""
  if name not in MODES:
    raise ValueError(f'Unknown mode {name!r}; valid: {", ".join(NAMES)}.')
  return MODES[name]
