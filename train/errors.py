"""The project's errors, in a module without TensorFlow, so that `train.startup` can catch them
before anything imports TensorFlow. `train.trainer` re-exports the trainer's two."""


class UserError(RuntimeError):
  """Bad input, or a state the user can fix; the message says what to do. Every entry point
  (`train.startup.run`) prints it as `error: <message>` and exits 1, in place of a traceback."""


class TrainingError(UserError):
  """A run that cannot go on; the message says why and what to do."""


class DivergedError(TrainingError):
  """The models diverged: a step's metrics, or the state about to be saved, are not finite, or
  the metrics have been out of every sane range for many updates (`train.watch.Health`); nothing
  diverged is saved. Experiments count these as NaN stops."""


class Interrupted(Exception):
  """A run stopped by SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption notice) after saving
  its state. `startup.run` prints the message as one line and exits with `exit_code` (128 + the
  signal's number, the shell's convention: 130, 143)."""

  def __init__(self, message, exit_code):
    super().__init__(message)
    self.exit_code = exit_code


class ReportError(RuntimeError):
  """A part of an evaluation that could not run (e.g. log Z from weights that overflowed); what
  was computed before it is kept."""
