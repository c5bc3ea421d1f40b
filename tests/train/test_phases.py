"""fce / ssl on images: the MLE phase before FCE, resuming in either phase, and the held-out
bits/dim and FID that the loop writes (issue: the headline command end to end)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import configs
import experiments
from eval import image_eval
from eval import run as eval_run
from tests import helpers
from train import watch
from train import trainer as trainer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ['model.flow.steps_per_level=2', 'model.flow.width=16', 'train.batch_size=16',
         'train.log_every=1', 'eval.every=1000', 'eval.examples=32',
         'eval.fid_samples=0', 'train.checkpoint_every=1000', 'train.snapshot_every=0']


def _digits(**fields):
  return configs.for_dataset('digits', None, SMALL + [f'{k}={v}' for k, v in fields.items()])


def _values(*modules):
  return [v.numpy() for m in modules for v in m.trainable_variables]


def test_digits_default_config_pretrains_its_glow():
  assert configs.for_dataset('digits').fce.mle_pretrain_steps > 0
  for name in ('svhn', 'cifar10', 'celeba', 'celeba64', 'mnist'):
    assert configs.get_config(name).fce.mle_pretrain_steps > 0, name
  assert configs.for_dataset('8gaussians').fce.mle_pretrain_steps == 0  # 2D: from random


@pytest.mark.slow
def test_fce_on_digits_trains_the_flow_by_mle_first_then_fce(tmp_path):
  workdir = str(tmp_path / 'fce')
  run = trainer_lib.Trainer(_digits(**{'fce.mle_pretrain_steps': 3, 'train.steps': 3}), 'fce',
                            workdir)
  run.run()
  assert int(run.step.numpy()) == 6
  assert int(run.optimizers['flow_mle'].iterations.numpy()) == 3
  assert sum(run.schedule.updates.values()) == 3
  assert int(run.optimizers['ebm'].iterations.numpy()) == run.schedule.updates['ebm'] >= 1
  logged = lambda tag: experiments.scalars(workdir, tag)  # {step: value}
  assert logged('phase') == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1}
  assert sorted(logged('mle_pretrain/bpd')) == [1, 2, 3]
  assert sorted(logged('accuracy')) == [4, 5, 6]
  # Held-out bits/dim at the end of the MLE phase (the flow only) and at the end.
  assert sorted(logged('eval/flow_bpd')) == [3, 6]
  assert sorted(logged('eval/ebm_bpd_learned_c')) == [6]
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['config']['fce']['mle_pretrain_steps'] == 3

  # --init_flow skips the phase (and its optimizer is not in the checkpoint).
  other = trainer_lib.Trainer(_digits(**{'fce.mle_pretrain_steps': 3, 'train.steps': 2}),
                              'fce', str(tmp_path / 'from_flow'), init_flow=workdir)
  assert other.state.fce_start == 0 and other.config.fce.mle_pretrain_steps == 0
  other.run()
  names = [n for n, _ in tf.train.list_variables(other.state.manager.latest_checkpoint)]
  assert not any(n.startswith('flow_mle_optimizer') for n in names)
  assert int(other.step.numpy()) == 2 and not experiments.scalars(str(tmp_path / 'from_flow'), 'phase')


@pytest.mark.slow
def test_a_run_stopped_in_either_phase_resumes_where_it_stopped(tmp_path):
  config = _digits(**{'fce.mle_pretrain_steps': 3, 'train.steps': 3,
                      'ssl.labels_per_class': 2})
  straight = trainer_lib.Trainer(config, 'ssl', str(tmp_path / 'straight'))
  straight.run()
  workdir = str(tmp_path / 'split')
  trainer_lib.Trainer(config, 'ssl', workdir).run(until_step=2)  # inside the MLE phase
  run = trainer_lib.Trainer(config, 'ssl', workdir)
  assert int(run.step.numpy()) == 2 and run.turns.phase(2) == 'mle'
  run.run(until_step=3)  # the last MLE step
  # A command line with another phase length does not move the phase of a started run.
  changed = _digits(**{'fce.mle_pretrain_steps': 50, 'train.steps': 3,
                       'ssl.labels_per_class': 2})
  run = trainer_lib.Trainer(changed, 'ssl', workdir)
  assert run.state.fce_start == 3 and int(run.step.numpy()) == 3
  np.testing.assert_array_equal(run.ebm.log_normalizer.numpy(), 0.)  # FCE has not begun
  # FCE begins from the MLE flow with c level with it: c_k = mean f_k(x) - log q(x).
  x = tf.constant(run.source.batch(0)['x'])
  expected = np.mean(run.ebm(x).numpy() - run.flow.log_prob(x).numpy()[:, None], axis=0)
  assert np.abs(expected).min() > 5  # so that c = 0 would be far off
  run.run()
  assert int(run.step.numpy()) == 6
  # Three EBM updates of Adam at lr 3e-4 move c by about 1e-3 at most.
  np.testing.assert_allclose(run.ebm.log_normalizer.numpy(), expected, atol=3e-3)
  for a, b in zip(_values(straight.flow, straight.ebm), _values(run.flow, run.ebm)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert straight.schedule.updates == run.schedule.updates


def _start(workdir, *overrides):
  args = ['--dataset=digits', '--mode=fce', f'--workdir={workdir}']
  for field in SMALL + ['train.log_every=10', 'train.checkpoint_every=10',
                        'fce.mle_pretrain_steps=40', *overrides]:
    args += ['--set', field]
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(proc, marker):
  """The process's output up to the first line holding `marker`; then SIGKILL."""
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if marker in line:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  out = ''.join(lines)
  assert marker in out, out[-3000:]
  return out


def _progress(out):
  """The progress lines' labels: 'MLE phase 30/40' or 'fce', with their step."""
  return [(line.split('] ', 1)[1].split(' | ')[0], int(line.split('| step ')[1].split('/')[0]))
          for line in out.splitlines() if '| step ' in line]


@pytest.mark.slow
def test_sigkill_in_each_phase_resumes_in_that_phase(tmp_path):
  workdir = str(tmp_path / 'run')
  ckpt = lambda: int(tf.train.latest_checkpoint(os.path.join(workdir, 'checkpoints'))
                     .rsplit('-', 1)[1])
  _read_until(_start(workdir, 'train.steps=100000'), 'MLE phase 20/40')
  first = ckpt()
  assert 10 <= first < 40  # killed in the MLE phase
  out = _read_until(_start(workdir, 'train.steps=100000'), 'fce | step 60/')
  assert 'Resumed from' in out and f'at step {first}' in out
  progress = _progress(out)
  assert progress[0] == (f'MLE phase {first + 10}/40', first + 10)
  assert ('fce', 50) in progress and 'the MLE phase is done' in out
  second = ckpt()
  assert 40 < second <= 60  # killed in FCE
  # To the end: 10 more steps, FCE only, without beginning FCE again.
  proc = _start(workdir, f'train.steps={second + 10 - 40}')
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out[-3000:]
  assert f'at step {second}' in out and 'the MLE phase is done' not in out
  assert _progress(out) == [('fce', second + 10)]


@pytest.mark.slow
def test_held_out_bits_per_dim_in_the_loop_agree_with_mode_eval(tmp_path):
  workdir = str(tmp_path / 'run')
  config = _digits(**{'fce.mle_pretrain_steps': 2, 'train.steps': 2, 'eval.every': 2,
                      'eval.examples': 50})
  trainer_lib.Trainer(config, 'fce', workdir).run()
  with open(os.path.join(workdir, 'eval', 'train_eval_4.json')) as f:
    during = json.load(f)
  assert during['flow_bpd']['num_examples'] == 50 and 'ebm_bpd' in during
  logged = lambda tag: experiments.scalars(workdir, tag)  # {step: value}
  for step in (2, 4):
    with open(os.path.join(workdir, 'eval', f'train_eval_{step}.json')) as f:
      report = json.load(f)
    np.testing.assert_allclose(logged('eval/flow_bpd')[step], report['flow_bpd']['value'],
                               rtol=1e-6)
  np.testing.assert_allclose(logged('eval/ebm_bpd_learned_c')[4],
                             during['ebm_bpd']['learned_c'], rtol=1e-6)
  options = image_eval.Options(fid_samples=0, is_samples=0, test_examples=50, temperatures=())
  after = eval_run.evaluate(workdir, options=options)[4]
  assert after['flow_bpd'] == during['flow_bpd']
  assert after['ebm_bpd'] == during['ebm_bpd']
  # Another subset size is another subset (and another number).
  whole = eval_run.evaluate(workdir, options=image_eval.Options(
      fid_samples=0, is_samples=0, temperatures=()))[4]
  assert whole['flow_bpd']['num_examples'] == 360
  assert whole['flow_bpd']['value'] != during['flow_bpd']['value']


@pytest.mark.slow
def test_fid_in_the_loop_and_a_missing_inception_graph_warns_once(tmp_path, caplog):
  caplog.set_level('INFO', logger='absl')
  fields = {'fce.mle_pretrain_steps': 1, 'train.steps': 2, 'eval.every': 1,
            'eval.fid_samples': 20}
  missing = str(tmp_path / 'missing.pb')
  run = trainer_lib.Trainer(_digits(**fields, **{'eval.inception_graph': missing}), 'fce',
                            str(tmp_path / 'no_graph'))
  metrics = run.run()
  assert int(run.step.numpy()) == 3 and np.isfinite(metrics['eval/flow_bpd'])
  warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert len(warnings) == 1 and 'without FID' in warnings[0] and missing in warnings[0]
  assert 'eval/fid' not in metrics

  graph = str(tmp_path / 'graph.pb')
  helpers.write_tiny_inception_graph(graph)
  workdir = str(tmp_path / 'graph')
  metrics = trainer_lib.Trainer(_digits(**fields, **{'eval.inception_graph': graph}), 'fce',
                                workdir).run()
  with open(os.path.join(workdir, 'eval', 'train_eval_3.json')) as f:
    fid = json.load(f)['fid']
  assert fid['num_samples'] == 20 and fid['reference'] == 'digits train split'
  assert metrics['eval/fid'] == fid['fid'] > 0
  assert sorted(experiments.scalars(workdir, 'eval/fid')) == [1, 2, 3]


@pytest.mark.slow
def test_a_checkpoint_from_before_the_mle_phase_resumes_as_it_was(tmp_path):
  """A run saved without the phase length (code from before it) goes on as FCE from step 0,
  whatever fce.mle_pretrain_steps says now."""
  config = configs.for_dataset('8gaussians', None, [
      'model.flow.steps_per_level=2', 'model.flow.width=8', 'train.batch_size=16',
      'train.steps=2', 'eval.every=1000'])
  workdir = str(tmp_path / 'old')
  run = trainer_lib.Trainer(config, 'fce', workdir)
  run.run()
  old = tf.train.Checkpoint(step=run.step, flow=run.flow, ebm=run.ebm, schedule=run.schedule,
                            flow_nll_start=run.state.flow_nll_start,
                            ebm_optimizer=run.optimizers['ebm'],
                            flow_optimizer=run.optimizers['flow'])
  tf.train.CheckpointManager(old, os.path.join(workdir, 'checkpoints'), 1).save(2)
  config.train.steps = 4
  config.fce.mle_pretrain_steps = 10
  resumed = trainer_lib.Trainer(config, 'fce', workdir)
  assert resumed.state.fce_start == 0 and int(resumed.step.numpy()) == 2
  resumed.run()
  assert int(resumed.step.numpy()) == 4 and 'flow_mle' not in resumed.state.optimizer_names


@pytest.mark.slow
def test_mode_eval_leaves_the_ebm_out_of_checkpoints_of_the_mle_phase(tmp_path):
  workdir = str(tmp_path / 'run')
  trainer_lib.Trainer(_digits(**{'fce.mle_pretrain_steps': 2, 'train.steps': 2,
                                 'train.snapshot_every': 2}), 'fce', workdir).run()
  reports = eval_run.evaluate(workdir, options=image_eval.Options(
      fid_samples=0, is_samples=0, temperatures=()), which='all')
  assert sorted(reports) == [2, 4]
  assert 'flow_bpd' in reports[2] and 'ebm_bpd' not in reports[2]  # the MLE phase's end
  assert 'ebm_bpd' in reports[4]


@pytest.mark.slow
def test_a_failing_evaluation_warns_and_keeps_the_checkpoint(tmp_path, caplog, monkeypatch):
  caplog.set_level('INFO', logger='absl')

  def broken(*args, **kwargs):
    raise MemoryError('out of memory in Inception')

  monkeypatch.setattr(image_eval.Evaluator, 'evaluate', broken)
  run = trainer_lib.Trainer(_digits(**{'train.steps': 2, 'eval.every': 1,
                                       'fce.mle_pretrain_steps': 0}), 'fce', str(tmp_path / 'r'))
  run.run()
  assert run.state.manager.latest_checkpoint.endswith('ckpt-2')
  warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert len(warnings) == 2 and all('evaluation failed (MemoryError' in w for w in warnings)


@pytest.mark.slow
def test_a_flow_based_ebm_starts_from_the_mle_flow_and_keeps_it_frozen(tmp_path):
  """model.ebm.base='flow': when FCE begins, the EBM's base is a copy of the MLE flow, so the
  EBM and the noise start level (V = -log 4 up to the network's spread); FCE then moves the
  flow and the EBM's network, never the base."""
  workdir = str(tmp_path / 'based')
  config = _digits(**{'fce.mle_pretrain_steps': 2, 'train.steps': 4, 'model.ebm.base': 'flow'})
  run = trainer_lib.Trainer(config, 'fce', workdir)
  run.run(until_step=2)
  mle_flow = [v.numpy() for v in run.flow.variables]
  run = trainer_lib.Trainer(config, 'fce', workdir)  # resumed at the boundary
  run.run()
  for base, flow in zip(run.ebm.base.variables, mle_flow, strict=True):
    np.testing.assert_array_equal(base.numpy(), flow)
  assert run.schedule.updates['flow'] >= 1
  assert any(not np.array_equal(v.numpy(), m) for v, m in zip(run.flow.variables, mle_flow))
  first_value = experiments.scalars(workdir, 'value')[3]
  assert abs(first_value + np.log(4.)) < 0.05, first_value
  # The evaluation restores the base with the rest.
  _, ebm, _ = eval_run.restore_models(run.config, workdir)
  x = tf.constant(run.source.batch(0)['x'])
  np.testing.assert_allclose(ebm.log_prob(x).numpy(), run.ebm.log_prob(x).numpy(), rtol=1e-5)


@pytest.mark.slow
def test_the_auxiliary_nce_can_be_against_the_frozen_base(tmp_path):
  """fce.ebm_aux_noise='base': the EBM's auxiliary NCE term is against its own frozen base,
  so its logit is the network's output minus c, and it starts at -log 4 as V does (a Gaussian
  noise would start far from it)."""
  workdir = str(tmp_path / 'aux_base')
  config = _digits(**{'fce.mle_pretrain_steps': 2, 'train.steps': 3, 'model.ebm.base': 'flow',
                      'fce.ebm_aux_nce_weight': 1., 'fce.ebm_aux_noise': 'base',
                      'train.log_every': 1})
  trainer_lib.Trainer(config, 'fce', workdir).run()
  aux = experiments.scalars(workdir, 'aux_value')
  assert aux and abs(aux[min(aux)] + np.log(4.)) < 0.05, aux


@pytest.mark.slow
def test_a_support_that_holds_few_flow_samples_is_warned_about(tmp_path, caplog):
  """model.ebm.support=cube with a flow whose samples leave the cube (the paper's Glow,
  untrained): V's noise side gets no gradient, and c drifts; the run says so when FCE begins."""
  caplog.set_level('INFO', logger='absl')
  run = trainer_lib.Trainer(_digits(**{'fce.mle_pretrain_steps': 0, 'train.steps': 1,
                                       'model.ebm.support': 'cube', 'model.flow.support': 'none'}),
                            'fce', str(tmp_path / 'r'))
  run.run()
  warned = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING'
            and 'support' in r.getMessage()]
  assert len(warned) == 1 and 'model.flow.support=cube' in warned[0], warned
  caplog.clear()
  run.ebm.support = (-1e6, 1e6)  # a support that holds every sample: no warning
  watch.check_support_coverage(run.flow, run.ebm, run.global_batch, run.config)
  assert not [r for r in caplog.records if r.levelname == 'WARNING']
  assert any('100% of the flow' in r.getMessage() for r in caplog.records)
