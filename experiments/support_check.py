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

flags.DEFINE_string('workdir', None, 'An fce / nce image run.', required=True)
flags.DEFINE_integer('is_samples', 10000, 'Importance-sampling proposals.')
flags.DEFINE_integer('ais_steps', 300, 'AIS annealing steps.')
flags.DEFINE_integer('ais_chains', 128, 'AIS chains.')
FLAGS = flags.FLAGS


def main(_):
  config, mode = eval_run.load_run(FLAGS.workdir)
  num_dims = int(np.prod(config.data.shape))
  scale = num_dims * np.log(2.)
  for support in ('none', 'cube'):
    config.model.ebm.support = support
    flow, ebm, step = eval_run.restore_models(config, FLAGS.workdir, mode=mode)
    # The test split (dequantized, so in the cube): its learned-c bits/dim is the same for both.
    _, ebm_lp, _ = image_eval.test_log_probs(config, flow, ebm, 500, 0, False, True)
    bpd_c = float(np.mean(flow_losses.bits_per_dim(ebm_lp, num_dims, config.data.num_bins)))
    proposal = ebm.base if ebm.base is not None else flow
    corr, _, ess, zeros = image_eval.log_normalizer_correction(proposal, ebm, FLAGS.is_samples,
                                                               500, seed=0)
    ais, ais_se, _ = image_eval.ais_log_normalizer(proposal, ebm, FLAGS.ais_chains,
                                                   FLAGS.ais_steps, 0.1, seed=0)
    print(f'step {step} support={support}: learned c {bpd_c:.4f}  '
          f'IS {bpd_c + corr / scale:.4f} (ESS {ess:.0f}, {zeros} zero weights)  '
          f'AIS {bpd_c + ais / scale:.4f} +- {ais_se / scale:.4f}')


if __name__ == '__main__':
  startup.run(main)
