"""Files a run rewrites are written aside and renamed, so a kill at any moment leaves the old one whole."""
import contextlib
import glob
import os
import re
import shutil
import socket


@contextlib.contextmanager
def written_aside(path):
    """Yields a temporary path next to `path` (same suffix); renamed onto `path` if the block succeeds."""
    directory, name = os.path.split(path)
    partial = os.path.join(directory, partial_prefix() + name)  # keeps the suffix Keras checks
    try:
        yield partial
        os.replace(partial, path)  # atomic on POSIX within one file system
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_text(path, text):
    """Replaces `path`'s contents with `text`, atomically and durably."""
    with written_aside(path) as partial:
        with open(partial, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def partial_prefix():
    """The name prefix of what this process writes aside, file or folder: its pid and host ('@' is in no
    host name), which remove_leftovers reads (an export folder may be shared by hosts, whose pids are not ours)."""
    return f".partial-{os.getpid()}@{socket.gethostname()}@"


def remove_leftovers(directory):
    """Removes the files and folders in `directory` and below that a process of this host wrote aside and
    left when it was killed (names without a host, from zoos before 2026-11-24, count as this host's).
    A pid reused since (a restarted container) keeps its own: litter, never a loss."""
    host = socket.gethostname()
    for path in glob.glob(os.path.join(directory, "**", ".partial-*"), recursive=True):
        match = re.match(r"\.partial-(\d+)(?:@([^@]*)@|-)", os.path.basename(path))
        if match and match[2] in (None, host) and not _alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):  # another process's cleanup got there first
        os.remove(path)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
