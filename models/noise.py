"""Fixed noise distributions for NCE (FCE Sec. 3.1.2), with the same interface as `Flow`."""

import numpy as np
import tensorflow as tf


class GaussianNoise(tf.Module):
  """N(mean, diag(std^2)) over data of shape `event_shape`; `log_prob` sums over the event."""

  def __init__(self, event_shape, mean=0., std=1., name='gaussian_noise'):
    super().__init__(name=name)
    self.event_shape = tuple(int(d) for d in event_shape)
    self.latent_dim = int(np.prod(self.event_shape))
    self.mean = tf.broadcast_to(tf.constant(mean, tf.float32), self.event_shape)
    self.std = tf.broadcast_to(tf.constant(std, tf.float32), self.event_shape)
    if not np.all(np.asarray(std) > 0):
      raise ValueError(f'Noise std must be positive, got {std}.')

  def log_prob(self, x):
    t = (x - self.mean) / self.std
    per_dim = -0.5 * tf.square(t) - tf.math.log(self.std) - 0.5 * np.log(2. * np.pi)
    return tf.reduce_sum(tf.reshape(per_dim, [tf.shape(x)[0], -1]), axis=1)

  def generate(self, z):
    """Samples mean + std * z for standard normal latents z [n, D], with their log-density."""
    x = self.mean + self.std * tf.reshape(z, [-1, *self.event_shape])
    return x, self.log_prob(x)

  def sample_and_log_prob(self, n, generator=None):
    shape = [n, self.latent_dim]
    return self.generate(generator.normal(shape) if generator is not None else
                         tf.random.normal(shape))
