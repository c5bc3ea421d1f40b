"""Evaluation of image runs (FCE Tables 1 and 2): bits/dim of the Glow and the EBM, FID and KID of
Glow samples, and sample grids. One report per checkpoint, WORKDIR/eval/report_<step>.json:

  flow_bpd   the Glow's bits/dim on the whole test split, one dequantization sample per image
  ebm_bpd    the EBM's bits/dim with its learned log-normalizer c (`learned_c`, what FCE Table 2
             reports "with a grain of salt") beside `importance_sampled`: c corrected by an
             importance-sampled estimate of the normalizer with the flow as proposal,
               log Z/e^c ~= log mean_i exp(f(y_i) - c - log q(y_i)),  y_i ~ q,
             its standard error (delta method) and the effective sample size. The estimate of
             log Z is biased low when q misses mass of p: a small ESS says not to trust it
             (`reliable` is false below 100); NaN or +inf weights refuse the estimate. An EBM on a
             frozen flow base (model.ebm.base=flow) is importance-sampled with its base as the
             proposal (settings.proposal), where the weights are exp(g - c) alone.
             With --ais_steps, `ais` bounds it from both sides (bidirectional Monte Carlo):
             forward AIS over a ladder of K (`bpd`, the lower side, and whether the ladder
             `settled`), reverse AIS from neural-transport chains (`upper_bpd`, the conservative
             side, approximate: the chains are not exact samples) and their `gap_bpd`.
  fid        FID and KID of N Glow samples (T = 1) against the reference split's statistics,
             naming N, the reference set and the Inception network (TTUR's graph is the standard;
             the Keras InceptionV3 fallback is labelled as not comparable). For a tilted model
             (nt, nt_nce) `fid` scores its neural-transport samples (HMC chains in the flow's
             latent space) and `fid_backbone` the frozen flow's ancestral samples (NT-EBM
             Table 1's comparison)
  samples    PNG grids of Glow samples at several temperatures (also in TensorBoard)
  classification  for a class-conditional EBM (ssl): test error of argmax_k f_k(x) - c_k
             (FCE eq. 15) on the test split's bin centres

Each block records its settings; re-running eval keeps a block whose settings are unchanged and
computes only what is missing, and the report is rewritten after every block, so a failure
(e.g. no Inception graph) loses nothing already computed.

The training loop evaluates with the same `Evaluator` every eval.every steps (on a fixed
test subset, with fewer FID samples and no importance sampling: `Options.for_training`), writing
WORKDIR/eval/train_eval_<step>.json; `--mode=eval --test_examples=N` reproduces its bits/dim.
"""

import dataclasses
import functools
import hashlib
import json
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from data import images
from data import pipeline
from eval import batching
from eval import figures
from eval import fid as fid_lib
from eval import log_z
from losses import flow as flow_losses
from models import glow
from models import transport
from train import checkpoints as ckpt_lib
from train import modes
from train import progress
from train.errors import ReportError

REPORT = 'report_{step}.json'
TRAIN_REPORT = 'train_eval_{step}.json'


@dataclasses.dataclass
class Options:
  """What `--mode=eval` computes for an image run (flags of main.py)."""
  fid_samples: int = 50000          # Glow samples for FID/KID (0: no FID)
  fid_reference: str = 'train'      # the split whose statistics FID compares against
  fid_network: str = 'ttur'         # 'ttur' (standard) or 'keras' (labelled fallback)
  inception_graph: str = ''         # TTUR's classify_image_graph_def.pb ('' = cache / download)
  fid_stats: str = ''               # reference statistics .npz ('' = computed once and cached)
  is_samples: int = 10000           # flow proposals for the EBM's importance-sampled log Z
  test_examples: int = 0            # bits/dim on this many test images (a seeded subset; 0 = all)
  temperatures: tuple = (1.0, 0.9, 0.8, 0.7)
  grid_samples: int = 64            # samples per temperature in the grids
  batch_size: int = 256
  seed: int = 0
  hmc_steps: int = 200              # nt / nt_nce: HMC steps of each neural-transport chain
  hmc_step_size: float = 0.         # nt / nt_nce: its initial step size (0: nt.hmc_step_size)
  ais_steps: tuple = ()             # EBM log Z also by AIS with these numbers of annealing
                                    # steps (a ladder; an int for one; empty or 0: no AIS)
  ais_chains: int = 256
  ais_step_size: float = 0.1
  ais_reverse_steps: int = 1000     # HMC steps of the chains reverse AIS starts from (0: none)

  @property
  def ais_ladder(self):
    """ais_steps as a sorted tuple of ints (an int is a ladder of one rung; 0 is none)."""
    steps = (self.ais_steps,) if isinstance(self.ais_steps, int) else self.ais_steps
    return tuple(sorted(int(k) for k in steps if int(k)))

  @classmethod
  def for_training(cls, eval_config, reports):
    """What the training loop computes every eval.every steps (its sample grids are the
    trainer's own, so none here), given what the run reports (`modes.Reports`). A model that
    learns no c (nt) gets its log Z by importance sampling from eval.is_samples flow
    proposals. A model sampled by neural transport (nt, nt_nce) gets no FID in the loop: its
    samples need HMC chains, which would cost more than the training."""
    e = eval_config
    return cls(fid_samples=0 if reports.transport_samples else e.fid_samples,
               fid_network=e.fid_network, inception_graph=e.inception_graph,
               test_examples=e.examples,
               is_samples=0 if reports.learns_c else e.is_samples, temperatures=())


def test_subset(config, num_examples, seed):
  """The test split, or (num_examples > 0) a fixed subset of it drawn with `seed`, in order."""
  x, labels = pipeline.load_arrays(config, 'test')
  if 0 < num_examples < len(x):
    keep = np.sort(np.random.default_rng([seed, 11]).choice(len(x), num_examples, replace=False))
    x, labels = x[keep], labels[keep]
  return x, labels


def test_log_probs(config, flow, ebm, batch_size, seed, has_flow, has_ebm, x=None):
  """log q(y) and the EBM's log p(y) (learned c) of the dequantized test split, or of the images
  `x` (one draw each)."""
  if x is None:
    x, _ = pipeline.load_arrays(config, 'test')
  rng = np.random.default_rng([seed, 7])
  num_bins = config.data.num_bins or 256
  flow_lp, ebm_lp = [], []
  for start, size in batching.spans(len(x), batch_size):
    y = tf.constant(pipeline.dequantize_numpy(x[start:start + size], num_bins, rng))
    if has_flow:
      flow_lp.append(flow.log_prob(y).numpy())
    if has_ebm:
      ebm_lp.append(ebm.marginal_log_prob(y).numpy())
  join = lambda parts: np.concatenate(parts).astype(np.float64) if parts else None
  return join(flow_lp), join(ebm_lp), len(x)


def test_error(config, ebm, batch_size):
  """Test error (%) of the class-conditional EBM's classifier argmax_k f_k(x) - c_k (eq. 15)."""
  x, labels = pipeline.load_arrays(config, 'test')
  if labels.min() < 0:
    raise ReportError(f'the test split of {config.data.name} has no labels.')
  num_bins = config.data.num_bins or 256
  wrong = 0
  for start, size in batching.spans(len(x), batch_size):
    y = flow_losses.bin_centres(x[start:start + size], num_bins)
    predicted = np.argmax(ebm.log_prob(tf.constant(y)).numpy(), axis=1)
    wrong += int(np.sum(predicted != labels[start:start + size]))
  return 100. * wrong / len(x), len(x)


def log_z_proposal(flow, ebm):
  """The proposal of the EBM's importance-sampled (and AIS) log Z: the flow, or for an EBM built
  on a frozen flow base (model.ebm.base=flow) that base, under which the weights are exp(g - c)
  alone."""
  return flow if getattr(ebm, 'base', None) is None else ebm.base


def importance_sampled_bpd(flow, ebm, options, bpd_c, num_dims):
  """The EBM's bits/dim with the log Z importance-sampled with `flow` as the proposal (entries of
  the report's ebm_bpd), or why there is none."""
  try:
    corr, se, ess, zeros = log_z.importance_sampled(flow, ebm, options.is_samples,
                                                    options.batch_size, options.seed)
  except ReportError as e:
    return {'importance_sampled': None, 'importance_sampled_refused': str(e),
            'num_proposals': options.is_samples}
  scale = num_dims * np.log(2.)
  return dict(importance_sampled=bpd_c + corr / scale, importance_sampled_se=se / scale,
              log_z_minus_c=corr, log_z_minus_c_se=se, effective_sample_size=ess,
              num_proposals=options.is_samples, zero_weights=zeros, reliable=ess >= log_z.MIN_ESS)


def ais_bpd(proposal, ebm, options, bpd_c, num_dims):
  """The EBM's bits/dim with AIS log Z in `proposal`'s latent space (the report's ebm_bpd.ais).

  Forward AIS at each rung of options.ais_ladder (`log_z.ladder`: has the estimate stopped
  moving?) gives the lower side at the longest rung, `bpd`: optimistic, as importance
  sampling's is. Reverse AIS over the same K from neural-transport chains of
  options.ais_reverse_steps HMC steps (`log_z.model_latents`) gives `upper_bpd`, the
  conservative side; it is approximate (`upper_approximate`), since the chains are not exact
  samples of the EBM. `gap_bpd` is their difference (bidirectional Monte Carlo).
  """
  t, ladder_steps = time.perf_counter(), options.ais_ladder
  scale = num_dims * np.log(2.)
  to_bpd = lambda log_z_minus_c: bpd_c + log_z_minus_c / scale  # noqa: E731
  try:
    ladder = log_z.ladder(proposal, ebm, options.ais_chains, ladder_steps,
                          options.ais_step_size, options.seed)
  except ReportError as e:
    return {'bpd': None, 'refused': str(e)}
  top = ladder['rungs'][-1]
  block = dict(bpd=to_bpd(top['estimate']), bpd_se=top['se'] / scale,
               log_z_minus_c=top['estimate'], log_z_minus_c_se=top['se'],
               chains=options.ais_chains, steps=top['steps'], step_size=options.ais_step_size,
               acceptance=top['acceptance'], settled=ladder['settled'],
               ladder=[dict(steps=r['steps'], bpd=to_bpd(r['estimate']), bpd_se=r['se'] / scale,
                            ess=r['ess'], acceptance=r['acceptance']) for r in ladder['rungs']])
  if options.ais_reverse_steps:
    block.update(_reverse_ais_bpd(proposal, ebm, options, top['steps'], to_bpd, scale))
    if block.get('upper_bpd') is not None:
      block['gap_bpd'] = block['upper_bpd'] - block['bpd']
  logging.info('EBM bits/dim by AIS (%d chains, K = %s, %.0fs): %.4f +- %.4f (forward)%s; '
               'ladder settled: %s', options.ais_chains, '/'.join(map(str, ladder_steps)),
               time.perf_counter() - t, block['bpd'], block['bpd_se'],
               f', {block["upper_bpd"]:.4f} +- {block["upper_bpd_se"]:.4f} (reverse, '
               f'approximate), gap {block["gap_bpd"]:.4f}' if block.get('upper_bpd') is not None
               else '', block['settled'])
  return block


def _check_against_importance_sampling(block):
  """Forward AIS and importance sampling both estimate log Z from below in expectation, so the
  larger is the better estimate. When importance sampling lies above AIS's top rung by more than
  twice their combined standard error, AIS has missed mass the proposals found (the ladder's
  rungs can agree while each misses it; docs/heldout): the block says so
  (`behind_importance_sampling`) and the ladder is not `settled`."""
  ais = block['ais']
  if ais.get('bpd') is None or 'importance_sampled' not in block:
    return
  margin = block['importance_sampled'] - ais['bpd']
  behind = bool(margin > 2 * np.hypot(block['importance_sampled_se'], ais['bpd_se']))
  ais['behind_importance_sampling'] = behind
  if behind:
    ais['settled'] = False
    logging.warning('AIS\'s estimate lies %.4f bits/dim below importance sampling\'s: it has '
                    'missed mass the proposals found; neither is a settled estimate.', margin)


def _reverse_ais_bpd(proposal, ebm, options, num_steps, to_bpd, scale):
  """The upper side of `ais_bpd`: reverse AIS from neural-transport chains."""
  z, start_acceptance, start_step_size = log_z.model_latents(
      proposal, ebm, options.ais_chains, options.ais_reverse_steps, options.ais_step_size,
      options.seed)
  start = dict(hmc_steps=options.ais_reverse_steps, acceptance=start_acceptance,
               step_size=start_step_size)
  try:
    upper, se, acceptance = log_z.reverse_ais(proposal, ebm, z, num_steps,
                                              options.ais_step_size, options.seed)
  except ReportError as e:
    return {'upper_bpd': None, 'upper_refused': str(e), 'reverse_start': start}
  return dict(upper_bpd=to_bpd(upper), upper_bpd_se=se / scale, upper_log_z_minus_c=upper,
              upper_log_z_minus_c_se=se, upper_approximate=True,
              reverse_acceptance=acceptance, reverse_start=start)


def _fid_block(feats, ref, ref_path, network, config, options, settings):
  mu, sigma = fid_lib.statistics(feats)
  scores = fid_lib.fid_from({'mu': mu, 'sigma': sigma, 'features': feats}, ref)
  return {'fid': scores['fid'], 'kid': scores['kid'], 'kid_std': scores['kid_std'],
          'num_samples': len(feats),
          'reference': f'{config.data.name} {options.fid_reference} split',
          'reference_stats': ref_path, 'network': network.name, 'standard': network.standard,
          'settings': settings}


def nt_sample_features(model, network, config, options):
  """Inception features of options.fid_samples samples of a tilted model exp(f - c) q (nt,
  nt_nce) by neural transport (models.transport.NeuralTransport, one for all batches): one latent
  chain per sample, from q0, options.hmc_steps HMC steps with the step size adapted in the first
  half, pushed through g and quantized as the flow's samples are. Returns (features, mean
  acceptance after adaptation)."""
  num_bins = config.data.num_bins or 256
  feats, rates = [], []
  sampler = transport.NeuralTransport(model.correction, model.flow,
                                      config.nt.hmc_leapfrog_steps)
  shown = progress.Progress('neural-transport FID samples', options.fid_samples, 'samples')
  for i, (start, size) in enumerate(batching.spans(options.fid_samples, options.batch_size)):
    x, rate, _ = sampler.sample(size, options.hmc_steps,
                                options.hmc_step_size or config.nt.hmc_step_size,
                                seed=options.seed * 100003 + i)
    x = flow_losses.quantize(x, num_bins).numpy()
    feats.append(network.features(flow_losses.to_8bit(x, num_bins)).astype(np.float32))
    rates.append(rate)
    shown.log(start + size, acceptance=float(np.nanmean(rates)))
  return np.concatenate(feats), float(np.nanmean(rates))


def flow_sample_features(flow, network, config, n, temperature, batch_size, seed):
  """Inception features of n Glow samples, quantized to the data's levels (then 8 bits)."""
  gen = tf.random.Generator.from_seed(seed)
  num_bins = config.data.num_bins or 256
  feats = []
  for _, size in batching.spans(n, batch_size):
    x = flow_losses.quantize(flow.sample(size, temperature, generator=gen), num_bins).numpy()
    feats.append(network.features(flow_losses.to_8bit(x, num_bins)).astype(np.float32))
  return np.concatenate(feats)


def reference_stats(config, network, options):
  """The reference split's statistics: --fid_stats, or computed once and cached."""
  if options.fid_stats:
    return fid_lib.load_stats(options.fid_stats), options.fid_stats
  d = config.data
  key = hashlib.sha1(json.dumps([d.name, d.data_dir, list(d.shape), d.num_bins,
                                 options.fid_reference]).encode()).hexdigest()[:10]
  short = d.name.split(':')[0]
  path = os.path.join(fid_lib.cache_dir(), 'fid_stats',
                      f'{short}_{options.fid_reference}_{options.fid_network}_{key}.npz')
  if tf.io.gfile.exists(path):
    return fid_lib.load_stats(path), path
  x, _ = pipeline.load_arrays(config, options.fid_reference)
  logging.info('Computing %s statistics of %s %s (%d images), cached in %s', network.name,
               d.name, options.fid_reference, len(x), path)
  feats = network.features(flow_losses.to_8bit(x, d.num_bins), batch_size=options.batch_size)
  mu, sigma = fid_lib.statistics(feats)
  tf.io.gfile.makedirs(os.path.dirname(path))
  fid_lib.save_stats(path, mu, sigma, features=feats)
  return fid_lib.load_stats(path), path


class Evaluator:
  """Evaluates checkpoints of one image run (see the module docstring). Keeps what does not
  change between calls: the test images, the Inception network and the reference statistics.
  What it reports is the mode's (`modes.Mode.reports`)."""

  def __init__(self, config, mode, options, reports=None):
    self.config, self.mode, self.options = config, mode, options
    self.reports = reports or modes.get(mode).reports(config)
    self._network = None
    # A user source without a test split gives all of its data under both names.
    self.split = 'test'
    if not images.has_test_split(config.data.name, config.data.get('test_fraction', 0.)):
      self.split = 'all of the data (the source has no test split)'
      logging.warning('%s has no test split: its "held-out" bits/dim are measured on the '
                      'training data. Give one (npy:TRAIN.npy,TEST.npy) or hold some out '
                      '(--set data.test_fraction=0.1).', config.data.name)

  @property
  def fid(self):
    """Whether FID is asked for (the trainer turns it off when the network is missing)."""
    return self.options.fid_samples > 0

  @functools.cached_property
  def test_set(self):
    return test_subset(self.config, self.options.test_examples, self.options.seed)

  @property
  def network(self):
    """The Inception network, loaded once; raises fid_lib.FIDError."""
    if self._network is None:
      self._network = fid_lib.load_network(self.options.fid_network,
                                           self.options.inception_graph or None)
    return self._network

  @functools.cached_property
  def _reference(self):
    return reference_stats(self.config, self.network, self.options)

  def evaluate(self, workdir, flow, ebm, step, report_name=REPORT, has_ebm=None, writer=None):
    """Computes what WORKDIR/eval/<report_name> lacks; returns the report. `has_ebm=False`
    leaves the EBM out (the trainer's MLE phase); `writer` takes the eval/ scalars (default: a
    writer of WORKDIR/tensorboard)."""
    writer = writer or tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))
    out_dir = os.path.join(workdir, 'eval')
    tf.io.gfile.makedirs(out_dir)
    path = os.path.join(out_dir, report_name.format(step=step))
    report = {}
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        report = json.load(f)
    report.update(step=step, mode=self.mode, dataset=self.config.data.name)
    has_ebm = self.reports.ebm if has_ebm is None else has_ebm and self.reports.ebm
    save = lambda: ckpt_lib.write_json(path, report)
    self._bits_per_dim(report, flow, ebm, has_ebm, save)
    if has_ebm and ebm.num_classes and 'classification' not in report:
      self._classification(report, ebm, save)
    if self.reports.flow and self.options.temperatures:
      self._grids(report, flow, step, out_dir, writer, save)
    if self.reports.flow and self.fid:
      self._fid(report, flow, ebm, path, save)
    with writer.as_default(step=step):
      for name, value in scalars(report).items():
        tf.summary.scalar(name, value)
    writer.flush()
    return report

  def _bits_per_dim(self, report, flow, ebm, has_ebm, save):
    """flow_bpd and ebm_bpd (see the module docstring), where missing or made with other
    settings."""
    options = self.options
    settings = {'split': self.split, 'dequantization_samples': 1, 'seed': options.seed}
    if options.test_examples:
      settings['subset'] = len(self.test_set[0])
    proposal = log_z_proposal(flow, ebm)
    ebm_settings = dict(settings, is_samples=options.is_samples,
                        proposal='flow' if proposal is flow else 'ebm_base')
    if options.ais_ladder:
      # ais_estimator names the estimator: reports from before its fix (tfp's biased
      # sample_annealed_importance_chain) lack it, so their AIS is recomputed.
      ebm_settings.update(ais_steps=list(options.ais_ladder), ais_chains=options.ais_chains,
                          ais_step_size=options.ais_step_size, ais_estimator=log_z.AIS_ESTIMATOR,
                          ais_reverse_steps=options.ais_reverse_steps)
    want_flow = self.reports.flow and report.get('flow_bpd', {}).get('settings') != settings
    want_ebm = has_ebm and report.get('ebm_bpd', {}).get('settings') != ebm_settings
    if not (want_flow or want_ebm):
      return
    t = time.perf_counter()
    flow_lp, ebm_lp, n = test_log_probs(self.config, flow, ebm, options.batch_size,
                                        options.seed, want_flow, want_ebm, x=self.test_set[0])
    if want_flow:
      report['flow_bpd'] = {'value': float(np.mean(self._to_bpd(flow_lp))), 'num_examples': n,
                            'settings': settings}
    if want_ebm:
      report['ebm_bpd'] = dict(self._ebm_bpd(ebm, ebm_lp, proposal), num_examples=n,
                               settings=ebm_settings)
    save()
    _log_bits_per_dim(report, n, time.perf_counter() - t)

  def _to_bpd(self, log_p):
    return flow_losses.bits_per_dim(log_p, int(np.prod(self.config.data.shape)),
                                    self.config.data.num_bins or 256)

  def _ebm_bpd(self, ebm, log_p, proposal):
    """The EBM's bits/dim with its learned c (or unnormalised, if it learns none), and with
    log Z by importance sampling and by AIS from `proposal` when the run has a flow."""
    bpd_c = float(np.mean(self._to_bpd(log_p)))
    num_dims = int(np.prod(self.config.data.shape))
    block = {'learned_c' if self.reports.learns_c else 'unnormalised': bpd_c,
             'log_normalizer_c': [float(c) for c in ebm.log_normalizer.numpy()]}
    if self.reports.flow and self.options.is_samples > 1:
      block.update(importance_sampled_bpd(proposal, ebm, self.options, bpd_c, num_dims))
    if self.reports.flow and self.options.ais_ladder:
      block['ais'] = ais_bpd(proposal, ebm, self.options, bpd_c, num_dims)
      _check_against_importance_sampling(block)
    return block

  def _classification(self, report, ebm, save):
    """Test error of the class-conditional EBM's classifier (FCE eq. 15)."""
    error, n = test_error(self.config, ebm, self.options.batch_size)
    report['classification'] = {'test_error': error, 'num_examples': n}
    save()
    logging.info('EBM classifier: test error %.2f%% on %d examples', error, n)

  def _grids(self, report, flow, step, out_dir, writer, save):
    """PNG grids of flow samples at each of options.temperatures, unless made already."""
    options = self.options
    settings = {'temperatures': list(options.temperatures), 'num': options.grid_samples,
                'seed': options.seed}
    if (report.get('samples_settings') == settings and
        all(tf.io.gfile.exists(p) for p in report.get('samples', []))):
      return
    grids = [figures.sample_grid(flow, self.config, out_dir, step, num=options.grid_samples,
                                 temperatures=(temp,), seed=options.seed,
                                 name=f'samples_T{temp:g}') for temp in options.temperatures]
    with writer.as_default(step=step):
      for png in grids:
        tf.summary.image('eval/' + os.path.basename(png).rsplit('_', 1)[0],
                         figures.read_png(png)[None])
    report.update(samples=grids, samples_settings=settings)
    save()

  def _fid(self, report, flow, ebm, path, save):
    """FID / KID of flow samples, or of the model's neural-transport samples beside its
    backbone's (NT-EBM Table 1), unless computed already with these settings."""
    config, options = self.config, self.options
    settings = {'num_samples': options.fid_samples, 'temperature': 1.0,
                'reference_split': options.fid_reference, 'seed': options.seed,
                'network': options.fid_network, 'reference_stats': options.fid_stats}
    transport = self.reports.transport_samples
    if transport:
      settings.update(sampler='neural-transport HMC', hmc_steps=options.hmc_steps,
                      hmc_step_size=options.hmc_step_size,
                      leapfrog_steps=config.nt.hmc_leapfrog_steps)
    if report.get('fid', {}).get('settings') == settings:
      return
    t = time.perf_counter()
    try:
      network = self.network
      ref, ref_path = self._reference
    except fid_lib.FIDError as e:
      raise ReportError(f'FID not computed: {e} (everything else is in {path}; pass '
                        '--fid_samples=0 to skip FID)') from e
    flow_feats = flow_sample_features(flow, network, config, options.fid_samples, 1.0,
                                      options.batch_size, options.seed)
    block = lambda feats: _fid_block(feats, ref, ref_path, network, config, options, settings)
    if transport:
      feats, acceptance = nt_sample_features(ebm, network, config, options)
      report['fid'] = dict(block(feats), acceptance_after_adaptation=acceptance)
      report['fid_backbone'] = dict(block(flow_feats), sampler='the backbone flow, ancestral')
    else:
      report['fid'] = block(flow_feats)
    save()
    logging.info('FID %.3f%s (N=%d vs %s, %s, %.0fs)', report['fid']['fid'],
                 f' (its backbone: {report["fid_backbone"]["fid"]:.3f})' if transport else '',
                 options.fid_samples, report['fid']['reference'], network.name,
                 time.perf_counter() - t)


def _log_bits_per_dim(report, n, seconds):
  ebm_block = report.get('ebm_bpd', {})
  logging.info('bits/dim on %d test images (%.0fs): flow %s, EBM %s (learned c), %s '
               '(importance-sampled log Z)', n, seconds,
               *(f'{v:.4f}' if v is not None else '-' for v in (
                   report.get('flow_bpd', {}).get('value'), ebm_block.get('learned_c'),
                   ebm_block.get('importance_sampled'))))
  if ebm_block.get('importance_sampled_refused'):
    logging.warning('No importance-sampled log Z: %s', ebm_block['importance_sampled_refused'])
  elif ebm_block.get('reliable') is False:
    logging.warning('The importance-sampled EBM bits/dim is unreliable: ESS %.1f of %d '
                    'proposals (below %d); the flow is a poor proposal for this EBM.',
                    ebm_block['effective_sample_size'], ebm_block['num_proposals'],
                    log_z.MIN_ESS)


def evaluate(workdir, config, mode, flow, ebm, step, options, has_ebm=None):
  """`--mode=eval` of one checkpoint: WORKDIR/eval/report_<step>.json (see the module
  docstring); returns the report. `has_ebm=False` leaves the EBM out (a checkpoint of the MLE
  phase)."""
  return Evaluator(config, mode, options).evaluate(workdir, flow, ebm, step, has_ebm=has_ebm)


def scalars(report):
  """The report's numbers, as the TensorBoard scalars under eval/ (beside the training curves)."""
  values = {
      'eval/flow_bpd': report.get('flow_bpd', {}).get('value'),
      'eval/ebm_bpd_learned_c': report.get('ebm_bpd', {}).get('learned_c'),
      'eval/ebm_bpd_importance_sampled': report.get('ebm_bpd', {}).get('importance_sampled'),
      'eval/ebm_is_ess': report.get('ebm_bpd', {}).get('effective_sample_size'),
      'eval/ebm_bpd_ais_lower': report.get('ebm_bpd', {}).get('ais', {}).get('bpd'),
      'eval/ebm_bpd_ais_upper': report.get('ebm_bpd', {}).get('ais', {}).get('upper_bpd'),
      'eval/fid': report.get('fid', {}).get('fid'),
      'eval/kid': report.get('fid', {}).get('kid'),
      'eval/fid_backbone': report.get('fid_backbone', {}).get('fid'),
      'eval/test_error': report.get('classification', {}).get('test_error')}
  return {k: v for k, v in values.items() if v is not None}
