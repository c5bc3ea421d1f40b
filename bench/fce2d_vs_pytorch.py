"""The 2D FCE step against lifeitech/fce-2d's loop, in one run, with and without XLA, and how
much of it is TensorFlow's per-call overhead.

  python -m bench.fce2d_vs_pytorch --torch_python=/path/to/venv/bin/python \
      --fce_2d=/path/to/fce-2d --pairs=5 --steps=20

Ours: the toy2d config's FCE EBM and flow updates, made and compiled as the trainer does
(`Mode.make_steps`, `steps.compile_step`), at toy2d's batch of 1000, in two settings:
  defaults      toy2d as a user gets it: EBM fc256 x3, Glow K=10 W=128, the auxiliary NCE term
                and the flow's MLE term (configs/toy2d.py);
  their models  fce-2d's widths and objective: EBM of width 128, Glow K=10 W=64, V alone (our
                EBM keeps FCE Table 5's three hidden layers; theirs has two).
each plain (tf.function) and with XLA (jit_compile). Theirs (bench/torch_fce2d_worker.py, under
`--torch_python`): their train.py's iteration, batch from their DataLoader, and again with the
batch indexed from the data tensor. Each pair times `--steps` calls of every function of ours,
then as many iterations of theirs. An iteration of ours is counted as the mean of an EBM and a
flow update (toy2d hands the turn back after each flow update); theirs mostly takes EBM updates,
which in their code also differentiate the flow (its parameters' gradients are computed and
dropped), so the mix is printed.

The overhead column: the same iteration at batch 1 over the iteration at the full batch. A step
at batch 1 does almost no arithmetic; its time is the cost of calling the step and launching its
ops (hundreds of small ones in a 10-step Glow and its gradient), which XLA fuses. At batch 1000
a small flow still does little work per op, so that fixed cost is a large share.
"""

import os
import subprocess
import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from train import modes  # noqa: E402
from train import steps as steps_lib  # noqa: E402

SETTINGS = {
    'defaults': [],
    'their models': ['model.ebm.width=128', 'model.ebm.first_bias=zeros', 'model.flow.width=64',
                     'model.flow.scale_floor=0.', 'fce.flow_mle_weight=0.',
                     'fce.ebm_aux_nce_weight=0.', 'optim.flow_clip_norm=0.',
                     'optim.ebm_clip_norm=0.'],
}


def define_flags():
  flags.DEFINE_string('torch_python', None, 'A Python with torch, numpy and matplotlib.')
  flags.DEFINE_string('fce_2d', None, 'A checkout of lifeitech/fce-2d.')
  flags.DEFINE_integer('batch', 1000, 'Batch size of both (toy2d\'s and fce-2d\'s default).')
  flags.DEFINE_integer('pairs', 5, 'Alternations (each times every function of both sides).')
  flags.DEFINE_integer('steps', 20, 'Calls of each function per pair.')
  flags.mark_flags_as_required(['torch_python', 'fce_2d'])


class TorchWorker:
  """bench/torch_fce2d_worker.py in its own process, taking iterations on request."""

  def __init__(self, python, fce_2d, batch):
    worker = os.path.join(os.path.dirname(__file__), 'torch_fce2d_worker.py')
    args = [python, worker, fce_2d, str(batch)]
    self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
    self.header = self.process.stdout.readline().strip()
    if not self.header.startswith('ready'):
      raise SystemExit(f'The PyTorch worker did not start ({" ".join(args)}): see its error '
                       'above. It needs torch, numpy and matplotlib, and --fce_2d must hold '
                       'lifeitech/fce-2d.')

  def run(self, n):
    """(s/iteration with their DataLoader, s/iteration with tensor batches, EBM updates)."""
    self.process.stdin.write(f'{n}\n')
    self.process.stdin.flush()
    loader, tensor, ebm = self.process.stdout.readline().split()
    return float(loader), float(tensor), int(ebm)

  def close(self):
    self.process.stdin.close()
    self.process.wait()


def our_updates(sets, batch, jit, like=None):
  """({'ebm', 'flow'}: compiled update, the batch, the variables), toy2d's FCE on `sets`, with
  the variables of `like` if given."""
  config = common.mode_config('toy2d', 'fce', sets)
  run, variables, data = common.mode_run(config, 'fce', batch, like)
  steps = modes.get('fce').make_steps(run)
  return ({k: steps_lib.compile_step(steps[k], jit_compile=jit) for k in ('ebm', 'flow')}, data,
          variables)


def seconds(fn, batch, n):
  start = time.perf_counter()
  for _ in range(n):
    out = fn(batch)
  tf.nest.map_structure(lambda t: t.numpy(), out)
  return (time.perf_counter() - start) / n


def main(_):
  f = flags.FLAGS
  ours, tiny = {}, {}
  for setting, sets in SETTINGS.items():
    for jit in (False, True):
      updates, batch, variables = our_updates(sets, f.batch, jit)
      # the batch-1 copy starts from the same weights (ActNorm initialised on the full batch)
      tiny[setting, jit] = our_updates(sets, 1, jit, like=variables)[:2]
      first = sum(seconds(fn, batch, 1) for fn in updates.values())  # traces / compiles
      ours[setting, jit] = updates, batch, first
      for fn in tiny[setting, jit][0].values():
        seconds(fn, tiny[setting, jit][1], 1)
  worker = TorchWorker(f.torch_python, f.fce_2d, f.batch)
  worker.run(2)  # warm-up
  times = {key: {'ebm': [], 'flow': [], 'batch 1': []} for key in ours}
  theirs, ebm_updates = [], 0
  for _ in range(f.pairs):
    for key, (updates, batch, _) in ours.items():
      for name, fn in updates.items():
        times[key][name].append(seconds(fn, batch, f.steps))
      updates, batch = tiny[key]
      times[key]['batch 1'].append(np.mean([seconds(fn, batch, f.steps)
                                            for fn in updates.values()]))
    loader, tensor, ebm = worker.run(f.steps)
    theirs.append((loader, tensor))
    ebm_updates += ebm
  worker.close()
  theirs = np.array(theirs)
  their_loop = np.median(theirs[:, 0])
  print(f'2D FCE, batch {f.batch}, {f.pairs} pairs of {f.steps} calls; TensorFlow '
        f'{tf.__version__}; PyTorch worker: {worker.header}')
  print('| loop | EBM update s | flow update s | iteration s | their loop / this | '
        'batch 1 / batch | first calls s |')
  print('|---|---|---|---|---|---|---|')
  share = ebm_updates / (2 * f.steps * f.pairs)
  print(f'| lifeitech/fce-2d (PyTorch), their loop ({share:.0%} EBM updates) | - | - | '
        f'{their_loop:.4f} | 1.00 | - | - |')
  tensor = np.median(theirs[:, 1])
  print(f'| lifeitech/fce-2d, batches indexed from the tensor | - | - | {tensor:.4f} | '
        f'{np.median(theirs[:, 0] / theirs[:, 1]):.2f} | - | - |')
  for (setting, jit), (updates, batch, first) in ours.items():
    ebm, flow = (np.array(times[setting, jit][k]) for k in ('ebm', 'flow'))
    iteration = (ebm + flow) / 2
    ratio = np.median(theirs[:, 0] / iteration)
    share = np.median(np.array(times[setting, jit]['batch 1']) / iteration)
    print(f'| ours, {setting}, {"XLA" if jit else "tf.function"} | {np.median(ebm):.4f} | '
          f'{np.median(flow):.4f} | {np.median(iteration):.4f} | {ratio:.2f} | {share:.0%} | '
          f'{first:.1f} |')


if __name__ == '__main__':
  define_flags()
  startup.run(main)
