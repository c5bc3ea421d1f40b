"""The trainer's errors, in a module without TensorFlow, so that `train.startup` can catch them
before anything imports TensorFlow. `train.trainer` re-exports both."""


class TrainingError(RuntimeError):
  """A run that cannot go on; the message says why and what to do."""


class DivergedError(TrainingError):
  """The models diverged: a step's metrics, or the state about to be saved, are not finite
  (nothing non-finite is saved). Experiments count these as NaN stops."""
