"""A quiet start for every entry point: TensorFlow's start-up notices are not errors.

On a machine without a GPU, importing TensorFlow prints, before its logging is configured and so
past TF_CPP_MIN_LOG_LEVEL, lines such as "Could not find cuda drivers", "failed call to cuInit:
CUDA error" and CPU-instruction notices. They look like errors and are not. `quiet()` imports
TensorFlow (and lists its devices, which is when cuInit runs) with the process's stderr captured
at the file-descriptor level, then writes back every captured line except those known notices.
A failed cuInit is dropped only where no NVIDIA driver is installed; on a GPU machine it is a
real error and is shown.

Two lines TensorFlow logs during training (each save's timing, a deprecation warning) are
dropped from its loggers by `filter_log_noise` (from `quiet()` and `run()`).

Every entry point calls it first, before anything imports TensorFlow:

  from train import startup
  startup.quiet()
"""

import contextlib
import errno
import os
import re
import sys
import tempfile

from train import errors  # no TensorFlow: safe before quiet()

_NOTICES = (
    r'All log messages before absl::InitializeLog\(\) is called',
    r'cudart_stub\.cc.*Could not find cuda drivers',
    r'cpu_feature_guard\.cc',
    r'To enable the following instructions: .* rebuild TensorFlow',
    r'oneDNN custom operations are on',
    r'Unable to register cu(DNN|FFT|BLAS) factory',
    r'computation placer already registered',
    r'TF-TRT Warning: Could not find TensorRT',
)
_NO_DRIVER_NOTICES = (r'failed call to cuInit', r'cuda_diagnostics\.cc',
                      r'kernel driver does not appear')


def _noise_patterns():
  patterns = list(_NOTICES)
  if not os.path.exists('/proc/driver/nvidia'):
    patterns += _NO_DRIVER_NOTICES
  return re.compile('|'.join(f'(?:{p})' for p in patterns))


@contextlib.contextmanager
def _captured_stderr():
  """Redirects file descriptor 2 to a temporary file; yields a list filled with its lines."""
  lines = []
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield lines
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      lines.extend(capture.read().decode('utf-8', 'replace').splitlines(keepends=True))


def quiet():
  """Imports TensorFlow without its start-up notices (see the module docstring); a no-op once
  TensorFlow is imported."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if 'tensorflow' in sys.modules:
    return
  with _captured_stderr() as lines:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices()
  sys.stderr.write(''.join(without_notices(lines)))
  sys.stderr.flush()
  # TensorFlow's own Python INFO lines; its warnings still show.
  tf.get_logger().setLevel('WARNING')
  filter_log_noise()


# Lines TensorFlow logs in the middle of training that are not the user's concern: each
# checkpoint save's timing (functional_saver.py logs it through absl at INFO, past
# tf.get_logger()'s level), and the deprecation of tf.compat.v1.train.update_checkpoint_state,
# which train/checkpoints.py calls to point the checkpoint state file at the kept checkpoints
# (the v2 API has no public equivalent).
_LOG_NOISE = re.compile(r'Sharding callback duration|update_checkpoint_state \(from '
                        r'tensorflow\.python\.checkpoint\.checkpoint_management\) is deprecated')


class _DropNoise:
  """A logging filter that drops the records `_LOG_NOISE` matches."""

  def filter(self, record):
    try:
      return not _LOG_NOISE.search(record.getMessage())
    except Exception:  # pylint: disable=broad-except  (a record that cannot format: keep it)
      return True


def filter_log_noise():
  """Drops `_LOG_NOISE` from absl's and TensorFlow's loggers (their other lines still show);
  idempotent."""
  import logging  # pylint: disable=g-import-not-at-top
  for name in ('absl', 'tensorflow'):
    logger = logging.getLogger(name)
    if not any(isinstance(f, _DropNoise) for f in logger.filters):
      logger.addFilter(_DropNoise())


def without_notices(lines):
  """The lines that are not known start-up notices."""
  noise = _noise_patterns()
  return [line for line in lines if not noise.search(line)]


def run(main, **kwargs):
  """absl's app.run(main) with the project's logging (INFO and above), in every entry point.

  A usage error (app.UsageError) prints one line and a pointer to --help, where absl would print
  the whole flag list before it. Bad input or a run that cannot go on (`errors.UserError`: a
  dataset that cannot be read, a NaN, a workdir another process holds, ...) prints
  `error: <message>`, which says what to do, and exits 1, in place of a traceback. A run stopped
  by SIGINT / SIGTERM (`errors.Interrupted`) prints its one line and exits 128 + the signal's
  number; Ctrl-C outside the training loop (building, evaluating), one line and 130.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  filter_log_noise()

  def main_with_short_errors(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      sys.stderr.write(f'error: {e}\nSee {os.path.basename(sys.argv[0])} --help for the flags.\n')
      sys.exit(e.exitcode)
    except errors.UserError as e:
      sys.stderr.write(f'error: {e}\n')
      sys.exit(1)
    except errors.Interrupted as e:
      sys.stderr.write(f'{e}\n')
      sys.exit(e.exit_code)
    except KeyboardInterrupt:  # outside the training loop, which takes the signals over
      sys.stderr.write('Interrupted by SIGINT; what was already written is kept.\n')
      sys.exit(130)
    except Exception as e:  # pylint: disable=broad-except
      message = storage_error(e)
      if message is None:
        raise
      sys.stderr.write(f'error: {message}\n')
      sys.exit(1)

  app.run(main_with_short_errors, **kwargs)


_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def storage_error(e):
  """One line for a file that could not be written (a full disk, a read-only or unwritable
  folder, a path through a file), from Python's OSError or TensorFlow's file errors; None for any
  other error. What was written before (checkpoints, reports) is untouched by such a failure:
  the trainer saves before it evaluates, and files are written whole (checkpoints.write_json).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  if isinstance(e, OSError) and e.errno is not None:
    where = f' {e.filename}' if e.filename else ''
    if e.errno in _FULL:
      return (f'no space left on the device, writing{where or " a file"}. Free some space and '
              'rerun the same command: a training run resumes from its last checkpoint.')
    if e.errno in _DENIED:
      return (f'cannot write{where} ({os.strerror(e.errno)}). Use a folder you can write to '
              '(--workdir for training; for --mode=eval or sample, a copy of the run folder).')
    if e.errno == errno.ENOTDIR:
      return f'{text}: a path passes through a file where a folder is needed.'
    return None
  full = isinstance(e, tf.errors.ResourceExhaustedError) and (
      'space' in text.lower() or 'quota' in text.lower())
  if full:
    return (f'no space left on the device ({text}). Free some space and rerun the same '
            'command: a training run resumes from its last checkpoint.')
  if isinstance(e, tf.errors.PermissionDeniedError):
    return (f'cannot write: {text}. Use a folder you can write to (--workdir for training; for '
            '--mode=eval or sample, a copy of the run folder).')
  return None
