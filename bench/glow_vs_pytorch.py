"""The Glow MLE step against rosinality/glow-pytorch's, in one run, and against the machine's
matmul rate.

  python -m bench.glow_vs_pytorch --torch_python=/path/to/venv/bin/python \
      --glow_pytorch=/path/to/glow-pytorch --batch=16 --pairs=5 --steps=2

The two sides are the same model: 32x32x3 images, L levels of K steps (ActNorm, LU 1x1 conv,
affine coupling with a 3x3-1x1-3x3 network of width W), a learned prior at each split, Adam on
the dequantized 8-bit likelihood (ours: the svhn config with `model.flow.coupling=affine`,
taking `Mode.make_steps`' MLE step as the trainer compiles it). PyTorch runs in a worker
process (bench/torch_glow_worker.py) under `--torch_python`, a Python with torch; this
project's requirements have no torch. The two processes take turns: each pair times `--steps`
steps of ours, then as many of PyTorch's, so load that drifts between pairs cancels in a pair's
ratio. Both use the machine's cores (TensorFlow's and torch's default thread pools).

Also printed:
  * FLOPs per image of one forward (data -> latent) pass, counted two ways: analytically
    (`forward_flops`: 2 x the multiply-adds of every convolution and 1x1 matmul) and by
    TensorFlow's graph profiler (`profiler_forward_flops`: every op with a registered FLOP
    count, elementwise ones included). A training step is taken as 3 forward passes (the
    backward pass computes the gradients of the inputs and of the weights, each as many
    multiply-adds as the forward pass), the usual estimate.
  * The machine's matmul rate: tf.matmul of two --matmul_size square float32 matrices,
    measured before and after the pairs; a step's rate is its FLOPs over its seconds.
"""

import sys
import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402


def define_flags():
  flags.DEFINE_string('torch_python', None, 'A Python with torch (and numpy, scipy).')
  flags.DEFINE_string('glow_pytorch', None, 'A checkout of rosinality/glow-pytorch.')
  flags.DEFINE_integer('batch', 16, 'Batch size.')
  flags.DEFINE_integer('levels', 3, 'L.')
  flags.DEFINE_integer('steps_per_level', 8, 'K.')
  flags.DEFINE_integer('width', 512, 'W, the coupling networks\' width.')
  flags.DEFINE_integer('pairs', 5, 'Alternations (each times both sides).')
  flags.DEFINE_integer('steps', 2, 'Steps per side per pair.')
  flags.DEFINE_integer('matmul_size', 2048, 'Side of the square matmul that rates the machine.')
  flags.mark_flags_as_required(['torch_python', 'glow_pytorch'])


def forward_flops(image_shape, levels, steps_per_level, width, affine=True):
  """FLOPs (2 x multiply-adds) of one forward pass of one image through the Glow's
  convolutions and 1x1 matmuls: per step, the invertible 1x1 conv (C x C) and the coupling's
  3x3 conv (C/2 -> W), 1x1 conv (W -> W) and 3x3 conv (W -> C, or C/2 when additive); per split,
  the prior's 3x3 conv (C/2 -> C). Elementwise ops (ActNorm, the coupling's scale, log-dets)
  are left out: a few FLOPs per element, against thousands of the convolutions."""
  h, w, c = image_shape
  macs = 0
  for level in range(levels):
    h, w, c = h // 2, w // 2, c * 4
    half, out = c // 2, (c if affine else c - c // 2)
    per_position = c * c + 9 * half * width + width * width + 9 * width * out
    macs += steps_per_level * h * w * per_position
    if level < levels - 1:
      macs += h * w * 9 * half * (2 * (c - half))
      c = half
  return 2 * macs


def profiler_forward_flops(flow, image_shape):
  """FLOPs of one image's log q(x), summed by TensorFlow's graph profiler over the ops that
  register a FLOP count."""
  fn = tf.function(flow.log_prob).get_concrete_function(
      tf.TensorSpec([1, *image_shape], tf.float32))
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return tf.compat.v1.profiler.profile(graph=fn.graph, options=options).total_float_ops


def matmul_rate(size, repeats=10):
  """FLOP/s of tf.matmul on two size x size float32 matrices (the best of `repeats`)."""
  a = tf.random.normal([size, size])
  b = tf.random.normal([size, size])
  fn = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  fn().numpy()
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    fn().numpy()
    best = min(best, time.perf_counter() - start)
  return 2. * size ** 3 / best


def torch_worker(python, glow_pytorch, batch, levels, steps_per_level, width):
  """bench/torch_glow_worker.py under `python`; `request(n)[0]` is its seconds per step."""
  return common.Worker(python, 'torch_glow_worker.py',
                       [glow_pytorch, batch, levels, steps_per_level, width],
                       'torch, numpy and scipy, and --glow_pytorch must hold '
                       'rosinality/glow-pytorch\'s model.py')


def main(_):
  f = flags.FLAGS
  sets = ['model.flow.coupling=affine', f'model.flow.levels={f.levels}',
          f'model.flow.steps_per_level={f.steps_per_level}', f'model.flow.width={f.width}']
  config = common.mode_config('svhn', 'mle', sets)
  shape = tuple(config.data.shape)
  run, _, batch = common.mode_run(config, 'mle', f.batch)
  step = steps_lib.compile_step(modes.get('mle').make_steps(run)['flow'])

  ours = lambda n: common.seconds_per_call(step, batch, n)  # noqa: E731
  theirs = lambda n: float(worker.request(n)[0])  # noqa: E731
  flops = forward_flops(shape, f.levels, f.steps_per_level, f.width)
  counted = profiler_forward_flops(run.flow, shape)
  rate_before = matmul_rate(f.matmul_size)
  worker = torch_worker(f.torch_python, f.glow_pytorch, f.batch, f.levels, f.steps_per_level,
                        f.width)
  first = ours(1), theirs(1)  # traces / initialises ActNorm
  times = np.array([(ours(f.steps), theirs(f.steps)) for _ in range(f.pairs)])
  worker.close()
  rate = np.median([rate_before, matmul_rate(f.matmul_size)])
  params = sum(int(np.prod(v.shape)) for v in run.flow.trainable_variables)
  t_ours, t_torch = np.median(times, axis=0)
  step_flops = 3 * flops * f.batch
  print(f'Glow L={f.levels} K={f.steps_per_level} W={f.width} affine, batch {f.batch}, '
        f'{f.pairs} pairs of {f.steps} steps; ours: {params:,} parameters, TensorFlow '
        f'{tf.__version__}; PyTorch worker: {worker.header}')
  print(f'forward FLOPs/image: {flops / 1e9:.3f} G (convolutions and 1x1 matmuls), '
        f'{counted / 1e9:.3f} G (TensorFlow profiler, all ops); step = 3 x forward = '
        f'{step_flops / 1e9:.1f} GFLOP')
  print(f'machine: tf.matmul {f.matmul_size}^2 float32 {rate / 1e9:.1f} GFLOP/s '
        f'(before {rate_before / 1e9:.1f})')
  print(f'first call (traces / ActNorm init): ours {first[0]:.2f} s, PyTorch {first[1]:.2f} s')
  print('| side | s/step (median) | images/s | GFLOP/s | of matmul rate | pairs (s/step) |')
  print('|---|---|---|---|---|---|')
  for name, t, column in (('ours (TensorFlow)', t_ours, 0), ('rosinality/glow-pytorch', t_torch,
                                                              1)):
    runs = ' '.join(f'{s:.3f}' for s in times[:, column])
    print(f'| {name} | {t:.3f} | {f.batch / t:.1f} | {step_flops / t / 1e9:.1f} | '
          f'{step_flops / t / rate:.0%} | {runs} |')
  ratio = np.median(times[:, 1] / times[:, 0])
  print(f'PyTorch / ours, median of pairs: {ratio:.2f}x (target >= 1.5x)')
  sys.stdout.flush()


if __name__ == '__main__':
  define_flags()
  startup.run(main)
