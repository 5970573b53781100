"""Errors the user can fix (a bad flag, path or file), reported as one line, not a traceback."""


class UsageError(ValueError):
    pass


class DatasetUnavailableError(UsageError):
    """The data cannot be had: not prepared, no download possible, no manual files."""


class RunMismatchError(UsageError):
    """The work directory holds a run with other settings."""
