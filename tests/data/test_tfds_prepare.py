"""TFDS's download-and-prepare path works where the network does (issue 12, part 1).

tensorflow-datasets 4.9.10 imports `importlib_resources` lazily on that path without declaring
it; `tfds.testing.mock_data` (the other data tests) skips the path. Here the download itself is
refused, so each builder must get as far as asking for its files, with nothing missing before.
"""

import pytest
import tensorflow_datasets as tfds

from data import images


class _Refused(Exception):
  """What the refused download raises: reaching it is the test's success."""


def _refuse(*args, **kwargs):
  del args, kwargs
  raise _Refused('the network call was refused')


@pytest.mark.parametrize('name', sorted(images.TFDS_NAMES.values()))
def test_prepare_reaches_the_download_with_no_import_error(tmp_path, monkeypatch, name):
  for method in ('download', 'download_and_extract'):
    monkeypatch.setattr(tfds.download.DownloadManager, method, _refuse)
  builder = tfds.builder(name, data_dir=str(tmp_path))
  with pytest.raises(_Refused):
    builder.download_and_prepare()
