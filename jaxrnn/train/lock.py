"""One run per workdir: an advisory lock on ``<workdir>/.lock``.

The lock is a `fcntl.flock` on an open file, which the kernel releases when the process ends
however it ends (``kill -9`` included), so a killed run never leaves a stale lock behind. The
file itself stays and names the last process that held it. Within one process the lock is
re-entrant, so an experiment can hold its workdir while `fit` runs in it.
"""

import contextlib
import datetime
import fcntl
import os
import socket
from collections.abc import Iterator

LOCK_FILE = ".lock"

_held: dict[str, tuple[int, int]] = {}  # real path -> (file descriptor, depth)


class WorkdirInUseError(RuntimeError):
    """Another process is running in this workdir; the message names it."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike, lock_file: str = LOCK_FILE) -> Iterator[None]:
    """Holds ``<workdir>/<lock_file>`` for the duration of the ``with`` block.

    Raises:
      WorkdirInUseError: at once, naming the process that holds it.

    Examples:
      >>> import tempfile
      >>> from jaxrnn.train import workdir_lock
      >>> workdir = tempfile.mkdtemp()
      >>> with workdir_lock(workdir):
      ...     with workdir_lock(workdir):  # re-entrant in one process
      ...         pass
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.realpath(os.path.join(workdir, lock_file))
    if path in _held:
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[path]
            _held[path] = (fd, depth - 1)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise WorkdirInUseError(
            f"{workdir} is in use by another run ({holder}); wait for it to finish, stop it, "
            "or use another workdir"
        ) from None
    started = datetime.datetime.now().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
    _held[path] = (fd, 1)
    try:
        yield
    finally:
        del _held[path]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
