"""Errors the user can fix (a bad flag, path or file), reported as one line, not a traceback."""


class UsageError(ValueError):
    pass


class DatasetUnavailableError(UsageError):
    """The data cannot be had: not prepared, no download possible, no manual files."""


class RunMismatchError(UsageError):
    """The work directory holds a run with other settings."""


class Diverged(FloatingPointError):
    """A loss turned NaN or infinite: training stopped, the last good checkpoint kept."""


class DamagedCheckpoint(UsageError):
    """No checkpoint of the run can be read, or its layout is not this model's."""


class Interrupted(Exception):
    """SIGTERM or SIGINT stopped the run after it saved a checkpoint: rerunning resumes it."""
