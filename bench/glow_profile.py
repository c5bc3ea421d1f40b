"""Where an update's time goes: a tf.profiler trace, summed by part of the models.

  python -m bench.glow_profile --config=svhn --batch=16 --steps=3 --set model.flow.coupling=affine
  python -m bench.glow_profile --config=digits --batch=64 --steps=5 --update=fce_ebm

Traces `--steps` updates (the flow's MLE step by default, or FCE's EBM or flow update; made and
compiled as the trainer does, after one untraced call) with
`tf.profiler.experimental`, reads the trace (the XSpace protobuf it writes under --logdir; open
the same folder in TensorBoard's profile tab for the timeline) and sums the duration of every
TensorFlow op by what it belongs to, read from its name scope (`models.bijectors.FlowChain`
names each block's ops) and its type:
  coupling layer 1 / 2 / 3          the coupling networks' three layers (with their fused bias
                                    and ReLU): on images the 3x3 conv C/2 -> W, the 1x1 W -> W
                                    and the 3x3 W -> C (oneDNN fuses the last with the coupling's
                                    add, under the add's name); on vectors three dense layers;
  coupling, elementwise             the rest of the couplings: the halves' slices and concat,
                                    the affine scale and its log-det;
  invertible 1x1 conv               the LU 1x1 convolutions (a matmul over channels at every
                                    position) and their weight's assembly from L, U and s;
  ActNorm                           the per-channel affine normalisations;
  split priors                      the learned priors at the multi-scale exits;
  squeeze, split, concat, reshape   moving data between levels (space-to-depth, the halves that
                                    leave, the latent's concatenation);
  EBM network                       the EBM's network (FCE updates; a frozen flow base of the
                                    EBM counts with the Glow's parts);
  optimizer                         the optimizer's update;
  other                             the loss, dequantization, log-det sums and the rest.
Each part is split into the forward pass and its gradient (ops under `gradient_tape/`). Ops run
on TensorFlow's inter-op threads, two at a time on two cores and each using the intra-op pool,
so the shares are of the summed op time; the wall time per step is printed beside them.
"""

import collections
import glob
import os
import tempfile
import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import configs  # noqa: E402
from bench import common  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402

PARTS = ('coupling layer 1', 'coupling layer 2', 'coupling layer 3', 'coupling, elementwise',
         'invertible 1x1 conv', 'ActNorm', 'split priors', 'squeeze, split, concat, reshape',
         'EBM network', 'optimizer', 'other')
EBM_NETWORKS = ('mlp_energy', 'conv_energy', 'lipswish_energy', 'conv_large', 'conv_small')
UPDATES = {'mle': ('mle', 'flow'), 'fce_ebm': ('fce', 'ebm'), 'fce_flow': ('fce', 'flow')}
MOVES = {'SpaceToDepth', 'DepthToSpace', 'Reshape', 'ConcatV2', 'Split', 'SplitV', 'Slice',
         'StridedSlice', 'Pack', 'Unpack', 'Transpose', 'Identity', 'StridedSliceGrad', 'Fill'}


def define_flags():
  flags.DEFINE_enum('config', 'svhn', configs.CONFIGS, 'Image config to build.')
  flags.DEFINE_integer('batch', 16, 'Batch size.')
  flags.DEFINE_integer('steps', 3, 'Traced steps (after one untraced call that compiles).')
  flags.DEFINE_enum('update', 'mle', list(UPDATES), 'The update to trace.')
  flags.DEFINE_multi_string('set', [], 'Config override key=value.')
  flags.DEFINE_string('logdir', None, 'Where the trace goes (default: a temporary folder).')


def conv_roles(flow):
  """{Keras layer name: part} of the coupling networks' convolutions."""
  roles = {}
  for module in flow.submodules:
    network = getattr(module, 'network', None)
    if network is None or not hasattr(module, 'affine'):  # couplings only, not split priors
      continue
    for layer, role in zip(network.layers, PARTS[:3]):
      roles[layer.name] = role
  return roles


def part_of(name, op_type, roles):
  """The part an op belongs to, from its name scope `name` and type."""
  scopes = name.split('/')
  if scopes[0].startswith('Adam') or op_type.startswith('ResourceApply'):  # Adam, Adamax
    return 'optimizer'
  if any(s in EBM_NETWORKS for s in scopes):
    return 'EBM network'
  for scope in scopes:
    if scope in roles:
      return roles[scope]
  if any(s.endswith('_coupling') for s in scopes):
    # oneDNN fuses the last convolution with the add after it, under the add's name
    return 'coupling layer 3' if 'Conv2D' in op_type else 'coupling, elementwise'
  if any(s.endswith('_invlu') for s in scopes):
    return 'invertible 1x1 conv'
  if any(s.endswith('_actnorm') for s in scopes):
    return 'ActNorm'
  if any(s.endswith('_prior') for s in scopes):
    return 'split priors'
  if op_type in MOVES:
    return 'squeeze, split, concat, reshape'
  return 'other'


def op_seconds(logdir):
  """{(op name, op type): seconds} summed over the trace's TensorFlow ops."""
  path = sorted(glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True))[-1]
  space = xplane_pb2.XSpace()
  with open(path, 'rb') as f:
    space.ParseFromString(f.read())
  seconds = collections.Counter()
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_Compute'):
        continue
      for event in line.events:
        meta = plane.event_metadata[event.metadata_id]
        if ':' in meta.name and '::' not in meta.name:  # 'scope/name:Type', not the executor's
          # own events ('ExecutorState::Process'), which contain the ops
          seconds[tuple(meta.name.rsplit(':', 1))] += event.duration_ps * 1e-12
  return seconds


def breakdown(seconds, roles):
  """{(part, 'forward' | 'gradient'): seconds}."""
  parts = collections.Counter()
  for (name, op_type), s in seconds.items():
    direction = 'gradient' if name.startswith('gradient_tape/') else 'forward'
    parts[part_of(name, op_type, roles), direction] += s
  return parts


def main(_):
  f = flags.FLAGS
  mode, name = UPDATES[f.update]
  config = common.mode_config(f.config, mode, f.set)
  run, _, batch = common.mode_run(config, mode, f.batch)
  step = steps_lib.compile_step(modes.get(mode).make_steps(run)[name])
  tf.nest.map_structure(lambda t: t.numpy(), step(batch))
  logdir = f.logdir or tempfile.mkdtemp(prefix='glow_profile_')
  tf.profiler.experimental.start(logdir)
  start = time.perf_counter()
  for _ in range(f.steps):
    out = step(batch)
  tf.nest.map_structure(lambda t: t.numpy(), out)
  wall = (time.perf_counter() - start) / f.steps
  tf.profiler.experimental.stop()
  parts = breakdown(op_seconds(logdir), conv_roles(run.flow))
  total = sum(parts.values())
  print(f'{f.update} update, config={f.config} {" ".join(f.set)} batch={f.batch}: '
        f'{wall:.3f} s/step wall, '
        f'{total / f.steps:.3f} s/step of summed op time (trace: {logdir})')
  print('| part | forward s/step | gradient s/step | share of op time |')
  print('|---|---|---|---|')
  for part in PARTS:
    fwd, grad = parts[part, 'forward'] / f.steps, parts[part, 'gradient'] / f.steps
    print(f'| {part} | {fwd:.4f} | {grad:.4f} | {(fwd + grad) * f.steps / total:.1%} |')


if __name__ == '__main__':
  define_flags()
  startup.run(main)
