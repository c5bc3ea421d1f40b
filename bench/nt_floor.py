"""How close an nt update comes to its floor: the gradients its HMC cannot avoid.

  python -m bench.nt_floor --config=digits --batch=64 --steps=5
  python -m bench.nt_floor --config=svhn --batch=2 --steps=3 --set nt.hmc_steps=2
  python -m bench.nt_floor --config=digits --jit

An nt update (NT-EBM Alg. 1, `train.steps.make_nt_step`) runs nt.hmc_steps HMC steps of
nt.hmc_leapfrog_steps leapfrog steps on the persistent latent chains, then eq. 6. Each leapfrog
step takes one value-and-gradient of the latent target log p(z) = f(g(z)) + log N(z; 0, I)
(eq. 9) w.r.t. z, and each HMC step one more to start (tfp's bootstrap), so its floor is

  floor = hmc_steps x (leapfrog_steps + 1) x (one value-and-gradient at the chains' batch).

tfp's kernel in fact reuses the gradient of the state it accepted (or kept) to start the next
step, so it takes hmc_steps x leapfrog_steps + 1 of them: the last line prints the update
against that count too.

In one process, alternating, `--steps` times: (a) one nt update, compiled as the trainer compiles
it (`steps.compile_step`, with XLA under --jit), and (b) that many calls of one tf.function'd
value-and-gradient of `transport.latent_log_prob(correction, flow)` at the chains' batch (XLA
under --jit too). Prints the medians of both and their ratio. The config's nt models have random
weights (ActNorms initialised on stand-in data, as bench/step_time.py).
"""

import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from configs import overrides  # noqa: E402
from models import transport  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402

flags.DEFINE_enum('config', 'digits', configs.CONFIGS, 'Config to build (its nt settings).')
flags.DEFINE_integer('batch', 64, 'Chains (= batch size) of the update.')
flags.DEFINE_integer('steps', 5, 'Timed repetitions of each side (after one that compiles).')
flags.DEFINE_bool('jit', False, 'Compile the update and the gradient with XLA.')
flags.DEFINE_multi_string('set', [], 'Config override key=value, e.g. nt.hmc_steps=2.')
FLAGS = flags.FLAGS


def _seconds(fn):
  start = time.perf_counter()
  out = fn()
  tf.nest.map_structure(lambda t: t.numpy(), out)
  return time.perf_counter() - start


def main(_):
  config = configs.get_config(FLAGS.config, mode='nt')
  config = modes.get('nt').configure(config, init_flow='backbone')  # as the trainer builds nt
  overrides.apply(config, FLAGS.set)
  t = config.nt
  flow, ebm, batch = common.models_and_batch(config, FLAGS.batch)
  optimizer = steps_lib.make_optimizers(config.optim)['ebm']
  optimizer.build(ebm.trainable_variables)  # as the trainer does
  chains, step_size = tf.Variable(batch['z']), tf.Variable(t.hmc_step_size)
  count = tf.Variable(0)  # a new HMC seed per update, as the trainer's step counter gives
  seed = lambda: tf.stack([tf.constant(config.train.seed), count.read_value()])
  update = steps_lib.compile_step(
      steps_lib.make_nt_step(ebm, flow, optimizer, chains, step_size, seed, t.hmc_steps,
                             t.hmc_leapfrog_steps, t.hmc_target_accept > 0,
                             t.hmc_target_accept or 0.5, FLAGS.batch), jit_compile=FLAGS.jit)
  target = transport.latent_log_prob(ebm, flow)
  gradient = tf.function(lambda z: tfp.math.value_and_gradient(target, z),
                         jit_compile=FLAGS.jit)
  per_update = t.hmc_steps * (t.hmc_leapfrog_steps + 1)

  def nt_update():
    count.assign_add(1)
    return update(batch)

  def floor():
    z = chains.read_value()
    return [gradient(z) for _ in range(per_update)]

  compile_nt, compile_floor = _seconds(nt_update), _seconds(floor)
  times = {'nt': [], 'floor': []}
  for _ in range(FLAGS.steps):
    times['nt'].append(_seconds(nt_update))
    times['floor'].append(_seconds(floor))
  nt, fl = (float(np.median(times[k])) for k in ('nt', 'floor'))
  ratios = np.array(times['nt']) / np.array(times['floor'])
  print(f'config={FLAGS.config} {" ".join(FLAGS.set)} chains={FLAGS.batch} jit={FLAGS.jit} '
        f'hmc_steps={t.hmc_steps} leapfrog={t.hmc_leapfrog_steps} ebm={config.model.ebm.arch}')
  print(f'first calls (compile): nt update {compile_nt:.2f} s, floor {compile_floor:.2f} s')
  print(f'nt update {nt:.3f} s (runs {" ".join(f"{s:.3f}" for s in times["nt"])})')
  print(f'floor     {fl:.3f} s = {per_update} x {fl / per_update * 1e3:.2f} ms value-and-gradient '
        f'(runs {" ".join(f"{s:.3f}" for s in times["floor"])})')
  print(f'nt / floor {nt / fl:.3f} (median of ratios of pairs {np.median(ratios):.3f})')
  # tfp's HMC reuses the gradient at the accepted state: it takes hmc_steps x leapfrog + 1.
  taken = t.hmc_steps * t.hmc_leapfrog_steps + 1
  print(f'nt / (the {taken} value-and-gradients tfp takes) '
        f'{np.median(ratios) * per_update / taken:.3f}', flush=True)


if __name__ == '__main__':
  startup.run(main)
