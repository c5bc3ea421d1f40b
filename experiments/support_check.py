"""The log Z of a trained image EBM with its density restricted to the data's range: the run's
checkpoint restored into the same EBM built with model.ebm.support=cube (p = 0 outside
[-0.5, 0.5]^D). Prints the bits/dim with the learned c, with importance-sampled log Z (the EBM's
base, or the flow, as proposal) and with the AIS log Z, for the run as trained and restricted.
Shows whether an EBM's mass outside the data's range is what spoils its log Z (docs/image_fce).

  python -m experiments.support_check --workdir=RUN
"""

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from eval import image_eval  # noqa: E402
from eval import run as eval_run  # noqa: E402
from losses import flow as flow_losses  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_string('workdir', None, 'An fce / nce image run.', required=True)
  flags.DEFINE_integer('is_samples', 10000, 'Importance-sampling proposals.')
  flags.DEFINE_integer('ais_steps', 300, 'AIS annealing steps.')
  flags.DEFINE_integer('ais_chains', 128, 'AIS chains.')


FLAGS = flags.FLAGS


def main(_):
  config, mode = eval_run.load_run(FLAGS.workdir)
  num_dims = int(np.prod(config.data.shape))
  options = image_eval.Options(is_samples=FLAGS.is_samples, ais_steps=FLAGS.ais_steps,
                               ais_chains=FLAGS.ais_chains, batch_size=500)
  for support in ('none', 'cube'):
    config.model.ebm.support = support
    flow, ebm, step = eval_run.restore_models(config, FLAGS.workdir, mode=mode)
    # The test split (dequantized, so in the cube): its learned-c bits/dim is the same for both.
    _, ebm_lp, _ = image_eval.test_log_probs(config, flow, ebm, options.batch_size,
                                             options.seed, False, True)
    bpd_c = float(np.mean(flow_losses.bits_per_dim(ebm_lp, num_dims, config.data.num_bins)))
    proposal = image_eval.log_z_proposal(flow, ebm)
    is_ = image_eval.importance_sampled_bpd(proposal, ebm, options, bpd_c, num_dims)
    ais = image_eval.ais_bpd(proposal, ebm, options, bpd_c, num_dims)
    print(f'step {step} support={support}: learned c {bpd_c:.4f}  IS ' +
          (f'{is_["importance_sampled"]:.4f} (ESS {is_["effective_sample_size"]:.0f}, '
           f'{is_["zero_weights"]} zero weights)' if is_['importance_sampled'] is not None
           else f'refused: {is_["importance_sampled_refused"]}') + '  AIS ' +
          (f'{ais["bpd"]:.4f} +- {ais["bpd_se"]:.4f}' if ais['bpd'] is not None
           else f'refused: {ais["refused"]}'))


if __name__ == '__main__':
  define_flags()
  startup.run(main)
