"""Scripts reproducing the papers' figures and tables (results in docs/)."""

import os


def scalars(workdir, tag):
  """{step: value} of a TensorBoard scalar of a run."""
  import tensorflow as tf  # here: the scripts set TF's log level before importing it
  out = {}
  for path in tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', '*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        if v.tag == tag:
          out[event.step] = float(tf.make_ndarray(v.tensor))
  return out
