"""Builds a config's flow and EBM and times the MLE step and the FCE steps on CPU.

Prints parameter counts, seconds per step, examples/s, the FCE/MLE cost ratio and peak RSS.
Random uint8 images stand in for the dataset (the cost does not depend on pixel values).

  python -m bench.step_time --config=svhn --batch=2 --steps=3
  python -m bench.step_time --config=cifar10 --batch=2 --steps=2 --jit
  python -m bench.step_time --config=svhn --batch=16 --set model.flow.coupling=affine
  python -m bench.step_time --config=svhn --batch=8 --set fce.flow_passes=one
  python -m bench.step_time --config=celeba64 --batch=2 --steps=2 --mode=nt

With --mode=nt it times NT-EBM's updates instead, with the config's nt settings (its LipSwish
EBM): an nt update (nt.hmc_steps HMC steps of nt.hmc_leapfrog_steps leapfrog steps on the
latent chains, then eq. 6) and an nt_nce update (eq. 10).

Each step is made as the trainer makes it (`Mode.make_steps` on `bench.common.mode_run`, with
the config as `Mode.configure` sets it): the MLE step on the FCE run's flow, the nt_nce update
on the nt run's models.
"""

import resource
import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402

flags.DEFINE_enum('config', 'svhn', configs.CONFIGS, 'Config to build.')
flags.DEFINE_integer('batch', 2, 'Batch size.')
flags.DEFINE_integer('steps', 3, 'Timed steps (after one warm-up step that compiles).')
flags.DEFINE_bool('jit', False, 'Compile the steps with XLA (jit_compile=True).')
flags.DEFINE_enum('mode', 'fce', ['fce', 'nt'], 'fce: the MLE and FCE updates; nt: the nt and '
                  'nt_nce updates of NT-EBM.')
flags.DEFINE_multi_string('set', [], 'Config override key=value, e.g. model.flow.coupling=affine.')
FLAGS = flags.FLAGS


def _count(variables):
  return int(sum(np.prod(v.shape) for v in variables))


def _peak_gib():
  """The process's peak resident memory so far (ru_maxrss, KiB on Linux)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _time(fn, args, steps):
  fn(*args)  # trace / compile
  start = time.perf_counter()
  for _ in range(steps):
    out = fn(*args)
  tf.nest.map_structure(lambda t: t.numpy(), out)
  return (time.perf_counter() - start) / steps


def main(_):
  config = common.mode_config(FLAGS.config, FLAGS.mode, FLAGS.set)
  if config.train.deterministic:  # as the trainer does (--set train.deterministic=True)
    tf.random.set_seed(config.train.seed)  # determinism refuses unseeded random ops
    tf.config.experimental.enable_op_determinism()
  run, _, batch = common.mode_run(config, FLAGS.mode, FLAGS.batch)
  flow, ebm = run.flow, run.ebm
  compile_ = lambda fn: steps_lib.compile_step(fn, jit_compile=FLAGS.jit)
  if FLAGS.mode == 'nt':
    return _time_nt(run, batch, compile_)
  mle = compile_(modes.get('mle').make_steps(run)['flow'])
  fce = modes.get('fce').make_steps(run)
  ebm_step, flow_step = compile_(fce['ebm']), compile_(fce['flow'])
  two_pass = steps_lib.flow_two_pass(config.fce.flow_passes, config.model.flow,
                                     config.data.shape, FLAGS.batch)
  # The peak is a running maximum, so each step's column is the peak up to and including it:
  # the MLE step's own, then the larger of it and the next kind's.
  t_mle, peak_mle = _time(mle, (batch,), FLAGS.steps), _peak_gib()
  t_ebm, peak_ebm = _time(ebm_step, (batch,), FLAGS.steps), _peak_gib()
  t_flow, peak_gib = _time(flow_step, (batch,), FLAGS.steps), _peak_gib()
  print(f'config={FLAGS.config} {" ".join(FLAGS.set)} batch={FLAGS.batch} jit={FLAGS.jit} '
        f'flow step in {"two passes" if two_pass else "one pass"}')
  print(f'flow params {_count(flow.trainable_variables):,}  '
        f'EBM params {_count(ebm.trainable_variables):,}')
  for name, t, peak in (('mle step', t_mle, peak_mle), ('fce ebm step', t_ebm, peak_ebm),
                        ('fce flow step', t_flow, peak_gib)):
    print(f'{name:14s} {t:8.3f} s/step  {FLAGS.batch / t:8.1f} examples/s  '
          f'peak RSS so far {peak:.2f} GiB')
  # One FCE iteration is one EBM or one flow update; their mean cost against an MLE step.
  print(f'fce/mle cost ratio {(t_ebm + t_flow) / 2 / t_mle:.2f}  peak RSS {peak_gib:.2f} GiB')


def _time_nt(run, batch, compile_):
  config, flow, ebm, t = run.config, run.flow, run.ebm, run.config.nt
  nt = compile_(modes.get('nt').make_steps(run)['ebm'])
  nce = compile_(modes.get('nt_nce').make_steps(run)['ebm'])
  t_nt = _time(nt, (batch,), FLAGS.steps)
  t_nce = _time(nce, (batch,), FLAGS.steps)
  peak_gib = _peak_gib()
  print(f'config={FLAGS.config} mode=nt {" ".join(FLAGS.set)} batch={FLAGS.batch} '
        f'jit={FLAGS.jit} ebm={config.model.ebm.arch}')
  print(f'flow params {_count(flow.trainable_variables):,}  '
        f'EBM params {_count(ebm.trainable_variables):,}')
  print(f'nt step ({t.hmc_steps} HMC x {t.hmc_leapfrog_steps} leapfrog) {t_nt:8.3f} s/step  '
        f'{FLAGS.batch / t_nt:8.2f} examples/s')
  print(f'nt_nce step {t_nce:8.3f} s/step  {FLAGS.batch / t_nce:8.1f} examples/s  '
        f'peak RSS {peak_gib:.2f} GiB')


if __name__ == '__main__':
  startup.run(main)
