"""What neural-transport sampling costs per batch, as the FID of an nt / nt_nce run draws it.

  python -m bench.nt_sampling --config=digits --chains=32 --hmc_steps=20 --batches=4

The config's Glow and EBM (random weights, ActNorms initialised on stand-in data) as the backbone
and correction. `--batches` batches of `--chains` latent chains, `--hmc_steps` HMC steps each (the
first half adapts the step size), drawn two ways:
  reused   one models.transport.NeuralTransport for every batch (what eval/image_eval.py does):
           its HMC program is traced on the first batch only;
  fresh    a new sampler per batch (what it did before): every batch is traced again.
Prints the seconds of each batch, then the mean after the first.
"""

import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from configs import overrides  # noqa: E402
from models import transport  # noqa: E402

flags.DEFINE_enum('config', 'digits', configs.CONFIGS, 'Config to build.')
flags.DEFINE_integer('chains', 32, 'Latent chains per batch.')
flags.DEFINE_integer('hmc_steps', 20, 'HMC steps per chain.')
flags.DEFINE_integer('batches', 4, 'Batches drawn each way.')
flags.DEFINE_multi_string('set', [], 'Config override key=value.')
FLAGS = flags.FLAGS


def main(_):
  config = configs.get_config(FLAGS.config)
  overrides.apply(config, FLAGS.set)
  flow, ebm, _ = common.models_and_batch(config, FLAGS.chains)
  leapfrog = config.nt.hmc_leapfrog_steps
  reused = transport.NeuralTransport(ebm, flow, leapfrog)
  ways = {'reused': lambda seed: reused.sample(FLAGS.chains, FLAGS.hmc_steps, 0.1, seed),
          'fresh': lambda seed: transport.sample(ebm, flow, FLAGS.chains, FLAGS.hmc_steps, 0.1,
                                                 seed, leapfrog_steps=leapfrog)}
  for name, draw in ways.items():
    seconds = []
    for seed in range(FLAGS.batches):
      start = time.perf_counter()
      draw(seed)[0].numpy()
      seconds.append(time.perf_counter() - start)
    later = np.mean(seconds[1:]) if len(seconds) > 1 else float('nan')
    print(f'{FLAGS.config} {name:6s}: batches {" ".join(f"{s:.1f}" for s in seconds)} s; '
          f'mean after the first {later:.1f} s', flush=True)


if __name__ == '__main__':
  startup.run(main)
