"""EBM features for classification (FCE Sec. 4.3: arXiv Figure 4 and Table 3).

Two protocols on a trained run's EBM, each with a few labeled training examples:
  linear  the feature map entering the EBM's top layer ('head'), flattened, and a multinomial
          logistic regression on it; beside it, the same network trained from scratch on the
          same labeled examples only (the supervised baseline of Figure 4).
  svm     the top three conv layers, each max-pooled to a 4x4 grid and concatenated (Table 3,
          after DCGAN's feature extractor, Radford et al. 2016 Sec. 5.1), and a one-vs-rest
          L2-SVM on them. The paper's 14,336 dimensions are 16 x (128 + 256 + 512), an EBM twice
          as wide as Table 5's 64/128/256 (7,168 here): the features follow the run's network.
Both classifiers are scikit-learn's (LogisticRegression, LinearSVC), on features standardised with
the labeled examples' mean and std; both fits are deterministic.

  python -m eval.features --workdir=W --labels=1000,2000,4000 --protocol=svm
writes WORKDIR/eval/features_<protocol>.json and prints the test error (%) per number of labels.
"""

import json
import os
import re
import sys
import warnings

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import exceptions  # noqa: E402
from sklearn import linear_model  # noqa: E402
from sklearn import preprocessing  # noqa: E402
from sklearn import svm  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from data import images  # noqa: E402
from data import pipeline  # noqa: E402
from eval import batching  # noqa: E402
from eval import run as eval_run  # noqa: E402
from losses import flow as flow_losses  # noqa: E402
from models import build  # noqa: E402
from models import ebm as ebm_lib  # noqa: E402
from train import modes  # noqa: E402

PROTOCOLS = ('linear', 'svm')
# Test examples turned into features at a time (the SVHN svm features of all 26k would be 1.5 GB).
TEST_CHUNK = 2000


def _network(ebm):
  """The Keras network of an EnergyModel (or the network itself)."""
  return ebm.network if isinstance(ebm, ebm_lib.EnergyModel) else ebm


def _check_input(network, y):
  shape = tuple(network.input_shape[1:])
  if tuple(np.shape(y)[1:]) != shape:
    raise ValueError(f'This EBM takes inputs of shape {shape}; got an array of shape '
                     f'{tuple(np.shape(y))}.')


def top_feature_fn(ebm):
  """batch -> [B, F]: the activations entering the EBM's 'head' layer, flattened."""
  network = _network(ebm)
  extractor = keras.Model(network.input, network.get_layer('head').input)

  def fn(batch):
    h = extractor(batch, training=False)
    return tf.reshape(h, [h.shape[0], -1])

  return fn


def top_features(ebm, y, batch_size=500):
  """The activations entering the EBM's 'head' layer, flattened: [N, F] (FCE Figure 4)."""
  _check_input(_network(ebm), y)
  return batching.apply(top_feature_fn(ebm), y, batch_size)


def conv_layers(network):
  """The layers named conv0, conv1, ... of `network`, in index order."""
  found = []
  for layer in _network(network).layers:
    match = re.fullmatch(r'conv(\d+)', layer.name)
    if match:
      found.append((int(match.group(1)), layer))
  return [layer for _, layer in sorted(found, key=lambda p: p[0])]


def pool_to_grid(h, grid):
  """Max-pools an NHWC map with window and stride ceil(size/grid) per axis ('SAME' padding), so
  an axis of size S becomes ceil(S / ceil(S/grid)): `grid` when it divides S, S if S <= grid."""
  window = [max(1, -(-int(s) // grid)) for s in h.shape[1:3]]
  return tf.nn.max_pool2d(h, window, window, 'SAME')


def conv_feature_fn(ebm, num_layers=3, grid=4):
  """batch -> [B, F]: the top `num_layers` conv layers pooled to grid x grid and concatenated."""
  network = _network(ebm)
  convs = conv_layers(network)
  if len(convs) < num_layers:
    raise ValueError(f'The EBM network {network.name!r} has {len(convs)} conv layers '
                     f'({", ".join(c.name for c in convs) or "none"}); {num_layers} were asked.')
  extractor = keras.Model(network.input, [c.output for c in convs[-num_layers:]])

  def fn(batch):
    maps = extractor(batch, training=False)
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    return tf.concat([tf.reshape(pool_to_grid(h, grid), [h.shape[0], -1]) for h in maps], axis=1)

  return fn


def conv_features(ebm, y, num_layers=3, grid=4, batch_size=500):
  """The top `num_layers` conv layers' outputs (the highest conv indices), each max-pooled to a
  grid x grid map, flattened and concatenated in layer order (FCE Table 3, DCGAN Sec. 5.1)."""
  _check_input(_network(ebm), y)
  return batching.apply(conv_feature_fn(ebm, num_layers, grid), y, batch_size)


def balanced_subset(labels, num_labels, num_classes, seed):
  """Indices of `num_labels // num_classes` examples of each class, drawn with `seed`.

  The first m of a seeded per-class permutation, so with one seed a smaller subset lies inside a
  larger one. Raises ValueError if a class has too few examples.
  """
  labels = np.asarray(labels)
  per_class = int(num_labels) // int(num_classes)
  if per_class < 1:
    raise ValueError(f'{num_labels} labels are fewer than one per class ({num_classes} classes).')
  chosen = []
  for k in range(num_classes):
    of_class = np.flatnonzero(labels == k)
    if len(of_class) < per_class:
      raise ValueError(f'{num_labels} labels need {per_class} examples of class {k}; the data has '
                       f'{len(of_class)}.')
    rng = np.random.default_rng([seed, k])
    chosen.append(rng.permutation(of_class)[:per_class])
  return np.concatenate(chosen)


class LinearClassifier:
  """argmax_k of standardise(x) W + b, with the training features' mean and std."""

  def __init__(self, mean, scale, weights, bias, fit_info=None):
    self.mean, self.scale, self.weights, self.bias = mean, scale, weights, bias
    self.fit_info = fit_info or {}  # the fit's final objective, iterations and convergence

  def standardise(self, features):
    return (np.asarray(features, np.float64) - self.mean) / self.scale

  def decision_function(self, features):
    return self.standardise(features) @ self.weights + self.bias

  def predict(self, features):
    return np.argmax(self.decision_function(features), axis=1).astype(np.int32)


def _standardiser(features):
  """(mean, scale, standardised features) of the labeled examples (scikit-learn's
  StandardScaler: constant features keep a scale of 1)."""
  features = np.asarray(features, np.float64)
  scaler = preprocessing.StandardScaler().fit(features)
  return scaler.mean_, scaler.scale_, scaler.transform(features)


def _check_labels(features, labels, num_classes):
  labels = np.asarray(labels)
  if np.ndim(features) != 2 or len(features) != len(labels):
    raise ValueError(f'Features must be [N, F] with N labels; got {np.shape(features)} and '
                     f'{len(labels)} labels.')
  if len(labels) == 0 or labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f'Labels must lie in 0..{num_classes - 1}.')
  return labels.astype(np.int32)


def _fit(model, features, labels, num_classes, objective):
  """Fits a scikit-learn linear classifier on standardised features; returns the
  LinearClassifier with weights [F, K] and bias [K] (a binary model's one vector w becomes the
  equivalent pair [-w, w] / 2 or [-w, w], see the callers) and its fit's record."""
  mean, scale, x = _standardiser(features)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always', exceptions.ConvergenceWarning)
    model.fit(x, labels)
  converged = not any(issubclass(w.category, exceptions.ConvergenceWarning) for w in caught)
  weights, bias = model.coef_.T.astype(np.float64), model.intercept_.astype(np.float64)
  if num_classes == 2 and weights.shape[1] == 1:
    half = 0.5 if isinstance(model, linear_model.LogisticRegression) else 1.
    weights, bias = half * np.concatenate([-weights, weights], 1), half * np.concatenate([-bias,
                                                                                         bias])
  value = objective(tf.constant(weights), tf.constant(bias), tf.constant(x), tf.constant(labels))
  return LinearClassifier(mean, scale, weights, bias,
                          {'objective': float(value), 'iterations': int(np.max(model.n_iter_)),
                           'converged': converged, 'solver': type(model).__name__})


def logistic_objective(weights, bias, features, labels, l2):
  """mean_i -log softmax(x_i W + b)_{y_i} + (l2/2) ||W||^2 (the bias is not penalised)."""
  logits = tf.matmul(features, weights) + bias
  nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
  return tf.reduce_mean(nll) + 0.5 * l2 * tf.reduce_sum(tf.square(weights))


def l2_svm_objective(weights, bias, features, labels, c):
  """sum_k [sum_i max(0, 1 - t_ik (x_i w_k + b_k))^2 + (||w_k||^2 + b_k^2) / (2C)], t_ik = +1 if
  y_i = k else -1: one-vs-rest L2-SVMs (squared hinge), each LIBLINEAR's L2-loss primal (bias as
  a constant feature 1, so regularised too) divided by C."""
  num_classes = weights.shape[-1]
  t = 2. * tf.one_hot(labels, num_classes, dtype=weights.dtype) - 1.
  slack = tf.nn.relu(1. - t * (tf.matmul(features, weights) + bias))
  penalty = tf.reduce_sum(tf.square(weights)) + tf.reduce_sum(tf.square(bias))
  return tf.reduce_sum(tf.square(slack)) + 0.5 / c * penalty


def train_linear(features, labels, num_classes, l2=1e-4, steps=1000, tolerance=1e-8):
  """Multinomial logistic regression on standardised features (FCE Figure 4's classifier):
  scikit-learn's LogisticRegression (L-BFGS), which minimises C sum_i NLL_i + ||W||^2 / 2, that
  is `logistic_objective` with C = 1 / (l2 N). Binary labels give sklearn's one-vector logistic
  regression, stored as the equivalent softmax weights [-w, w] / 2, whose penalty is half of
  ||w||^2: hence C = 2 / (l2 N) there."""
  labels = _check_labels(features, labels, num_classes)
  c = (2. if num_classes == 2 else 1.) / (l2 * len(labels))
  model = linear_model.LogisticRegression(C=c, max_iter=steps, tol=tolerance)
  return _fit(model, features, labels, num_classes,
              lambda w, b, x, y: logistic_objective(w, b, x, y, l2))


def train_l2_svm(features, labels, num_classes, c=1.0, steps=1000, tolerance=1e-6):
  """One-vs-rest linear L2-SVMs on standardised features (FCE Table 3's classifier):
  scikit-learn's LinearSVC (LIBLINEAR, squared hinge, the bias as a regularised constant
  feature), which minimises `l2_svm_objective`; LIBLINEAR solves the dual by coordinate descent
  when there are at least as many features as examples (the probe's case), the primal
  otherwise. Seeded, so deterministic."""
  labels = _check_labels(features, labels, num_classes)
  model = svm.LinearSVC(C=c, loss='squared_hinge', penalty='l2', dual='auto', tol=tolerance,
                        max_iter=steps, random_state=0)
  return _fit(model, features, labels, num_classes,
              lambda w, b, x, y: l2_svm_objective(w, b, x, y, c))


class SupervisedClassifier:
  """A network trained with labels; `history` holds each step's batch loss and accuracy."""

  def __init__(self, network, history):
    self.network, self.history = network, history

  def predict(self, y, batch_size=500):
    logits = batching.apply(lambda b: self.network(b, training=False), y, batch_size)
    return np.argmax(logits, axis=1).astype(np.int32)


def train_supervised(config, y, labels, steps, batch_size, lr, seed):
  """The EBM's network (its arch, K outputs) trained from scratch by softmax cross-entropy with
  Adam on the labeled examples only: the supervised baseline of FCE Figure 4.

  Seeds Keras' global generators with `seed` (initial weights, dropout), as the trainer does.
  """
  num_classes = config.data.num_classes
  if not num_classes:
    raise ValueError('A supervised baseline needs labeled data (data.num_classes >= 2).')
  y = np.asarray(y, np.float32)
  labels = _check_labels(y.reshape(len(y), -1), labels, num_classes)
  keras.utils.set_random_seed(seed)
  network = build.build_network(config.model.ebm, y.shape[1:], outputs=num_classes)
  optimizer = keras.optimizers.Adam(lr)

  @tf.function
  def step(xb, lb):
    with tf.GradientTape() as tape:
      logits = network(xb, training=True)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(lb, logits))
    variables = network.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    correct = tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), lb), tf.float32)
    return loss, tf.reduce_mean(correct)

  rng = np.random.default_rng([seed, 1])
  batch = min(batch_size, len(y))
  history = {'loss': [], 'accuracy': []}
  order, pos = rng.permutation(len(y)), 0
  for _ in range(steps):  # epochs of seeded permutations, in batches of equal size
    if pos + batch > len(y):
      order, pos = rng.permutation(len(y)), 0
    idx = order[pos:pos + batch]
    pos += batch
    loss, accuracy = step(tf.constant(y[idx]), tf.constant(labels[idx]))
    history['loss'].append(float(loss))
    history['accuracy'].append(float(accuracy))
  return SupervisedClassifier(network, history)


def _labeled_split(config, split):
  """(x, labels) of the labeled examples of `split` (an npz: source marks unlabeled ones -1);
  an EvalError if it has none, or labels outside 0..num_classes - 1."""
  x, labels = pipeline.load_arrays(config, split)
  num_classes = config.data.num_classes
  labeled = labels >= 0
  if not labeled.any() or np.any(labels >= num_classes):
    raise eval_run.EvalError(
        f'The {split} split of {config.data.name} has examples without a label in '
        f'0..{num_classes - 1} '
        f'(labels seen: {np.unique(labels)[:12].tolist()}); a feature probe needs labeled data.')
  if not labeled.all():
    logging.info('%s split of %s: %d of %d examples are unlabeled (-1); the probe uses the '
                 'labeled ones.', split, config.data.name, int((~labeled).sum()), len(labels))
  return x[labeled], labels[labeled]


def _error(predictions, labels):
  return float(100. * np.mean(np.asarray(predictions) != np.asarray(labels)))


def _fit_and_test(config, ebm, protocol, subsets, train, test, baseline, batch_size, seed):
  """Fits a classifier on the EBM's features of each labeled subset of `train` (for protocol
  'linear' also the supervised baseline, `baseline` = (steps, batch size)), and scores each on
  `test`: (results by number of labels, feature dimension)."""
  (x_train, l_train), (x_test, l_test) = train, test
  labels, num_classes = sorted(subsets), config.data.num_classes
  supervised_steps, supervised_batch_size = baseline
  if protocol == 'linear':
    feature_fn = top_feature_fn(ebm)
    fit = lambda f, lab: train_linear(f, lab, num_classes)
  else:
    try:
      feature_fn = conv_feature_fn(ebm)
    except ValueError as e:
      raise eval_run.EvalError(f'Protocol svm takes the top three conv layers: {e}') from e
    fit = lambda f, lab: train_l2_svm(f, lab, num_classes)
  extract = lambda y: batching.apply(feature_fn, y, batch_size)
  num_bins = config.data.num_bins
  union = np.unique(np.concatenate(list(subsets.values())))
  train_features = extract(flow_losses.bin_centres(x_train[union], num_bins))
  classifiers, supervised = {}, {}
  for n, idx in subsets.items():
    classifiers[n] = fit(train_features[np.searchsorted(union, idx)], l_train[idx])
    if protocol == 'linear':
      supervised[n] = train_supervised(
          config, flow_losses.bin_centres(x_train[idx], num_bins), l_train[idx], supervised_steps,
          supervised_batch_size, config.optim.ebm_lr, seed)

  predictions = {n: [] for n in labels}
  supervised_predictions = {n: [] for n in supervised}
  for i in range(0, len(x_test), TEST_CHUNK):  # test features a chunk at a time
    y = flow_losses.bin_centres(x_test[i:i + TEST_CHUNK], num_bins)
    features = extract(y)
    for n in labels:
      predictions[n].append(classifiers[n].predict(features))
    for n, model in supervised.items():
      supervised_predictions[n].append(model.predict(y, batch_size))

  results = {}
  for n in labels:
    results[str(n)] = {'labels_used': len(subsets[n]),
                       'per_class': len(subsets[n]) // num_classes,
                       'error': _error(np.concatenate(predictions[n]), l_test),
                       'fit': classifiers[n].fit_info}
    if n in supervised:
      results[str(n)]['supervised_error'] = _error(np.concatenate(supervised_predictions[n]),
                                                   l_test)
  return results, int(train_features.shape[1])


def probe(workdir, labels=(10, 50, 100), protocol='linear', supervised_steps=2000, seed=0,
          supervised_batch_size=100, batch_size=500):
  """Test error (%) of classifiers on the run's EBM features for each number of labels n.

  n // K labeled examples per class come from the train split (balanced_subset with `seed`); the
  error is on the whole test split. Protocol 'linear' (Figure 4) also trains the supervised
  baseline for `supervised_steps` Adam steps (lr optim.ebm_lr). Writes and returns
  WORKDIR/eval/features_<protocol>.json.
  """
  if protocol not in PROTOCOLS:
    raise eval_run.EvalError(f'Unknown protocol {protocol!r}; valid: {", ".join(PROTOCOLS)}.')
  config, mode = eval_run.load_run(workdir)
  num_classes = config.data.num_classes
  if not num_classes:
    raise eval_run.EvalError(f'{config.data.name} has no class labels (data.num_classes is 0): '
                             'a feature probe needs labeled data.')
  if not modes.get(mode).reports(config).ebm:
    ebm_modes = ', '.join(m.name for m in modes.MODES.values() if m.reports(config).ebm)
    raise eval_run.EvalError(f'{workdir} is a {mode} run: it trained no EBM to take features '
                             f'from (modes {ebm_modes} do).')
  labels = sorted({int(n) for n in labels})
  if not labels:
    raise eval_run.EvalError('Give at least one number of labels.')
  x_train, l_train = _labeled_split(config, 'train')
  x_test, l_test = _labeled_split(config, 'test')

  subsets = {}
  for n in labels:
    try:
      subsets[n] = balanced_subset(l_train, n, num_classes, seed)
    except ValueError as e:
      raise eval_run.EvalError(f'Cannot draw {n} labels from the {len(l_train)} training '
                               f'examples: {e}') from e
  _, ebm, step = eval_run.restore_models(config, workdir)
  results, feature_dim = _fit_and_test(config, ebm, protocol, subsets, (x_train, l_train),
                                       (x_test, l_test), (supervised_steps, supervised_batch_size),
                                       batch_size, seed)
  report = {
      'step': step, 'mode': mode, 'protocol': protocol, 'dataset': config.data.name,
      'features': 'top' if protocol == 'linear' else 'conv_top3_maxpool4x4',
      'feature_dim': feature_dim,
      'classifier': 'logistic regression' if protocol == 'linear' else 'one-vs-rest L2-SVM',
      'test_examples': int(len(x_test)), 'seed': seed, 'results': results,
  }
  if protocol == 'linear':
    report['supervised_steps'] = supervised_steps
  out_dir = os.path.join(workdir, 'eval')
  tf.io.gfile.makedirs(out_dir)
  with tf.io.gfile.GFile(os.path.join(out_dir, f'features_{protocol}.json'), 'w') as f:
    json.dump(report, f, indent=2, sort_keys=True)
  return report


def format_table(report):
  """The report as a small text table: one row per number of labels."""
  supervised = report['protocol'] == 'linear'
  head = f'{"labels":>7} {"per class":>9} {"EBM features error %":>21}'
  head += f' {"supervised error %":>19}' if supervised else ''
  lines = [f'{report["dataset"]} {report["mode"]} run at step {report["step"]}, '
           f'{report["classifier"]} on {report["feature_dim"]}-d features, '
           f'{report["test_examples"]} test examples', head]
  for n, r in sorted(report['results'].items(), key=lambda kv: int(kv[0])):
    line = f'{r["labels_used"]:>7} {r["per_class"]:>9} {r["error"]:>21.2f}'
    line += f' {r["supervised_error"]:>19.2f}' if supervised else ''
    lines.append(line)
  return '\n'.join(lines)


def _flag_values():
  """This script's flags, kept off absl's global FLAGS so that importing the module is free."""
  fv = flags.FlagValues()
  flags.DEFINE_string('workdir', None, 'Run folder of a trained EBM (nce, fce or ssl).',
                      flag_values=fv)
  flags.DEFINE_list('labels', ['10', '50', '100'], 'Numbers of labeled training examples, '
                    'split evenly over the classes.', flag_values=fv)
  flags.DEFINE_enum('protocol', 'linear', PROTOCOLS, 'linear: logistic regression on the top '
                    'features and a supervised baseline (FCE Figure 4); svm: L2-SVM on the top '
                    'three conv layers max-pooled to 4x4 (Table 3).', flag_values=fv)
  flags.DEFINE_integer('supervised_steps', 2000, 'Adam steps of the supervised baseline.',
                       flag_values=fv)
  flags.DEFINE_integer('seed', 0, 'Seed of the labeled subsets and the baseline.', flag_values=fv)
  return fv


def main(argv):
  """Command line: prints the table, or one line of error and returns 1."""
  fv = _flag_values()
  try:
    rest = fv(list(argv))
    if len(rest) > 1:
      raise flags.Error(f'Unexpected arguments: {" ".join(rest[1:])}.')
    if not fv.workdir:
      raise flags.Error('--workdir is required: the run folder to probe.')
    try:
      labels = [int(n) for n in fv.labels]
    except ValueError as e:
      raise flags.Error(f'--labels must be integers, e.g. 10,50,100; got {fv.labels}.') from e
    report = probe(fv.workdir, labels, fv.protocol, fv.supervised_steps, fv.seed)
  except (flags.Error, eval_run.EvalError, images.DataError) as e:
    print('error: ' + ' '.join(str(e).split()), file=sys.stderr)
    return 1
  print(format_table(report))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
