"""What XLA (train.jit_compile=True) saves on CPU, for every step of every mode.

  python -m bench.jit_speedup --config=smoke --batch=8 --steps=7
  python -m bench.jit_speedup --config=digits --batch=64 --modes=nt --steps=3

For each mode, two copies of its models (the same weights, `common.mode_steps`) take each of its
steps as the trainer compiles them (`steps.compile_step`), one plain and one with jit_compile,
alternating, `--steps` times after a first call each that compiles. ssl runs with VAT
(ssl.vat_weight=1 unless --set gives it). Prints, per step, the compile (first call) seconds,
the medians of both and the median of the plain / XLA ratios of the pairs.
"""

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402

flags.DEFINE_enum('config', 'smoke', configs.CONFIGS, 'Config to build.')
flags.DEFINE_integer('batch', 8, 'Batch size.')
flags.DEFINE_integer('steps', 7, 'Timed pairs per step (after one call each that compiles).')
flags.DEFINE_list('modes', list(modes.NAMES), 'Modes to time.')
flags.DEFINE_multi_string('set', [], 'Config override key=value, e.g. nt.hmc_steps=2.')
FLAGS = flags.FLAGS


def main(_):
  print(f'config={FLAGS.config} {" ".join(FLAGS.set)} batch={FLAGS.batch} pairs={FLAGS.steps}')
  print(f'{"mode":7s} {"step":5s} {"compile s":>16s} {"plain s":>8s} {"xla s":>8s} '
        f'{"plain/xla":>9s}', flush=True)
  for mode in FLAGS.modes:
    config = common.mode_config(FLAGS.config, mode, ['ssl.vat_weight=1.', *FLAGS.set])
    plain, variables, batch = common.mode_steps(config, mode, FLAGS.batch)
    xla, _, _ = common.mode_steps(config, mode, FLAGS.batch, like=variables)
    for name in plain:
      fns = [steps_lib.compile_step(s[name], jit_compile=j) for s, j in ((plain, False),
                                                                          (xla, True))]
      first = [common.seconds_per_call(fn, batch) for fn in fns]
      times = np.array([[common.seconds_per_call(fn, batch) for fn in fns]
                        for _ in range(FLAGS.steps)])
      ratio = np.median(times[:, 0] / times[:, 1])
      print(f'{mode:7s} {name:5s} {first[0]:7.1f} {first[1]:8.1f} '
            f'{np.median(times[:, 0]):8.4f} {np.median(times[:, 1]):8.4f} {ratio:9.2f}',
            flush=True)


if __name__ == '__main__':
  startup.run(main)
