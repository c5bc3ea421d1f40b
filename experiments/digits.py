"""End to end on real data on a CPU: FCE on the built-in 8x8 digits (17 grey levels).

The paper's pipeline in miniature (FCE Secs. 4.2-4.4):
  1. Glow by MLE                                      (--mode=mle)
  2. FCE from that Glow                               (--mode=fce --init_flow=<1>)
  3. semi-supervised FCE, 10 labels per class         (--mode=ssl --init_flow=<1>)
  4. bits/dim on the held-out split of Glow-MLE, Glow-FCE and EBM-FCE (learned c and
     importance-sampled), FID if an Inception graph is at hand, sample grids (--mode=eval)
  5. the EBM-FCE's top-layer features + a linear classifier against the same network trained
     supervised, for few labels; the L2-SVM protocol on the top three conv layers
Writes --outdir/results.json, results.md and the sample grids; runs live under --workroot (the
script resumes them).

  python -m experiments.digits --outdir=docs/digits
"""

import json
import os
import shutil

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402

import experiments  # noqa: E402
from eval import features  # noqa: E402
from eval import image_eval  # noqa: E402
from eval import run as eval_run  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_integer('mle_steps', 10000, 'Glow MLE steps.')
  flags.DEFINE_integer('fce_steps', 10000, 'FCE updates (EBM + flow).')
  flags.DEFINE_integer('ssl_steps', 10000, 'Semi-supervised FCE updates.')
  flags.DEFINE_integer('ssl_labels_per_class', 10, 'Labels per class of the semi-supervised run.')
  flags.DEFINE_list('probe_labels', ['10', '50', '100', '500'], 'Numbers of labels (total) for '
                    'the feature probes.')
  flags.DEFINE_integer('fid_samples', 0, 'Glow samples for FID (needs --inception_graph).')
  flags.DEFINE_string('inception_graph', '', 'TTUR classify_image_graph_def.pb, for FID.')
  flags.DEFINE_integer('seed', 0, 'train.seed of every run.')
  flags.DEFINE_enum('config', 'digits', ['digits', 'digits_paper'], 'digits: FCE with this '
                    'project\'s setting (configs.base.fce_on_images, the cube Glow); digits_paper: '
                    'as the paper states it (docs/digits was measured so).')
  experiments.define_run_flags('digits')


FLAGS = flags.FLAGS


def _train(mode, steps, init_flow=None, extra=()):
  return experiments.train_run(
      os.path.join(FLAGS.workroot, mode), 'digits', mode, steps, FLAGS.seed,
      ['train.snapshot_every=0', 'eval.fid_samples=0',  # FID: --mode=eval's, below
       # docs/digits was measured with the EBM's Adam beta1 0.5, which digits_paper reverts
       # (configs/departures.py); --set optim.ebm_beta1=0.9 for the paper's.
       'optim.ebm_beta1=0.5', *extra] + FLAGS.set, init_flow, FLAGS.config)


def main(_):
  os.makedirs(FLAGS.outdir, exist_ok=True)
  mle = _train('mle', FLAGS.mle_steps)
  fce = _train('fce', FLAGS.fce_steps, init_flow=mle)
  ssl = _train('ssl', FLAGS.ssl_steps, init_flow=mle,
               extra=[f'ssl.labels_per_class={FLAGS.ssl_labels_per_class}'])
  options = image_eval.Options(fid_samples=FLAGS.fid_samples,
                               inception_graph=FLAGS.inception_graph)
  reports = {name: eval_run.evaluate(w, options=options)
             for name, w in (('mle', mle), ('fce', fce), ('ssl', ssl))}
  reports = {name: next(iter(r.values())) for name, r in reports.items()}
  for name, report in reports.items():
    for png in report.get('samples', []):
      shutil.copy(png, os.path.join(FLAGS.outdir, f'{name}_{os.path.basename(png)}'))
  labels = [int(n) for n in FLAGS.probe_labels]
  probes = {p: features.probe(fce, labels=labels, protocol=p) for p in ('linear', 'svm')}
  results = {'reports': reports, 'probes': probes}
  with open(os.path.join(FLAGS.outdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2, sort_keys=True)
  table = _table(reports, probes)
  with open(os.path.join(FLAGS.outdir, 'results.md'), 'w') as f:
    f.write(table)
  print(table)


def _table(reports, probes):
  mle, fce, ssl = reports['mle'], reports['fce'], reports['ssl']
  e = fce['ebm_bpd']
  lines = ['| model | bits/dim (test, 360 images) |', '|---|---|',
           f'| Glow-MLE | {mle["flow_bpd"]["value"]:.3f} |',
           f'| Glow-FCE | {fce["flow_bpd"]["value"]:.3f} |',
           f'| EBM-FCE, learned c | {e["learned_c"]:.3f} |',
           f'| EBM-FCE, importance-sampled log Z | {e["importance_sampled"]:.3f} ± '
           f'{e["importance_sampled_se"]:.3f} (ESS {e["effective_sample_size"]:.0f} of '
           f'{e["num_proposals"]}) |']
  if 'fid' in fce:
    lines += ['', '| model | FID |', '|---|---|'] + [
        f'| Glow-{n.upper()} | {r["fid"]["fid"]:.2f} ({r["fid"]["network"]}, '
        f'N={r["fid"]["num_samples"]}) |' for n, r in (('mle', mle), ('fce', fce))]
  lines += ['', f'Semi-supervised FCE, {FLAGS.ssl_labels_per_class} labels per class: test '
            f'error {ssl["classification"]["test_error"]:.2f}% '
            f'({ssl["classification"]["num_examples"]} images)', '']
  lines.append(features.format_table(probes['linear']))
  lines.append(features.format_table(probes['svm']))
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  define_flags()
  startup.run(main)
