"""Shared test helpers: invertibility, log-det checks and variable perturbation."""

import numpy as np
import tensorflow as tf


def assert_finite(*tensors):
  for t in tensors:
    assert np.all(np.isfinite(np.asarray(t))), 'non-finite values'


def perturb_variables(module, scale=0.1, seed=0):
  """Adds N(0, scale^2) noise to every trainable variable, so zero-initialised layers are no
  longer the identity and log-dets are not trivially zero."""
  rng = np.random.default_rng(seed)
  for v in module.trainable_variables:
    v.assign_add(scale * rng.standard_normal(v.shape).astype(np.float32))


def assert_invertible(bijector, x, atol=1e-4):
  """inverse(forward(z)) == z and forward(inverse(x)) == x, each pass recomputed from fresh
  tensors (TFP caches by tensor identity), and -ILDJ(x) == FLDJ(z) at z = inverse(x)."""
  z, ildj = bijector.inverse_and_log_det(tf.constant(np.asarray(x)))
  x_back, fldj = bijector.forward_and_log_det(tf.constant(z.numpy()))
  np.testing.assert_allclose(x_back.numpy(), np.asarray(x), atol=atol)
  np.testing.assert_allclose(-ildj.numpy(), fldj.numpy(), rtol=1e-4, atol=1e-3)
  z_back, _ = bijector.inverse_and_log_det(tf.constant(x_back.numpy()))
  np.testing.assert_allclose(z_back.numpy(), z.numpy(), atol=atol * 10)
  assert_finite(z, ildj, fldj)
  return z, ildj


def autodiff_log_det(fn, x):
  """log|det J| of a map on one example x (no batch axis), by autodiff Jacobian and slogdet."""
  x = tf.constant(np.asarray(x)[None])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(x)
  jac = tape.jacobian(y, x).numpy().astype(np.float64)
  d = int(np.prod(x.shape[1:]))
  sign, logdet = np.linalg.slogdet(jac.reshape(d, d))
  assert sign != 0, 'singular Jacobian'
  return logdet


def assert_all_gradients_nonzero(variables, grads):
  """Every variable gets a gradient that is not None and not all zeros."""
  assert len(variables) == len(grads) and variables
  for v, g in zip(variables, grads):
    assert g is not None, f'no gradient reaches {v.name}'
    g = tf.convert_to_tensor(g)
    assert np.any(g.numpy() != 0), f'zero gradient for {v.name}'


def write_tiny_inception_graph(path, dims=8, seed=0):
  """A stand-in for TTUR's classify_image_graph_def.pb with the same tensor names: images
  (0..255) enter `ExpandDims:0`, features leave `pool_3:0` as [N, 1, 1, dims]. The features are
  relu(mean colour of 2x2 quadrants @ W): returns W [12, dims] to recompute them."""
  w = np.random.default_rng(seed).normal(size=(12, dims)).astype(np.float32)
  graph = tf.Graph()
  with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name='ExpandDims')
    x = tf.image.resize(x / 255., [4, 4])
    quads = tf.nn.avg_pool2d(x, 2, 2, 'VALID')
    h = tf.nn.relu(tf.matmul(tf.reshape(quads, [-1, 12]), tf.constant(w)))
    tf.reshape(h, [-1, 1, 1, dims], name='pool_3')
  with open(path, 'wb') as f:
    f.write(graph.as_graph_def().SerializeToString())
  return w
