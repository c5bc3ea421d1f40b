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
                log p(z) (eq. 9) at the chains' batch, with the config's nt settings.
Steps are compiled as the trainer compiles them (`steps_lib.compile_step`), with the config's
FCE settings; random data stand in for the dataset, as in bench/step_time.py. Each repetition
times every function in turn (`--steps` calls each, after one untimed call that traces it): the
seconds are medians over repetitions, a ratio the median of the repetitions' ratios, so load
that shifts between repetitions cancels.
"""

import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from configs import overrides  # noqa: E402
from models import noise as noise_lib  # noqa: E402
from models import transport  # noqa: E402
from train import steps as steps_lib  # noqa: E402

# (row, cost, floor, target): the table's rows in order.
ROWS = (
    ('fce flow', 'FCE flow update', 'flow MLE update', '<= 1.5'),
    ('fce ebm', 'FCE EBM update', 'flow forward + inverse, EBM at both (no gradient)', 'report'),
    ('2d fce', 'toy2d FCE iteration (mean of EBM and flow update)', 'toy2d flow MLE update',
     'report'),
    ('nt', 'nt update', 'K (L + 1) value-and-gradients of log p(z) (eq. 9)', '<= 1.3'),
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


def _config(name, sets, mode=None):
  config = configs.get_config(name, mode=mode)
  overrides.apply(config, sets)
  return config


def _fce_steps(config, flow, ebm, batch, optimizers):
  """The FCE EBM and flow updates with the config's FCE terms, as `train.modes` builds them."""
  f = config.fce
  aux_noise = None
  if f.ebm_aux_nce_weight:  # the trainer's Gaussian (its first batch's mean and std)
    x = batch['x'].numpy()
    aux_noise = noise_lib.GaussianNoise(x.shape[1:], x.mean(0),
                                        config.nce.noise_std * x.std(0) + 1e-3)
  two_pass = steps_lib.flow_two_pass(f.flow_passes, config.model.flow, config.data.shape,
                                     batch['x'].shape[0])
  return steps_lib.make_fce_steps(ebm, flow, optimizers['ebm'], optimizers['flow'],
                                  flow_mle_weight=f.flow_mle_weight, ebm_f_penalty=f.ebm_f_penalty,
                                  aux_noise=aux_noise, aux_weight=f.ebm_aux_nce_weight,
                                  two_pass=two_pass)


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


def _image_functions(config, batch_size, compile_):
  """{name: (compiled function, its batch)} of the image rows."""
  flow, ebm, batch = common.models_and_batch(config, batch_size)
  optimizers = steps_lib.make_optimizers(config.optim)
  ebm_step, flow_step = _fce_steps(config, flow, ebm, batch, optimizers)
  mle = steps_lib.make_mle_step(flow, optimizers['flow_mle'], config.data.num_bins)
  return {'fce flow': (compile_(flow_step), batch), 'mle': (compile_(mle), batch),
          'fce ebm': (compile_(ebm_step), batch), 'forward': (compile_(_forward(flow, ebm)), batch)}


def _toy2d_functions(sets, batch_size, compile_):
  config = _config('toy2d', sets)
  flow, ebm, batch = common.models_and_batch(config, batch_size or config.train.batch_size)
  optimizers = steps_lib.make_optimizers(config.optim)
  ebm_step, flow_step = _fce_steps(config, flow, ebm, batch, optimizers)
  mle = steps_lib.make_mle_step(flow, optimizers['flow_mle'], config.data.num_bins)
  return {'2d ebm': (compile_(ebm_step), batch), '2d flow': (compile_(flow_step), batch),
          '2d mle': (compile_(mle), batch)}


def _nt_functions(config, batch_size, compile_):
  """The nt update as bench/step_time.py --mode=nt builds it, and its floor."""
  flow, ebm, batch = common.models_and_batch(config, batch_size)
  t = config.nt
  optimizer = steps_lib.make_optimizers(config.optim)['ebm']
  optimizer.build(ebm.trainable_variables)
  chains, step_size = tf.Variable(batch['z']), tf.Variable(t.hmc_step_size)
  nt = steps_lib.make_nt_step(ebm, flow, optimizer, chains, step_size,
                              lambda: tf.constant([0, 1]), t.hmc_steps, t.hmc_leapfrog_steps)
  return {'nt': (compile_(nt), batch),
          'nt grad': (compile_(_value_and_gradient(ebm, flow)), batch)}


def _time(functions, reps, steps):
  """{name: [seconds per call, one per repetition]}, the functions timed in turn."""
  for fn, batch in functions.values():
    fn(batch)  # trace
  seconds = {name: [] for name in functions}
  for _ in range(reps):
    for name, (fn, batch) in functions.items():
      start = time.perf_counter()
      for _ in range(steps):
        out = fn(batch)
      tf.nest.map_structure(lambda t: t.numpy(), out)
      seconds[name].append((time.perf_counter() - start) / steps)
  return {name: np.array(s) for name, s in seconds.items()}


def measure(config_name='digits', batch=64, reps=5, steps=3, jit=False, sets=(), batch_2d=0,
            sets_2d=()):
  """Returns [(row, cost, floor, cost seconds, floor seconds, ratio, target)] in ROWS' order."""
  compile_ = lambda fn: steps_lib.compile_step(fn, jit_compile=jit)
  config = _config(config_name, sets)
  nt_config = _config(config_name, sets, mode='nt')
  functions = {**_image_functions(config, batch, compile_),
               **_toy2d_functions(sets_2d, batch_2d, compile_),
               **_nt_functions(nt_config, batch, compile_)}
  s = _time(functions, reps, steps)
  t = nt_config.nt
  pairs = {'fce flow': (s['fce flow'], s['mle']), 'fce ebm': (s['fce ebm'], s['forward']),
           '2d fce': ((s['2d ebm'] + s['2d flow']) / 2, s['2d mle']),
           'nt': (s['nt'], t.hmc_steps * (t.hmc_leapfrog_steps + 1) * s['nt grad'])}
  return [(row, cost, floor, float(np.median(pairs[row][0])), float(np.median(pairs[row][1])),
           float(np.median(pairs[row][0] / pairs[row][1])), target)
          for row, cost, floor, target in ROWS]


def table(rows):
  """The rows of `measure` as a markdown table."""
  lines = ['| cost | seconds | floor | floor seconds | ratio | target |',
           '|---|---|---|---|---|---|']
  lines += [f'| {cost} | {seconds:.4f} | {floor} | {floor_seconds:.4f} | {ratio:.2f} | {target} |'
            for _, cost, floor, seconds, floor_seconds, ratio, target in rows]
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
