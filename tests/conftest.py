import atexit
import os
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# Tests never download: an empty cache (no Inception graph, no FID statistics of a user's runs),
# and TTUR's URL on a port that refuses at once (subprocesses get --set eval.fid_samples=0).
os.environ['FCE_CACHE_DIR'] = tempfile.mkdtemp(prefix='fce_test_cache_')
atexit.register(shutil.rmtree, os.environ['FCE_CACHE_DIR'], ignore_errors=True)

from eval import fid  # noqa: E402  pylint: disable=g-import-not-at-top

fid.TTUR_URL = 'http://127.0.0.1:9/inception-2015-12-05.tgz'


import pytest  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture
def exact_random(monkeypatch):
  """tfp's stateless samplers replaced by numbers XLA gives too (`helpers.ExactRandom`)."""
  from tests import helpers  # pylint: disable=g-import-not-at-top
  helpers.patch_exact_random(monkeypatch)
