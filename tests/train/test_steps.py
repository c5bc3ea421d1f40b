import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import configs
from data import pipeline
from losses import contrastive
from models import build
from models import noise as noise_lib
from train import steps as steps_lib


def _setup(name, batch, mode=None):
  config = configs.for_dataset(name, mode=mode) if mode else configs.get_config(name)
  shape = tuple(config.data.shape)
  flow = build.build_flow(config.model.flow, shape)
  ebm = build.build_ebm(config.model.ebm, shape, config.data.num_classes, config.model.flow)
  rng = np.random.default_rng(0)
  x = tf.constant(pipeline.dequantize_numpy(rng.integers(0, config.data.num_bins,
                                                         (batch, *shape)),
                                            config.data.num_bins, rng))
  flow.data_init(x)
  return config, flow, ebm, x


def _begin_fce(flow, ebm):
  """What the trainer does when FCE begins: an EBM on a flow base gets a copy of the flow."""
  for base, v in zip(ebm.base.variables, flow.variables, strict=True):
    base.assign(v)


def _snapshot(variables):
  return [v.numpy().copy() for v in variables]


def _changed(before, variables):
  return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


@pytest.mark.slow
@pytest.mark.parametrize('name', ['svhn', 'celeba', 'cifar10', 'celeba64'])
def test_full_size_config_builds_and_takes_mle_and_fce_steps_at_batch_two(name):
  config, flow, ebm, x = _setup(name, batch=2, mode='fce')  # with the image FCE defaults
  assert ebm.base is not None  # a full-size frozen Glow under the EBM (model.ebm.base=flow)
  optimizers = steps_lib.make_optimizers(config.optim)
  # Uncompiled: tracing 96 Glow steps would dominate the test time.
  mle = steps_lib.make_mle_step(flow, optimizers['flow_mle'], config.data.num_bins)
  ebm_step, flow_step = steps_lib.make_fce_steps(ebm, flow, optimizers['ebm'], optimizers['flow'])
  batch = {'x': x, 'z': flow.sample_latent(2)}
  before = _snapshot(flow.trainable_variables)
  metrics = [mle(batch) for _ in range(2)][-1]
  assert np.isfinite(float(metrics['bpd']))
  # Every flow variable has moved after two steps (the hidden layers of each coupling network
  # start to get gradients once the zero-initialised last layer has moved, on step two).
  assert all(_changed(before, flow.trainable_variables))
  _begin_fce(flow, ebm)
  before_ebm = _snapshot(ebm.trainable_variables)
  metrics = ebm_step(batch)
  assert np.isfinite(float(metrics['value']))
  assert all(_changed(before_ebm, ebm.trainable_variables))
  before = _snapshot(flow.trainable_variables)
  metrics = flow_step(batch)
  assert np.isfinite(float(metrics['value']))
  assert sum(_changed(before, flow.trainable_variables)) > 0.9 * len(before)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['svhn', 'celeba64', 'cifar10'])
def test_full_size_config_takes_nt_and_nt_nce_steps_at_batch_two(name):
  """NT-EBM's LipSwish EBM on the full-size Glow: one HMC step of the latent chains (3
  leapfrog steps) and the update of eq. 6; then an update of eq. 10."""
  config, flow, ebm, x = _setup(name, batch=2, mode='nt')
  assert config.model.ebm.arch == 'lipswish'
  optimizer = steps_lib.make_optimizers(config.optim)['ebm']
  optimizer.build(ebm.trainable_variables)  # as the trainer does
  chains = tf.Variable(flow.sample_latent(2, generator=tf.random.Generator.from_seed(0)))
  step_size = tf.Variable(0.01)  # small enough that the move is accepted
  start = chains.numpy().copy()
  nt = steps_lib.make_nt_step(ebm, flow, optimizer, chains, step_size,
                              lambda: tf.constant([0, 1]), hmc_steps=1)
  flow_before, ebm_before = _snapshot(flow.trainable_variables), _snapshot(ebm.trainable_variables)
  metrics = nt({'x': x})
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert float(step_size.numpy()) != 0.01 and np.isfinite(chains.numpy()).all()
  # The acceptance is the share of chains that moved (a rejected proposal leaves its chain).
  moved = np.any(chains.numpy() != start, axis=1)
  assert float(metrics['acceptance']) > 0 and np.mean(moved) == float(metrics['acceptance'])
  # Eq. 6 is blind to constant shifts of f: the head's bias and c stay, every weight moves.
  assert [v.name for v in ebm.trainable_variables[-2:]] == ['head/bias:0', 'log_normalizer_delta:0']
  assert _changed(ebm_before, ebm.trainable_variables) == [True] * (len(ebm_before) - 2) + [
      False, False]
  assert not any(_changed(flow_before, flow.trainable_variables))
  ebm_before = _snapshot(ebm.trainable_variables)
  nce = steps_lib.make_nt_nce_step(ebm, flow, optimizer)
  metrics = nce({'x': x, 'z': flow.sample_latent(2)})
  assert np.isfinite(float(metrics['value']))
  assert all(_changed(ebm_before, ebm.trainable_variables))


@pytest.mark.slow
def test_compiled_mle_steps_lower_the_loss_on_a_fixed_batch():
  config, flow, _, x = _setup('smoke', batch=16)
  step = steps_lib.compile_step(steps_lib.make_mle_step(
      flow, steps_lib.make_optimizers(config.optim)['flow_mle'], config.data.num_bins))
  batch = {'x': x}
  first = float(step(batch)['bpd'])
  for _ in range(30):
    last = float(step(batch)['bpd'])
  assert last < first - 0.1


@pytest.mark.slow
def test_compiled_fce_steps_move_the_value_function_in_opposite_directions():
  config, flow, ebm, x = _setup('smoke', batch=16)
  opts = steps_lib.make_optimizers(config.optim)
  ebm_step, _ = steps_lib.make_fce_steps(ebm, flow, opts['ebm'], opts['flow'])
  batch = {'x': x, 'z': flow.sample_latent(16, generator=tf.random.Generator.from_seed(0))}
  ebm_step = steps_lib.compile_step(ebm_step)
  values = [float(ebm_step(batch)['value']) for _ in range(20)]
  assert values[-1] > values[0]  # the EBM ascends V
  config.optim.flow_lr = 1e-3
  _, flow_step = steps_lib.make_fce_steps(ebm, flow, opts['ebm'],
                                          steps_lib.make_optimizers(config.optim)['flow'])
  flow_step = steps_lib.compile_step(flow_step)
  values = [float(flow_step(batch)['value']) for _ in range(20)]
  assert values[-1] < values[0]  # the flow descends it


@pytest.mark.slow
@pytest.mark.parametrize('mle_weight', [0., 0.5])
@pytest.mark.parametrize('two_pass', [True, False])
def test_flow_step_applies_the_gradient_of_the_whole_value_function(mle_weight, two_pass):
  """In two passes the flow step differentiates V's data side and sample side one after the
  other (to hold one pass's activations at a time), in one pass V at once; either way, with SGD
  at lr 1 its update must be minus the gradient of V (+ the MLE term) taken at once, for every
  flow variable."""
  config, flow, ebm, x = _setup('smoke', batch=8)
  z = flow.sample_latent(8, generator=tf.random.Generator.from_seed(1))
  for v in flow.trainable_variables:  # move the zero-initialised layers off zero
    v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, seed=[v.shape.rank, 3]))
  with tf.GradientTape() as tape:
    loss, metrics = contrastive.flow_fce_loss(ebm, flow, x, z, mle_weight=mle_weight)
  grads = tape.gradient(loss, flow.trainable_variables)
  assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
  before = _snapshot(flow.trainable_variables)
  _, flow_step = steps_lib.make_fce_steps(ebm, flow, None, keras.optimizers.SGD(1.),
                                          flow_mle_weight=mle_weight, two_pass=two_pass)
  step_metrics = steps_lib.compile_step(flow_step)({'x': x, 'z': z})
  for b, g, v in zip(before, grads, flow.trainable_variables):
    np.testing.assert_allclose(b - v.numpy(), g.numpy(), rtol=1e-4, atol=1e-6)
  for k in ('value', 'accuracy', 'flow_nll'):
    np.testing.assert_allclose(float(step_metrics[k]), float(metrics[k]), rtol=1e-5)


def test_one_and_two_pass_flow_steps_give_the_same_update():
  """From the same variables, Adamax's first update (elementwise lr sign(g), where a float's
  difference in g could flip little) in one pass and in two lands on the same variables."""
  config, flow, ebm, x = _setup('smoke', batch=4)
  z = flow.sample_latent(4, generator=tf.random.Generator.from_seed(2))
  for v in flow.trainable_variables:
    v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, seed=[v.shape.rank, 4]))
  start = _snapshot(flow.trainable_variables)
  after = {}
  for two_pass in (True, False):
    for v, value in zip(flow.trainable_variables, start):
      v.assign(value)
    optimizer = steps_lib.make_optimizers(config.optim)['flow']
    _, flow_step = steps_lib.make_fce_steps(ebm, flow, None, optimizer, flow_mle_weight=0.5,
                                            two_pass=two_pass)
    metrics = steps_lib.compile_step(flow_step)({'x': x, 'z': z})
    after[two_pass] = _snapshot(flow.trainable_variables), float(metrics['flow_grad_norm'])
  assert sum(_changed(start, flow.trainable_variables)) > 0.9 * len(start)
  for a, b in zip(after[True][0], after[False][0]):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # a tenth of the step, lr 1e-5
  np.testing.assert_allclose(after[True][1], after[False][1], rtol=1e-5)


def test_auto_takes_two_passes_where_one_pass_holds_over_a_gib_of_activations():
  """The estimate counts each flow step's coupling network (two hidden layers of width W) and
  about four tensors of the step's size, at every position; CIFAR-10's K=32 Glow at batch 64:
  32 * (256 (1024 + 48) + 64 (1024 + 96) + 16 (1024 + 192)) floats an image, 2.79 GiB."""
  cifar, digits = configs.get_config('cifar10'), configs.get_config('digits')
  estimate = lambda c, batch: steps_lib.flow_activation_bytes(c.model.flow, c.data.shape, batch)
  assert estimate(cifar, 64) == 4 * 64 * 32 * (256 * 1072 + 64 * 1120 + 16 * 1216)
  toy = configs.get_config('toy2d')
  assert estimate(toy, 1000) == 4 * 1000 * 10 * (2 * 128 + 4 * 2)
  auto = lambda c, batch: steps_lib.flow_two_pass('auto', c.model.flow, c.data.shape, batch)
  assert auto(cifar, 64) and not auto(cifar, 8) and not auto(digits, 64) and not auto(toy, 1000)
  assert steps_lib.flow_two_pass('two', digits.model.flow, digits.data.shape, 1)
  assert not steps_lib.flow_two_pass('one', cifar.model.flow, cifar.data.shape, 64)


@pytest.mark.slow
def test_nce_step_against_gaussian_noise_trains():
  config, _, ebm, x = _setup('smoke', batch=16)
  noise = noise_lib.GaussianNoise(tuple(config.data.shape), std=0.5)
  step = steps_lib.compile_step(steps_lib.make_nce_step(
      ebm, noise, steps_lib.make_optimizers(config.optim)['ebm'], nu=2.))
  batch = {'x': x, 'z': tf.random.stateless_normal([16, 2, noise.latent_dim], seed=[0, 1])}
  values = [float(step(batch)['value']) for _ in range(21)]
  # V rises at every step on a fixed batch (seen: -278.5 -> -245.7 over 20 Adam steps).
  assert np.all(np.diff(values) > 0) and values[-1] > values[0] + 10, values


@pytest.mark.parametrize('which', ['ebm', 'flow'])
def test_gradient_clipping_bounds_the_update(which):
  """With SGD (lr 1) an update is minus the gradient: clipped, its global norm is the bound."""
  config = configs.get_config('toy2d')
  config.optim.update(flow_optimizer='sgd', flow_lr=1., ebm_lr=1., ebm_clip_norm=0.5,
                      flow_clip_norm=0.5)
  optimizer = steps_lib.make_optimizers(config.optim)[which]
  if which == 'ebm':  # Adam's step is about lr whatever the gradient: check what it is fed
    clipped = optimizer._clip_gradients([tf.constant([300., 400.]), tf.constant([1200.])])
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([g.numpy() for g in clipped])),
                               0.5, rtol=1e-5)
    return
  a, b = tf.Variable([0., 0.]), tf.Variable([0.])
  optimizer.apply_gradients([(tf.constant([300., 400.]), a), (tf.constant([1200.]), b)])
  update = np.concatenate([a.numpy(), b.numpy()])
  np.testing.assert_allclose(np.linalg.norm(update), 0.5, rtol=1e-5)
  np.testing.assert_allclose(update, -0.5 * np.array([3., 4., 12.]) / 13., rtol=1e-5)
  unclipped = steps_lib.make_optimizers(configs.get_config('toy2d_paper').optim)['flow']
  assert unclipped.global_clipnorm is None


def test_apply_returns_the_gradient_norm_before_clipping():
  """The norm a step logs is the one `optim.*_clip_norm` compares with its bound: the whole
  gradient's, before clipping. (That it is the sum over replicas: distributed_check.py.)"""
  config = configs.get_config('toy2d')
  config.optim.update(flow_optimizer='sgd', flow_lr=1., flow_clip_norm=0.5)
  a, b = tf.Variable([0., 0.]), tf.Variable([0.])
  norm = steps_lib.apply(steps_lib.make_optimizers(config.optim)['flow'],
                         [tf.constant([300., 400.]), tf.constant([1200.])], [a, b])
  np.testing.assert_allclose(float(norm), 1300., rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(np.concatenate([a.numpy(), b.numpy()])), 0.5,
                             rtol=1e-5)


def test_a_step_logs_its_models_gradient_norm():
  config = configs.get_config('toy2d')
  ebm = build.build_ebm(config.model.ebm, (2,))
  noise = noise_lib.GaussianNoise((2,), 0., 1.)
  x = tf.random.stateless_normal([16, 2], seed=[0, 2])
  batch = {'x': x, 'z': tf.random.stateless_normal([16, 2], seed=[0, 3])}
  with tf.GradientTape() as tape:
    loss, _ = contrastive.ebm_nce_loss(ebm, noise, x, batch['z'], None, 1.)
  expected = float(tf.linalg.global_norm(tape.gradient(loss, ebm.trainable_variables)))
  step = steps_lib.make_nce_step(ebm, noise, steps_lib.make_optimizers(config.optim)['ebm'])
  out = steps_lib.compile_step(step)(batch)
  assert expected > 0
  np.testing.assert_allclose(float(out['ebm_grad_norm']), expected, rtol=1e-5)


def test_annealed_learning_rate_is_constant_then_falls_linearly_to_zero():
  lr = 3e-4
  assert steps_lib.annealed(lr, 0.5, 0.) == lr  # 0 = off
  assert steps_lib.annealed(lr, 1.5, 0.) == lr
  assert steps_lib.annealed(lr, 0., 0.3) == lr
  assert steps_lib.annealed(lr, 0.7, 0.3) == pytest.approx(lr)  # where the fall begins
  assert steps_lib.annealed(lr, 0.85, 0.3) == pytest.approx(lr / 2)
  assert steps_lib.annealed(lr, 0.97, 0.3) == pytest.approx(lr / 10)
  assert steps_lib.annealed(lr, 1., 0.3) == 0.
  assert steps_lib.annealed(lr, 0.5, 1.) == pytest.approx(lr / 2)  # over the whole run
