"""bench/glow_vs_pytorch.py's FLOP count and worker, and bench/glow_profile.py's breakdown."""

import sys

import pytest
import tensorflow as tf

from bench import common
from bench import fce2d_vs_pytorch
from bench import glow_profile
from bench import glow_vs_pytorch
from train import modes
from train import steps as steps_lib

TINY = ['model.flow.levels=2', 'model.flow.steps_per_level=2', 'model.flow.width=16']


@pytest.mark.parametrize('coupling', ['affine', 'additive'])
def test_forward_flops_match_tensorflows_count_of_convolutions_and_matmuls(coupling):
  """The analytic count against the graph profiler's FLOPs of the Conv2D and MatMul ops of one
  image's log q: equal, once the 1x1 convs' weight assembly (P L U: two C x C products per step,
  not per position, which the analytic count leaves out) is added. Neither discounts the zero
  padding."""
  config = common.mode_config('svhn', 'mle', TINY + [f'model.flow.coupling={coupling}'])
  flow, _, _ = common.models_and_batch(config, 2)
  fn = tf.function(flow.log_prob).get_concrete_function(tf.TensorSpec([1, 32, 32, 3]))
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options.update(output='none', account_type_regexes=['Conv2D', 'MatMul'])
  counted = tf.compat.v1.profiler.profile(graph=fn.graph, options=options).total_float_ops
  analytic = glow_vs_pytorch.forward_flops((32, 32, 3), 2, 2, 16, coupling == 'affine')
  assembly = 2 * sum(2 * 2 * c ** 3 for c in (12, 24))  # K = 2 steps at C = 12 and 24
  assert analytic + assembly == counted
  # and the default svhn Glow: about 2.0 GFLOP per image (docs/benchmarks)
  assert glow_vs_pytorch.forward_flops((32, 32, 3), 3, 8, 512) == pytest.approx(2.006e9,
                                                                                 rel=1e-3)


def test_torch_worker_without_torch_says_what_it_needs(tmp_path):
  """This venv has no torch: the worker fails to start, and the driver says what to give it."""
  with pytest.raises(SystemExit, match='needs torch'):
    glow_vs_pytorch.torch_worker(sys.executable, str(tmp_path), 2, 2, 2, 8)


def test_profile_breakdown_names_every_coupling_convolution_and_adds_up(tmp_path):
  """A traced MLE step of a tiny Glow: every op is counted once, the couplings' convolutions
  (forward and gradient) land in their three parts, and the split prior is found."""
  config = common.mode_config('svhn', 'mle', TINY)
  run, _, batch = common.mode_run(config, 'mle', 2)
  step = steps_lib.compile_step(modes.get('mle').make_steps(run)['flow'])
  step(batch)
  tf.profiler.experimental.start(str(tmp_path))
  tf.nest.map_structure(lambda t: t.numpy(), step(batch))
  tf.profiler.experimental.stop()
  seconds = glow_profile.op_seconds(str(tmp_path))
  roles = glow_profile.conv_roles(run.flow)
  assert sorted(set(roles.values())) == sorted(glow_profile.PARTS[:3])
  assert len(roles) == 3 * 2 * 2  # three convolutions in each of L K couplings
  parts = glow_profile.breakdown(seconds, roles)
  assert sum(parts.values()) == pytest.approx(sum(seconds.values()))
  for part in glow_profile.PARTS[:3]:
    assert parts[part, 'forward'] > 0 and parts[part, 'gradient'] > 0
  assert parts['split priors', 'forward'] > 0 and parts['optimizer', 'forward'] > 0
  for (name, op_type) in seconds:
    if '_coupling/' in name and 'Conv2D' in op_type:
      assert glow_profile.part_of(name, op_type, roles) in glow_profile.PARTS[:3], name


def test_fce2d_worker_without_torch_says_what_it_needs(tmp_path):
  with pytest.raises(SystemExit, match='needs torch'):
    fce2d_vs_pytorch.torch_worker(sys.executable, str(tmp_path), 8)


def test_fce2d_their_models_have_fce_2ds_ebm():
  """'their models' has lifeitech/fce-2d's widths: an EBM of width 128 (ours keeps FCE Table 5's
  three hidden layers, theirs has two) and a 10-step Glow of width 64, on V alone."""
  config = common.mode_config('toy2d', 'fce', fce2d_vs_pytorch.SETTINGS['their models'])
  flow, ebm, _ = common.models_and_batch(config, 8)
  assert sum(int(tf.size(v)) for v in ebm.trainable_variables) == (
      (2 + 1) * 128 + 2 * (128 + 1) * 128 + 128 + 1 + 1)  # 3 hidden layers, head, c
  assert (config.model.flow.steps_per_level, config.model.flow.width) == (10, 64)
  assert not config.fce.flow_mle_weight and not config.fce.ebm_aux_nce_weight
