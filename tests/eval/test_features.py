import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras

import configs
from data import pipeline
from eval import features
from eval import run as eval_run
from losses import flow as flow_losses
from models import ebm as ebm_lib
from train import run_folder
from train import trainer as trainer_lib


def _blobs(n, k, dim, spread, seed):
  """n points of k Gaussian classes with unit noise and means `spread` apart (roughly)."""
  rng = np.random.default_rng(seed)
  means = spread * np.random.default_rng(99).normal(size=(k, dim))
  labels = np.arange(n) % k
  return means[labels] + rng.normal(size=(n, dim)), labels


def _class_images(n, shape, k, seed):
  """uint8 images whose class sets a smooth colour pattern, plus pixel noise."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  coarse = np.random.default_rng(7).uniform(110, 145, size=(k, 4, 4, c))
  templates = coarse.repeat(h // 4, axis=1).repeat(w // 4, axis=2)
  labels = np.arange(n) % k
  x = templates[labels] + rng.normal(0, 40, size=(n, h, w, c))
  return np.clip(np.round(x), 0, 255).astype(np.uint8), labels


def test_top_features_are_the_input_of_the_head():
  keras.utils.set_random_seed(0)
  net = ebm_lib.build_network('conv', (16, 16, 3), widths=(4, 8, 16))
  ebm = ebm_lib.EnergyModel(net)
  y = np.random.default_rng(0).uniform(-.5, .5, (7, 16, 16, 3)).astype(np.float32)
  f = features.top_features(ebm, y, batch_size=3)
  assert f.shape == (7, 2 * 2 * 16)  # conv2: 16 -> 8 -> 4 -> 2
  manual = keras.Model(net.input, net.get_layer('conv2').output)(y).numpy().reshape(7, -1)
  np.testing.assert_allclose(f, manual, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(features.top_features(net, y), f, rtol=1e-5, atol=1e-6)
  mlp = ebm_lib.EnergyModel(ebm_lib.build_network('mlp', (2,)))
  assert features.top_features(mlp, np.zeros((5, 2), np.float32)).shape == (5, 128)
  with pytest.raises(ValueError, match=r'shape \(16, 16, 3\)'):
    features.top_features(ebm, np.zeros((2, 8, 8, 3), np.float32))


def _max_pool(h, p):
  n, height, width, c = h.shape
  return h.reshape(n, height // p, p, width // p, p, c).max(axis=(2, 4))


def test_conv_features_pool_the_top_conv_layers_to_a_grid():
  keras.utils.set_random_seed(0)
  # conv0 16x16x2, conv1 8x8x4, conv2 4x4x8, conv3 2x2x8.
  net = ebm_lib.build_network('lipswish', (16, 16, 1), nf=2)
  y = np.random.default_rng(1).uniform(-.5, .5, (5, 16, 16, 1)).astype(np.float32)
  maps = keras.Model(net.input, [net.get_layer(f'conv{i}').output for i in range(4)])(y)
  maps = [m.numpy() for m in maps]
  pooled = [_max_pool(maps[0], 4), _max_pool(maps[1], 2), maps[2], maps[3]]  # 2x2 < 4x4 stays
  flat = [p.reshape(5, -1) for p in pooled]
  f = features.conv_features(ebm_lib.EnergyModel(net), y, batch_size=2)
  assert f.shape == (5, 4 * 4 * 4 + 4 * 4 * 8 + 2 * 2 * 8)
  np.testing.assert_allclose(f, np.concatenate(flat[1:], axis=1), rtol=1e-5, atol=1e-6)
  f4 = features.conv_features(net, y, num_layers=4)
  np.testing.assert_allclose(f4, np.concatenate(flat, axis=1), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='has 4 conv layers'):
    features.conv_features(net, y, num_layers=5)


def test_pool_to_grid_is_adaptive():
  h = np.arange(2 * 5 * 5 * 1, dtype=np.float32).reshape(2, 5, 5, 1)
  out = features.pool_to_grid(tf.constant(h), 4).numpy()  # window 2, the last one of width 1
  assert out.shape == (2, 3, 3, 1)
  for i, rows in enumerate(((0, 2), (2, 4), (4, 5))):
    for j, cols in enumerate(((0, 2), (2, 4), (4, 5))):
      np.testing.assert_array_equal(out[:, i, j], h[:, slice(*rows), slice(*cols)].max((1, 2)))
  big = tf.random.normal([1, 32, 32, 2])
  assert features.pool_to_grid(big, 4).shape == (1, 4, 4, 2)


def test_balanced_subset():
  labels = np.array([0] * 10 + [1] * 5 + [2] * 20)
  idx = features.balanced_subset(labels, 13, 3, seed=0)  # 13 // 3 = 4 per class
  assert len(idx) == 12 and len(set(idx)) == 12
  np.testing.assert_array_equal(np.bincount(labels[idx]), [4, 4, 4])
  np.testing.assert_array_equal(features.balanced_subset(labels, 13, 3, seed=0), idx)
  assert set(features.balanced_subset(labels, 13, 3, seed=1)) != set(idx)
  assert set(features.balanced_subset(labels, 6, 3, seed=0)) <= set(idx)  # nested
  with pytest.raises(ValueError, match='6 examples of class 1; the data has 5'):
    features.balanced_subset(labels, 18, 3, seed=0)
  with pytest.raises(ValueError, match='fewer than one per class'):
    features.balanced_subset(labels, 2, 3, seed=0)


@pytest.mark.parametrize('train', [features.train_linear, features.train_l2_svm])
def test_linear_classifiers_separate_and_beat_chance(train):
  x, y = _blobs(90, 3, 6, spread=6., seed=0)
  x = 10. * x + 3.  # standardisation undoes the scale and offset
  clf = train(x, y, 3)
  assert (clf.predict(x) == y).all()
  x_test, y_test = _blobs(300, 3, 6, spread=6., seed=1)
  assert (clf.predict(10. * x_test + 3.) == y_test).mean() > 0.97
  np.testing.assert_allclose(clf.mean, x.mean(0))
  np.testing.assert_allclose(clf.scale, x.std(0))
  again = train(x, y, 3)  # deterministic: the same fit again, up to the solver's tolerance
  np.testing.assert_allclose(again.weights, clf.weights, rtol=1e-6,
                             atol=1e-6 * np.abs(clf.weights).max())
  # Noisy: means about one noise std apart, 4 classes, many features of pure noise.
  x, y = _blobs(400, 4, 30, spread=0.35, seed=2)
  x_test, y_test = _blobs(2000, 4, 30, spread=0.35, seed=3)
  clf = train(x, y, 4)
  assert clf.fit_info['converged']
  assert (clf.predict(x_test) == y_test).mean() > 0.45  # chance: 0.25


def test_l2_svm_objective_by_hand():
  x = tf.constant([[1., 0.], [0., 1.], [-1., -1.]], tf.float64)
  labels = tf.constant([0, 1, 1])
  w = tf.constant([[1., -1.], [0.5, 2.]], tf.float64)  # w_0 = (1, .5), w_1 = (-1, 2)
  b = tf.constant([0.1, -0.2], tf.float64)
  # Scores (class 0, class 1): (1.1, -1.2), (0.6, 1.8), (-1.4, -1.2); targets (+-1) per class:
  # (+, -), (-, +), (-, +). Slacks: 0, 0; 1.6, 0; 0, 2.2. Squared: 2.56 + 4.84 = 7.4.
  # ||W||^2 + ||b||^2 = 1 + .25 + 1 + 4 + .01 + .04 = 6.3, over 2C = 4: 1.575.
  value = features.l2_svm_objective(w, b, x, labels, c=2.)
  np.testing.assert_allclose(value.numpy(), 8.975, rtol=1e-12)


def _numpy_svm(w, b, x, y, c):
  total = 0.
  for k in range(w.shape[1]):
    t = np.where(y == k, 1., -1.)
    slack = np.maximum(0., 1. - t * (x @ w[:, k] + b[k]))
    total += np.sum(slack ** 2) + (w[:, k] @ w[:, k] + b[k] ** 2) / (2 * c)
  return total


def _numpy_logistic(w, b, x, y, l2):
  z = x @ w + b
  z = z - z.max(1, keepdims=True)
  nll = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]
  return nll.mean() + 0.5 * l2 * np.sum(w * w)


@pytest.mark.parametrize('kind,num_features,num_classes', [
    ('svm', 4, 3), ('svm', 60, 3), ('logistic', 4, 3), ('svm', 4, 2), ('logistic', 4, 2)])
def test_classifiers_minimise_the_stated_objective(kind, num_features, num_classes):
  # (60 features for 40 examples: LIBLINEAR's dual solver; binary: sklearn's one-vector models.)
  x, y = _blobs(40, num_classes, num_features, spread=1., seed=4)
  if kind == 'svm':
    clf = features.train_l2_svm(x, y, num_classes, c=0.5)
    objective = lambda w, b: _numpy_svm(w, b, clf.standardise(x), y, 0.5)
  else:
    clf = features.train_linear(x, y, num_classes, l2=0.1)
    objective = lambda w, b: _numpy_logistic(w, b, clf.standardise(x), y, 0.1)
  assert clf.fit_info['converged']
  best = objective(clf.weights, clf.bias)
  np.testing.assert_allclose(clf.fit_info['objective'], best, rtol=1e-9)
  params = np.concatenate([clf.weights.ravel(), clf.bias])
  f = lambda p: objective(p[:-num_classes].reshape(clf.weights.shape), p[-num_classes:])
  eps = 1e-5
  grad = [(f(params + eps * e) - f(params - eps * e)) / (2 * eps) for e in np.eye(len(params))]
  assert np.abs(grad).max() < 1e-3 * max(1., best)  # a stationary point
  rng = np.random.default_rng(0)
  for _ in range(20):  # and a minimum
    assert f(params + 1e-2 * rng.normal(size=params.shape)) > best


@pytest.mark.slow
def test_supervised_baseline_learns_its_labeled_examples():
  config = configs.get_config('smoke')
  config.data.num_classes = 3
  x, labels = _class_images(24, (8, 8, 3), 3, seed=0)
  y = flow_losses.bin_centres(x, 256)
  model = features.train_supervised(config, y, labels, steps=40, batch_size=8, lr=1e-3, seed=0)
  assert model.network.output_shape == (None, 3)
  assert model.network.get_layer('conv0') is not None  # the EBM's architecture
  loss = model.history['loss']
  assert len(loss) == 40 and np.mean(loss[-5:]) < 0.5 * np.mean(loss[:5])
  assert np.mean(model.history['accuracy'][-5:]) > np.mean(model.history['accuracy'][:5])
  np.testing.assert_array_equal(model.predict(y), labels)
  again = features.train_supervised(config, y, labels, steps=3, batch_size=8, lr=1e-3, seed=0)
  np.testing.assert_allclose(again.history['loss'], loss[:3], rtol=1e-5)


SPLIT_SIZES = {'train': 200, 'test': 100}


def _mock_svhn(self, split, **kwargs):
  del self, kwargs
  name = str(split).split('[')[0]
  x, labels = _class_images(SPLIT_SIZES[name], (32, 32, 3), 10, seed=len(name))
  return tf.data.Dataset.from_tensor_slices({'image': x, 'label': labels.astype(np.int64)})


@pytest.fixture(scope='module')
def labeled_run(tmp_path_factory):
  """A 2-step FCE run on 'svhn' whose TFDS data is mocked by class-coded images."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = configs.get_config('smoke')
  config.data.update(name='svhn', shape=(32, 32, 3), num_classes=10)
  config.train.update(steps=2, checkpoint_every=2, snapshot_every=0)
  config.eval.every = 1000
  pipeline._cached_arrays.cache_clear()  # pylint: disable=protected-access
  with tfds.testing.mock_data(as_dataset_fn=_mock_svhn):
    trainer_lib.Trainer(config, 'fce', workdir).run()
    yield workdir
  pipeline._cached_arrays.cache_clear()  # pylint: disable=protected-access


@pytest.mark.slow
def test_probe_writes_errors_per_number_of_labels(labeled_run):
  report = features.probe(labeled_run, labels=(50, 10), protocol='linear', supervised_steps=15)
  with open(os.path.join(labeled_run, 'eval', 'features_linear.json')) as f:
    assert json.load(f) == report
  assert report['step'] == 2 and report['mode'] == 'fce' and report['test_examples'] == 100
  assert report['feature_dim'] == 4 * 4 * 256  # conv2 of the Table 5 EBM at 32x32
  assert list(report['results']) == ['10', '50']
  # Each error by hand from the parts (tested above): the classifier fitted to the EBM's top
  # features of the balanced subset, scored on the whole test split, in percent.
  config, _ = eval_run.load_run(labeled_run)
  x_train, l_train = pipeline.load_arrays(config, 'train')
  x_test, l_test = pipeline.load_arrays(config, 'test')
  _, ebm, _ = eval_run.restore_models(config, labeled_run)
  model_input = lambda x: flow_losses.bin_centres(x, config.data.num_bins)
  test_features = features.top_features(ebm, model_input(x_test))
  one_example = 100. / len(x_test)  # an error's resolution
  for n, per_class in (('10', 1), ('50', 5)):
    r = report['results'][n]
    assert r['labels_used'] == 10 * per_class and r['per_class'] == per_class
    idx = features.balanced_subset(l_train, int(n), 10, seed=0)
    clf = features.train_linear(features.top_features(ebm, model_input(x_train[idx])),
                                l_train[idx], 10)
    expected = 100. * np.mean(clf.predict(test_features) != l_test)
    # Features batched differently may round differently and flip one borderline example.
    assert abs(r['error'] - expected) <= one_example * 1.001, (r['error'], expected)
    wrong = r['supervised_error'] / one_example  # a count of misclassified test examples
    assert abs(wrong - round(wrong)) < 1e-9 * len(x_test)
  # Class-coded images: more labels help, and 50 of them do far better than chance (90%).
  assert report['results']['50']['error'] <= report['results']['10']['error']
  assert report['results']['50']['error'] < 50.


@pytest.mark.slow
def test_probe_svm_protocol_and_command_line(labeled_run, capsys):
  assert features.main(['features', f'--workdir={labeled_run}', '--labels=20,50',
                        '--protocol=svm']) == 0
  table = capsys.readouterr().out
  assert 'L2-SVM' in table and len(table.strip().splitlines()) == 4
  with open(os.path.join(labeled_run, 'eval', 'features_svm.json')) as f:
    report = json.load(f)
  assert report['feature_dim'] == 16 * (64 + 128 + 256)  # conv0..2 max-pooled to 4x4
  assert report['results']['50']['error'] < 50.
  assert 'supervised_error' not in report['results']['50']


@pytest.mark.slow
def test_probe_errors(labeled_run, tmp_path, capsys):
  with pytest.raises(eval_run.EvalError, match='Cannot draw 1000 labels'):
    features.probe(labeled_run, labels=(1000,))
  with pytest.raises(eval_run.EvalError, match='fewer than one per class'):
    features.probe(labeled_run, labels=(5,))
  np.save(tmp_path / 'images.npy', np.arange(6 * 192, dtype=np.uint8).reshape(6, 8, 8, 3))
  config = configs.get_config('smoke')
  config.data.update(name=f'npy:{tmp_path}/images.npy', num_classes=0)
  run_folder.check_workdir(str(tmp_path / 'unlabeled'), config, 'fce', write=True)
  with pytest.raises(eval_run.EvalError, match='no class labels'):
    features.probe(str(tmp_path / 'unlabeled'))
  config.data.num_classes = 2  # claimed, but the file has none
  run_folder.check_workdir(str(tmp_path / 'claimed'), config, 'fce', write=True)
  with pytest.raises(eval_run.EvalError, match='without a label'):
    features.probe(str(tmp_path / 'claimed'))
  run_folder.check_workdir(str(tmp_path / 'mle'), config, 'mle', write=True)
  with pytest.raises(eval_run.EvalError, match='trained no EBM'):
    features.probe(str(tmp_path / 'mle'))
  assert features.main(['features', f'--workdir={tmp_path / "unlabeled"}']) == 1
  assert features.main(['features', f'--workdir={tmp_path / "none"}']) == 1
  assert features.main(['features', '--workdir=x', '--labels=ten']) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 3 and all(line.startswith('error: ') for line in err)
  assert 'no class labels' in err[0] and 'no run' in err[1]


@pytest.mark.slow
def test_ssl_and_the_feature_probe_run_on_a_users_npz_with_unlabeled_examples(tmp_path):
  """npz:PATH with y = -1 for the unlabeled: the classes come from the labels, ssl draws its
  labeled subset from the labeled examples only, and the probe uses the labeled ones."""
  rng = np.random.default_rng(0)
  y = np.repeat([0, 1, 2], 20)
  x = (rng.integers(0, 60, (60, 8, 8, 1)) + 90 * y[:, None, None, None]).astype(np.uint8)
  y_train = y.copy()
  y_train[rng.permutation(60)[:30]] = -1
  np.savez(tmp_path / 'mine.npz', x=x, y=y_train, x_test=x[::2], y_test=y[::2])
  config = configs.for_dataset(f'npz:{tmp_path}/mine.npz', 'smoke', [
      'train.steps=2', 'ssl.labels_per_class=2', 'eval.every=1000'])
  assert config.data.num_classes == 3 and tuple(config.data.shape) == (8, 8, 1)
  workdir = str(tmp_path / 'ssl')
  run = trainer_lib.Trainer(config, 'ssl', workdir)
  assert np.all(run.source.labels[run.source.labeled_index] >= 0)
  run.run()
  report = features.probe(workdir, labels=(6,), protocol='linear', supervised_steps=3)
  assert report['test_examples'] == 30 and np.isfinite(report['results']['6']['error'])
