"""The PyTorch side of bench/glow_vs_pytorch.py: rosinality/glow-pytorch's Glow taking MLE steps.

Run by that script with a Python that has torch (not this project's venv, which has none):

  TORCH_PYTHON bench/torch_glow_worker.py GLOW_PYTORCH_DIR BATCH LEVELS STEPS_PER_LEVEL WIDTH

GLOW_PYTORCH_DIR is a checkout of https://github.com/rosinality/glow-pytorch (its model.py is
imported from there; nothing of it is copied here). The step is its train.py's: dequantized
8-bit images in [-0.5, 0.5), loss = -(log p(z) + log|det| - D log 256) / (D log 2), Adam 1e-3.
The worker reads one number N per line on stdin, takes N steps, and prints their mean seconds;
the first line it reads also initialises ActNorm (data-dependent, on its first batch).
"""

import math
import sys
import time

import numpy as np
import torch


def main():
  path, (batch, levels, steps_per_level, width) = sys.argv[1], map(int, sys.argv[2:6])
  sys.path.insert(0, path)
  import model as glow_pytorch  # pylint: disable=g-import-not-at-top
  # Its AffineCoupling fixes the coupling width by a default argument (512); set it to WIDTH.
  glow_pytorch.AffineCoupling.__init__.__defaults__ = (width, True)
  torch.manual_seed(0)
  net = glow_pytorch.Glow(3, steps_per_level, levels, affine=True, conv_lu=True)
  optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
  rng = np.random.default_rng(0)
  images = torch.tensor(rng.integers(0, 256, (batch, 3, 32, 32)) / 256. - 0.5,
                        dtype=torch.float32)
  pixels, bins = 3 * 32 * 32, 256.

  def step():
    log_p, logdet, _ = net(images + torch.rand_like(images) / bins)
    loss = -math.log(bins) * pixels + logdet.mean() + log_p
    loss = (-loss / (math.log(2) * pixels)).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()

  params = sum(p.numel() for p in net.parameters())
  print(f'ready torch={torch.__version__} threads={torch.get_num_threads()} params={params}',
        flush=True)
  for line in sys.stdin:
    n = int(line)
    start = time.perf_counter()
    for _ in range(n):
      step()
    print(f'{(time.perf_counter() - start) / n:.6f}', flush=True)


if __name__ == '__main__':
  main()
