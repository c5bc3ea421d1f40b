"""The order of updates (train/turns.py): the MLE phase, FCE-init, then the schedule's turns."""

import types

import tensorflow as tf

import configs
from train import schedule as schedule_lib
from train import turns as turns_lib


def _state(mle_steps, steps, **fce):
  config = configs.get_config('toy2d')
  config.train.steps = steps
  config.fce.update(**fce)
  schedule = schedule_lib.AlternationSchedule(max_ebm_updates=1, max_flow_updates=1)
  return types.SimpleNamespace(config=config, schedule=schedule, fce_start=mle_steps,
                               flow_nll_start=tf.Variable(0.))


def _phases(turns, steps):
  phases = []
  for step in range(steps):
    phases.append(turns.phase(step))
    turns.record(phases[-1], {'accuracy': 0.9}, step)
  return phases


def test_alternating_turns_run_the_mle_phase_then_fce_init_then_the_schedule():
  turns = turns_lib.Alternating(_state(3, steps=10, init_steps=2, ebm_updates=0))
  assert turns.total == 13 and turns.remaining(0) == 13 and turns.remaining(5) == 8
  # FCE-init's two EBM updates hold the phase; then an accurate EBM hands over to the flow,
  # which (max_flow_updates=1) hands it back.
  assert _phases(turns, 8) == ['mle'] * 3 + ['ebm', 'ebm', 'ebm', 'flow', 'ebm']
  assert turns.schedule.updates == {'ebm': 4, 'flow': 1}
  assert turns.scalars('mle') == {} and turns.scalars('ebm')['ebm_updates'] == 4


def test_ebm_updates_end_an_alternating_run_and_measure_its_progress():
  turns = turns_lib.Alternating(_state(0, steps=100, init_steps=0, ebm_updates=2))
  _phases(turns, 2)  # EBM, flow
  assert not turns.finished(2, stop=100) and turns.progress(2) == 0.5
  _phases(turns, 1)
  assert turns.finished(3, stop=100) and turns.progress(3) == 1.


def test_a_single_update_mode_makes_its_update_every_step():
  turns = turns_lib.Single(_state(0, steps=4).config.train, 'ebm', 0)
  assert _phases(turns, 4) == ['ebm'] * 4
  assert turns.finished(4, stop=turns.total) and turns.progress(2) == 0.5
  assert turns.remaining(1) == 3 and turns.scalars('ebm') == {}
