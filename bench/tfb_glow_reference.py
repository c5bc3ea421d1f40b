"""Reference point: TFP's own `tfb.Glow` MLE step, timed the same way as bench/step_time.py.

Same multi-scale shape as our ImageGlow (L levels, K steps, width W, affine coupling), but with
TFP's default coupling / exit networks, so parameter counts differ slightly.

  python -m bench.tfb_glow_reference --batch=16 --steps=5
"""

import functools
import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import tf_keras as keras  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions

flags.DEFINE_integer('batch', 16, 'Batch size.')
flags.DEFINE_integer('steps', 5, 'Timed steps after one warm-up step.')
flags.DEFINE_integer('levels', 3, 'L.')
flags.DEFINE_integer('depth', 8, 'K.')
flags.DEFINE_integer('width', 512, 'W.')
FLAGS = flags.FLAGS


def main(_):
  shape = (32, 32, 3)
  glow = tfb.Glow(output_shape=shape, num_glow_blocks=FLAGS.levels,
                  num_steps_per_block=FLAGS.depth,
                  coupling_bijector_fn=functools.partial(tfb.GlowDefaultNetwork,
                                                         num_hidden=FLAGS.width),
                  exit_bijector_fn=tfb.GlowDefaultExitNetwork)
  base = tfd.Sample(tfd.Normal(0., 1.), glow.inverse_event_shape(shape))
  dist = tfd.TransformedDistribution(base, glow)
  x = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (FLAGS.batch, *shape)),
                  tf.float32)
  dist.log_prob(x)  # builds the networks (and initialises TFP's ActNorm on this batch)
  variables = glow.trainable_variables
  optimizer = keras.optimizers.Adam(1e-3)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(dist.log_prob(x))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  step(x)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    loss = step(x)
  loss.numpy()
  t = (time.perf_counter() - start) / FLAGS.steps
  params = int(sum(np.prod(v.shape) for v in variables))
  print(f'tfb.Glow L={FLAGS.levels} K={FLAGS.depth} W={FLAGS.width} batch={FLAGS.batch}: '
        f'{params:,} params, mle step {t:.3f} s, {FLAGS.batch / t:.1f} examples/s')


if __name__ == '__main__':
  startup.run(main)
