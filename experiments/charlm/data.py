"""The text to learn, as character ids: a training stream and a held-out contiguous tail."""

import dataclasses
from pathlib import Path

import numpy as np

from experiments.datasets import DataError
from experiments.datasets import locate
from jaxrnn import text

DEFAULT_TEXT = "tinyshakespeare/input.txt"


@dataclasses.dataclass(frozen=True)
class Corpus:
    path: str
    vocab: text.Vocabulary  # characters of the training part, plus the specials
    train: np.ndarray  # (n,) int32 ids of the first part
    val: np.ndarray  # (m,) int32 ids of the held-out tail
    val_unknown: int  # characters of the tail never seen in training (mapped to <unk>)


def read_text(path: str | Path) -> str:
    """The file as text; invalid UTF-8 is an error that names the line.

    Example:
      >>> import tempfile, os
      >>> from experiments.charlm.data import read_text
      >>> path = os.path.join(tempfile.mkdtemp(), "t.txt")
      >>> _ = open(path, "wb").write(b"ok\\n\\xff")
      >>> read_text(path)
      Traceback (most recent call last):
      ...
      experiments.datasets.DataError: ...t.txt, line 2: not valid UTF-8 (byte 0xff)
    """
    raw = Path(path).read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{raw[error.start]:02x})"
        ) from None
    if not content:
        raise DataError(f"{path}: the file is empty")
    return content


def load(text_path: str, data_dir: str | None, val_fraction: float) -> Corpus:
    """Reads the text, builds the character vocabulary from its training part, splits it."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    path = Path(text_path) if text_path else locate(DEFAULT_TEXT, data_dir)
    if text_path and path.is_dir():
        raise IsADirectoryError(f"--text {text_path} is a folder; give a UTF-8 text file")
    if text_path and not path.is_file():
        raise FileNotFoundError(f"--text {text_path!r}: no such file")
    content = read_text(path)
    split = int(len(content) * (1 - val_fraction))
    if split < 1000 or len(content) - split < 100:
        raise DataError(
            f"{path} has {len(content)} characters: too short to learn from "
            "(need at least 1,000 for training and 100 held out)"
        )
    train_chars, val_chars = list(content[:split]), list(content[split:])
    vocab = text.Vocabulary.build([train_chars])
    return Corpus(
        path=str(path),
        vocab=vocab,
        train=vocab.encode(train_chars),
        val=vocab.encode(val_chars),
        val_unknown=sum(c not in vocab for c in set(val_chars)),
    )
