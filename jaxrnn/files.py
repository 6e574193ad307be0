"""Writing a file so that a reader sees the old contents or the new ones, never half of either.

Every file jaxrnn writes for later (vocabularies, exported models, checkpoint records, metrics,
results) goes through `write_atomically`: a temporary file in the same folder, flushed to disk,
then renamed over the target. When the disk is full or the folder read-only, the temporary file
is removed and the error says which file and why in one line.
"""

import errno
import os
import re
import tempfile

from jaxrnn.checks import fail


class WriteError(OSError):
    """A file or folder could not be written (full disk, read-only file system, no
    permission); the message names it and the cause, and nothing half-written is left."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message names the errno's meaning already


# What a user fixes outside Python; any other OSError is a bug to show in full.
USER_CAUSES = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


def os_error_code(error: BaseException) -> int | None:
    """The ``errno`` behind ``error``: its own, one of its causes', or the one tensorstore
    (orbax's writer) puts into its message as ``[os_error_code='28']``; None if there is none.

    Examples:
      >>> from jaxrnn.files import os_error_code
      >>> os_error_code(ValueError("RESOURCE_EXHAUSTED: ... [os_error_code='28']"))
      28
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno:
            return error.errno
        found = re.search(r"os_error_code='?(\d+)", str(error))
        if found:
            return int(found.group(1))
        error = error.__cause__ or error.__context__
    return None


def write_atomically(path: str | os.PathLike, data: bytes | str) -> str:
    """Writes ``data`` (text is UTF-8) to ``path`` atomically; returns the path.

    Raises:
      FileNotFoundError: when the folder of ``path`` does not exist.
      IsADirectoryError: when ``path`` is a folder.
      WriteError: (an `OSError`) ``cannot write <path>: <cause>`` (``No space left on
        device``, ``Read-only file system``, ...), with nothing left behind.

    Examples:
      >>> import os, tempfile
      >>> from jaxrnn.files import write_atomically
      >>> path = write_atomically(os.path.join(tempfile.mkdtemp(), "note.txt"), "hello")
      >>> open(path).read()
      'hello'
    """
    if not isinstance(data, (bytes, bytearray, str)):
        fail("data", "bytes or a str", data, TypeError)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        cause = error.strerror or str(error)
        raise WriteError(error.errno, f"cannot write {path}: {cause}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
    return path


__all__ = ("WriteError", "os_error_code", "write_atomically")
