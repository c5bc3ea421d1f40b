"""Long-run chains and magnetized Langevin interpolation (eval/longrun.py, NT-EBM Secs. 4.1-4.3)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from eval import image_eval
from eval import longrun
from tests import helpers
from tests.models.test_transport import _quadratic
from tests.train import test_nt


def test_one_long_chain_samples_a_gaussian_tilt():
  # As in tests/models/test_transport.py: the latent target is N(m, v I).
  mu, s, a, b = np.array([1., -2.]), 2., 0.5, np.array([3., 0.])
  flow = helpers.AffineFlow(mu, s)
  v = 1. / (1. + a * s * s)
  m = v * a * s * (b - mu)
  states, acceptance = longrun.long_chain(_quadratic(a, b.astype(np.float32)), flow, 3000,
                                          step_size=0.6, seed=1)
  assert states.shape == (3000, 2) and 0.5 < acceptance <= 1
  late = states[500:]
  # One autocorrelated chain: a loose tolerance (2500 states, ESS of several hundred).
  np.testing.assert_allclose(late.mean(0), m, atol=0.15)
  np.testing.assert_allclose(late.var(0), v, rtol=0.25)


def test_magnetized_langevin_travels_from_z1_to_z2_and_reports_the_energy():
  flow = helpers.AffineFlow(np.zeros(4), 1.)
  zero = lambda x: tf.zeros([tf.shape(x)[0]])  # U(z) = log N(z; 0, I)
  z1, z2 = np.full(4, -2., np.float32), np.full(4, 2., np.float32)
  path, energy, gamma, force = longrun.magnetized_langevin(zero, flow, z1, z2, num_steps=400,
                                                           step_size=0.05, gamma=20.)
  assert path.shape == (401, 4) and energy.shape == (401,)
  np.testing.assert_array_equal(path[0], z1)
  assert np.linalg.norm(path[-1] - z2) < 0.2 * np.linalg.norm(z1 - z2)
  # U along the path is log N(z; 0, I): highest mid-way, where the path passes the origin.
  expected = -0.5 * np.sum(path ** 2, 1) - 2 * np.log(2 * np.pi)
  np.testing.assert_allclose(energy, expected, rtol=1e-5, atol=1e-5)
  assert gamma == 20. and energy[200] > energy[0]
  # |grad U| = |z| on the segment: from 4 at the ends through 0 mid-way, median 2 (11 points).
  assert force == pytest.approx(np.median(np.abs(np.linspace(-4, 4, 11))), rel=1e-5)


def test_the_default_pull_is_half_the_models_own_force():
  flow = helpers.AffineFlow(np.zeros(64), 1.)
  zero = lambda x: tf.zeros([tf.shape(x)[0]])
  z1, z2 = (tf.random.stateless_normal([64], seed=[0, i]) for i in (1, 2))
  _, _, gamma, force = longrun.magnetized_langevin(zero, flow, z1, z2, num_steps=10)
  # U = log N(z): |grad U| = |z|, about 8 at D = 64 near the ends of the segment; the former
  # default, 4 |z1 - z2| / (n s^2), was 18 at n = 1000 (and 1800 at n = 10).
  assert 3 < force < 8 and gamma == pytest.approx(longrun.GAMMA_SHARE * force)


@pytest.mark.slow
def test_report_on_an_nt_image_run_writes_the_strip_the_fid_and_the_interpolation(tmp_path):
  _, workdir = test_nt.nt_image_run(tmp_path, steps=1)
  graph = str(tmp_path / 'graph.pb')
  helpers.write_tiny_inception_graph(graph)
  result = longrun.report(workdir, chain_steps=30, strip_every=3, fid_every=10,
                          interpolate_steps=10, fid_options=image_eval.Options(
                              inception_graph=graph, batch_size=16))
  assert list(result['fid_of_first_n']) == ['10', '20', '30']
  assert all(np.isfinite(list(result['fid_of_first_n'].values())))
  assert result['strip_frames'] == 10 and 0 <= result['acceptance'] <= 1
  out = os.path.join(workdir, 'eval')
  for name in ('long_chain_1.png', 'interpolation_1.png', 'interpolation_1.npz'):
    assert os.path.exists(os.path.join(out, name)), name
  with open(os.path.join(out, 'long_chain_1.json')) as f:
    assert json.load(f) == result
  assert np.load(os.path.join(out, 'interpolation_1.npz'))['z'].shape == (11, 8 * 8 * 3)
