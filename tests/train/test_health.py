"""A run's health (train/watch.py `Health`): a NaN or a run far out of every sane range is stopped
with one line naming the learning rate of the update that went wrong and what is kept; its
checkpoints never hold the diverged state; healthy runs of every mode are never flagged."""

import os
import re
import types

import numpy as np
import pytest
import tensorflow as tf

import configs
from configs import overrides
from tests.train.test_trainer import _toy_config
from train import checkpoints as ckpt_lib
from train import modes
from train import trainer as trainer_lib
from train import watch


def _values(module):
  return [v.numpy() for v in module.trainable_variables]


@pytest.mark.parametrize('mode, phase, key', [
    ('mle', 'flow', 'optim.flow_mle_lr'), ('fce', 'mle', 'optim.flow_mle_lr'),
    ('fce', 'ebm', 'optim.ebm_lr'), ('fce', 'flow', 'optim.flow_lr'),
    ('ssl', 'flow', 'optim.flow_lr'), ('nce', 'ebm', 'optim.ebm_lr'),
    ('nt', 'ebm', 'optim.ebm_lr'), ('nt_nce', 'ebm', 'optim.ebm_lr')])
def test_the_learning_rate_named_is_that_of_the_update_that_went_wrong(mode, phase, key):
  optim = configs.get_config('toy2d').optim
  assert watch.learning_rate_flag(modes.get(mode), phase, optim) == (
      key, getattr(optim, key.split('.')[1]))


def _health(tmp_path, mode='fce', **optim):
  config = configs.get_config('toy2d')
  config.optim.update(optim)
  folder = types.SimpleNamespace(is_chief=True, workdir=str(tmp_path),
                                 path=lambda *names: os.path.join(str(tmp_path), *names))
  return watch.Health(config, modes.get(mode), folder, str(tmp_path / 'checkpoints'))


def test_healthy_metrics_are_never_flagged_and_a_long_excursion_is(tmp_path):
  health = _health(tmp_path, ebm_lr=10.)
  rng = np.random.default_rng(0)
  for step in range(2000):  # V near -log 4, gradient norms over six orders of magnitude
    phase = 'ebm' if step % 3 else 'flow'
    health({'value': -np.log(4) + rng.normal(0, .5) - abs(rng.normal(0, 2)),
            f'{phase}_grad_norm': 10. ** rng.uniform(-3, 3), 'flow_nll': rng.normal(3, 1)},
           phase, step)
  assert health.flagged == 0 and not health.suspect
  # An excursion shorter than watch.DIVERGED_AFTER updates is not a divergence, but no
  # checkpoint is saved during it (`suspect`).
  for step in range(2000, 2000 + watch.DIVERGED_AFTER - 1):
    health({'value': -1e9, 'ebm_grad_norm': 1e8}, 'ebm', step)
    assert health.suspect
  health({'value': -1.4, 'ebm_grad_norm': 1.}, 'ebm', 2100)
  assert not health.suspect
  for step in range(3000, 3000 + watch.DIVERGED_AFTER - 1):
    health({'value': -1e9}, 'ebm', step)
  with pytest.raises(trainer_lib.DivergedError) as error:
    health({'value': -1e9}, 'ebm', 3100)
  message = str(error.value)
  assert '\n' not in message
  assert 'value below -1020' in message and 'since the ebm update of step 3001' in message
  assert 'optim.ebm_lr=10 is too high' in message and '--set optim.ebm_lr=1.' in message
  assert 'No checkpoint had been saved yet' in message


def test_an_exploding_gradient_norm_is_a_divergence_though_finite(tmp_path):
  health = _health(tmp_path, mode='mle')
  for step in range(watch.EARLY):
    health({'nll': 3., 'flow_grad_norm': 2.}, 'flow', step)
  for step in range(watch.EARLY, watch.EARLY + watch.DIVERGED_AFTER - 1):
    health({'nll': 3., 'flow_grad_norm': 1e7}, 'flow', step)  # 5e6 times its early 2
  with pytest.raises(trainer_lib.DivergedError,
                     match=r'flow_grad_norm above 1e\+06 times its early 2 .*optim.flow_mle_lr'):
    health({'nll': 3., 'flow_grad_norm': 1e7}, 'flow', 100)


def test_a_nan_after_an_excursion_sets_aside_the_checkpoint_saved_as_it_began(tmp_path):
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.)),
                                       str(tmp_path / 'checkpoints'), max_to_keep=3)
  manager.save(checkpoint_number=4)
  manager.save(checkpoint_number=5)
  health = _health(tmp_path)
  for step in (5, 6, 7):  # the state of step 5 gave V ~ -1e9
    health({'value': -1e9}, 'ebm', step)
  with pytest.raises(trainer_lib.DivergedError) as error:
    health({'value': float('nan')}, 'flow', 8)
  message = str(error.value)
  assert message.startswith('value became nan at step 9 (flow update). Stopped before saving '
                            '(ckpt-5, saved as it began, set aside in')
  assert 'The last good checkpoint, ckpt-4 in' in message and 'optim.flow_lr' in message
  assert [os.path.basename(p) for p in ckpt_lib.kept(str(tmp_path / 'checkpoints'))] == ['ckpt-4']
  assert os.path.exists(tmp_path / 'diverged' / 'step_5' / 'ckpt-5.index')


@pytest.mark.slow
def test_an_absurd_learning_rate_is_stopped_and_no_checkpoint_holds_the_diverged_state(
    tmp_path):
  workdir = str(tmp_path / 'run')
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  sound = trainer_lib.Trainer(_toy_config(**{'train.steps': 10, 'train.checkpoint_every': 5}),
                              'fce', workdir)
  sound.run()
  sound_values = _values(sound.flow) + _values(sound.ebm)
  # From step 10 with optim.ebm_lr=10: V ~ -1e10, finite. A checkpoint every step, so that the
  # one saved just before V left its range (step 11) must be set aside.
  absurd = _toy_config(**{'train.steps': 500, 'train.checkpoint_every': 1, 'optim.ebm_lr': 10})
  run = trainer_lib.Trainer(absurd, 'fce', workdir)
  with pytest.raises(trainer_lib.DivergedError) as error:
    run.run()
  message = str(error.value)
  assert '\n' not in message
  assert re.search(r'The run diverged: value below -1020 \(now -[\d.e+]+\) for 20 consecutive '
                   r'updates, since the ebm update of step 12; most likely optim.ebm_lr=10 is '
                   r'too high', message), message
  assert 'ckpt-11, saved as it began, set aside' in message
  assert f'The last good checkpoint, ckpt-10 in {ckpt_dir}, is intact' in message
  assert message.endswith('re-run with --set optim.ebm_lr=1.')
  assert int(run.step.numpy()) == 30  # stopped in its 20th update out of range, the 31st
  # Nothing saved while V was out of range; the state of step 11 (which gave V ~ -1e10) is
  # kept aside, never deleted.
  assert [os.path.basename(p) for p in ckpt_lib.kept(ckpt_dir)] == ['ckpt-10', 'ckpt-5']
  assert os.path.exists(os.path.join(workdir, 'diverged', 'step_11', 'ckpt-11.index'))
  # A resume starts from the sound state, and with the same learning rate is stopped again
  # rather than going on silently.
  again = trainer_lib.Trainer(absurd, 'fce', workdir)
  assert int(again.step.numpy()) == 10
  for a, b in zip(sound_values, _values(again.flow) + _values(again.ebm)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(trainer_lib.DivergedError, match='The run diverged'):
    again.run()


@pytest.mark.slow
def test_mle_divergence_names_its_own_learning_rate_and_what_is_kept(tmp_path):
  """--mode=mle with optim.flow_mle_lr=10 before its first checkpoint: the hint names
  optim.flow_mle_lr (not the EBM's or FCE's flow rate), and says that nothing is saved."""
  config = _toy_config(**{'train.steps': 200, 'train.checkpoint_every': 1000,
                          'optim.flow_mle_lr': 10})
  with pytest.raises(trainer_lib.DivergedError) as error:
    trainer_lib.Trainer(config, 'mle', str(tmp_path / 'run')).run()
  message = str(error.value)
  assert 'optim.flow_mle_lr' in message and '--set optim.flow_mle_lr=1.' in message
  assert 'ebm_lr' not in message and 'optim.flow_lr' not in message
  assert 'No checkpoint had been saved yet' in message
  assert 'last good checkpoint' not in message
  assert not tf.io.gfile.exists(os.path.join(str(tmp_path / 'run'), 'checkpoints', 'checkpoint'))


def _spirals(**fields):
  config = configs.for_dataset('2spirals')
  overrides.apply(config, ['model.flow.steps_per_level=2', 'model.flow.width=8',
                           'train.batch_size=32', 'train.log_every=10',
                           'train.checkpoint_every=10', 'ssl.labels_per_class=2',
                           'nt.hmc_steps=2'] + [f'{k}={v}' for k, v in fields.items()])
  return config


@pytest.fixture(scope='module')
def backbone(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('backbone'))
  trainer_lib.Trainer(_spirals(**{'train.steps': 20}), 'mle', workdir).run()
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('mode', modes.NAMES)
def test_healthy_runs_of_every_mode_are_never_flagged(tmp_path, mode, backbone):
  steps = watch.DIVERGED_AFTER + watch.EARLY + 10
  run = trainer_lib.Trainer(_spirals(**{'train.steps': steps}), mode, str(tmp_path / mode),
                            init_flow=backbone if modes.get(mode).tilt else None)
  run.run()
  assert int(run.step.numpy()) == steps
  assert run.health.flagged == 0
  assert tf.train.latest_checkpoint(os.path.join(str(tmp_path / mode), 'checkpoints')).endswith(
      f'ckpt-{steps}')
