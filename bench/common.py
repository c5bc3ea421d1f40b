"""What the benchmark scripts share. Import it after `startup.quiet()`: it imports TensorFlow."""

import os
import subprocess
import time
import types

import numpy as np
import tensorflow as tf

import configs
from losses import flow as flow_losses
from models import build


def models_and_batch(config, batch_size):
  """The config's flow and EBM, and a batch {'x', 'z'} of random stand-in data (dequantized
  uint8 images, or Gaussian vectors) on which the flow's ActNorms are initialised."""
  shape = tuple(config.data.shape)
  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes, config.model.flow)
  x = stand_in_data(config, batch_size)
  flow.data_init(x)
  return flow, ebm, {'x': x, 'z': flow.sample_latent(batch_size)}


def seconds_per_call(fn, batch, calls=1):
  """Wall seconds per call of `fn(batch)` over `calls` calls, its outputs fetched at the end."""
  start = time.perf_counter()
  for _ in range(calls):
    out = fn(batch)
  tf.nest.map_structure(lambda t: t.numpy(), out)
  return (time.perf_counter() - start) / calls


class Worker:
  """A peer's benchmark (bench/torch_*_worker.py) in its own process, under another Python.

  The worker prints one line starting 'ready' (its versions), then answers each number N on
  its stdin with one line of numbers about N more of its steps.
  """

  def __init__(self, python, script, args, needs):
    command = [python, os.path.join(os.path.dirname(__file__), script), *map(str, args)]
    self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
    self.header = self.process.stdout.readline().strip()
    if not self.header.startswith('ready'):
      raise SystemExit(f'The PyTorch worker did not start ({" ".join(command)}): see its error '
                       f'above. It needs {needs}.')

  def request(self, n):
    """The worker's line of numbers (as strings) after N more steps."""
    self.process.stdin.write(f'{n}\n')
    self.process.stdin.flush()
    return self.process.stdout.readline().split()

  def close(self):
    self.process.stdin.close()
    self.process.wait()


def stand_in_data(config, batch_size, seed=0):
  """Dequantized random uint8 images, or Gaussian vectors, of the config's shape."""
  shape, rng = tuple(config.data.shape), np.random.default_rng(seed)
  if config.data.num_bins:
    ints = rng.integers(0, config.data.num_bins, (batch_size, *shape))
    return tf.constant(flow_losses.dequantize(ints, config.data.num_bins, rng.random(ints.shape)))
  return tf.constant(rng.standard_normal((batch_size, *shape)).astype(np.float32))


def mode_config(name, mode, sets=()):
  """Config `name` as the trainer configures it for `mode` (`Mode.configure`; the tilt modes
  with a flow of --init_flow), with the overrides `sets` (key=value) applied last."""
  from configs import overrides  # pylint: disable=g-import-not-at-top
  from train import modes  # pylint: disable=g-import-not-at-top
  spec = modes.get(mode)
  config = spec.configure(configs.get_config(name, mode=mode),
                          init_flow='backbone' if spec.tilt else None)
  overrides.apply(config, sets)
  return config


def mode_run(config, mode, batch_size, like=None):
  """What a mode's steps read of a Trainer (`Mode.make_steps`), built as the trainer builds it:
  the config's models, the optimizers (built), the mode's extra variables (nt's chains start from
  N(0, I)), with every variable set to `like`'s values if given. `config` is the mode's
  (`mode_config`). Steps of other modes can be made from the same run (`modes.get(m)
  .make_steps(run)`): every optimizer exists.

  Returns:
    (run, the variables in a fixed order, a batch {'x', 'z', 'x_labeled', 'y_labeled'} of
    stand-in data for them, other than the data the ActNorms were initialised on: there the
    gradients of their biases are rounding noise, which Adam's first step scales up to lr).
  """
  from train import modes  # pylint: disable=g-import-not-at-top
  from train import steps as steps_lib  # pylint: disable=g-import-not-at-top
  from models import noise as noise_lib  # pylint: disable=g-import-not-at-top
  spec, shape = modes.get(mode), tuple(config.data.shape)
  flow, ebm, _ = models_and_batch(config, batch_size)
  optimizers = steps_lib.make_optimizers(config.optim)
  for name, model in (('ebm', ebm), ('flow', flow), ('flow_mle', flow)):
    optimizers[name].build(model.trainable_variables)
  state = types.SimpleNamespace(extras=spec.extra_variables(
      config, batch_size, flow.latent_dim, lambda: (0, False)))
  run = types.SimpleNamespace(
      config=config, flow=flow, ebm=ebm, optimizers=optimizers, state=state, nu=1,
      global_batch=batch_size, labeled_batch=batch_size, step=tf.Variable(3, dtype=tf.int64),
      strategy=tf.distribute.get_strategy())
  x = stand_in_data(config, batch_size, seed=1)
  run.gaussian_noise = lambda: noise_lib.GaussianNoise(
      shape, np.mean(x, 0), config.nce.noise_std * np.std(x, 0) + 1e-3)
  run.noise = spec.make_noise(config, flow, run.gaussian_noise)
  if 'chains' in state.extras:
    state.extras['chains'].assign(tf.random.stateless_normal([batch_size, flow.latent_dim],
                                                             [0, 9]))
  variables = [*flow.variables, *ebm.variables, *state.extras.values(),
               *(v for o in optimizers.values() for v in o.variables)]
  if like is not None:
    for v, value in zip(variables, like, strict=True):
      v.assign(value)
  latent = run.noise.latent_dim if run.noise is not None else flow.latent_dim
  batch = {'x': x, 'z': tf.random.stateless_normal([batch_size, latent], [1, 2]),
           'x_labeled': stand_in_data(config, batch_size, seed=2),
           'y_labeled': tf.range(batch_size) % max(config.data.num_classes, 1)}
  return run, variables, batch


def mode_steps(config, mode, batch_size, like=None):
  """A mode's steps as the trainer makes them, on a `mode_run`.

  Returns:
    ({update name: per-replica step}, the run's variables in a fixed order, its batch).
  """
  from train import modes  # pylint: disable=g-import-not-at-top
  run, variables, batch = mode_run(config, mode, batch_size, like)
  return modes.get(mode).make_steps(run), variables, batch
