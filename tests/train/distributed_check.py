"""Run in a fresh process by test_distribute.py: a 2-replica MirroredStrategy step on 2 logical
CPUs must equal the single-device step on the same global batch, for every step of every mode
and every metric it returns (metrics are summed over replicas, so each must be scaled by the
global batch: `losses.contrastive.reduce_batch`). Prints the largest difference."""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import configs  # noqa: E402
from configs import overrides  # noqa: E402
from models import build as build_lib  # noqa: E402
from models import noise as noise_lib  # noqa: E402
from tests import helpers  # noqa: E402
from train import steps as steps_lib  # noqa: E402

config = configs.get_config('smoke')
overrides.apply(config, ['model.flow.coupling=affine'])
shape = tuple(config.data.shape)
global_batch = 8
rng = np.random.default_rng(0)
batch = {'x': rng.uniform(-0.5, 0.5, (global_batch, *shape)).astype(np.float32),
         'z': rng.standard_normal((global_batch, int(np.prod(shape)))).astype(np.float32),
         'x_labeled': rng.uniform(-0.5, 0.5, (global_batch, *shape)).astype(np.float32),
         'y_labeled': np.arange(global_batch) % 2}
gaussian = noise_lib.GaussianNoise(shape, 0., 0.3)


def build(strategy):
  with strategy.scope():
    flow = build_lib.build_flow(config.model.flow, shape)
    ebm = build_lib.build_ebm(config.model.ebm, shape)
    cond_ebm = build_lib.build_ebm(helpers.ebm_config(
        arch=config.model.ebm.arch, conditional=True), shape, num_classes=2)
    opts = steps_lib.make_optimizers(config.optim)
    ssl_opt = steps_lib.make_optimizers(config.optim)['ebm']
  return flow, ebm, cond_ebm, opts, ssl_opt


def run(strategy, init):
  flow, ebm, cond_ebm, opts, ssl_opt = build(strategy)
  for v, value in zip(list(flow.variables) + list(ebm.variables) + list(cond_ebm.variables),
                      init):
    v.assign(value)
  ebm_step, flow_step = steps_lib.make_fce_steps(
      ebm, flow, opts['ebm'], opts['flow'], global_batch, flow_mle_weight=0.5, ebm_f_penalty=0.1,
      aux_noise=gaussian, aux_weight=0.5)
  steps = {
      'fce_ebm': ebm_step,
      'fce_flow': flow_step,
      'mle': steps_lib.make_mle_step(flow, opts['flow_mle'], 256, global_batch),
      'nce': steps_lib.make_nce_step(ebm, gaussian, opts['ebm'], 1., global_batch),
      'ssl_ebm': steps_lib.make_ssl_ebm_step(cond_ebm, flow, ssl_opt, vat_weight=1.,
                                             vat_epsilon=0.1, global_batch_size=global_batch,
                                             labeled_batch_size=global_batch, aux_noise=gaussian,
                                             aux_weight=0.5),
  }
  data = tf.data.Dataset.from_tensor_slices(batch).batch(global_batch)
  dist_batch = next(iter(strategy.experimental_distribute_dataset(data)))
  metrics = {}
  for name, fn in steps.items():
    out = steps_lib.compile_step(fn, strategy)(dist_batch)
    metrics[name] = {k: float(v) for k, v in out.items()}
  variables = list(flow.variables) + list(ebm.variables) + list(cond_ebm.variables)
  return [np.asarray(v.numpy(), np.float64) for v in variables], metrics


mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
assert mirrored.num_replicas_in_sync == 2
# One data-initialised starting point, copied into both runs' models.
flow0, ebm0, cond0, _, _ = build(tf.distribute.get_strategy())
flow0.data_init(batch['x'])
start = [np.asarray(v.numpy(), np.float64) if v.dtype.is_floating else v.numpy()
         for v in list(flow0.variables) + list(ebm0.variables) + list(cond0.variables)]
single, single_metrics = run(tf.distribute.get_strategy(), start)
multi, multi_metrics = run(mirrored, start)
var_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single, multi))
for name in single_metrics:
  assert sorted(single_metrics[name]) == sorted(multi_metrics[name]), name
metric_diff = {f'{name}/{k}': abs(a[k] - multi_metrics[name][k]) / max(1., abs(a[k]))
               for name, a in single_metrics.items() for k in a}
print('metrics compared:', ', '.join(sorted(metric_diff)))
worst = max(metric_diff, key=metric_diff.get)
metric_diff = metric_diff[worst]
moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single, start))
print(f'variable_diff={var_diff:.3g} metric_diff={metric_diff:.3g} ({worst}) moved={moved:.3g}')
assert moved > 1e-4, 'the steps did not train'
# Adam/Adamax's first steps are lr * g / (|g| + eps): where g is near 0, float32 rounding of the
# summation order (one device vs two replicas) changes a variable by a few % of the step (seen:
# 2e-5 of 1e-3). A replica using only its half of the batch moves variables by the whole step.
assert var_diff < 0.1 * moved and metric_diff < 1e-5, \
    'distributed step differs from single-device step'
print('DISTRIBUTED_OK')
