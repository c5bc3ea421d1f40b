"""NT-EBM on the built-in 8x8 digits: corrections of a Glow-MLE backbone learned by nt (NT-EBM
Alg. 1) and by nt_nce (eq. 10), against the backbone itself.

  1. Glow-MLE backbone                     (--mode=mle; or --backbone=WORKDIR of one)
  2. NT-EBM: the correction by MLE with neural-transport HMC   (--mode=nt --init_flow=<1>)
  3. NCE-EBM: the correction by NCE against the backbone       (--mode=nt_nce --init_flow=<1>)
  4. for each: held-out bits/dim (the tilted models' log Z importance-sampled with the backbone
     as proposal), and FID/KID of samples (neural transport for 2 and 3, ancestral for 1) in
     the feature space of a small digits classifier (--fid_network=digits). That FID is ours: it
     is not comparable to Inception FIDs (which cannot see 8x8 images).

Writes --outdir/results.json, results.md and the sample grids; runs live under --workroot.

  python -m experiments.nt_digits --outdir=docs/nt_digits
"""

import json
import os
import shutil

from train import startup

startup.quiet()  # before anything imports TensorFlow

from absl import flags  # noqa: E402

import experiments  # noqa: E402
from eval import image_eval  # noqa: E402
from eval import run as eval_run  # noqa: E402


def define_flags():
  """The script's flags, defined when it runs rather than on import, so that experiments
  sharing flag names (--seeds, --outdir) can be imported side by side."""
  flags.DEFINE_string('backbone', '', 'Workdir of a digits --mode=mle run to use as the backbone '
                      '(default: train one for --mle_steps under --workroot).')
  flags.DEFINE_integer('mle_steps', 3000, 'Glow MLE steps of the backbone.')
  flags.DEFINE_integer('nt_steps', 500, 'nt updates (NT-EBM: 40k at batch 64).')
  flags.DEFINE_integer('nce_steps', 1000, 'nt_nce updates (NT-EBM: 80k at batch 128).')
  flags.DEFINE_integer('fid_samples', 1000, 'Samples per model for the digits-classifier FID.')
  flags.DEFINE_integer('hmc_steps', 100, 'HMC steps of each neural-transport sample chain.')
  flags.DEFINE_integer('is_samples', 10000, 'Backbone proposals of the importance-sampled log Z.')
  flags.DEFINE_integer('seed', 0, 'train.seed of every run.')
  experiments.define_run_flags('nt_digits')


FLAGS = flags.FLAGS
# NT-EBM's optimiser (A.3: Adam, beta1 0.99, lr 5e-5 for MNIST); the EBM is FCE's Table 5 conv
# net of the digits config (NT-EBM's LipSwish nets are for 32x32 and 64x64).
NT_SETTINGS = ['optim.ebm_lr=5e-5', 'optim.ebm_beta1=0.99']


def _train(name, mode, steps, init_flow=None, extra=()):
  return experiments.train_run(
      os.path.join(FLAGS.workroot, name), 'digits', mode, steps, FLAGS.seed,
      ['train.snapshot_every=0', 'fce.mle_pretrain_steps=0', *extra] + FLAGS.set, init_flow,
      log_lines=20)


def main(_):
  os.makedirs(FLAGS.outdir, exist_ok=True)
  backbone = FLAGS.backbone or _train('mle', 'mle', FLAGS.mle_steps)
  runs = {'backbone': backbone,
          'nt': _train('nt', 'nt', FLAGS.nt_steps, backbone, NT_SETTINGS),
          'nt_nce': _train('nt_nce', 'nt_nce', FLAGS.nce_steps, backbone,
                           NT_SETTINGS + ['train.batch_size=128'])}
  options = image_eval.Options(fid_samples=FLAGS.fid_samples, fid_network='digits',
                               is_samples=FLAGS.is_samples, hmc_steps=FLAGS.hmc_steps,
                               temperatures=(1.0,))
  reports = {name: next(iter(eval_run.evaluate(w, options=options).values()))
             for name, w in runs.items()}
  for png in reports['backbone'].get('samples', []):  # (nt / nt_nce's would be the same flow's)
    shutil.copy(png, os.path.join(FLAGS.outdir, f'backbone_{os.path.basename(png)}'))
  for name in ('nt', 'nt_nce'):  # the models' own samples (neural transport)
    paths = eval_run.sample(runs[name], num_samples=64, hmc_steps=FLAGS.hmc_steps)
    shutil.copy(paths[1], os.path.join(FLAGS.outdir, f'{name}_nt_samples.png'))
  with open(os.path.join(FLAGS.outdir, 'results.json'), 'w') as f:
    json.dump(reports, f, indent=2, sort_keys=True)
  text = table(reports)
  with open(os.path.join(FLAGS.outdir, 'results.md'), 'w') as f:
    f.write(text)
  print(text)


def table(reports):
  b = reports['backbone']
  fid = lambda block: f'{block["fid"]:.2f} / {block["kid"]:.4g}'
  lines = ['| model | bits/dim, held-out (IS log Z: ESS of proposals) | FID / KID, digits '
           'classifier (not Inception) |', '|---|---|---|',
           f'| Glow-MLE backbone | {b["flow_bpd"]["value"]:.3f} | {fid(b["fid"])} (ancestral) |']
  for name, label in (('nt', 'NT-EBM (nt)'), ('nt_nce', 'NCE-EBM (nt_nce)')):
    r = reports[name]
    e = r['ebm_bpd']
    bpd = (f'{e["importance_sampled"]:.3f} ± {e["importance_sampled_se"]:.3f} '
           f'(ESS {e["effective_sample_size"]:.0f} of {e["num_proposals"]})'
           if e.get('importance_sampled') is not None else 'refused: ' +
           e.get('importance_sampled_refused', ''))
    lines.append(f'| {label} | {bpd} | {fid(r["fid"])} (neural transport, '
                 f'{r["fid"]["settings"]["hmc_steps"]} HMC steps; its backbone: '
                 f'{fid(r["fid_backbone"])}) |')
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  define_flags()
  startup.run(main)
