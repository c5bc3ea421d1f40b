"""The PyTorch side of bench/fce2d_vs_pytorch.py: lifeitech/fce-2d's 2D FCE loop.

Run by that script with a Python that has torch, numpy and matplotlib (their util.py imports it):

  TORCH_PYTHON bench/torch_fce2d_worker.py FCE_2D_DIR BATCH

FCE_2D_DIR is a checkout of https://github.com/lifeitech/fce-2d, whose models and value function
are imported from there (nothing of it is copied here). One iteration is the body of their
train.py's loop on 8gaussians, on the CPU, without its wandb logging (which also computes the
EBM's MSE on the whole data set every iteration): draw the flow's latents, take an EBM update
(Adam 1e-3) if the last accuracy was at most 0.6, else a flow update (Adam 7e-4), on a batch of
their DataLoader (500,000 points, shuffled). Their models: EBM fc128 x3 (LeakyReLU), Glow of 10
steps of width 64. The worker reads one number N per line on stdin, runs N iterations as their
loop does, then N with the batch indexed straight from the data tensor (their DataLoader
collates a batch point by point), and prints both mean seconds and how many of the 2N
iterations were the EBM's.
"""

import sys
import time

import torch


def main():
  path, batch = sys.argv[1], int(sys.argv[2])
  sys.path.insert(0, path)
  # pylint: disable=g-import-not-at-top
  from ebm import EBM
  from flows.glow import Glow
  import util
  torch.manual_seed(42)  # their train.py's default seed
  energy, flow = EBM(), Glow(width=64, depth=5, n_levels=1, data_dim=2)
  optim_energy = torch.optim.Adam(energy.parameters(), lr=1e-3, betas=(0.9, 0.999))
  optim_flow = torch.optim.Adam(flow.parameters(), lr=7e-4, betas=(0.9, 0.999))
  data = util.sample_2d_data('8gaussians', 500000)
  loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)
  batches = iter(loader)
  train_energy = True

  def from_loader():
    nonlocal batches
    try:
      return next(batches)
    except StopIteration:
      batches = iter(loader)
      return next(batches)

  def from_tensor():
    return data[torch.randint(len(data), (batch,))]

  def iteration(next_batch):
    nonlocal train_energy
    x = next_batch()
    z = flow.base_dist.sample((batch,))
    optimizer = optim_energy if train_energy else optim_flow
    optimizer.zero_grad()
    loss, acc = util.value(energy, flow, x, z, maximize=train_energy)
    loss.backward()
    optimizer.step()
    was_energy, train_energy = train_energy, acc <= 0.6
    return was_energy

  print(f'ready torch={torch.__version__} threads={torch.get_num_threads()}', flush=True)
  for line in sys.stdin:
    n, seconds, ebm_updates = int(line), [], 0
    for next_batch in (from_loader, from_tensor):
      start = time.perf_counter()
      ebm_updates += sum(iteration(next_batch) for _ in range(n))
      seconds.append((time.perf_counter() - start) / n)
    print(f'{seconds[0]:.6f} {seconds[1]:.6f} {ebm_updates}', flush=True)


if __name__ == '__main__':
  main()
