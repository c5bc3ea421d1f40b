import numpy as np
import pytest
import tensorflow as tf

from losses import contrastive
from models import build
from models import glow
from models import noise
from tests import helpers


def test_value_is_minus_log_four_and_accuracy_half_when_densities_are_equal():
  rng = np.random.default_rng(0)
  logp_data = rng.normal(size=64).astype(np.float32)
  logp_samples = rng.normal(size=64).astype(np.float32)
  value, metrics = contrastive.fce_value(logp_data, logp_data, logp_samples, logp_samples)
  np.testing.assert_allclose(value.numpy(), -2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(metrics['accuracy'].numpy(), 0.5)


def test_value_and_accuracy_worked_by_hand():
  # Data: log-ratios r = log 3 and log(1/3); samples: r = -log 3 and 0.
  logq = np.zeros(2, np.float32)
  r_data = np.log([3., 1 / 3.]).astype(np.float32)
  r_samples = np.log([1 / 3., 1.]).astype(np.float32)
  value, metrics = contrastive.fce_value(r_data, logq, r_samples, logq)
  # u = p / (p + q) = r/(1+r): data terms log(3/4), log(1/4); sample terms log(3/4), log(1/2).
  expected = 0.5 * (np.log(0.75) + np.log(0.25)) + 0.5 * (np.log(0.75) + np.log(0.5))
  np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(metrics['accuracy_data'].numpy(), 0.5)
  np.testing.assert_allclose(metrics['accuracy_noise'].numpy(), 0.75)  # tie counts one half
  np.testing.assert_allclose(metrics['accuracy'].numpy(), 0.625)


def test_log_space_is_stable_for_far_apart_densities():
  value, _ = contrastive.fce_value([-5000.], [0.], [-5000.], [0.])
  np.testing.assert_allclose(value.numpy(), -5000., rtol=1e-6)  # log sigmoid(-5000) = -5000


def test_nce_with_nu_noise_samples_worked_by_hand():
  nu = 4.
  # p(x) = q(x) at every point: u = 1 / (1 + nu).
  objective, _ = contrastive.nce_objective([0., 0.], [0., 0.], np.zeros(8), np.zeros(8), nu=nu)
  expected = np.log(1 / (1 + nu)) + nu * np.log(nu / (1 + nu))
  np.testing.assert_allclose(objective.numpy(), expected, rtol=1e-6)


def test_global_batch_reduction_adds_up_over_replicas():
  rng = np.random.default_rng(1)
  args = [rng.normal(size=8).astype(np.float32) for _ in range(4)]
  full, _ = contrastive.fce_value(*args)
  halves = sum(contrastive.fce_value(*[a[i:i + 4] for a in args], global_batch_size=8)[0]
               for i in (0, 4))
  np.testing.assert_allclose(halves.numpy(), full.numpy(), rtol=1e-6)


@pytest.mark.parametrize('nu', [1., 4.])
def test_nce_recovers_gaussian_parameters_and_normaliser(nu):
  """NCE's optimum for a Gaussian model against Gaussian noise is the data distribution,
  with c = log Z (Gutmann & Hyvarinen 2010)."""
  rng = np.random.default_rng(0)
  n = 20000
  data = rng.normal(1., 0.5, n).astype(np.float32)
  noise_x = rng.normal(0., 2., int(nu * n)).astype(np.float32)

  def log_normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)

  logq_data, logq_noise = log_normal(data, 0., 2.), log_normal(noise_x, 0., 2.)
  mean = tf.Variable(0.)
  log_std = tf.Variable(0.)
  c = tf.Variable(0.)
  params = [mean, log_std, c]
  opt = tf.optimizers.Adam(0.05)

  def log_p(x):  # f(x) - c with f(x) = -(x - mu)^2 / (2 sigma^2)
    return -0.5 * tf.square((x - mean) / tf.exp(log_std)) - c

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      objective, _ = contrastive.nce_objective(log_p(data), logq_data, log_p(noise_x),
                                               logq_noise, nu=nu)
      loss = -objective
    opt.apply_gradients(zip(tape.gradient(loss, params), params))

  for _ in range(600):
    step()
  std = float(tf.exp(log_std))
  assert abs(float(mean) - 1.) < 0.03
  assert abs(std - 0.5) < 0.03
  assert abs(float(c) - np.log(std * np.sqrt(2 * np.pi))) < 0.05


def _models():
  flow = glow.Flow(glow.VectorGlow(2, 3, width=16), (2,))
  ebm = build.build_ebm(helpers.ebm_config(arch='mlp'), (2,))
  x = tf.constant(np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32))
  flow.data_init(x)
  helpers.perturb_variables(flow, scale=0.05)
  return ebm, flow, x, flow.sample_latent(16, generator=tf.random.Generator.from_seed(1))


def test_fce_losses_reach_every_variable_of_their_model():
  ebm, flow, x, z = _models()
  with tf.GradientTape() as tape:
    loss, metrics = contrastive.ebm_fce_loss(ebm, flow, x, z)
  helpers.assert_all_gradients_nonzero(ebm.trainable_variables,
                                       tape.gradient(loss, ebm.trainable_variables))
  # The EBM step holds the flow fixed.
  with tf.GradientTape() as tape:
    loss, _ = contrastive.ebm_fce_loss(ebm, flow, x, z)
  assert all(g is None for g in tape.gradient(loss, flow.trainable_variables))
  with tf.GradientTape() as tape:
    loss, metrics = contrastive.flow_fce_loss(ebm, flow, x, z)
  helpers.assert_all_gradients_nonzero(flow.trainable_variables,
                                       tape.gradient(loss, flow.trainable_variables))
  assert set(metrics) >= {'value', 'accuracy'}


def test_ebm_and_flow_losses_are_the_same_value_with_opposite_signs():
  ebm, flow, x, z = _models()
  ebm_loss, _ = contrastive.ebm_fce_loss(ebm, flow, x, z)
  flow_loss, _ = contrastive.flow_fce_loss(ebm, flow, x, z)
  np.testing.assert_allclose(ebm_loss.numpy(), -flow_loss.numpy(), rtol=1e-5)


def test_flow_gradient_through_samples_matches_finite_differences():
  """The flow's gradient includes the path through x~ = g(z) into log p_theta(x~)."""
  ebm, flow, x, z = _models()
  var = flow.trainable_variables[1]  # ActNorm log-scale: the loss is smooth in it (no ReLU kink)
  direction = tf.random.stateless_normal(var.shape, seed=[5, 6])
  with tf.GradientTape() as tape:
    loss, _ = contrastive.flow_fce_loss(ebm, flow, x, z)
  analytic = float(tf.reduce_sum(tape.gradient(loss, var) * direction))
  eps = 3e-3
  values = []
  for sign in (1., -1.):
    var.assign_add(sign * eps * direction)
    values.append(float(contrastive.flow_fce_loss(ebm, flow, x, z)[0]))
    var.assign_sub(sign * eps * direction)
  numeric = (values[0] - values[1]) / (2 * eps)
  np.testing.assert_allclose(analytic, numeric, rtol=1e-2)


def test_nce_against_gaussian_noise_reaches_every_ebm_variable():
  ebm, _, x, _ = _models()
  gaussian = noise.GaussianNoise((2,), std=2.)
  z = tf.random.stateless_normal([64, 2], seed=[2, 3])
  samples = 2. * z  # the noise samples
  # Shift c into the widest gap between the middle half of the data's log-ratios: some points of
  # each side are then classified right and some wrong, and none is near a tie (r = 0).
  log_ratio = lambda t: (ebm.marginal_log_prob(t) - gaussian.log_prob(t)).numpy() - np.log(4.)
  r = np.sort(log_ratio(x))[4:12]
  i = np.argmax(np.diff(r))
  ebm.set_log_normalizer(ebm.log_normalizer + [(r[i] + r[i + 1]) / 2])
  with tf.GradientTape() as tape:
    loss, metrics = contrastive.ebm_nce_loss(ebm, gaussian, x, z, nu=4.)
  helpers.assert_all_gradients_nonzero(ebm.trainable_variables,
                                       tape.gradient(loss, ebm.trainable_variables))
  # The loss and accuracies by hand: r = log p - log q - log nu, a point is called data if r > 0.
  r_data, r_noise = log_ratio(x), log_ratio(samples)
  assert 0 < np.mean(r_data > 0) < 1 and 0 < np.mean(r_noise < 0) < 1
  assert np.abs(np.concatenate([r_data, r_noise])).min() > 1e-4 * np.abs(r).max()
  log_sigmoid = lambda t: -np.logaddexp(0., -t.astype(np.float64))
  expected = np.mean(log_sigmoid(r_data)) + 4. * np.mean(log_sigmoid(-r_noise))
  np.testing.assert_allclose(loss.numpy(), -expected, rtol=1e-5)
  acc_data, acc_noise = np.mean(r_data > 0), np.mean(r_noise < 0)
  np.testing.assert_allclose([float(metrics['accuracy_data']), float(metrics['accuracy_noise'])],
                             [acc_data, acc_noise], rtol=1e-6)
  np.testing.assert_allclose(float(metrics['accuracy']), 0.5 * (acc_data + acc_noise), rtol=1e-6)


def test_gaussian_noise_log_prob_closed_form():
  gaussian = noise.GaussianNoise((3,), mean=1., std=2.)
  x = np.ones((1, 3), np.float32)
  np.testing.assert_allclose(gaussian.log_prob(x).numpy(),
                             [3 * (-np.log(2.) - 0.5 * np.log(2 * np.pi))], rtol=1e-6)


def test_ebm_fce_metrics_are_computed_with_dropout_off():
  """The alternation schedule reads the accuracy: the EBM step must report it with dropout off,
  as the flow step does, while its loss keeps dropout on."""
  shape = (12, 12, 3)
  ebm = build.build_ebm(helpers.ebm_config(arch='conv_small', conditional=True),
                        shape, num_classes=3)
  mlp = build.build_ebm(helpers.ebm_config(arch='mlp'), (2,))
  assert ebm.has_dropout and not mlp.has_dropout
  gaussian = noise.GaussianNoise(shape, std=1.)
  rng = np.random.default_rng(3)
  x = tf.constant(rng.normal(size=(32, *shape)).astype(np.float32))
  z = tf.constant(rng.normal(size=(32, int(np.prod(shape)))).astype(np.float32))
  samples, logq_samples = gaussian.generate(z)
  # Centre r = log p - log q at 0 on the data, so that dropout noise would flip decisions.
  c = np.median(ebm.marginal_log_prob(x).numpy() - gaussian.log_prob(x).numpy())
  ebm.set_log_normalizer([c] * 3)
  _, first = contrastive.ebm_fce_loss(ebm, gaussian, x, z, global_batch_size=64)
  _, second = contrastive.ebm_fce_loss(ebm, gaussian, x, z, global_batch_size=64)
  r_data = (ebm.marginal_log_prob(x) - gaussian.log_prob(x)).numpy()
  r_noise = (ebm.marginal_log_prob(samples) - logq_samples).numpy()
  acc_data = np.sum(r_data > 0) / 64.  # global batch 64: this replica's share of the mean
  acc_noise = np.sum(r_noise < 0) / 64.
  value = (np.sum(-np.logaddexp(0., -r_data)) + np.sum(-np.logaddexp(0., r_noise))) / 64.
  for metrics in (first, second):
    np.testing.assert_allclose(float(metrics['accuracy_data']), acc_data, atol=1e-6)
    np.testing.assert_allclose(float(metrics['accuracy_noise']), acc_noise, atol=1e-6)
    np.testing.assert_allclose(float(metrics['accuracy']), 0.5 * (acc_data + acc_noise),
                               atol=1e-6)
    np.testing.assert_allclose(float(metrics['value']), value, rtol=1e-5)
  _, flow_metrics = contrastive.flow_fce_loss(ebm, gaussian, x, z, global_batch_size=64)
  for k in ('value', 'accuracy', 'accuracy_data', 'accuracy_noise'):
    np.testing.assert_allclose(float(first[k]), float(flow_metrics[k]), rtol=1e-5)


def test_flow_mle_term_and_ebm_f_penalty_by_hand():
  """flow loss = V + w * NLL / D; EBM loss = -V + w * mean(f(x)^2 + f(x~)^2), f = log p + c."""
  ebm, flow, x, z = _models()
  ebm.set_log_normalizer([0.7])
  value, metrics = contrastive.flow_fce_loss(ebm, flow, x, z)
  loss, with_mle = contrastive.flow_fce_loss(ebm, flow, x, z, mle_weight=0.3)
  nll = -np.mean(flow.log_prob(x).numpy())
  np.testing.assert_allclose(float(metrics['flow_nll']), nll, rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(value) + 0.3 * nll / 2, rtol=1e-5)
  ebm_loss, _ = contrastive.ebm_fce_loss(ebm, flow, x, z)
  penalised, pm = contrastive.ebm_fce_loss(ebm, flow, x, z, f_penalty=0.1)
  samples, _ = flow.generate(z)
  f2 = np.mean(ebm(x).numpy() ** 2) + np.mean(ebm(samples).numpy() ** 2)
  np.testing.assert_allclose(float(pm['f_penalty']), f2, rtol=1e-4)
  np.testing.assert_allclose(float(penalised), float(ebm_loss) + 0.1 * f2, rtol=1e-4)
  with tf.GradientTape() as tape:
    penalised, _ = contrastive.ebm_fce_loss(ebm, flow, x, z, f_penalty=0.1)
    plain, _ = contrastive.ebm_fce_loss(ebm, flow, x, z)
    diff = penalised - plain
  # The penalty is on f = log p + c: it does not pull on c.
  np.testing.assert_allclose(tape.gradient(diff, ebm.log_normalizer_delta).numpy(), [0.],
                             atol=1e-6)


def test_auxiliary_nce_term_by_hand_and_its_gradient_reaches_every_ebm_variable():
  """EBM loss = -V - w * J, J the NCE objective against the Gaussian at samples mean + std z."""
  ebm, flow, x, z = _models()
  gauss = noise.GaussianNoise((2,), mean=[0.5, -0.5], std=[3., 2.])
  plain, _ = contrastive.ebm_fce_loss(ebm, flow, x, z)
  loss, metrics = contrastive.ebm_fce_loss(ebm, flow, x, z, aux_noise=gauss, aux_weight=0.4)
  g = np.array([0.5, -0.5]) + np.array([3., 2.]) * z.numpy()
  log_g = lambda v: (-0.5 * (((v - [0.5, -0.5]) / [3., 2.]) ** 2).sum(1)
                     - np.log(6.) - np.log(2. * np.pi))
  logp = lambda v: ebm.marginal_log_prob(tf.constant(v, tf.float32)).numpy()
  log_sigmoid = lambda t: -np.logaddexp(0., -t)
  j = (np.mean(log_sigmoid(logp(x.numpy()) - log_g(x.numpy())))
       + np.mean(log_sigmoid(log_g(g) - logp(g))))
  np.testing.assert_allclose(float(metrics['aux_value']), j, rtol=1e-4)
  np.testing.assert_allclose(float(loss), float(plain) - 0.4 * j, rtol=1e-4)
  with tf.GradientTape() as tape:
    diff = (contrastive.ebm_fce_loss(ebm, flow, x, z, aux_noise=gauss, aux_weight=0.4)[0]
            - contrastive.ebm_fce_loss(ebm, flow, x, z)[0])
  grads = tape.gradient(diff, ebm.trainable_variables)
  assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
