"""FID and KID with TTUR's Inception graph (the standard), or a labelled Keras fallback.

  python -m eval.fid A B [--inception_graph=PATH] [--fid_network=ttur|keras] [--batch_size=100]
  python -m eval.fid A --save_stats=PATH.npz      # the statistics of A, to compare against later

A and B are each a statistics .npz (TTUR's format: `mu`, `sigma`; ours may add `features`, `n`,
`network`), an .npy of uint8 images (N, H, W, C) or a folder of image files. Prints FID, KID (when
both sides have features), N of each side and the network. Flags:
  --inception_graph  TTUR's classify_image_graph_def.pb (default: the cache, downloaded once)
  --fid_network      ttur (standard) or keras (tf_keras InceptionV3: NOT comparable to published
                     FIDs)
  --keras_weights    with --fid_network=keras: 'imagenet' or a path to the notop .h5 weights
  --save_stats       also write the statistics of A to this .npz
  --batch_size       images per Inception batch

The standard FID network is TTUR's graph (inception-2015-12-05.tgz, pool_3, 2048-d), fed uint8
images as float 0..255 at any size (it resizes to 299 itself). FID is computed in float64; KID is
the unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018).
"""

import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile

from train import errors
from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from google.protobuf import message as protobuf_message  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data import images as images_lib  # noqa: E402

TTUR_URL = 'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz'
GRAPH_FILE = 'classify_image_graph_def.pb'
TTUR_NAME = 'ttur_inception_2015_12_05_pool3'
KERAS_NAME = 'keras_inception_v3_imagenet (FALLBACK: numbers not comparable to published FIDs)'
KERAS_RANDOM_NAME = ('keras_inception_v3_random_weights (FALLBACK: numbers not comparable to '
                     'published FIDs)')
KERAS_WEIGHTS_FILE = 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5'
KERAS_WEIGHTS_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/'
                     + KERAS_WEIGHTS_FILE)
DIGITS_NAME = ('digits_classifier_128d (OURS, a small classifier of the 8x8 digits: numbers not '
               'comparable to Inception FIDs)')
KINDS = ('ttur', 'keras', 'digits')
DOWNLOAD_TIMEOUT = 20  # seconds per socket operation
MAX_SAVED_FEATURES = 5000
STATS_HELP = 'make it with: python -m eval.fid SOURCE --save_stats=PATH'


class FIDError(errors.UserError):
  """One clear message saying what is wrong and what to do."""


def cache_dir():
  """Where downloads and dataset statistics are cached: $FCE_CACHE_DIR or ~/.cache/fce_ebm."""
  return os.environ.get('FCE_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache',
                                                          'fce_ebm')


def default_graph_path():
  """Where TTUR's graph is cached: cache_dir()/inception/."""
  return os.path.join(cache_dir(), 'inception', GRAPH_FILE)


# Distances.


def _float64_matrix(x, what):
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise FIDError(f'{what} must be a 2-D array, got shape {x.shape}.')
  return x


def frechet_distance(mu1, sigma1, mu2, sigma2):
  """Frechet distance of two Gaussians, in float64 with no complex parts.

  tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))): sqrt(S1) from eigh, negative
  eigenvalues (rounding of PSD matrices) clipped to 0.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1 = _float64_matrix(sigma1, 'sigma1')
  sigma2 = _float64_matrix(sigma2, 'sigma2')
  d = mu1.shape[-1] if mu1.ndim == 1 else None
  if (d is None or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d)):
    raise FIDError(f'Statistics do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 '
                   f'{mu2.shape}, sigma2 {sigma2.shape}; both sides must come from one network '
                   '(same feature size).')
  for name, x in (('mu1', mu1), ('sigma1', sigma1), ('mu2', mu2), ('sigma2', sigma2)):
    if not np.all(np.isfinite(x)):
      raise FIDError(f'{name} holds NaN or Inf; recompute the statistics.')
  sigma1 = (sigma1 + sigma1.T) / 2
  sigma2 = (sigma2 + sigma2.T) / 2
  w, v = np.linalg.eigh(sigma1)
  sqrt1 = (v * np.sqrt(np.clip(w, 0., None))) @ v.T
  m = sqrt1 @ sigma2 @ sqrt1
  trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0., None)).sum()
  diff = mu1 - mu2
  fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2. * trace_sqrt
  return float(max(fid, 0.))  # >= 0 exactly; only rounding can push it below


def kid(features1, features2, num_subsets=100, subset_size=1000, seed=0):
  """(mean, std) over random subsets of the unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3."""
  x = _float64_matrix(features1, 'features1')
  y = _float64_matrix(features2, 'features2')
  if x.shape[1] != y.shape[1]:
    raise FIDError(f'KID features differ in size ({x.shape[1]} vs {y.shape[1]}); both sides '
                   'must come from one network.')
  m = min(subset_size, len(x), len(y))
  if m < 2 or num_subsets < 1:
    raise FIDError(f'KID needs at least 2 feature rows a side and 1 subset (got {len(x)}, '
                   f'{len(y)} rows, {num_subsets} subsets).')
  d = x.shape[1]
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets)
  for i in range(num_subsets):
    a = x[rng.choice(len(x), m, replace=False)]
    b = y[rng.choice(len(y), m, replace=False)]
    kxx = (a @ a.T / d + 1.) ** 3
    kyy = (b @ b.T / d + 1.) ** 3
    kxy = (a @ b.T / d + 1.) ** 3
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    values[i] = within - 2. * kxy.mean()
  return float(values.mean()), float(values.std())


# Networks.


class InceptionNetwork:
  """An image feature network; `name` and `standard` say which one every report must name."""

  def __init__(self, name, standard, dims, fn):
    self.name = name
    self.standard = standard
    self.dims = dims
    self._fn = fn  # float32 [n, H, W, 3] in 0..255 -> [n, ...] with dims values per image
    self.image_shape = None  # the (H, W) it takes, if it takes only one

  def features(self, images, batch_size=100):
    """float64 [N, dims] features of uint8 images [N, H, W, C], C in (1, 3)."""
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4
        or images.shape[-1] not in (1, 3)):
      desc = (f'a {images.dtype} array of shape {images.shape}' if isinstance(images, np.ndarray)
              else f'a {type(images).__name__}')
      raise FIDError(f'Inception features need uint8 numpy images (N, H, W, C) with C = 1 or 3; '
                     f'got {desc}. Quantize images to 0..255 uint8 first.')
    if not len(images):
      raise FIDError('No images to compute Inception features of.')
    if self.image_shape and images.shape[1:3] != self.image_shape:
      raise FIDError(f'{self.name} takes {self.image_shape} images; got {images.shape[1:3]}.')
    if batch_size < 1:
      raise FIDError(f'batch_size must be >= 1, got {batch_size}.')
    out = np.empty((len(images), self.dims), np.float64)
    for start in range(0, len(images), batch_size):
      batch = np.asarray(images[start:start + batch_size], np.float32)
      if batch.shape[-1] == 1:
        batch = np.repeat(batch, 3, axis=-1)
      out[start:start + len(batch)] = np.reshape(self._fn(tf.constant(batch)).numpy(),
                                                 (len(batch), self.dims))
    return out


def _missing_graph_error(path, reason):
  return FIDError(
      f'TTUR\'s Inception graph is not at {path} ({reason}). Download {TTUR_URL} on a machine '
      f'with internet, extract {GRAPH_FILE} from that .tgz and pass --inception_graph=PATH (or '
      f'put it at {default_graph_path()}). '
      '--fid_network=keras is a non-standard fallback whose numbers are not comparable to '
      'published FIDs.')


def _download_graph(dest):
  """Downloads TTUR's .tgz once and writes only its GraphDef to `dest`."""
  folder = os.path.dirname(dest)
  os.makedirs(folder, exist_ok=True)
  logging.info('Downloading %s (about 90 MB) for %s', TTUR_URL, GRAPH_FILE)
  with tempfile.TemporaryDirectory(dir=folder) as tmp:
    tgz = os.path.join(tmp, 'inception.tgz')
    with urllib.request.urlopen(TTUR_URL, timeout=DOWNLOAD_TIMEOUT) as response, \
        open(tgz, 'wb') as f:
      shutil.copyfileobj(response, f)
    with tarfile.open(tgz, 'r:gz') as tar:
      members = [m for m in tar.getmembers()
                 if m.isfile() and os.path.basename(m.name) == GRAPH_FILE]
      if not members:
        raise ValueError(f'the archive holds no {GRAPH_FILE}')
      part = os.path.join(tmp, GRAPH_FILE)
      with tar.extractfile(members[0]) as src, open(part, 'wb') as f:
        shutil.copyfileobj(src, f)
    os.replace(part, dest)


def _load_ttur(graph_path, download):
  path = graph_path or default_graph_path()
  if not tf.io.gfile.exists(path):
    if graph_path:
      raise _missing_graph_error(path, 'no such file')
    if not download:
      raise _missing_graph_error(path, 'not downloaded: download=False')
    try:
      _download_graph(path)
    except Exception as e:  # network, HTTP, disk and archive errors all mean: no graph
      raise _missing_graph_error(path, f'the download failed: {type(e).__name__}: {e}') from e
  bad = (f'{path} is not TTUR\'s Inception GraphDef ({GRAPH_FILE}, with tensors ExpandDims:0 and '
         'pool_3:0)')
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      graph_def = tf.compat.v1.GraphDef.FromString(f.read())
  except (protobuf_message.DecodeError, ValueError) as e:
    raise FIDError(f'{bad}: it does not parse ({e}). Delete it and download it again.') from e

  def import_graph(images):
    (pool3,) = tf.compat.v1.import_graph_def(graph_def, input_map={'ExpandDims:0': images},
                                             return_elements=['pool_3:0'], name='inception')
    return pool3

  try:
    fn = tf.compat.v1.wrap_function(
        import_graph, [tf.TensorSpec([None, None, None, 3], tf.float32, name='images')])
  except (ValueError, TypeError, KeyError, tf.errors.OpError) as e:
    raise FIDError(f'{bad}: importing it failed ({e}).') from e
  shape = fn.outputs[0].shape
  if shape.rank != 4 or not shape[1:].is_fully_defined():  # static shapes lost: run it once
    try:
      shape = fn(tf.zeros([1, 8, 8, 3])).shape
    except (tf.errors.OpError, ValueError) as e:
      raise FIDError(f'{bad}: running it failed ({e}).') from e
  if shape.rank != 4 or shape[1] != 1 or shape[2] != 1:
    raise FIDError(f'{bad}: pool_3:0 has shape {shape}, not [N, 1, 1, dims].')
  return InceptionNetwork(TTUR_NAME, True, int(shape[3]), fn)


def _load_keras(weights):
  import tf_keras as keras  # imported here: slow, and only the fallback needs it
  try:
    model = keras.applications.InceptionV3(include_top=False, pooling='avg', weights=weights,
                                           input_shape=(299, 299, 3))
  except Exception as e:  # keras raises a bare Exception for a failed download
    raise FIDError(
        f'Could not load the Keras InceptionV3 weights {weights!r}: {e}. Without internet, copy '
        f'{KERAS_WEIGHTS_FILE} (from {KERAS_WEIGHTS_URL}) into ~/.keras/models/, or pass its '
        'path as keras_weights (--keras_weights=PATH). This is a non-standard fallback; TTUR\'s '
        'graph (--fid_network=ttur) gives FIDs comparable to published ones.') from e
  preprocess = keras.applications.inception_v3.preprocess_input

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def fn(images):
    x = tf.image.resize(images, (299, 299), method='bilinear')
    return model(preprocess(x), training=False)

  name = KERAS_NAME if weights is not None else KERAS_RANDOM_NAME
  return InceptionNetwork(name, False, int(model.output_shape[-1]), fn)


def _load_digits_classifier(epochs=40, seed=0):
  """A small ConvNet trained to classify the shipped 8x8 digits (train split), whose 128-d
  penultimate layer serves as the feature space of a digits FID/KID (NT-EBM's digits comparison:
  Inception does not see 8x8 images). Trained once, seeded, and cached in cache_dir()."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  path = os.path.join(cache_dir(), f'digits_classifier_e{epochs}_s{seed}', 'weights')

  def build():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(32, 3, padding='same', activation='relu')(inputs)
    h = keras.layers.Conv2D(64, 3, strides=2, padding='same', activation='relu')(h)
    h = keras.layers.Flatten()(h)
    feats = keras.layers.Dense(128, activation='relu', name='features')(h)
    return keras.Model(inputs, [feats, keras.layers.Dense(10)(feats)])

  with np.load(images_lib.DIGITS_PATH) as f:
    x_train, y_train, x_test, y_test = (f[k] for k in ('train_x', 'train_y', 'test_x', 'test_y'))
  scale = lambda x: x.astype(np.float32) / 16.
  model = build()
  if tf.io.gfile.exists(path + '.index'):
    model.load_weights(path).expect_partial()  # the saved optimizer state is not needed
  else:
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(keras.optimizers.Adam(1e-3),
                  loss=[None, keras.losses.SparseCategoricalCrossentropy(from_logits=True)])
    model.fit(scale(x_train), y_train, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    tf.io.gfile.makedirs(os.path.dirname(path))
    model.save_weights(path)
  accuracy = float(np.mean(np.argmax(model(scale(x_test))[1], 1) == y_test))

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def fn(images):
    grey = tf.reduce_mean(images, axis=-1, keepdims=True) / 255.  # back to 0..1 of 8x8 digits
    return model(grey)[0]

  network = InceptionNetwork(f'{DIGITS_NAME}, test accuracy {accuracy:.3f}', False, 128, fn)
  network.image_shape = (8, 8)
  return network


def load_network(kind='ttur', graph_path=None, download=True, keras_weights='imagenet'):
  """The FID network: 'ttur' (TTUR's graph, the standard), 'keras' (a labelled fallback) or
  'digits' (a classifier of the 8x8 digits, for them only).

  For 'ttur', a missing graph at the default path (default_graph_path()) is downloaded once when
  `download`; an explicit `graph_path` must exist.
  """
  if kind == 'ttur':
    return _load_ttur(graph_path, download)
  if kind == 'keras':
    return _load_keras(keras_weights)
  if kind == 'digits':
    return _load_digits_classifier()
  raise FIDError(f'Unknown FID network {kind!r}; valid: {", ".join(repr(k) for k in KINDS)}.')


# Statistics files.


def statistics(features):
  """(mu, sigma) of features [N, d] in float64; sigma is the unbiased covariance."""
  features = _float64_matrix(features, 'features')
  if len(features) < 2:
    raise FIDError(f'Statistics need at least 2 images, got {len(features)}.')
  return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def save_stats(path, mu, sigma, features=None, n=None, network=None):
  """Writes TTUR's .npz (`mu`, `sigma`), plus `features` (float16, at most 5000 random rows, for
  KID), `n` (images behind the statistics; default len(features)) and `network` when given."""
  if not path.endswith('.npz'):
    raise FIDError(f'Statistics files end in .npz; got {path}.')
  arrays = {'mu': np.asarray(mu, np.float64), 'sigma': np.asarray(sigma, np.float64)}
  if features is not None:
    features = np.asarray(features)
    n = len(features) if n is None else n
    if len(features) > MAX_SAVED_FEATURES:
      rows = np.random.default_rng(0).choice(len(features), MAX_SAVED_FEATURES, replace=False)
      features = features[np.sort(rows)]
    arrays['features'] = features.astype(np.float16)
  if n is not None:
    arrays['n'] = np.int64(n)
  if network is not None:
    arrays['network'] = np.str_(network)
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  buffer = io.BytesIO()  # np.savez seeks back, which a GFile opened for writing cannot
  np.savez(buffer, **arrays)
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'wb') as f:
    f.write(buffer.getvalue())
  tf.io.gfile.rename(tmp, path, overwrite=True)


def load_stats(path):
  """{'mu', 'sigma', 'features' (None if absent), 'n', 'network' (None if absent)} of an .npz."""
  if not tf.io.gfile.exists(path):
    raise FIDError(f'Statistics file {path} does not exist; {STATS_HELP}.')
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      data = np.load(f, allow_pickle=False)
      if not isinstance(data, np.lib.npyio.NpzFile):
        raise FIDError(f'{path} holds a single array, not statistics (mu, sigma); {STATS_HELP}.')
      with data:
        missing = [k for k in ('mu', 'sigma') if k not in data.files]
        if missing:
          raise FIDError(f'Statistics file {path} lacks {", ".join(missing)} (it has '
                         f'{", ".join(data.files) or "nothing"}); {STATS_HELP}.')
        stats = {
            'mu': np.asarray(data['mu'], np.float64),
            'sigma': np.asarray(data['sigma'], np.float64),
            'features': (np.asarray(data['features'], np.float64) if 'features' in data.files
                         else None),
            'n': int(data['n']) if 'n' in data.files else None,
            'network': str(data['network']) if 'network' in data.files else None}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, tf.errors.OpError) as e:
    raise FIDError(f'Cannot read statistics file {path} ({e}); {STATS_HELP}.') from e
  d = stats['mu'].shape[0] if stats['mu'].ndim == 1 else None
  feats = stats['features']
  if (d is None or stats['sigma'].shape != (d, d) or
      (feats is not None and (feats.ndim != 2 or feats.shape[1] != d))):
    raise FIDError(f'Statistics file {path} holds mu {stats["mu"].shape}, sigma '
                   f'{stats["sigma"].shape}' + (f', features {feats.shape}' if feats is not None
                                                else '') + f'; expected (d,), (d, d), (k, d); '
                   f'{STATS_HELP}.')
  return stats


def source_features_or_stats(source, network, batch_size=100):
  """Statistics of a source, as load_stats gives them.

  `source` is a statistics .npz (`network` is not used and may be None), an .npy of uint8 images
  (N, H, W, C) or a folder of image files.
  """
  if source.endswith('.npz'):
    return load_stats(source)
  try:
    if os.path.isdir(source):
      images = images_lib.load_folder(source)
    elif source.endswith('.npy'):
      images = images_lib.load_npy(source)
    else:
      raise FIDError(f'{source} is neither a statistics .npz, an .npy of uint8 images nor a '
                     'folder of images.')
  except images_lib.DataError as e:
    raise FIDError(str(e)) from e
  if images.ndim != 4:
    raise FIDError(f'{source} holds vectors of shape {images.shape}, not uint8 images '
                   '(N, H, W, C).')
  if network is None:
    raise FIDError(f'{source} holds images: computing their statistics needs a network.')
  features = network.features(images, batch_size=batch_size)
  mu, sigma = statistics(features)
  return {'mu': mu, 'sigma': sigma, 'features': features, 'n': len(features),
          'network': network.name}


def _count(stats):
  if 'n' in stats:
    return stats['n']
  return len(stats['features']) if stats.get('features') is not None else None


def fid_from(a, b):
  """FID (and KID when both sides carry features) of two statistics dicts, with each N."""
  if a.get('network') and b.get('network') and a['network'] != b['network']:
    raise FIDError(f'The statistics come from different networks ({a["network"]} vs '
                   f'{b["network"]}); FID compares statistics of one network only.')
  result = {'fid': frechet_distance(a['mu'], a['sigma'], b['mu'], b['sigma']), 'kid': None,
            'kid_std': None, 'n_a': _count(a), 'n_b': _count(b)}
  if a.get('features') is not None and b.get('features') is not None:
    result['kid'], result['kid_std'] = kid(a['features'], b['features'])
  return result


# Command line.

_FLAGS = flags.FlagValues()  # not the global FLAGS: main.py, which imports this, has its own
flags.DEFINE_string('inception_graph', None, 'TTUR\'s classify_image_graph_def.pb (default: '
                    'the cache, downloaded once).', flag_values=_FLAGS)
flags.DEFINE_enum('fid_network', 'ttur', KINDS, 'ttur (standard), keras (non-standard '
                  'fallback, not comparable to published FIDs) or digits (8x8 digits only).',
                  flag_values=_FLAGS)
flags.DEFINE_string('keras_weights', 'imagenet', 'With --fid_network=keras: imagenet, or the '
                    f'path of {KERAS_WEIGHTS_FILE}.', flag_values=_FLAGS)
flags.DEFINE_string('save_stats', None, 'Also write the statistics of A to this .npz.',
                    flag_values=_FLAGS)
flags.DEFINE_integer('batch_size', 100, 'Images per Inception batch.', lower_bound=1,
                     flag_values=_FLAGS)


def _run(sources):
  network = None
  if not all(s.endswith('.npz') for s in sources):
    network = load_network(_FLAGS.fid_network, _FLAGS.inception_graph,
                           keras_weights=_FLAGS.keras_weights)
  stats = [source_features_or_stats(s, network, _FLAGS.batch_size) for s in sources]
  n_text = lambda n: 'unknown' if n is None else str(n)
  if _FLAGS.save_stats:
    a = stats[0]
    save_stats(_FLAGS.save_stats, a['mu'], a['sigma'], a['features'], n=_count(a),
               network=a['network'])
    print(f'Saved the statistics of {sources[0]} (N={n_text(_count(a))}, network '
          f'{a["network"] or "not recorded"}) to {_FLAGS.save_stats}')
  if len(sources) == 2:
    scores = fid_from(*stats)
    name = network.name if network else (stats[0]['network'] or stats[1]['network'] or
                                         'not recorded in the statistics files')
    print(f'FID: {scores["fid"]:.6f}')
    if scores['kid'] is None:
      print('KID: n/a (needs features on both sides; statistics files without them give FID '
            'only)')
    else:
      print(f'KID: {scores["kid"]:.6f} +- {scores["kid_std"]:.6f}')
    print(f'A: {sources[0]} (N={n_text(scores["n_a"])})')
    print(f'B: {sources[1]} (N={n_text(scores["n_b"])})')
    print(f'network: {name}')


def main(argv):
  """`python -m eval.fid`: argv is [program, A, (B)] with this module's flags among them."""
  if _FLAGS.is_parsed():  # an earlier in-process call: start again from the defaults
    _FLAGS.unparse_flags()
  try:
    sources = _FLAGS(list(argv))[1:]
  except flags.Error as e:
    raise app.UsageError(str(e)) from e
  if not 1 <= len(sources) <= 2 or (len(sources) == 1 and not _FLAGS.save_stats):
    raise app.UsageError(f'Give two sources (A B), or one with --save_stats=PATH; got {sources}.')
  try:
    _run(sources)
  except (FIDError, images_lib.DataError) as e:
    print('error: ' + ' '.join(str(e).split()), file=sys.stderr)
    raise SystemExit(1)


if __name__ == '__main__':
  # The global FLAGS takes absl's own flags (--help, --verbosity); main parses the rest.
  startup.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
