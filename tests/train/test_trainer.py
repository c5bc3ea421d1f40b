import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import configs
import experiments
from configs import overrides
from train import run_folder
from train import watch
from train import trainer as trainer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _toy_config(**fields):
  config = configs.get_config('toy2d')
  overrides.apply(config, ['model.flow.steps_per_level=2', 'model.flow.width=8',
                           'train.batch_size=32',
                           'train.log_every=2', 'eval.every=1000'] +
                  [f'{k}={v}' for k, v in fields.items()])
  return config


def _values(module):
  return [v.numpy() for v in module.trainable_variables]


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path):
  straight = trainer_lib.Trainer(_toy_config(**{'train.steps': 6}), 'fce', str(tmp_path / 'a'))
  straight.run()
  first = trainer_lib.Trainer(_toy_config(**{'train.steps': 3, 'train.checkpoint_every': 3}),
                              'fce', str(tmp_path / 'b'))
  first.run()
  second = trainer_lib.Trainer(_toy_config(**{'train.steps': 6}), 'fce', str(tmp_path / 'b'))
  assert int(second.step.numpy()) == 3
  second.run()
  for a, b in zip(_values(straight.flow) + _values(straight.ebm),
                  _values(second.flow) + _values(second.ebm)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert straight.schedule.updates == second.schedule.updates


@pytest.mark.slow
def test_incompatible_workdir_is_refused_and_left_untouched(tmp_path):
  workdir = str(tmp_path / 'run')
  trainer_lib.Trainer(_toy_config(**{'train.steps': 2}), 'mle', workdir).run()
  before = open(os.path.join(workdir, 'config.json')).read()
  with pytest.raises(trainer_lib.TrainingError, match='different config \\(model.flow.width\\)'):
    trainer_lib.Trainer(_toy_config(**{'model.flow.width': 16}), 'mle', workdir)
  with pytest.raises(trainer_lib.TrainingError, match='different config \\(mode\\)'):
    trainer_lib.Trainer(_toy_config(), 'fce', workdir)
  assert open(os.path.join(workdir, 'config.json')).read() == before


@pytest.mark.parametrize('mode, field, value', [('fce', 'optim.flow_optimizer', 'sgd'),
                                                 ('nt', 'train.batch_size', 64)])
def test_a_resume_that_would_not_fit_the_checkpoint_names_the_setting(tmp_path, mode, field,
                                                                      value):
  """Issue 35: another flow optimiser (other slots) or another batch of persistent chains
  ended in ~220 lines of TensorFlow warnings and an 'incompatible tensor' message."""
  workdir = str(tmp_path / 'run')
  run_folder.check_workdir(workdir, _toy_config(), mode, write=True)
  with pytest.raises(trainer_lib.TrainingError, match=f'different config \\({field}\\)'):
    run_folder.check_workdir(workdir, _toy_config(**{field: value}), mode, write=False)
  # A learning rate shapes no tensor: it may change on resume.
  run_folder.check_workdir(workdir, _toy_config(**{'optim.ebm_lr': 1e-3}), mode, write=False)


def test_run_record_is_written_whole_and_a_damaged_one_is_named(tmp_path):
  workdir = str(tmp_path / 'run')
  config = _toy_config()
  run_folder.check_workdir(workdir, config, 'mle', write=True)
  # Written under another name, then renamed: no reader can see it half-written.
  assert sorted(os.listdir(workdir)) == ['config.json']
  run_folder.check_workdir(workdir, config, 'mle', write=False)  # reads back as the same run
  path = os.path.join(workdir, 'config.json')
  text = open(path).read()
  with open(path, 'w') as f:
    f.write(text[:len(text) // 2])
  with pytest.raises(trainer_lib.TrainingError, match='config.json is not a readable run record'):
    run_folder.check_workdir(workdir, config, 'mle', write=False)


@pytest.mark.slow
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / 'run')
  trainer_lib.Trainer(_toy_config(**{'train.steps': 2, 'train.checkpoint_every': 2}), 'mle',
                      workdir).run()
  config = _toy_config(**{'train.steps': 50, 'train.checkpoint_every': 1,
                          'optim.flow_mle_lr': 1e12})
  run = trainer_lib.Trainer(config, 'mle', workdir)
  # Stopped by a non-finite loss at update N, or before saving the state after update N when
  # the models fail on the next batch: either way the last checkpoint is that of step N - 1.
  with pytest.raises(trainer_lib.DivergedError,
                     match='(became (nan|inf)|is not sound).*last good checkpoint') as error:
    run.run()
  failed = int(re.search(r'(?:at|after) step (\d+)', str(error.value)).group(1))
  assert 3 <= failed <= 50
  # Every step before the failure was saved (checkpoint_every=1), the failed one not.
  latest = tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints'))
  assert latest.endswith(f'ckpt-{failed - 1}')
  reader = tf.train.load_checkpoint(latest)
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == failed - 1
  floats = [k for k, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating]
  assert any(k.startswith('flow/') for k in floats)
  for key in floats:
    assert np.all(np.isfinite(reader.get_tensor(key))), key
  # The failed update did reach the variables in memory; resuming restores the saved ones.
  resumed = trainer_lib.Trainer(config, 'mle', workdir)
  assert int(resumed.step.numpy()) == failed - 1
  assert all(np.all(np.isfinite(v)) for v in _values(resumed.flow))
  assert any(not np.array_equal(a, b) for a, b in zip(_values(run.flow), _values(resumed.flow)))


@pytest.mark.slow
def test_fce_from_an_mle_flow_and_nce_against_it(tmp_path):
  mle_dir = str(tmp_path / 'mle')
  mle = trainer_lib.Trainer(_toy_config(**{'train.steps': 4}), 'mle', mle_dir)
  mle.run()
  fce = trainer_lib.Trainer(_toy_config(**{'train.steps': 2}), 'fce', str(tmp_path / 'fce'),
                            init_flow=mle_dir)
  for a, b in zip(_values(mle.flow), _values(fce.flow)):
    np.testing.assert_array_equal(a, b)
  fce.run()
  nce = trainer_lib.Trainer(_toy_config(**{'train.steps': 2, 'nce.noise': 'flow'}), 'nce',
                            str(tmp_path / 'nce'), init_flow=mle_dir)
  nce.run()
  for a, b in zip(_values(mle.flow), _values(nce.flow)):  # the noise stays fixed
    np.testing.assert_array_equal(a, b)
  with pytest.raises(trainer_lib.TrainingError, match='no run there'):
    trainer_lib.Trainer(_toy_config(), 'fce', str(tmp_path / 'x'), init_flow=str(tmp_path / 'no'))
  with pytest.raises(trainer_lib.TrainingError, match='different flow'):
    trainer_lib.Trainer(_toy_config(**{'model.flow.steps_per_level': 3}), 'fce',
                        str(tmp_path / 'y'), init_flow=mle_dir)
  # An NCE run with Gaussian noise has an untrained flow: it is refused as a flow to start from
  # (an NCE run against a flow holds that flow, and may be).
  gaussian = str(tmp_path / 'nce_gaussian')
  trainer_lib.Trainer(_toy_config(**{'train.steps': 1}), 'nce', gaussian).run()
  with pytest.raises(trainer_lib.TrainingError, match='no trained flow'):
    trainer_lib.Trainer(_toy_config(), 'fce', str(tmp_path / 'z'), init_flow=gaussian)
  trainer_lib.Trainer(_toy_config(), 'fce', str(tmp_path / 'w'), init_flow=str(tmp_path / 'nce'))


@pytest.mark.slow
def test_tensorboard_and_figures_are_written(tmp_path):
  workdir = str(tmp_path / 'run')
  trainer_lib.Trainer(_toy_config(**{'train.steps': 4, 'eval.every': 4}), 'fce',
                      workdir).run()
  assert os.path.exists(os.path.join(workdir, 'samples', 'density_4.png'))
  tags = set()
  for event_file in tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', '*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags |= {v.tag for v in event.summary.value}
  assert {'value', 'accuracy', 'ebm_logp_mse', 'flow_logp_mse', 'steps_per_second',
          'learning_rate/ebm', 'learning_rate/flow', 'ebm_updates', 'flow_updates',
          'ebm_grad_norm', 'ebm_clipped'} <= tags


@pytest.mark.slow
def test_a_resumed_run_logs_each_step_to_tensorboard_once_and_sets_stale_reports_aside(
    tmp_path):
  """Issues 35 and 34: the steps logged past the checkpoint a run resumes from (a kill, or
  here a rollback) showed twice in TensorBoard (a torn record at a file's end is dropped too),
  and their cached evaluation reports were reused for the new trajectory."""
  workdir = str(tmp_path / 'run')
  fields = {'train.steps': 6, 'train.checkpoint_every': 2}
  trainer_lib.Trainer(_toy_config(**fields), 'mle', workdir).run()
  os.makedirs(os.path.join(workdir, 'eval'))
  for name in ('report_6.json', 'train_eval_6.json', 'train_eval_4.json', 'metrics.json'):
    with open(os.path.join(workdir, 'eval', name), 'w') as f:
      f.write('{}')
  event_file = tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', '*'))[0]
  with open(event_file, 'ab') as f:
    f.write(b'\x10\x00\x00')  # the start of a record a kill cut short
  trainer_lib.Trainer(_toy_config(**dict(fields, **{'train.steps': 8})), 'mle', workdir,
                      rollback=1).run()  # from step 4: steps 5 and 6 are trained again
  steps = []
  for path in tf.io.gfile.glob(os.path.join(workdir, 'tensorboard', '*')):
    steps += [e.step for e in tf.compat.v1.train.summary_iterator(path)
              if any(v.tag == 'steps_per_second' for v in e.summary.value)]
  assert sorted(steps) == [2, 4, 6, 8]
  assert sorted(os.listdir(os.path.join(workdir, 'eval'))) == ['metrics.json', 'train_eval_4.json']
  assert sorted(os.listdir(os.path.join(workdir, 'rolled_back', 'eval'))) == [
      'report_6.json', 'train_eval_6.json']


@pytest.mark.slow
def test_gradient_norms_and_clipped_updates_reach_tensorboard(tmp_path):
  """A bound below every gradient clips every update: the counts are the updates."""
  workdir = str(tmp_path / 'run')
  config = _toy_config(**{'train.steps': 4, 'fce.schedule.metric': 'value',
                          'fce.schedule.max_flow_updates': 0,
                          'fce.schedule.value_threshold': -50., 'optim.ebm_clip_norm': 1e-6,
                          'optim.flow_clip_norm': 1e-6})
  trainer = trainer_lib.Trainer(config, 'fce', workdir)
  trainer.run()
  assert trainer.schedule.updates == {'ebm': 1, 'flow': 3}
  scalars = {k: experiments.scalars(workdir, k).values()
             for k in ('ebm_clipped', 'flow_clipped', 'ebm_grad_norm', 'flow_grad_norm')}
  assert sum(scalars['ebm_clipped']) == 1 and sum(scalars['flow_clipped']) == 3
  assert min(scalars['ebm_grad_norm']) > 0 and min(scalars['flow_grad_norm']) > 0


def test_gradient_norms_keep_each_models_largest_and_count_the_clipped_updates():
  config = configs.get_config('toy2d')
  config.optim.update(ebm_clip_norm=100., flow_clip_norm=0.)
  norms = watch.GradientNorms(config.optim)
  for metrics in [{'ebm_grad_norm': 5.}, {'flow_grad_norm': 20., 'value': -1.},
                  {'ebm_grad_norm': 150.}, {'ebm_grad_norm': 50.}, {'ebm_grad_norm': 101.}]:
    norms.record(metrics)
  assert norms.summary() == {'ebm_grad_norm': 150., 'ebm_clipped': 2, 'flow_grad_norm': 20.}
  assert norms.summary() == {}  # a new interval
  norms.record({'ebm_grad_norm': 7.})
  assert norms.summary() == {'ebm_grad_norm': 7., 'ebm_clipped': 0}


@pytest.mark.slow
def test_image_runs_end_to_end_from_an_npy_file(tmp_path):
  data = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
  np.save(tmp_path / 'images.npy', data)
  config = configs.get_config('smoke')
  config.data.name = f'npy:{tmp_path}/images.npy'
  for mode in ('mle', 'fce', 'nce'):
    metrics = trainer_lib.Trainer(config, mode, str(tmp_path / mode)).run()
    assert all(np.isfinite(v) for v in metrics.values())
  assert os.path.exists(tmp_path / 'fce' / 'samples' / f'flow_samples_{config.train.steps}.png')


def _main(args, workdir, **kwargs):
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'main.py'), f'--workdir={workdir}', *args],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_with_the_step_counter_continuing(tmp_path):
  workdir = str(tmp_path / 'run')
  args = ['--mode=mle', '--set', 'train.steps=100000', '--set', 'train.checkpoint_every=20',
          '--set', 'train.log_every=20', '--set', 'eval.every=100000',
          '--set', 'train.batch_size=32', '--set', 'model.flow.width=8']
  proc = _main(args, workdir)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 120
  while tf.train.latest_checkpoint(ckpt_dir) is None and time.time() < deadline:
    time.sleep(0.5)
  time.sleep(1.)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = int(tf.train.latest_checkpoint(ckpt_dir).rsplit('-', 1)[1])
  assert saved > 0 and saved % 20 == 0  # numbered by step, every train.checkpoint_every
  args[2] = f'train.steps={saved + 20}'
  out = _main(args, workdir).communicate(timeout=300)[0]
  assert f'Resumed from {ckpt_dir}/ckpt-{saved} at step {saved}' in out
  assert f'step {saved + 20}/{saved + 20}' in out
  assert tf.train.latest_checkpoint(ckpt_dir) == f'{ckpt_dir}/ckpt-{saved + 20}'


@pytest.mark.slow
@pytest.mark.parametrize('args,message', [
    (['--dataset=imagenet'], "Unknown dataset 'imagenet'"),
    (['--mode=gan'], "flag --mode=gan: value should be one of"),
    (['--init_flow=/nonexistent'], 'no run there'),
    (['--set', 'train.stpes=3'], "Unknown config field 'train.stpes'"),
    (['--dataset=npy:/nonexistent.npy'], 'Cannot read /nonexistent.npy'),
    (['--mode=eval'], 'no run'),
    (['--mode=nt'], 'corrects a pretrained flow: pass --init_flow'),
    (['--mode=sample', '--thin=-1'], '--thin at least 0'),
    (['--set', 'train.steps=1.5'], "'train.steps' is an integer; got '1.5'"),
    (['--set', 'train.checkpoint_every=0'], 'train.checkpoint_every=0 (must be an integer >= 1)'),
    (['--set', 'model.ebm.arch=foo'], "no sense: model.ebm.arch='foo' (must be one of 'mlp', "),
    (['--mode=nce', '--set', 'nce.noise=banana'],
     "no sense: nce.noise='banana' (must be 'gaussian' or 'flow')."),
    (['--mode=sample', '--temperature=nan'], '--temperature must be a positive number'),
    (['--mode=sample', '--temperature=-1'], '--temperature must be a positive number'),
    (['--mode=sample', '--hmc_step_size=-1'], '--hmc_step_size must be 0'),
    (['--mode=eval', '--ais_steps=1'], '--ais_steps must be 0 or integers of at least 2'),
    (['--mode=eval', '--ais_steps=100,many'], '--ais_steps must be 0 or integers of at least 2'),
])
def test_bad_command_lines_get_one_clear_error(tmp_path, args, message):
  out = _main(args, str(tmp_path / 'run')).communicate(timeout=120)[0]
  assert message in out
  assert 'Traceback' not in out
  if not args[0].startswith('--mode=gan'):  # absl's own flag check words its error itself
    assert [line for line in out.splitlines() if line.startswith('error: ')], out
  assert '--fid_samples:' not in out  # no flag list (absl's usage) before the error
  assert not os.path.exists(tmp_path / 'run' / 'config.json')


@pytest.mark.slow
def test_a_full_disk_during_evaluation_is_one_line_and_keeps_the_checkpoint(tmp_path):
  """Issue 35: the density PNG of step 4 written into /dev/full (a device that is always full)
  ended in an OSError traceback."""
  workdir = tmp_path / 'run'
  (workdir / 'samples').mkdir(parents=True)
  (workdir / 'samples' / 'density_4.png').symlink_to('/dev/full')
  args = ['--mode=fce', '--set', 'train.steps=8', '--set', 'train.checkpoint_every=4',
          '--set', 'eval.every=4', '--set', 'train.batch_size=16', '--set', 'model.flow.width=8',
          '--set', 'model.flow.steps_per_level=2', '--set', 'model.ebm.width=8']
  proc = _main(args, str(workdir))
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 1 and 'Traceback' not in out, out
  assert 'error: no space left on the device, writing ' in out
  assert tf.train.latest_checkpoint(str(workdir / 'checkpoints')).endswith('ckpt-4')
  assert not os.path.exists(workdir / '.lock')


@pytest.mark.slow
def test_schedule_on_v_reads_the_value_and_logs_its_running_mean(tmp_path):
  """Under fce.schedule.metric=value the trainer hands the schedule V: a threshold V never
  reaches keeps every update with the EBM; one it always exceeds gives the flow all but the
  first."""
  def run(value_threshold, name):
    config = _toy_config(**{'train.steps': 4, 'train.log_every': 4, 'train.checkpoint_every': 4,
                            'fce.schedule.metric': 'value',
                            'fce.schedule.max_flow_updates': 0,
                            'fce.schedule.value_threshold': value_threshold})
    trainer = trainer_lib.Trainer(config, 'fce', str(tmp_path / name))
    return trainer, trainer.run()
  starved, logged = run(-1e-6, 'high')
  assert starved.schedule.updates == {'ebm': 4, 'flow': 0}
  assert 'mean_value' in logged and 'mean_accuracy' not in logged
  assert logged['mean_value'] < -1e-6
  eager, _ = run(-50., 'low')
  assert eager.schedule.updates == {'ebm': 1, 'flow': 3}


@pytest.mark.slow
def test_ssl_on_two_spirals_trains_both_models(tmp_path):
  config = _toy_config(**{'train.steps': 5, 'ssl.labels_per_class': 7,
                          'ssl.labeled_batch_size': 14, 'ssl.vat_weight': 1.,
                          'fce.schedule.max_flow_updates': 1, 'eval.every': 5,
                          'fce.schedule.threshold': 0.05})  # EBM, flow, ..., EBM
  config.data.update(name='2spirals', num_classes=2)
  # The mode implies the class-conditional EBM (train/modes.py); the caller's config is unchanged.
  assert not config.model.ebm.conditional
  run = trainer_lib.Trainer(config, 'ssl', str(tmp_path / 'ssl'))
  assert run.config.model.ebm.conditional and not config.model.ebm.conditional
  assert run.ebm.num_classes == 2
  metrics = run.run()
  assert run.schedule.updates == {'ebm': 3, 'flow': 2}
  assert {'label_loss', 'vat_loss', 'class_accuracy', 'value', 'aux_value'} <= set(metrics)
  config.ssl.labels_per_class = 0
  with pytest.raises(trainer_lib.TrainingError, match='ssl.labels_per_class'):
    trainer_lib.Trainer(config, 'ssl', str(tmp_path / 'ssl2'))
  config.data.num_classes = 0
  with pytest.raises(trainer_lib.TrainingError, match='labeled data'):
    trainer_lib.Trainer(config, 'ssl', str(tmp_path / 'ssl3'))


@pytest.mark.slow
def test_a_config_that_fails_to_build_leaves_no_run_behind(tmp_path):
  workdir = str(tmp_path / 'run')
  with pytest.raises(trainer_lib.TrainingError, match='ssl.labels_per_class'):
    config = _toy_config(**{'train.steps': 2})
    config.data.update(name='2spirals', num_classes=2)
    config.model.ebm.conditional = True
    trainer_lib.Trainer(config, 'ssl', workdir)
  assert not os.path.exists(os.path.join(workdir, 'config.json'))
  config.model.flow.width = 16  # a corrected model config is accepted
  config.ssl.labels_per_class = 3
  trainer_lib.Trainer(config, 'ssl', workdir).run()


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['fce', 'nce', 'ssl'])
def test_a_new_ebm_starts_level_with_its_noise_on_the_first_batch(tmp_path, mode):
  data = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
  np.save(tmp_path / 'images.npy', data)
  config = configs.get_config('smoke')
  config.data.name = f'npy:{tmp_path}/images.npy'
  if mode == 'ssl':  # digits: real labels
    config = configs.for_dataset('digits', 'smoke', ['data.shape=(8, 8, 1)', 'data.num_bins=17',
                                                     'ssl.labels_per_class=1'])
    config.data.num_classes, config.model.ebm.conditional = 10, True
  run = trainer_lib.Trainer(config, mode, str(tmp_path / mode))
  x = tf.constant(run.source.batch(0)['x'])
  log_ratio = run.ebm.log_prob(x) - (run.noise.log_prob(x)[:, None] if mode == 'ssl' else
                                      run.noise.log_prob(x))
  scale = float(tf.reduce_mean(tf.abs(run.noise.log_prob(x))))
  assert scale > 10  # so c = 0 would be far off
  # float32 log-densities of this size: rounding is relative to it (seen: 1e-6 of 40).
  np.testing.assert_allclose(np.mean(log_ratio.numpy(), axis=0), 0., atol=1e-5 * scale)
  # Resuming keeps the trained c instead of re-initialising it.
  run.run()
  c = run.ebm.log_normalizer.numpy()
  again = trainer_lib.Trainer(config, mode, str(tmp_path / mode))
  np.testing.assert_array_equal(again.ebm.log_normalizer.numpy(), c)


@pytest.mark.slow
def test_first_bias_data_places_the_kinks_on_a_new_run_only(tmp_path):
  config = _toy_config(**{'model.ebm.first_bias': 'data', 'train.steps': 4})
  run = trainer_lib.Trainer(config, 'nce', str(tmp_path))
  layer = run.ebm.network.get_layer('fc0')
  x = run.source.batch(0)['x']
  pre = x @ layer.kernel.numpy() + layer.bias.numpy()
  assert np.all(np.min(np.abs(pre), axis=0) < 1e-4)  # every kink through a first-batch point
  run.run()
  trained = layer.bias.numpy()
  again = trainer_lib.Trainer(config, 'nce', str(tmp_path))  # resumed: the trained biases stay
  np.testing.assert_array_equal(again.ebm.network.get_layer('fc0').bias.numpy(), trained)


@pytest.mark.slow
def test_fce_init_freezes_the_flow_and_ebm_updates_stop_the_run(tmp_path):
  """fce.init_steps EBM-only updates first (the flow unchanged), then the schedule; with
  fce.ebm_updates the run stops at that many EBM updates, whatever train.steps says."""
  config = _toy_config(**{'train.steps': 100, 'fce.init_steps': 4, 'fce.ebm_updates': 6,
                          'fce.schedule.max_ebm_updates': 1,
                          'fce.schedule.max_flow_updates': 1})
  run = trainer_lib.Trainer(config, 'fce', str(tmp_path / 'init'))
  flow_before = _values(run.flow)
  run.config.train.steps = 4
  run.run()
  assert run.schedule.updates == {'ebm': 4, 'flow': 0}
  for before, after in zip(flow_before, _values(run.flow)):
    np.testing.assert_array_equal(before, after)
  run.config.train.steps = 100
  run.run()  # then strict alternation: EBM (the 5th), flow, EBM (the 6th), stop
  assert run.schedule.updates == {'ebm': 6, 'flow': 1}
  assert int(run.step.numpy()) == 7


def test_a_collapsing_flow_is_warned_about_once(tmp_path, caplog):
  config = _toy_config(**{'train.steps': 2, 'fce.flow_nll_warn': 1.})
  run = trainer_lib.Trainer(config, 'fce', str(tmp_path / 'warn'))
  start = float(run.state.flow_nll_start.numpy())
  np.testing.assert_allclose(start, -np.mean(run.flow.log_prob(tf.constant(run.source.batch(0)['x']))),
                             rtol=1e-5)
  caplog.set_level('INFO', logger='absl')
  run.turns.collapse(start + 1.5, 10)    # 0.75 nats per dimension: fine
  run.turns.collapse(start + 2.5, 20)    # 1.25: warned
  run.turns.collapse(start + 3.0, 30)    # still collapsed: not warned again
  run.turns.collapse(start + 0.5, 40)    # back
  run.turns.collapse(start + 9.0, 50)    # collapsed again: warned again
  warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert len(warnings) == 2 and all('collapsing' in w for w in warnings)
  assert 'step 20' in warnings[0] and 'step 50' in warnings[1]


@pytest.mark.slow
def test_a_run_made_before_a_config_field_existed_resumes(tmp_path):
  """A field added later (model.flow.scale_floor) takes its default in the saved run, so the run
  resumes with that default and is refused with any other value; a renamed field is read under
  its new name."""
  workdir = str(tmp_path / 'old')
  fields = {'train.steps': 2, 'model.flow.scale_floor': 0.}
  trainer_lib.Trainer(_toy_config(**fields), 'fce', workdir).run()
  path = os.path.join(workdir, 'config.json')
  with open(path) as f:
    saved = json.load(f)
  del saved['config']['model']['flow']['scale_floor']
  del saved['identity']['model.flow.scale_floor']
  flow = saved['config']['model']['flow']  # and one saved before steps became steps_per_level
  flow['steps'] = flow.pop('steps_per_level')
  saved['identity']['model.flow.steps'] = saved['identity'].pop('model.flow.steps_per_level')
  with open(path, 'w') as f:
    json.dump(saved, f)
  resumed = trainer_lib.Trainer(_toy_config(**dict(fields, **{'train.steps': 4})), 'fce', workdir)
  assert int(resumed.step.numpy()) == 2
  with pytest.raises(trainer_lib.TrainingError, match='model.flow.scale_floor'):
    trainer_lib.Trainer(_toy_config(**{'model.flow.scale_floor': 0.01}), 'fce', workdir)


@pytest.mark.slow
@pytest.mark.parametrize('mode, fields', [
    ('nce', {'train.steps': 4}),
    # FCE counts progress in EBM updates: strict alternation puts them at steps 1, 3, 5, 7.
    ('fce', {'train.steps': 100, 'fce.ebm_updates': 4, 'fce.schedule.max_ebm_updates': 1,
             'fce.schedule.max_flow_updates': 1})])
def test_ebm_learning_rate_anneals_over_its_updates_and_resumes_on_schedule(tmp_path, mode,
                                                                             fields):
  """optim.ebm_lr_anneal=0.5 over 4 EBM updates: progress 0, 1/4, 1/2, 3/4 gives the factors
  1, 1, 1, 1/2, in a straight run and in one stopped after its second update and resumed."""
  config = lambda: _toy_config(**fields, **{'optim.ebm_lr_anneal': 0.5,
                                            'train.checkpoint_every': 1})

  def watched(run, seen):
    step = run.step_fns['ebm']
    def recording(batch):
      seen.append(float(run.optimizers['ebm'].learning_rate.numpy()))
      return step(batch)
    run.step_fns['ebm'] = recording
    return run

  lr = config().optim.ebm_lr
  straight = []
  watched(trainer_lib.Trainer(config(), mode, str(tmp_path / 'a')), straight).run()
  np.testing.assert_allclose(straight, [lr, lr, lr, lr / 2], rtol=1e-6)
  resumed = []
  first = watched(trainer_lib.Trainer(config(), mode, str(tmp_path / 'b')), resumed)
  first.run(until_step=2 if mode == 'nce' else 3)
  assert len(resumed) == 2
  watched(trainer_lib.Trainer(config(), mode, str(tmp_path / 'b')), resumed).run()
  np.testing.assert_allclose(resumed, straight, rtol=1e-6)
