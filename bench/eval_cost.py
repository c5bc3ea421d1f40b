"""What the training loop's image evaluation costs, as a fraction of the training time between
two evaluations (eval.every steps).

  python -m bench.eval_cost --config=celeba --batch=16 --steps=2

Timed per image at `--batch`, on random stand-in images, after one untimed call each:
  train     an FCE update (the mean of an EBM and a flow update)
  bpd       log q and the EBM's log p of a test image (held-out bits/dim)
  sample    a flow sample (for FID)
  inception its Inception features: Keras InceptionV3 with random weights, the architecture
            and cost of TTUR's graph without its download
Then, with the config's eval.every, train.batch_size, eval.examples and
eval.fid_samples (the per-image costs scale linearly with the batch on a CPU):
  evaluation = eval_examples x bpd + fid_samples x (sample + inception)
  training   = eval_every x batch_size x train
The reference statistics of the training split are computed once per machine (cached), so
they are not part of the recurring cost.
"""

import time

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
import configs  # noqa: E402
from configs import overrides  # noqa: E402
from data import images as images_lib  # noqa: E402
from data import pipeline  # noqa: E402
from eval import fid as fid_lib  # noqa: E402
from losses import flow as flow_losses  # noqa: E402
from train import steps as steps_lib  # noqa: E402

flags.DEFINE_enum('config', 'celeba', configs.CONFIGS, 'Config to build.')
flags.DEFINE_integer('batch', 16, 'Batch size of every timed call.')
flags.DEFINE_integer('steps', 2, 'Timed calls of each kind (after one untimed call).')
flags.DEFINE_multi_string('set', [], 'Config override key=value.')
FLAGS = flags.FLAGS


def _per_call(fn, calls):
  fn()  # trace
  start = time.perf_counter()
  for _ in range(calls):
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, 'numpy') else t, fn())
  return (time.perf_counter() - start) / calls


def main(_):
  config = configs.get_config(FLAGS.config)
  overrides.apply(config, FLAGS.set)
  b, num_bins = FLAGS.batch, config.data.num_bins
  flow, ebm, batch = common.models_and_batch(config, b)
  x = batch['x']
  optimizers = steps_lib.make_optimizers(config.optim)
  ebm_step, flow_step = map(steps_lib.compile_step, steps_lib.make_fce_steps(
      ebm, flow, optimizers['ebm'], optimizers['flow']))
  log_probs = tf.function(lambda: (flow.log_prob(x), ebm.marginal_log_prob(x)))
  sample = tf.function(lambda: flow.sample(b))
  network = fid_lib.load_network('keras', keras_weights=None)
  images = flow_losses.to_8bit(flow_losses.quantize(x, num_bins).numpy(), num_bins).astype(
      np.uint8)

  n = FLAGS.steps
  per_image = {
      'train': (_per_call(lambda: ebm_step(batch), n) + _per_call(lambda: flow_step(batch), n))
               / 2 / b,
      'bpd': _per_call(log_probs, n) / b,
      'sample': _per_call(sample, n) / b,
      'inception': _per_call(lambda: network.features(images, batch_size=b), n) / b}
  t, e = config.train, config.eval
  examples = e.examples  # TFDS test splits are larger; a local one may be smaller
  if config.data.name not in images_lib.TFDS_NAMES:
    examples = min(examples or np.inf, len(pipeline.load_arrays(config, 'test')[0]))
  evaluation = (examples * per_image['bpd'] +
                e.fid_samples * (per_image['sample'] + per_image['inception']))
  training = e.every * t.batch_size * per_image['train']
  print(f'config={FLAGS.config} {" ".join(FLAGS.set)} batch={b}')
  print('  '.join(f'{k} {v * 1e3:.2f} ms/image' for k, v in per_image.items()))
  print(f'eval.every={e.every} batch_size={t.batch_size} test images={examples} '
        f'eval.fid_samples={e.fid_samples}')
  print(f'evaluation {evaluation:.0f} s  training between evaluations {training:.0f} s  '
        f'evaluation / training {evaluation / training:.1%}')


if __name__ == '__main__':
  startup.run(main)
