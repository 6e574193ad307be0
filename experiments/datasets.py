"""Finding the real data sets: ``--data-dir``, ``$JAXRNN_DATA``, or a verified download.

Data sets are never copied into this repository. Each experiment names the file it needs
relative to the data folder (e.g. ``stock/GSPC.csv``); where a stable public URL exists, a
missing file can be downloaded into ``~/.cache/jaxrnn`` and is checked against its sha256.
"""

import dataclasses
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

ENV_VAR = "JAXRNN_DATA"
CACHE_ENV_VAR = "JAXRNN_CACHE"


class DataError(ValueError):
    """A data file is malformed; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A data file with a stable public URL and its expected sha256."""

    relative: str  # path inside the data folder, e.g. "tinyshakespeare/input.txt"
    url: str
    sha256: str


# Pinned to commits, so the bytes never change (see each SOURCE.md).
REMOTE = {
    remote.relative: remote
    for remote in [
        RemoteFile(
            "tinyshakespeare/input.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/"
            "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ),
        RemoteFile(
            "stock/AAPL_2006-01-01_to_2018-01-01.csv",
            "https://raw.githubusercontent.com/szrlee/Stock-Time-Series-Analysis/"
            "8da42f14ae64fca79b9b8b51208e98674fc3d4e9/data/AAPL_2006-01-01_to_2018-01-01.csv",
            "9a4d1d99d708b3a213fe4e709ba2e214fa67aed127972636d61823b87a843f5f",
        ),
        RemoteFile(
            "stock/GSPC.csv",
            "https://raw.githubusercontent.com/BenjiKCF/Neural-Net-with-Financial-Time-Series-"
            "Data/15e0640c799e106c3a3fb8901e25663a13197574/%5EGSPC.csv",
            "e798ac64cf923cad773239bb169eb98ee131fcd3d1357bf8174ea58857452f9a",
        ),
        RemoteFile(
            "sentiment/rt-polarity/rt-polarity.pos",
            "https://raw.githubusercontent.com/yoonkim/CNN_sentence/"
            "23e0e1f7355705bb083043fda05c031b15acb38c/rt-polarity.pos",
            "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0",
        ),
        RemoteFile(
            "sentiment/rt-polarity/rt-polarity.neg",
            "https://raw.githubusercontent.com/yoonkim/CNN_sentence/"
            "23e0e1f7355705bb083043fda05c031b15acb38c/rt-polarity.neg",
            "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca",
        ),
    ]
}


def read_utf8_lines(path: str | os.PathLike) -> list[str]:
    """The file split on ``\\n``; bytes that are not UTF-8 are a `DataError` naming the file
    and the line.

    Example:
      >>> import tempfile, os
      >>> from experiments.datasets import read_utf8_lines
      >>> path = os.path.join(tempfile.mkdtemp(), "in.txt")
      >>> _ = open(path, "wb").write(b"ok\\nbad \\xff\\n")
      >>> read_utf8_lines(path)
      Traceback (most recent call last):
      ...
      experiments.datasets.DataError: ...in.txt, line 2: not valid UTF-8 (byte 0xff at column 5)
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a text file")
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{raw[error.start]:02x} at column "
            f"{column})"
        ) from None


def data_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``data_dir`` if given, else ``$JAXRNN_DATA``, else None.

    Example:
      >>> from experiments.datasets import data_root
      >>> str(data_root("/some/where"))
      '/some/where'
    """
    chosen = data_dir or os.environ.get(ENV_VAR)
    return Path(chosen).expanduser() if chosen else None


def locate(relative: str, data_dir: str | os.PathLike | None = None, *, download: bool = True):
    """The path of data file ``relative`` (e.g. ``"stock/GSPC.csv"``).

    Looks in ``data_dir`` (the ``--data-dir`` flag), then ``$JAXRNN_DATA``, then the download
    cache; if the file is still missing and has a pinned URL, downloads it (when ``download``)
    and checks its sha256.

    Args:
      relative: the path inside the data folder.
      data_dir: the ``--data-dir`` value, or None.
      download: allow a download of files with a pinned URL.

    Returns:
      A `Path` to an existing file.

    Raises:
      FileNotFoundError: with what was tried and how to point jaxrnn at a local copy.

    Example:
      >>> from experiments.datasets import locate
      >>> import tempfile, pathlib
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> (root / "x.txt").write_text("hi")
      2
      >>> locate("x.txt", root).name
      'x.txt'
    """
    tried = []
    for root in (data_root(data_dir), cache_root()):
        if root is not None:
            candidate = root / relative
            tried.append(str(candidate))
            if candidate.is_file():
                return candidate
    remote = REMOTE.get(relative)
    hint = (
        f"Point jaxrnn at a folder that holds {relative!r}: pass --data-dir DIR or set "
        f"{ENV_VAR}=DIR (in this project: {ENV_VAR}=../shared/data)."
    )
    if remote is None or not download:
        raise FileNotFoundError(
            f"data file {relative!r} not found (looked in: {', '.join(tried) or 'nowhere'}). {hint}"
        )
    return fetch(remote, hint=hint)


def cache_root() -> Path:
    """Where downloads go: ``$JAXRNN_CACHE`` or ``~/.cache/jaxrnn``."""
    return Path(os.environ.get(CACHE_ENV_VAR, "~/.cache/jaxrnn")).expanduser()


def fetch(remote: RemoteFile, *, hint: str = "", timeout: float = 30.0) -> Path:
    """Downloads ``remote`` into the cache, verifies its sha256, and returns its path.

    The download is written to a temporary file and renamed only once its hash matches.
    """
    target = cache_root() / remote.relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise FileNotFoundError(
            f"data file {remote.relative!r} is not on this machine and downloading it from "
            f"{remote.url} failed ({error}). {hint}"
        ) from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != remote.sha256:
        raise ValueError(
            f"downloaded {remote.url} has sha256 {digest}, expected "
            f"{remote.sha256}; not using it. {hint}"
        )
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(payload)
    os.replace(tmp, target)
    return target
