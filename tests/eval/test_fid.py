import io
import os
import subprocess
import sys
import tarfile

from absl import app
import numpy as np
from PIL import Image
import pytest
import scipy.linalg
import tensorflow as tf

from data import images
from eval import fid
from losses import flow as flow_losses
from tests import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
  return helpers.write_tiny_inception_graph(tmp_path_factory.mktemp('graph') / 'tiny.pb')


@pytest.fixture(scope='module')
def network(graph):
  return fid.load_network('ttur', graph, download=False)


def random_images(n, size, channels=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def random_spd(d, rng):
  a = rng.standard_normal((d, 2 * d))
  return a @ a.T / (2 * d) + 0.01 * np.eye(d)


@pytest.mark.parametrize('n,d', [(300, 16), (20, 64)])  # full rank, and singular (N < d)
def test_fid_of_a_set_with_itself_is_zero(n, d):
  x = np.random.default_rng(0).standard_normal((n, d)) @ np.random.default_rng(1).normal(
      size=(d, d))
  mu, sigma = fid.statistics(x)
  # FID is a difference of traces of size tr(sigma) (200 to 4000 here): rounding is relative to it.
  assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_frechet_distance_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  for d in (3, 30):
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) -
                2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
  rng = np.random.default_rng(2)
  mu1, mu2 = rng.standard_normal(7), rng.standard_normal(7)
  s1, s2 = rng.uniform(0.1, 3., 7), rng.uniform(0.1, 3., 7)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
  np.testing.assert_allclose(fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)), expected,
                             rtol=1e-10)


def test_frechet_distance_refuses_mismatched_shapes():
  with pytest.raises(fid.FIDError, match='one network'):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted_ones():
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
  same, same_std = fid.kid(x, y, num_subsets=20, subset_size=200)
  shifted, shifted_std = fid.kid(x, y + 0.5, num_subsets=20, subset_size=200)
  assert shifted > 10 * shifted_std and shifted > 0.1
  assert abs(same) < 0.05 * shifted and abs(same) < 3 * same_std
  # subset_size is clipped to the smaller side: with 50 rows a side every subset holds all of them,
  # so the subsets' values differ only by the summation order of their permuted rows (2e-16 was
  # seen), on the scale of the kernel values k(x, x') that are summed.
  a, b = x[:50], y[:50]
  kernel_scale = np.mean((a @ a.T / 8 + 1) ** 3)
  assert fid.kid(a, y, num_subsets=3, subset_size=1000)[1] > 1e-3 * kernel_scale
  assert fid.kid(a, b, num_subsets=2, subset_size=1000)[1] < 1e-12 * kernel_scale


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
  rng = np.random.default_rng(3)
  x, y = rng.standard_normal((6, 4)), rng.standard_normal((5, 4)) + 0.3
  k = lambda u, v: (u @ v / 4 + 1) ** 3
  m = 5  # the smaller side: one subset holds all of y and 5 rows of x
  rows = np.random.default_rng(0).choice(6, m, replace=False)  # what kid draws with seed 0
  a = x[rows]
  expected = (sum(k(a[i], a[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
              / (m * (m - 1)) - 2 * sum(k(a[i], y[j]) for i in range(m) for j in range(m)) / m**2)
  mean, std = fid.kid(x, y, num_subsets=1, subset_size=100, seed=0)
  np.testing.assert_allclose(mean, expected, rtol=1e-12)
  assert std == 0  # exact, not rounding: the std of a single value (one subset) has no arithmetic


@pytest.mark.parametrize('variant', ['placeholder', 'expand_dims', 'unknown_shape'])
def test_features_of_a_tiny_graph_match_numpy(tmp_path, variant):
  graph = helpers.write_tiny_inception_graph(tmp_path / 'g.pb', variant)
  net = fid.load_network('ttur', graph, download=False)
  assert (net.name, net.standard, net.dims) == (fid.TTUR_NAME, True, helpers.TINY_INCEPTION_DIMS)
  images = random_images(7, 6)
  feats = net.features(images, batch_size=3)
  assert feats.dtype == np.float64 and feats.shape == (7, helpers.TINY_INCEPTION_DIMS)
  np.testing.assert_allclose(feats, helpers.tiny_inception_numpy(images), rtol=1e-5, atol=1e-6)


def test_batching_grey_images_and_sizes(network):
  images = random_images(10, 5, seed=1)
  # float32 features: differently shaped batches may round differently, by ~1e-7 of their scale
  # (features can be 0 after the ReLU, so the tolerance is on the scale, not each value).
  whole = network.features(images, batch_size=100)
  np.testing.assert_allclose(network.features(images, batch_size=3), whole, rtol=1e-6,
                             atol=1e-6 * np.abs(whole).max())
  grey = random_images(4, 9, channels=1, seed=2)
  grey_features = network.features(grey)
  np.testing.assert_allclose(grey_features, helpers.tiny_inception_numpy(grey), rtol=1e-5,
                             atol=1e-6 * np.abs(grey_features).max())
  np.testing.assert_allclose(network.features(np.repeat(grey, 3, -1)), grey_features, rtol=1e-6,
                             atol=1e-6 * np.abs(grey_features).max())


@pytest.mark.parametrize('images', [np.zeros((2, 4, 4, 3), np.float32),
                                    np.zeros((2, 4, 4, 4), np.uint8),
                                    np.zeros((4, 4, 3), np.uint8),
                                    [[[[0, 0, 0]]]]])
def test_features_refuse_anything_but_uint8_images(network, images):
  with pytest.raises(fid.FIDError, match='uint8'):
    network.features(images)


def test_missing_graph_says_where_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path / 'cache'))
  assert fid.default_graph_path() == str(tmp_path / 'cache' / 'inception' / fid.GRAPH_FILE)
  for graph_path in (None, str(tmp_path / 'nothing.pb')):
    with pytest.raises(fid.FIDError) as e:
      fid.load_network('ttur', graph_path, download=False)
    message = str(e.value)
    for part in (fid.TTUR_URL, '--inception_graph', fid.GRAPH_FILE, '--fid_network=keras',
                 graph_path or fid.default_graph_path()):
      assert part in message
  assert not os.path.exists(tmp_path / 'cache')  # nothing downloaded


def test_graph_is_downloaded_once_into_the_cache(tmp_path, monkeypatch):
  tgz = tmp_path / 'inception-2015-12-05.tgz'
  pb = helpers.write_tiny_inception_graph(tmp_path / fid.GRAPH_FILE)
  with tarfile.open(tgz, 'w:gz') as tar:
    tar.add(pb, arcname='./' + fid.GRAPH_FILE)
    info = tarfile.TarInfo('LICENSE')
    info.size = 2
    tar.addfile(info, io.BytesIO(b'hi'))
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.setattr(fid, 'TTUR_URL', tgz.as_uri())
  net = fid.load_network('ttur')
  assert os.listdir(tmp_path / 'cache' / 'inception') == [fid.GRAPH_FILE]
  images = random_images(3, 4)
  np.testing.assert_allclose(net.features(images), helpers.tiny_inception_numpy(images),
                             rtol=1e-5, atol=1e-6)
  os.remove(tgz)  # now cached: no second download
  assert fid.load_network('ttur').dims == helpers.TINY_INCEPTION_DIMS


def test_failed_download_names_the_error(tmp_path, monkeypatch):
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.setattr(fid, 'TTUR_URL', (tmp_path / 'missing.tgz').as_uri())
  with pytest.raises(fid.FIDError, match='download failed.*--inception_graph'):
    fid.load_network('ttur')
  assert os.listdir(tmp_path / 'cache' / 'inception') == []


def test_corrupt_or_wrong_graph_is_refused(tmp_path):
  (tmp_path / 'garbage.pb').write_bytes(b'\xff\x00 this is not a GraphDef \x13' * 10)
  with pytest.raises(fid.FIDError, match='not TTUR'):
    fid.load_network('ttur', str(tmp_path / 'garbage.pb'))
  g = tf.Graph()
  with g.as_default():
    tf.compat.v1.placeholder(tf.float32, [None, 3], name='x')
  (tmp_path / 'other.pb').write_bytes(g.as_graph_def().SerializeToString())
  with pytest.raises(fid.FIDError, match='not TTUR.*importing it failed'):
    fid.load_network('ttur', str(tmp_path / 'other.pb'))


def test_unknown_network_kind():
  with pytest.raises(fid.FIDError, match="'ttur', 'keras'"):
    fid.load_network('inception')


def test_save_and_load_stats_round_trip(tmp_path):
  feats = np.random.default_rng(0).uniform(0, 5, (5003, 4))
  mu, sigma = fid.statistics(feats)
  path = str(tmp_path / 'sub' / 'stats.npz')
  fid.save_stats(path, mu, sigma, features=feats, network='net')
  stats = fid.load_stats(path)
  np.testing.assert_array_equal(stats['mu'], mu)
  np.testing.assert_array_equal(stats['sigma'], sigma)
  assert stats['features'].shape == (fid.MAX_SAVED_FEATURES, 4)
  assert stats['n'] == 5003 and stats['network'] == 'net'
  rows = {tuple(r) for r in feats.astype(np.float16)}
  assert all(tuple(r) in rows for r in stats['features'].astype(np.float16))
  with np.load(path) as f:  # TTUR's format: mu and sigma
    assert {'mu', 'sigma'} <= set(f.files)
  fid.save_stats(path, mu, sigma)
  stats = fid.load_stats(path)
  assert (stats['features'], stats['n'], stats['network']) == (None, None, None)
  np.testing.assert_array_equal(stats['sigma'], sigma)
  assert not os.path.exists(path + '.tmp')


def test_unreadable_stats_are_refused_with_how_to_remake_them(tmp_path):
  (tmp_path / 'garbage.npz').write_bytes(b'PK\x03\x04 broken zip')
  np.savez(tmp_path / 'nokeys.npz', m=np.zeros(3))
  np.savez(tmp_path / 'shapes.npz', mu=np.zeros(3), sigma=np.eye(4))
  for name, match in (('garbage.npz', 'Cannot read'), ('nokeys.npz', 'lacks mu, sigma'),
                      ('shapes.npz', 'expected'), ('absent.npz', 'does not exist')):
    with pytest.raises(fid.FIDError, match=match) as e:
      fid.load_stats(str(tmp_path / name))
    assert str(tmp_path / name) in str(e.value) and '--save_stats=' in str(e.value)


def test_fid_from_gives_kid_only_with_features_on_both_sides():
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((60, 3)), rng.standard_normal((40, 3)) + 1
  a = dict(zip(('mu', 'sigma'), fid.statistics(x)), features=x)
  b = dict(zip(('mu', 'sigma'), fid.statistics(y)), features=y, n=1000)
  scores = fid.fid_from(a, b)
  # The same float64 computations again: equal up to rounding (BLAS may sum in another order).
  np.testing.assert_allclose(scores['fid'],
                             fid.frechet_distance(a['mu'], a['sigma'], b['mu'], b['sigma']),
                             rtol=1e-12)
  kid, kid_std = fid.kid(x, y)
  np.testing.assert_allclose([scores['kid'], scores['kid_std']], [kid, kid_std], rtol=1e-9)
  assert scores['kid_std'] > 0.01 * abs(kid)
  assert (scores['n_a'], scores['n_b']) == (60, 1000)
  scores = fid.fid_from(a, dict(b, features=None, n=None))
  assert scores['kid'] is None and scores['kid_std'] is None and scores['n_b'] is None
  with pytest.raises(fid.FIDError, match='different networks'):
    fid.fid_from(dict(a, network='x'), dict(b, network='y'))


def test_cli_on_npy_folder_and_stats(graph, tmp_path, capsys):
  a = random_images(12, 8, seed=3)
  np.save(tmp_path / 'a.npy', a)
  folder = tmp_path / 'pngs'
  folder.mkdir()
  b = random_images(6, 7, seed=4) // 2
  for i, im in enumerate(b):
    Image.fromarray(im).save(folder / f'{i}.png')
  stats_path = str(tmp_path / 'a_stats.npz')
  fid.main(['fid', str(tmp_path / 'a.npy'), str(folder), f'--inception_graph={graph}',
            f'--save_stats={stats_path}', '--batch_size=5'])
  out = capsys.readouterr().out
  fa, fb = helpers.tiny_inception_numpy(a), helpers.tiny_inception_numpy(b)
  expected = fid.frechet_distance(*fid.statistics(fa), *fid.statistics(fb))
  lines = dict(line.split(': ', 1) for line in out.splitlines() if ': ' in line)
  # Printed with 6 decimals (abs: one unit of the last digit), of float32 graph features (rel).
  np.testing.assert_allclose(float(lines['FID']), expected, rtol=1e-4, atol=1e-6)
  assert float(lines['KID'].split(' +- ')[0]) == pytest.approx(fid.kid(fa, fb)[0], rel=1e-3,
                                                               abs=1e-6)
  assert '(N=12)' in lines['A'] and '(N=6)' in lines['B'] and lines['network'] == fid.TTUR_NAME
  stats = fid.load_stats(stats_path)
  np.testing.assert_allclose(stats['mu'], fa.mean(0), rtol=1e-5)
  assert stats['n'] == 12 and stats['network'] == fid.TTUR_NAME

  # The saved statistics stand in for A, and one source with --save_stats just saves.
  fid.main(['fid', stats_path, str(folder), f'--inception_graph={graph}'])
  lines = dict(line.split(': ', 1) for line in capsys.readouterr().out.splitlines())
  np.testing.assert_allclose(float(lines['FID']), expected, rtol=1e-4)
  fid.main(['fid', str(folder), f'--save_stats={tmp_path}/b.npz', f'--inception_graph={graph}'])
  assert 'Saved' in capsys.readouterr().out
  assert fid.load_stats(f'{tmp_path}/b.npz')['n'] == 6

  with pytest.raises(SystemExit) as e:
    fid.main(['fid', str(tmp_path / 'a.npy'), str(tmp_path / 'nothing.npy'),
              f'--inception_graph={graph}'])
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'nothing.npy' in err
  with pytest.raises(app.UsageError):
    fid.main(['fid', str(folder)])


@pytest.mark.slow
def test_cli_as_a_program_exits_with_one_line_on_errors(graph, tmp_path):
  np.save(tmp_path / 'a.npy', random_images(5, 4, seed=5))
  bad = subprocess.run([sys.executable, '-m', 'eval.fid', f'{tmp_path}/a.npy', f'{tmp_path}/a.npy',
                        f'--inception_graph={tmp_path}/no.pb'], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert bad.returncode == 1 and 'Traceback' not in bad.stderr
  error = [line for line in bad.stderr.splitlines() if line.startswith('error: ')]
  assert len(error) == 1 and f'{tmp_path}/no.pb' in error[0]
  assert 'inception-2015-12-05.tgz' in error[0]  # how to get it (tests patch fid.TTUR_URL)


def fake_inception_v3(include_top, pooling, weights, input_shape):
  """Stands in for tf_keras's InceptionV3 (whose build takes too long for a unit test)."""
  import tf_keras as keras
  assert (include_top, pooling, weights, input_shape) == (False, 'avg', None, (299, 299, 3))
  x = keras.Input(input_shape)
  return keras.Model(x, keras.layers.Lambda(lambda t: t[:, 150, 150, :])(x))  # one pixel


def test_keras_fallback_resizes_and_preprocesses(monkeypatch):
  import tf_keras as keras
  monkeypatch.setattr(keras.applications, 'InceptionV3', fake_inception_v3)
  net = fid.load_network('keras', keras_weights=None)
  assert not net.standard and 'FALLBACK' in net.name and net.dims == 3
  images = np.full((2, 8, 8, 1), 51, np.uint8)
  np.testing.assert_allclose(net.features(images), np.full((2, 3), 51 / 127.5 - 1), atol=1e-6)


def test_keras_fallback_without_weights_says_how_to_provide_them(monkeypatch):
  import tf_keras as keras

  def no_internet(**kwargs):
    raise Exception('URL fetch failure on https://storage.googleapis.com/...')
  monkeypatch.setattr(keras.applications, 'InceptionV3', no_internet)
  with pytest.raises(fid.FIDError, match='URL fetch failure.*--keras_weights=PATH'):
    fid.load_network('keras')


@pytest.mark.slow
def test_the_digits_classifier_network_gives_128d_features_and_knows_its_digits(tmp_path,
                                                                                  monkeypatch):
  monkeypatch.setenv('FCE_CACHE_DIR', str(tmp_path))
  network = fid.load_network('digits')
  assert not network.standard and 'not comparable' in network.name
  accuracy = float(network.name.rsplit('test accuracy ', 1)[1])
  assert accuracy > 0.9
  with np.load(images.DIGITS_PATH) as f:
    x = flow_losses.to_8bit(f['test_x'], 17)
  feats = network.features(x[:50])
  assert feats.shape == (50, 128) and np.isfinite(feats).all()
  # Cached: the second load reads the same weights.
  np.testing.assert_allclose(fid.load_network('digits').features(x[:50]), feats, rtol=1e-5)
  with pytest.raises(fid.FIDError, match=r'takes \(8, 8\) images'):
    network.features(np.zeros((2, 32, 32, 3), np.uint8))
