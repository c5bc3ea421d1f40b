"""Run in a fresh process by test_distribute.py: NT-EBM's step (Algorithm 1) on 2 replicas of a
MirroredStrategy on 2 logical CPUs. Replica r moves rows [r m/2, (r+1) m/2) of the persistent
chains with the step's seed folded with r, and the replicas gather the chains back in order,
share the geometric mean of their adapted step sizes and update the correction on all the
samples. Each of these is recomputed on one device with `models.transport.hmc` and compared.
Prints NT_DISTRIBUTED_OK."""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import configs  # noqa: E402
from losses import nt  # noqa: E402
from models import build as build_lib  # noqa: E402
from models import transport  # noqa: E402
from train import steps as steps_lib  # noqa: E402

config = configs.get_config('smoke')
shape = tuple(config.data.shape)
GLOBAL_BATCH, HMC_STEPS, LEAPFROG, STEP_SIZE, LR = 8, 5, 2, 1.0, 0.1
TARGET = 0.28  # between the replicas' acceptance rates, so their adapted step sizes differ
SEED = tf.constant([7, 3])
rng = np.random.default_rng(0)
x = rng.uniform(-0.5, 0.5, (GLOBAL_BATCH, *shape)).astype(np.float32)
chains0 = rng.standard_normal((GLOBAL_BATCH, int(np.prod(shape)))).astype(np.float32)

flow = build_lib.build_flow(config.model.flow, shape)  # frozen backbone, shared by both runs
flow.data_init(x)
for v in flow.trainable_variables:  # a backbone that is not the identity
  v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, seed=[v.shape.rank, 1]))

mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with mirrored.scope():
  correction = build_lib.build_ebm(config.model.ebm, shape)
  first = tf.VariableAggregation.ONLY_FIRST_REPLICA
  chains = tf.Variable(chains0, trainable=False, aggregation=first)
  step_size = tf.Variable(STEP_SIZE, trainable=False, aggregation=first)
  optimizer = keras.optimizers.SGD(LR)
start = [v.numpy() for v in correction.network.trainable_variables]

step = steps_lib.compile_step(steps_lib.make_nt_step(
    correction, flow, optimizer, chains, step_size, lambda: SEED, HMC_STEPS, LEAPFROG,
    target_accept=TARGET, global_batch_size=GLOBAL_BATCH), mirrored)
data = tf.data.Dataset.from_tensor_slices({'x': x}).batch(GLOBAL_BATCH)
metrics = step(next(iter(mirrored.experimental_distribute_dataset(data))))

# The same on one device, replica by replica.
reference = build_lib.build_ebm(config.model.ebm, shape)
for v, value in zip(reference.network.trainable_variables, start):
  v.assign(value)
target = transport.latent_log_prob(reference, flow)
rows = GLOBAL_BATCH // 2
moved, accepted, sizes = [], [], []
for r in range(2):
  z, acceptance, size = transport.hmc(
      target, chains0[r * rows:(r + 1) * rows], STEP_SIZE, HMC_STEPS, LEAPFROG,
      tf.random.experimental.stateless_fold_in(SEED, r), True, TARGET)
  moved.append(z.numpy())
  accepted.append(float(acceptance))
  sizes.append(float(size))
expected_chains = np.concatenate(moved)
with tf.GradientTape() as tape:
  loss, _ = nt.tilt_mle_loss(reference, x, flow.generate(expected_chains)[0], GLOBAL_BATCH)
variables = reference.network.trainable_variables
grads = tape.gradient(loss, variables)

chain_diff = float(np.max(np.abs(chains.numpy() - expected_chains)))
assert np.max(np.abs(expected_chains - chains0)) > 1e-3, 'the chains did not move'
assert not np.allclose(moved[0], moved[1]), 'the two replicas share their rows'
assert sizes[0] != sizes[1], 'the replicas adapted alike: the mean of the sizes is not tested'
size_diff = abs(float(step_size.numpy()) - float(np.exp(np.mean(np.log(sizes)))))
acc_diff = abs(float(metrics['acceptance']) - np.mean(accepted))
weight_diff = max(float(np.max(np.abs(v.numpy() - (w - LR * g.numpy()))))
                  for v, w, g in zip(correction.network.trainable_variables, start, grads))
print(f'chain_diff={chain_diff:.3g} size_diff={size_diff:.3g} acceptance_diff={acc_diff:.3g} '
      f'weight_diff={weight_diff:.3g} sizes={sizes} acceptances={accepted}')
assert chain_diff < 1e-4 and size_diff < 1e-6 and acc_diff < 1e-6 and weight_diff < 1e-5
assert abs(float(metrics['step_size']) - float(step_size.numpy())) < 1e-6
print('NT_DISTRIBUTED_OK')
