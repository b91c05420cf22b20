"""The error raised when a run cannot start; the CLIs turn it into exit code 2 without a traceback."""


class TrainingSetupError(ValueError):
    """Configuration, data or hardware do not allow the run; the message says what to fix."""
