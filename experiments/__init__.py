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


def train_run(workdir, dataset, mode, steps, seed, overrides=(), init_flow=None, config_name=None,
              log_lines=10):
  """Trains (or resumes) one run of an experiment in `workdir`, and returns it: `dataset`'s
  config (or `config_name`) with its defaults for `mode`, `steps` updates from `seed`, about
  `log_lines` progress lines, five checkpoints and one evaluation at the end, then `overrides`
  (the script's, then its --set)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  import configs  # pylint: disable=g-import-not-at-top
  from train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = configs.for_dataset(dataset, config_name, [
      f'train.seed={seed}', f'train.steps={steps}', f'eval.every={steps}',
      f'train.log_every={max(steps // log_lines, 1)}',
      f'train.checkpoint_every={max(steps // 5, 1)}', *overrides], mode)
  logging.info('%s: %s for %d steps in %s', dataset, mode, steps, workdir)
  trainer_lib.Trainer(config, mode, workdir, init_flow=init_flow).run()
  return workdir
