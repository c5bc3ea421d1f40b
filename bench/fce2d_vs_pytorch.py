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


def torch_worker(python, fce_2d, batch):
  """bench/torch_fce2d_worker.py under `python`; `request(n)` gives its seconds per iteration
  with their DataLoader and with tensor batches, and how many were the EBM's updates."""
  return common.Worker(python, 'torch_fce2d_worker.py', [fce_2d, batch],
                       'torch, numpy and matplotlib, and --fce_2d must hold lifeitech/fce-2d')


def our_updates(sets, batch, jit, like=None):
  """({'ebm', 'flow'}: compiled update, the batch, the variables), toy2d's FCE on `sets`, with
  the variables of `like` if given."""
  config = common.mode_config('toy2d', 'fce', sets)
  run, variables, data = common.mode_run(config, 'fce', batch, like)
  steps = modes.get('fce').make_steps(run)
  return ({k: steps_lib.compile_step(steps[k], jit_compile=jit) for k in ('ebm', 'flow')}, data,
          variables)


def main(_):
  f = flags.FLAGS
  ours, tiny = {}, {}
  for setting, sets in SETTINGS.items():
    for jit in (False, True):
      updates, batch, variables = our_updates(sets, f.batch, jit)
      # the batch-1 copy starts from the same weights (ActNorm initialised on the full batch)
      tiny[setting, jit] = our_updates(sets, 1, jit, like=variables)[:2]
      # the first calls trace / compile
      first = sum(common.seconds_per_call(fn, batch) for fn in updates.values())
      ours[setting, jit] = updates, batch, first
      for fn in tiny[setting, jit][0].values():
        common.seconds_per_call(fn, tiny[setting, jit][1], 1)
  worker = torch_worker(f.torch_python, f.fce_2d, f.batch)
  worker.request(2)  # warm-up
  times = {key: {'ebm': [], 'flow': [], 'batch 1': []} for key in ours}
  theirs, ebm_updates = [], 0
  for _ in range(f.pairs):
    for key, (updates, batch, _) in ours.items():
      for name, fn in updates.items():
        times[key][name].append(common.seconds_per_call(fn, batch, f.steps))
      updates, batch = tiny[key]
      times[key]['batch 1'].append(np.mean([common.seconds_per_call(fn, batch, f.steps)
                                            for fn in updates.values()]))
    loader, tensor, ebm = worker.request(f.steps)
    theirs.append((float(loader), float(tensor)))
    ebm_updates += int(ebm)
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
