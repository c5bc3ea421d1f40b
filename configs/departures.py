"""Where the default configs depart from the papers, as data: one record per departure.

Each record names the config fields it changes, the paper's values and ours, what differs and
why (measured; the docs/ folder holds the numbers), and so the `--set` flags that revert it.
A record applies to a resolved config when one of its fields holds other than the paper's value.
The `<name>_paper` configs are their config with our departures reverted (`paper`); a run
prints its departures at start (main.py), and `for_config` gives them for its config.json.

  python -m configs.departures --markdown             # the list, as markdown
  python -m configs.departures --write RESULTS.md     # that list between the marker lines
"""

import argparse
import dataclasses
import sys

BEGIN = '<!-- departures:begin -->'
END = '<!-- departures:end -->'

# The modes that train the EBM with FCE's optimiser (nt and nt_nce use NT-EBM's, A.4).
_FCE_OPTIMISER_MODES = ('mle', 'nce', 'fce', 'ssl')


@dataclasses.dataclass(frozen=True)
class Departure:
  """One departure from the papers.

  Attributes:
    paper: {field: the paper's value}.
    ours: {field: this project's default}.
    what: what differs, in one line.
    why: its measured reason, in one line, citing docs/.
    data: 'vectors' or 'images': the data it applies to (None: any).
    modes: the training modes it applies to (None: all).
    also: {field: values the other paper gives}, which are no departure either (celeba64 is
      NT-EBM's setting, its Adam too, in every mode).
  """
  paper: dict
  ours: dict
  what: str
  why: str
  data: str = None
  modes: tuple = None
  also: dict = dataclasses.field(default_factory=dict)

  @property
  def revert(self):
    """The `--set key=value` overrides that give back the paper's values."""
    return tuple(f'{field}={value}' for field, value in self.paper.items())

  def fits(self, config, mode=None):
    """Whether the record concerns `config` (its data) in `mode` (None: any mode)."""
    vectors = len(tuple(config.data.shape)) == 1
    if self.data is not None and self.data != ('vectors' if vectors else 'images'):
      return False
    return mode is None or self.modes is None or mode in self.modes

  def applies(self, config, mode=None):
    """Whether `config`, trained in `mode`, departs from the paper in this record's fields."""
    return self.fits(config, mode) and any(
        _lookup(config, field) not in (value, *self.also.get(field, ()))
        for field, value in self.paper.items())

  def is_ours(self, config):
    """Whether `config` holds this project's values of the record's fields."""
    return all(_lookup(config, field) == value for field, value in self.ours.items())


RECORDS = (
    # FCE on 2D data (configs/toy2d.py).
    Departure(
        {'fce.schedule.max_flow_updates': 0}, {'fce.schedule.max_flow_updates': 1},
        'the flow hands the turn back to the EBM after every update (FCE Sec. 4: when the '
        'accuracy falls to 0.5)',
        'the literal rule with the paper\'s flow rate starves the EBM on 2D data '
        '(docs/schedule_2d)', data='vectors'),
    Departure(
        {'fce.flow_mle_weight': 0.}, {'fce.flow_mle_weight': 1.},
        'the flow\'s loss adds its NLL on data to V',
        'on V alone the flow lost modes and its samples overflowed to NaN (docs/bench2d)',
        data='vectors'),
    Departure(
        {'optim.flow_optimizer': 'adamax', 'optim.flow_lr': 1e-5, 'optim.flow_clip_norm': 0.},
        {'optim.flow_optimizer': 'adam', 'optim.flow_lr': 1e-3, 'optim.flow_clip_norm': 10.},
        'the flow on Adam 1e-3, clipped at norm 10, as fast as MLE (FCE Sec. 4: Adamax 1e-5)',
        'at the paper\'s rate the flow does not keep up with the EBM on 2D data (docs/bench2d)',
        data='vectors'),
    Departure(
        {'model.flow.scale_floor': 0.}, {'model.flow.scale_floor': 0.01},
        'affine coupling scales floored at 0.01, which bounds a sample\'s expansion',
        'unbounded scales let flow samples overflow to NaN on suite densities (docs/bench2d)',
        data='vectors'),
    Departure(
        {'fce.ebm_aux_nce_weight': 0.}, {'fce.ebm_aux_nce_weight': 1.},
        'the EBM\'s loss adds NCE against a broad Gaussian',
        'V leaves f free where neither data nor flow samples go, and the EBM put mass there '
        '(docs/bench2d)', data='vectors'),
    Departure(
        {'model.ebm.first_bias': 'zeros'}, {'model.ebm.first_bias': 'half'},
        'half of the EBM\'s first-layer kinks start on data points, not all at the origin',
        'kinks at the origin drew small modes as streaks; all on data cost log-likelihood on '
        'spirals (docs/bench2d, docs/figure1)', data='vectors'),
    Departure(
        {'optim.ebm_lr_anneal': 0.}, {'optim.ebm_lr_anneal': 0.3},
        'the EBM\'s learning rate falls linearly to 0 over its last 30% of updates',
        'the EBM\'s last iterates are noisy, and the anneal removes that noise (docs/bench2d)',
        data='vectors'),
    Departure(
        {'model.ebm.width': 128}, {'model.ebm.width': 256},
        'the EBM\'s hidden layers 256 wide (FCE Table 5: fc128)',
        'a lower EBM error in every run of the 2D suite, for a few percent more time '
        '(docs/bench2d)', data='vectors'),
    Departure(
        {'optim.ebm_clip_norm': 0.}, {'optim.ebm_clip_norm': 100.},
        'the EBM\'s gradient clipped at global norm 100',
        'FCE from a heavy-tailed MLE flow draws far outliers whose gradients stall the EBM; '
        'healthy runs stay below the clip (docs/bench2d)', data='vectors'),
    Departure(
        {'ssl.vat_weight': 0., 'ssl.vat_epsilon': 1.},
        {'ssl.vat_weight': 10., 'ssl.vat_epsilon': 0.3},
        '2D semi-supervised FCE adds VAT on p(y | x), weight 10, radius 0.3 (FCE: on SVHN only)',
        'without it the labels split the two spirals by radius, not by arm (docs/figure5)',
        data='vectors'),
    # Every config.
    Departure(
        {'optim.ebm_beta1': 0.9}, {'optim.ebm_beta1': 0.5},
        'the EBM\'s Adam beta1 0.5 (FCE Sec. 4 says "Adam": beta1 0.9)',
        'inherited from GAN practice (a short memory for a two-player game), not measured',
        modes=_FCE_OPTIMISER_MODES, also={'optim.ebm_beta1': (0.99,)}),
    # FCE on images (configs/base.py, fce_on_images): together they hold V near -log 4.
    Departure(
        {'model.ebm.base': 'none'}, {'model.ebm.base': 'flow'},
        'the EBM tilts the flow FCE starts from: f = network + its frozen log q',
        'an EBM from scratch must learn log q\'s spread of tens of nats; V sat far below '
        '-log 4 (docs/image_fce)', data='images'),
    Departure(
        {'fce.schedule.metric': 'accuracy', 'fce.schedule.window': 1},
        {'fce.schedule.metric': 'value', 'fce.schedule.window': 10},
        'the turn is handed on V\'s mean over 10 updates against -log 4 (FCE Sec. 4: the '
        'accuracy against 0.5)',
        'on patches V held near -log 4 far more often, with a larger importance-sampling ESS '
        '(docs/image_fce)', data='images'),
    Departure(
        {'fce.schedule.max_flow_updates': 0}, {'fce.schedule.max_flow_updates': 1},
        'the flow hands the turn back to the EBM after every update (FCE Sec. 4: when the '
        'accuracy falls)',
        'without the cap the flow\'s first turn on digits never ended (docs/image_fce)',
        data='images'),
    Departure(
        {'model.ebm.support': 'none'}, {'model.ebm.support': 'cube'},
        'p = 0 outside [-0.5, 0.5]^D, where dequantized images live',
        'without it the EBM on photograph patches has mass that importance sampling never '
        'reaches: forward AIS rises to 0.06 bits/dim above Glow-MLE on one chain (on digits '
        'both sides of AIS find none) (docs/image_fce)', data='images'),
    Departure(
        {'fce.init_steps': 0}, {'fce.init_steps': 500},
        '500 EBM-only updates against the frozen flow first (FCE-init, which the paper uses '
        'for semi-supervised learning)',
        'V stays near -log 4 more often, with a larger importance-sampling ESS (docs/image_fce)',
        data='images'),
    Departure(
        {'optim.flow_lr': 1e-5}, {'optim.flow_lr': 1e-6},
        'the flow at a tenth of the paper\'s rate on photographs',
        'at the paper\'s rate the flow out-runs the EBM: V stays near -log 4 far less often '
        '(docs/image_fce)',
        data='images'),
    Departure(
        {'model.flow.support': 'none'}, {'model.flow.support': 'cube'},
        'the Glow\'s samples kept in the pixel range by a last sigmoid (digits, MNIST)',
        'the paper\'s Glow spills most samples of mostly-background images over the edge, '
        'and the cube Glow\'s bits/dim is lower (docs/image_fce)', data='images'),
)


def _lookup(config, field):
  node = config
  for part in field.split('.'):
    node = node[part]
  return node


def paper(config, mode=None):
  """Reverts, in place, every departure of ours that `config` holds in `mode`: the paper's
  settings. Values that are neither the paper's nor ours (e.g. celeba64's NT-EBM optimiser)
  are kept. The `<name>_paper` configs are this after the mode's own settings
  (configs/__init__.py).
  """
  for record in RECORDS:
    if record.fits(config, mode) and record.is_ours(config):
      for field, value in record.paper.items():
        *parents, leaf = field.split('.')
        _lookup(config, '.'.join(parents))[leaf] = value
  return config


def for_config(config, mode=None):
  """The departures of `config` trained in `mode`, as JSON-ready dicts (for config.json).

  Each has `fields` (their values in `config`), `paper`, `what`, `why` and `revert` (the
  --set flags). `why` is the measured reason where `config` holds our values; other values
  (set by --set, or by a config for another paper's sake) are named as such.
  """
  out = []
  for record in RECORDS:
    if record.applies(config, mode):
      fields = {field: _lookup(config, field) for field in record.paper}
      why = record.why if record.is_ours(config) else (
          f'ours is {_assignments(record.ours)}; this value comes from the config or --set')
      out.append({'fields': fields, 'paper': dict(record.paper), 'what': record.what,
                  'why': why, 'revert': ' '.join(f'--set {r}' for r in record.revert)})
  return out


def lines(config, mode=None):
  """One line per departure of `config` in `mode`: what differs and the flags that revert it."""
  return [f'{_assignments(d["fields"])} (paper: {", ".join(map(str, d["paper"].values()))}): '
          f'{d["what"]}. Revert: {d["revert"]}' for d in for_config(config, mode)]


def _assignments(fields):
  return ', '.join(f'{k}={v}' for k, v in fields.items())


def markdown():
  """Every record as a markdown list item: fields, paper -> ours, what, why, revert flags."""
  out = []
  for record in RECORDS:
    scope = ' '.join(filter(None, [record.data and f'({record.data})', record.modes and
                                   f'(modes: {", ".join(record.modes)})']))
    changes = ', '.join(f'`{k}` {record.paper[k]} → {record.ours[k]}' for k in record.paper)
    flags = ' '.join(f'--set {r}' for r in record.revert)
    out.append(f'- {changes}{" " + scope if scope else ""}: {record.what}. Why: {record.why}. '
               f'Revert: `{flags}`.')
  return '\n'.join(out) + '\n'


def replace_between_markers(text, body):
  """`text` with what lies between the BEGIN and END marker lines replaced by `body`.

  Raises:
    ValueError: the markers are missing, repeated or out of order.
  """
  if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
    raise ValueError(f'Need one {BEGIN} line and one {END} line after it.')
  head, rest = text.split(BEGIN)
  _, tail = rest.split(END)
  return f'{head}{BEGIN}\n{body.rstrip()}\n{END}{tail}'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument('--markdown', action='store_true', help='print the list as markdown')
  group.add_argument('--write', metavar='FILE',
                     help=f'replace the text between {BEGIN} and {END} in FILE by the list')
  args = parser.parse_args(argv)
  if args.markdown:
    sys.stdout.write(markdown())
    return 0
  with open(args.write, encoding='utf-8') as f:
    text = f.read()
  try:
    text = replace_between_markers(text, markdown())
  except ValueError as e:
    parser.error(f'{args.write}: {e}')
  with open(args.write, 'w', encoding='utf-8') as f:
    f.write(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
