"""Scripts reproducing the papers' figures and tables (results in docs/)."""

import os


def define_run_flags(name):
  """The flags every experiment has: --outdir (docs/NAME), --workroot (/tmp/NAME_runs, where the
  run folders go; re-running resumes them) and --set (config overrides for every run)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('outdir', f'docs/{name}', 'Where the results (tables, figures) go.')
  flags.DEFINE_string('workroot', f'/tmp/{name}_runs', 'Run folders (re-running resumes them).')
  flags.DEFINE_multi_string('set', [], 'Config overrides (key=value) for every run.')


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
