"""The errors a training run raises on purpose (the CLIs print them in one line, see cyclegan.contract.errors)."""

from cyclegan.contract.errors import EXIT_FAILED, ToolkitError


class TrainingSetupError(ToolkitError, ValueError):
    """Configuration, data, hardware or the run folder do not allow the run; the message says what to fix."""


class TrainingDivergedError(ToolkitError):
    """The losses became NaN or infinite; nothing was saved after the last good checkpoint."""

    exit_code = EXIT_FAILED


class PeerLostError(ToolkitError):
    """Another training process (usually on another node) died or stopped answering; checkpoints are intact."""

    exit_code = EXIT_FAILED
