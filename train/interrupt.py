"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (what cluster schedulers send before
they preempt a job).

The handler only notes the signal; the training loop reads `StopSignals.received` between steps
(a step is a tf.function, and a checkpoint is never written from inside a handler), saves the
state of the step it has reached and stops (`errors.Interrupted`). A second signal exits at once:
everything already written stays as it is (a save cut short leaves only its temporary files, and
the checkpoint before it stays the latest).
"""

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_code(signum):
  """The shell's status for a process ended by signal `signum`: 128 + its number."""
  return 128 + int(signum)


class StopSignals:
  """A context in which SIGINT and SIGTERM set `received` (the first signal's number) instead of
  ending the process; the previous handlers come back on exit. A second signal calls
  `before_exit` (e.g. to release the workdir's lock) and exits. Outside the main thread, where
  Python cannot take signals, it does nothing."""

  def __init__(self, before_exit=None):
    self.received = None
    self.before_exit = before_exit
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum
      sys.stderr.write(f'\n{signal.Signals(signum).name}: stopping after this step, with a '
                       'checkpoint (a second signal stops at once, without it).\n')
      sys.stderr.flush()
      return
    sys.stderr.write(f'{signal.Signals(signum).name} again: stopped at once; the checkpoints '
                     'already written are intact.\n')
    sys.stderr.flush()
    try:
      if self.before_exit:
        self.before_exit()
    finally:
      os._exit(exit_code(signum))  # pylint: disable=protected-access
