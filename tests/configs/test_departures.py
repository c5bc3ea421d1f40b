"""The departures from the papers: which apply to a config, and that their flags revert them."""

import json

import pytest

import configs
from configs import departures

MODES = (None, 'mle', 'nce', 'fce', 'ssl', 'nt', 'nt_nce')
# (dataset, config) pairs that between them fit every record (vectors and images).
RUNS = [('2spirals', 'toy2d'), ('svhn', None), ('digits', None)]


def _fields(found):
  return {field for d in found for field in d['fields']}


@pytest.mark.parametrize('mode', MODES)
def test_paper_configs_have_no_departures(mode):
  for name in configs.CONFIGS:
    if configs.paper_config(name) == name and name != 'smoke':
      dataset = '2spirals' if name.startswith('toy2d') else name[:-len('_paper')]
      assert not departures.for_config(configs.for_dataset(dataset, name, mode=mode), mode), name


def test_toy2d_lists_beta1_and_the_width_and_what_reverts_them():
  found = departures.for_config(configs.for_dataset('8gaussians', mode='fce'), 'fce')
  by_field = {field: d for d in found for field in d['fields']}
  assert {'optim.ebm_beta1', 'model.ebm.width', 'optim.flow_lr'} <= set(by_field)
  assert 'ssl.vat_weight' not in by_field  # VAT comes with ssl only
  assert by_field['model.ebm.width']['revert'] == '--set model.ebm.width=128'
  assert by_field['optim.ebm_beta1']['paper'] == {'optim.ebm_beta1': 0.9}
  json.dumps(found)  # config.json takes them as they are
  # nt uses NT-EBM's optimiser, to which FCE's beta1 does not apply.
  nt = departures.for_config(configs.for_dataset('8gaussians', mode='nt'), 'nt')
  assert 'optim.ebm_beta1' not in _fields(nt) and 'model.ebm.width' in _fields(nt)


def test_image_fce_departs_where_the_other_modes_do_not():
  fce = _fields(departures.for_config(configs.for_dataset('svhn', mode='fce'), 'fce'))
  assert {'model.ebm.base', 'model.ebm.support', 'optim.flow_lr'} <= fce
  mle = _fields(departures.for_config(configs.for_dataset('svhn', mode='mle'), 'mle'))
  assert mle == {'optim.ebm_beta1'}
  digits = _fields(departures.for_config(configs.for_dataset('digits', mode='mle'), 'mle'))
  assert 'model.flow.support' in digits  # the cube Glow, in every mode


@pytest.mark.parametrize('dataset,name', RUNS)
@pytest.mark.parametrize('mode', ['fce', 'ssl', 'nt'])
def test_each_records_revert_flags_make_it_disappear(dataset, name, mode):
  found = departures.for_config(configs.for_dataset(dataset, name, mode=mode), mode)
  assert found or mode == 'nt'
  for departure in found:
    flags = departure['revert'].split()
    assignments = flags[1::2]
    assert flags[::2] == ['--set'] * len(assignments)
    reverted = configs.for_dataset(dataset, name, assignments, mode)
    assert departure['what'] not in [d['what'] for d in departures.for_config(reverted, mode)]


def test_every_record_is_met_and_its_defaults_are_ours():
  """Each record fits some shipped config that holds exactly our values (its reason applies)."""
  met = set()
  for dataset, name in RUNS:
    for mode in MODES:
      config = configs.for_dataset(dataset, name, mode=mode)
      for record in departures.RECORDS:
        if record.applies(config, mode) and record.is_ours(config):
          met.add(record.what)
  assert met == {r.what for r in departures.RECORDS}


def test_a_value_set_by_hand_keeps_the_record_but_not_its_reason():
  config = configs.for_dataset('8gaussians', None, ['model.ebm.width=64'], 'fce')
  (width,) = [d for d in departures.for_config(config, 'fce') if 'model.ebm.width' in d['fields']]
  assert width['fields'] == {'model.ebm.width': 64} and 'comes from' in width['why']
  lines = departures.lines(config, 'fce')
  assert any(line.startswith('model.ebm.width=64 (paper: 128): ') and
             line.endswith('Revert: --set model.ebm.width=128') for line in lines)
  assert all('\n' not in line for line in lines)


def test_markdown_lists_every_record_once():
  text = departures.markdown()
  assert text.count('\n- ') + text.startswith('- ') == len(departures.RECORDS)
  assert '`optim.ebm_beta1` 0.9 → 0.5' in text


def test_write_replaces_only_the_text_between_the_markers(tmp_path, capsys):
  path = tmp_path / 'RESULTS.md'
  path.write_text(f'# Results\n\nbefore\n{departures.BEGIN}\nstale list\n{departures.END}\nafter\n')
  assert departures.main(['--write', str(path)]) == 0
  text = path.read_text()
  assert text.startswith(f'# Results\n\nbefore\n{departures.BEGIN}\n- ')
  assert text.endswith(f'\n{departures.END}\nafter\n') and 'stale' not in text
  assert departures.main(['--write', str(path)]) == 0 and path.read_text() == text  # idempotent
  assert departures.main(['--markdown']) == 0
  assert capsys.readouterr().out == departures.markdown()
  path.write_text('no markers\n')
  with pytest.raises(SystemExit):
    departures.main(['--write', str(path)])
  assert path.read_text() == 'no markers\n'


def test_a_new_run_records_its_departures_in_config_json(tmp_path):
  from train import run_folder  # pylint: disable=g-import-not-at-top
  config = configs.for_dataset('8gaussians', None, ['model.ebm.width=128'], 'fce')
  run_folder.check_workdir(str(tmp_path), config, 'fce', write=True)
  recorded = json.loads((tmp_path / 'config.json').read_text())['departures']
  fields = {f for d in recorded for f in d['fields']}
  assert 'optim.ebm_beta1' in fields and 'model.ebm.width' not in fields  # reverted by --set
  assert all(d['revert'].startswith('--set ') for d in recorded)
