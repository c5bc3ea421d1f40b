"""SVHN 32x32 (FCE Sec. 4.2): Glow with K=8 steps per level (FCE Table 7)."""

from configs import base


def get_config():
  return base.get_image32_config('svhn', steps_per_level=8, num_classes=10,
                                 mle_pretrain_steps=50000)


def for_mode(config, mode):
  base.image_for_mode(config, mode, nt_lr=5e-5, nce_lr=1e-5)
