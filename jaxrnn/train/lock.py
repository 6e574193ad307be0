"""One run per workdir: an advisory lock on ``<workdir>/.lock``.

The lock is a `fcntl.flock` on an open file, which the kernel releases when the process ends
however it ends (``kill -9`` included), so a killed run never leaves a stale lock behind. The
file itself stays and names the last process that held it. Within one process the lock is
re-entrant for the thread that holds it, so an experiment can hold its workdir while `fit`
runs in it; another thread of the same process is refused like another process.
"""

import contextlib
import datetime
import fcntl
import os
import socket
import threading
from collections.abc import Iterator

from jaxrnn.files import WriteError

LOCK_FILE = ".lock"

_held: dict[str, tuple[int, int, int]] = {}  # real path -> (descriptor, depth, thread)
_guard = threading.Lock()


class WorkdirInUseError(RuntimeError):
    """Another process is running in this workdir; the message names it."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike, lock_file: str = LOCK_FILE) -> Iterator[None]:
    """Holds ``<workdir>/<lock_file>`` for the duration of the ``with`` block.

    Raises:
      WorkdirInUseError: at once, naming the process that holds it (or saying that another
        thread of this process does).
      WriteError: the workdir cannot be created or written (read-only, no permission).

    Examples:
      >>> import tempfile
      >>> from jaxrnn.train import workdir_lock
      >>> workdir = tempfile.mkdtemp()
      >>> with workdir_lock(workdir):
      ...     with workdir_lock(workdir):  # re-entrant in one process
      ...         pass
    """
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise WriteError(
            error.errno, f"cannot create workdir {workdir}: {error.strerror}"
        ) from None
    path = os.path.realpath(os.path.join(workdir, lock_file))
    me = threading.get_ident()
    with _guard:
        held = _held.get(path)
        if held is not None and held[2] != me:
            # flock is per open file, so the kernel would let a second thread in: refuse here.
            raise WorkdirInUseError(
                f"{workdir} is in use by another run in this process (thread {held[2]}); wait "
                "for it to finish, or use another workdir"
            )
        if held is not None:
            _held[path] = (held[0], held[1] + 1, me)
    if held is not None:
        try:
            yield
        finally:
            with _guard:
                fd, depth, _ = _held[path]
                _held[path] = (fd, depth - 1, me)
        return
    with _guard:
        fd = _claim(workdir, path, me)
    try:
        yield
    finally:
        with _guard:
            del _held[path]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _claim(workdir, path: str, me: int) -> int:
    """Takes the lock file for this thread: its descriptor, recorded in `_held`."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise WriteError(error.errno, f"cannot use workdir {workdir}: {error.strerror}") from None
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
    try:  # who holds it, for the message of the run refused
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
    except OSError as error:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise WriteError(error.errno, f"cannot use workdir {workdir}: {error.strerror}") from None
    _held[path] = (fd, 1, me)
    return fd
