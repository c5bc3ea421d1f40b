import ml_collections
import numpy as np
import pytest
import tensorflow as tf

import configs
from data import pipeline
from losses import flow as flow_losses
from models import bijectors as fb
from models import build
from models import glow
from tests import helpers

IMAGE = (8, 8, 3)


def _images(batch=4, seed=0, shape=IMAGE):
  """Dequantized 8-bit images, as training makes them."""
  rng = np.random.default_rng(seed)
  return pipeline.dequantize_numpy(rng.integers(0, 256, size=(batch, *shape)), 256, rng)


def _image_flow(coupling='affine', levels=2, steps=2):
  return glow.Flow(glow.ImageGlow(IMAGE, levels, steps, width=16, coupling=coupling), IMAGE)


def _trained_like(flow, x, seed=0):
  """Data-initialised, then every variable perturbed so no block is the identity."""
  flow.data_init(x)
  helpers.perturb_variables(flow, scale=0.05, seed=seed)
  return flow


@pytest.mark.parametrize('coupling', ['additive', 'affine'])
def test_image_glow_invertible_both_ways(coupling):
  x = _images()
  flow = _trained_like(_image_flow(coupling), x)
  z, _ = helpers.assert_invertible(flow.bijector, x)
  assert z.shape == (4, int(np.prod(IMAGE)))
  # And starting from the latent side.
  z = np.random.default_rng(1).standard_normal((3, flow.latent_dim)).astype(np.float32)
  x_gen, fldj = flow.bijector.forward_and_log_det(tf.constant(z))
  z_back, ildj = flow.bijector.inverse_and_log_det(tf.constant(x_gen.numpy()))
  np.testing.assert_allclose(z_back.numpy(), z, atol=1e-3)
  np.testing.assert_allclose(-ildj.numpy(), fldj.numpy(), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize('coupling', ['additive', 'affine'])
def test_image_glow_log_det_matches_autodiff_jacobian(coupling):
  x = _images()
  flow = _trained_like(_image_flow(coupling), x)
  _, ildj = flow.bijector.inverse_and_log_det(tf.constant(x))
  expected = helpers.autodiff_log_det(lambda t: flow.bijector.inverse_and_log_det(t)[0], x[0])
  np.testing.assert_allclose(ildj.numpy()[0], expected, rtol=1e-4, atol=1e-2)


def test_image_glow_matches_tfp_distribution_log_prob():
  x = _images()
  flow = _trained_like(_image_flow(), x)
  np.testing.assert_allclose(flow.distribution.log_prob(tf.constant(x)).numpy(),
                             flow.log_prob(tf.constant(x)).numpy(), rtol=1e-5, atol=1e-3)
  assert flow.distribution.event_shape == IMAGE
  assert flow.distribution.sample(2).shape == (2, *IMAGE)


def test_generate_log_prob_equals_log_prob_of_sample():
  """log q from the forward pass (no inversion) equals log q of the sample recomputed."""
  x = _images()
  flow = _trained_like(_image_flow(), x)
  samples, log_q = flow.sample_and_log_prob(5)
  np.testing.assert_allclose(flow.log_prob(tf.constant(samples.numpy())).numpy(),
                             log_q.numpy(), rtol=1e-4, atol=1e-2)


def _actnorm_outputs(chain, h):
  """Walks a FlowChain in the inverse direction and yields every ActNorm's output."""
  for b in chain.bijectors:
    if isinstance(b, fb.FlowChain):
      h = yield from _actnorm_outputs(b, h)
      continue
    h, _ = b.inverse_and_log_det(h)
    if isinstance(b, fb.ActNorm):
      yield h
  return h


def test_image_glow_data_init_normalises_every_actnorm_of_level_one():
  x = _images(batch=32)
  flow = _image_flow(levels=2, steps=3)
  helpers.perturb_variables(flow, scale=0.05)  # non-trivial couplings before init
  flow.data_init(x)
  assert bool(flow.initialized.numpy())
  outputs = list(_actnorm_outputs(flow.bijector.flows[0], tf.nn.space_to_depth(x, 2)))
  assert len(outputs) == 3
  for out in outputs:
    out = out.numpy().reshape(-1, out.shape[-1])
    np.testing.assert_allclose(out.mean(0), 0., atol=1e-3)
    np.testing.assert_allclose(out.std(0), 1., atol=1e-2)


def test_flow_at_initialisation_is_standard_normal():
  """Zero-initialised additive couplings and split priors, identity ActNorm, orthogonal 1x1
  convs: q is exactly N(0, I), a closed form for log q and bits/dim. (An affine coupling starts
  at scale sigmoid(2), not 1, as in openai/glow.)"""
  flow = _image_flow('additive')
  x = _images()
  d = int(np.prod(IMAGE))
  expected = -0.5 * np.sum(x.reshape(4, -1) ** 2, 1) - 0.5 * d * np.log(2 * np.pi)
  np.testing.assert_allclose(flow.log_prob(tf.constant(x)).numpy(), expected, rtol=1e-5)
  bpd = flow_losses.bits_per_dim(flow.log_prob(tf.constant(x)), d).numpy()
  np.testing.assert_allclose(bpd, (-expected + d * np.log(256)) / (d * np.log(2)), rtol=1e-5)


def _vector_flow(dim=2, steps=4):
  return glow.Flow(glow.VectorGlow(dim, steps, width=16), (dim,))


def test_vector_glow_density_integrates_to_one():
  rng = np.random.default_rng(0)
  data = np.concatenate([rng.normal([-1, 0.5], 0.4, (200, 2)),
                         rng.normal([1, -0.5], 0.6, (200, 2))]).astype(np.float32)
  flow = _trained_like(_vector_flow(steps=4), data, seed=3)
  grid = np.linspace(-10, 10, 801, dtype=np.float32)
  xx, yy = np.meshgrid(grid, grid)
  points = np.stack([xx.ravel(), yy.ravel()], 1)
  density = np.exp(flow.log_prob(tf.constant(points)).numpy())
  mass = density.sum() * (grid[1] - grid[0]) ** 2
  assert abs(mass - 1.) < 0.01, mass
  # The perturbed flow is far from N(0, I): the check is not trivially passed.
  standard = np.exp(-0.5 * np.sum(points ** 2, 1)) / (2 * np.pi)
  assert np.abs(density - standard).max() > 0.01


def test_vector_glow_invertible_and_log_det_in_five_dimensions():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((6, 5)).astype(np.float32)
  flow = _trained_like(_vector_flow(dim=5, steps=3), x)
  _, ildj = helpers.assert_invertible(flow.bijector, x)
  expected = helpers.autodiff_log_det(lambda t: flow.bijector.inverse_and_log_det(t)[0], x[0])
  np.testing.assert_allclose(ildj.numpy()[0], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('make', [lambda: _vector_flow(steps=3), lambda: _image_flow()])
def test_every_flow_variable_gets_a_gradient_from_mle(make):
  flow = make()
  x = _images() if len(flow.event_shape) == 3 else np.random.default_rng(0).standard_normal(
      (8, 2)).astype(np.float32)
  _trained_like(flow, x)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(flow_losses.flow_nll(flow, tf.constant(x))[0])
  helpers.assert_all_gradients_nonzero(flow.trainable_variables,
                                       tape.gradient(loss, flow.trainable_variables))


def test_flow_variable_counts_are_complete():
  """Guards the Keras-3-inside-tf.Module trap: every block's variables are tracked."""
  steps = 3
  vector = _vector_flow(steps=steps)
  # Per step: ActNorm 2, invertible LU 3, coupling MLP 3 layers x 2.
  assert len(vector.trainable_variables) == steps * 11
  image = _image_flow(levels=2, steps=2)
  # 2 levels x 2 steps x 11, plus one split prior conv (kernel, bias).
  assert len(image.trainable_variables) == 2 * 2 * 11 + 2


def test_temperature_scales_latent():
  flow = _image_flow()
  gen = tf.random.Generator.from_seed(0)
  z = flow.sample_latent(2000, temperature=0.5, generator=gen)
  assert abs(float(tf.math.reduce_std(z)) - 0.5) < 0.01


@pytest.mark.parametrize('shape,levels,match', [
    ((28, 28, 1), 3, 'divisible by 2\\^L = 8'),
    ((32, 32), 3, r'\(H, W, C\)'),
    ((8, 8, 3), 0, 'at least one level'),
])
def test_bad_image_shapes_are_refused(shape, levels, match):
  with pytest.raises(ValueError, match=match):
    glow.ImageGlow(shape, levels, 1, 8)


def test_wrong_channel_count_is_refused():
  flow = _image_flow()
  with pytest.raises(ValueError, match=r'images of shape \(8, 8, 3\).*\(2, 8, 8, 1\)'):
    flow.log_prob(tf.zeros([2, 8, 8, 1]))
  vector = _vector_flow()
  with pytest.raises(ValueError, match='dimension 2'):
    vector.log_prob(tf.zeros([2, 3]))


def _variable_shapes(flow):
  return [tuple(v.shape) for v in flow.trainable_variables]


@pytest.mark.parametrize('coupling', ['additive', 'affine'])
def test_build_flow_from_config(coupling):
  """Every field of the config reaches the flow: its variables are those of the flow built by
  hand from them (levels, steps, width and coupling each change the shapes or their count)."""
  config = helpers.flow_config(levels=2, steps_per_level=1, width=8, coupling=coupling,
                               scale_floor=0.05)
  image = build.build_flow(config, (8, 8, 3))
  couplings = [m for m in image.bijector.submodules if type(m).__name__ == 'Coupling']
  assert len(couplings) == 2 and all(m.scale_floor == 0.05 for m in couplings)
  by_hand = glow.Flow(glow.ImageGlow((8, 8, 3), 2, 1, 8, coupling), (8, 8, 3))
  assert _variable_shapes(image) == _variable_shapes(by_hand)
  assert (image.bijector.levels, image.bijector.steps_per_level, image.bijector.width,
          image.bijector.coupling, image.event_shape) == (2, 1, 8, coupling, (8, 8, 3))
  vector = build.build_flow(config, (3,))
  assert _variable_shapes(vector) == _variable_shapes(
      glow.Flow(glow.VectorGlow(3, 1, 8, coupling), (3,)))
  assert vector.event_shape == (3,)
  other = build.build_flow(helpers.flow_config(**dict(config, steps_per_level=2, width=4)),
                        (3,))
  assert _variable_shapes(other) == _variable_shapes(
      glow.Flow(glow.VectorGlow(3, 2, 4, coupling), (3,)))
  with pytest.raises(ValueError, match="'additive' or 'affine'"):
    build.build_flow(ml_collections.ConfigDict(dict(config, coupling='spline')), (8, 8, 3))


def _cube_flow(coupling='affine'):
  return glow.Flow(glow.ImageGlow(IMAGE, 2, 2, width=16, coupling=coupling,
                                  support=(-0.5, 0.5)), IMAGE)


@pytest.mark.parametrize('coupling', ['additive', 'affine'])
def test_cube_glow_log_det_matches_autodiff_and_generate_agrees(coupling):
  """model.flow.support='cube': the logit in front of the Glow counts in log q (against an
  autodiff Jacobian of the whole inverse pass), and log q from the forward pass is the same."""
  x = _images()
  flow = _trained_like(_cube_flow(coupling), x)
  helpers.assert_invertible(flow.bijector, x)
  _, ildj = flow.bijector.inverse_and_log_det(tf.constant(x))
  expected = helpers.autodiff_log_det(lambda t: flow.bijector.inverse_and_log_det(t)[0], x[0])
  np.testing.assert_allclose(ildj.numpy()[0], expected, rtol=1e-4, atol=1e-2)
  # At T = 0.5: a hotter latent can put a pixel's logit past +-13.8, where x rounds onto the
  # clip of fb.CubeSquash and the recomputed log q no longer matches (its docstring).
  samples, log_q = flow.sample_and_log_prob(5, temperature=0.5)
  np.testing.assert_allclose(flow.log_prob(tf.constant(samples.numpy())).numpy(),
                             log_q.numpy(), rtol=1e-4, atol=1e-2)


def test_cube_glow_samples_stay_in_the_cube_and_q_is_zero_outside():
  x = _images(batch=16)
  flow = _trained_like(_cube_flow(), x)
  samples = flow.sample(200, temperature=3.).numpy()  # hot latents reach far out
  assert np.abs(samples).max() <= 0.5
  outside = x[:2].copy()
  outside[1, 0, 0, 0] = 0.51
  log_q = flow.log_prob(tf.constant(outside)).numpy()
  assert np.isfinite(log_q[0]) and log_q[1] == -np.inf


def test_cube_glow_density_integrates_to_one_on_a_grid():
  """A 2x2x1 cube Glow: a density on (-0.5, 0.5)^4 integrates to 1 (midpoint rule, 24^4)."""
  shape = (2, 2, 1)
  flow = glow.Flow(glow.ImageGlow(shape, 1, 2, width=8, coupling='affine',
                                  support=(-0.5, 0.5)), shape)
  rng = np.random.default_rng(0)
  flow.data_init(rng.uniform(-0.3, 0.3, size=(64, *shape)).astype(np.float32))
  helpers.perturb_variables(flow, scale=0.05)
  n = 24
  axis = (np.arange(n) + 0.5) / n - 0.5
  grid = np.stack(np.meshgrid(*[axis] * 4, indexing='ij'), -1).reshape(-1, *shape)
  log_q = flow.log_prob(tf.constant(grid.astype(np.float32))).numpy()
  np.testing.assert_allclose(np.exp(log_q).sum() / n ** 4, 1., atol=0.03)


def test_cube_support_builds_from_config_and_is_refused_on_vectors():
  config = helpers.flow_config(levels=1, steps_per_level=1, width=8, coupling='additive',
                               support='cube')
  assert build.build_flow(config, (4, 4, 1)).bijector.support == (-0.5, 0.5)
  with pytest.raises(ValueError, match=r"model.flow.support='cube' on vector data \(it is for "
                     'images'):
    configs.for_dataset('8gaussians', None, ['model.flow.support=cube'])
