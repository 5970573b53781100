"""What the entry points share: one-line errors for bad flags and unusable paths.

absl prints a flag error on two lines and a stray argument as the whole help;
the zoo's rule is one line naming what was wrong and what is allowed.
"""
import os
import sys

from absl import flags

from zoo.errors import UsageError

USAGE_EXIT_CODE = 2  # a command-line mistake, as argparse and most Unix tools report it


def parse_flags(argv):
    """app.run's flags_parser: absl's parsing, with its errors and stray arguments as one line."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as error:
        exit_with(f"{error} (see --helpshort)")
    if len(rest) > 1:
        exit_with(f"unexpected arguments {' '.join(rest[1:])!r}: every setting is a --flag=value (see --helpshort)")
    return rest


def exit_with(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)


def writable_folder(path, flag):
    """Creates folder `path` if need be and checks that files can be written in it.

    Raised at start-up: a run or export that found out at its first save would
    have spent its time for nothing.
    """
    if "://" in path:
        raise UsageError(f"--{flag}={path} is a URL; the zoo writes with Python's file API: pass a local folder "
                         f"or a network file system mounted as one")
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--{flag}={path} is a file; expected a folder (or a path where one can be made)") \
            from None
    except OSError as error:
        raise UsageError(f"--{flag}={path}: cannot make that folder ({error.strerror}); pass a folder you can "
                         f"write in") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--{flag}={path} is not writable; pass a folder you can write in")
    return path


def writable_file(path, flag):
    """Creates the folder of file `path` if need be and checks that the file can be written there."""
    if os.path.isdir(path):
        raise UsageError(f"--{flag}={path} is a folder; expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--{flag}={path}: {folder} is a file; pass a file in a folder you can write in") from None
    except OSError as error:
        raise UsageError(f"--{flag}={path}: cannot make its folder {folder} ({error.strerror}); pass a file "
                         f"in a folder you can write in") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--{flag}={path}: its folder {folder} is not writable; pass a file in a folder you "
                         f"can write in")
    return path


def readable_folder(path, flag):
    """`path` if it is a folder whose files can be listed and read."""
    if not os.path.exists(path):
        raise UsageError(f"--{flag}={path} does not exist; expected a folder")
    if not os.path.isdir(path):
        raise UsageError(f"--{flag}={path} is a file; expected a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"--{flag}={path} is not readable; pass a folder you can read")
    return path
