"""Each update's cost as a ratio to its floor, timed side by side in one process.

  python -m bench.ratios                                  # digits at batch 64
  python -m bench.ratios --config=svhn --batch=2 --reps=3 --steps=2

Prints a markdown table, one row per cost:
  fce flow      the FCE flow update (descend V, FCE eq. 12) over an MLE update of the flow: both
                differentiate the flow, the former through two passes (log q of the data, g(z)
                of the samples) and the EBM;
  fce ebm       the FCE EBM update over its forward passes alone (the flow's samples and their
                log q, log q of the data, the EBM at both), no gradient;
  2d fce        one FCE iteration on the toy2d config (the mean of an EBM and a flow update, as
                they alternate) over an MLE update, at toy2d's batch (--batch_2d);
  nt            an nt update (NT-EBM Algorithm 1: K HMC steps of L leapfrog steps on the latent
                chains, then eq. 6) over K (L + 1) value-and-gradients in z of the latent target
                log p(z) (eq. 9) at the chains' batch, with the config's nt settings;
  nt, tfp count the same update over K L + 1 of them: tfp's HMC reuses the gradient of the
                state it kept to start the next step, so that is what it takes.
Every update is made as the trainer makes it (`Mode.make_steps` on `bench.common.mode_run`,
the config as `Mode.configure` sets it for the mode) and compiled as the trainer compiles it
(`steps_lib.compile_step`); random data stand in for the dataset, as in bench/step_time.py.
Each repetition times every function in turn (`--steps` calls each, after one call that traces
it, whose seconds are the table's first-call column): the seconds are medians over repetitions, a
ratio the median of the repetitions' ratios, so load that shifts between repetitions cancels.
"""

import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from models import transport  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402

# (row, cost, floor, target): the table's rows in order.
ROWS = (
    ('fce flow', 'FCE flow update', 'flow MLE update', '<= 1.5'),
    ('fce ebm', 'FCE EBM update', 'flow forward + inverse, EBM at both (no gradient)', 'report'),
    ('2d fce', 'toy2d FCE iteration (mean of EBM and flow update)', 'toy2d flow MLE update',
     'report'),
    ('nt', 'nt update', 'K (L + 1) value-and-gradients of log p(z) (eq. 9)', '<= 1.3'),
    ('nt, tfp count', 'nt update', 'K L + 1 value-and-gradients of log p(z) (what tfp takes)',
     'report'),
)


def define_flags():
  flags.DEFINE_enum('config', 'digits', configs.CONFIGS, 'Image config to build.')
  flags.DEFINE_integer('batch', 64, 'Batch size of the image updates and nt chains.')
  flags.DEFINE_integer('batch_2d', 0, 'Batch size of the toy2d updates (0 = toy2d\'s own).')
  flags.DEFINE_integer('reps', 5, 'Repetitions (each times every function in turn).')
  flags.DEFINE_integer('steps', 2, 'Timed calls of each function per repetition.')
  flags.DEFINE_bool('jit', False, 'Compile the steps with XLA (jit_compile=True).')
  flags.DEFINE_multi_string('set', [], 'Override of the image config (and of its nt config), '
                            'key=value, e.g. nt.hmc_steps=5.')
  flags.DEFINE_multi_string('set_2d', [], 'Override of the toy2d config, key=value.')


def _forward(flow, ebm):
  """The EBM update's floor: its forward passes (FCE eq. 12's four log-densities)."""
  def fn(batch):
    samples, logq_samples = flow.generate(batch['z'])
    terms = (flow.log_prob(batch['x']), logq_samples, ebm.marginal_log_prob(batch['x']),
             ebm.marginal_log_prob(samples))
    return {'sum': tf.add_n([tf.reduce_sum(t) for t in terms])}
  return fn


def _value_and_gradient(correction, flow):
  """One value and gradient in z of the nt chains' target, log p(z) (NT-EBM eq. 9)."""
  target = transport.latent_log_prob(correction, flow)

  def fn(batch):
    z = batch['z']
    with tf.GradientTape() as tape:
      tape.watch(z)
      log_p = target(z)
    grad = tape.gradient(log_p, z)
    return {'value': tf.reduce_sum(tf.where(tf.math.is_finite(log_p), log_p, 0.)),
            'grad': tf.reduce_sum(grad)}
  return fn


def _image_functions(config_name, sets, batch_size, compile_):
  """{name: (compiled function, its batch)} of the image rows: FCE's updates, MLE's on the same
  flow, and the forward passes of both models."""
  run, _, batch = common.mode_run(common.mode_config(config_name, 'fce', sets), 'fce',
                                  batch_size)
  fce, mle = modes.get('fce').make_steps(run), modes.get('mle').make_steps(run)
  return {'fce flow': (compile_(fce['flow']), batch), 'mle': (compile_(mle['flow']), batch),
          'fce ebm': (compile_(fce['ebm']), batch),
          'forward': (compile_(_forward(run.flow, run.ebm)), batch)}


def _toy2d_functions(sets, batch_size, compile_):
  config = common.mode_config('toy2d', 'fce', sets)
  run, _, batch = common.mode_run(config, 'fce', batch_size or config.train.batch_size)
  fce, mle = modes.get('fce').make_steps(run), modes.get('mle').make_steps(run)
  return {'2d ebm': (compile_(fce['ebm']), batch), '2d flow': (compile_(fce['flow']), batch),
          '2d mle': (compile_(mle['flow']), batch)}


def _nt_functions(config, batch_size, compile_):
  """The nt update and one value-and-gradient of its floor."""
  run, _, batch = common.mode_run(config, 'nt', batch_size)
  return {'nt': (compile_(modes.get('nt').make_steps(run)['ebm']), batch),
          'nt grad': (compile_(_value_and_gradient(run.ebm, run.flow)), batch)}


def _time(functions, reps, steps):
  """({name: [seconds per call, one per repetition]}, {name: seconds of the first call, which
  traces}), the functions timed in turn."""
  first = {}
  for name, (fn, batch) in functions.items():
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), fn(batch))
    first[name] = time.perf_counter() - start
  seconds = {name: [] for name in functions}
  for _ in range(reps):
    for name, (fn, batch) in functions.items():
      start = time.perf_counter()
      for _ in range(steps):
        out = fn(batch)
      tf.nest.map_structure(lambda t: t.numpy(), out)
      seconds[name].append((time.perf_counter() - start) / steps)
  return {name: np.array(s) for name, s in seconds.items()}, first


def measure(config_name='digits', batch=64, reps=5, steps=3, jit=False, sets=(), batch_2d=0,
            sets_2d=()):
  """Returns [(row, cost, floor, cost seconds, floor seconds, ratio, target, first-call (tracing)
  seconds of cost and floor)] in ROWS' order."""
  compile_ = lambda fn: steps_lib.compile_step(fn, jit_compile=jit)
  nt_config = common.mode_config(config_name, 'nt', sets)
  functions = {**_image_functions(config_name, sets, batch, compile_),
               **_toy2d_functions(sets_2d, batch_2d, compile_),
               **_nt_functions(nt_config, batch, compile_)}
  s, first = _time(functions, reps, steps)
  k, l = nt_config.nt.hmc_steps, nt_config.nt.hmc_leapfrog_steps
  pairs = {'fce flow': ('fce flow', 'mle', 1), 'fce ebm': ('fce ebm', 'forward', 1),
           '2d fce': (('2d ebm', '2d flow'), '2d mle', 1), 'nt': ('nt', 'nt grad', k * (l + 1)),
           'nt, tfp count': ('nt', 'nt grad', k * l + 1)}
  rows = []
  for row, cost, floor, target in ROWS:
    cost_names, floor_name, count = pairs[row]
    cost_names = (cost_names,) if isinstance(cost_names, str) else cost_names
    cost_s = sum(s[n] for n in cost_names) / len(cost_names)
    floor_s = count * s[floor_name]
    rows.append((row, cost, floor, float(np.median(cost_s)), float(np.median(floor_s)),
                 float(np.median(cost_s / floor_s)), target,
                 sum(first[n] for n in cost_names), first[floor_name]))
  return rows


def table(rows):
  """The rows of `measure` as a markdown table."""
  lines = ['| cost | seconds | floor | floor seconds | ratio | target | first call (traces) s: '
           'cost / floor |', '|---|---|---|---|---|---|---|']
  lines += [f'| {cost} | {seconds:.4f} | {floor} | {floor_seconds:.4f} | {ratio:.2f} | {target} '
            f'| {first_cost:.1f} / {first_floor:.1f} |'
            for _, cost, floor, seconds, floor_seconds, ratio, target, first_cost, first_floor
            in rows]
  return '\n'.join(lines)


def main(_):
  f = flags.FLAGS
  rows = measure(f.config, f.batch, f.reps, f.steps, f.jit, f.set, f.batch_2d, f.set_2d)
  print(f'config={f.config} {" ".join(f.set)} batch={f.batch} toy2d {" ".join(f.set_2d)} '
        f'batch_2d={f.batch_2d or "default"} jit={f.jit} reps={f.reps} steps={f.steps}')
  print(table(rows))


if __name__ == '__main__':
  define_flags()
  startup.run(main)
