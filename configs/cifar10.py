"""CIFAR-10 32x32 (FCE Sec. 4.2): Glow with K=32 steps per level (FCE Table 7)."""

from configs import base


def get_config():
  return base.get_image32_config('cifar10', steps_per_level=32, num_classes=10,
                                 mle_pretrain_steps=100000)


def for_mode(config, mode):
  # NT-EBM A.4 gives no NCE-EBM rate for CIFAR-10; 1e-5 is the one it gives the others.
  base.image_for_mode(config, mode, nt_lr=5e-5, nce_lr=1e-5)
