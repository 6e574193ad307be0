"""The sentiment data sets, read completely, and their folds.

See ``../shared/data/sentiment/SOURCE.md``: rt-polarity is Windows-1252 (not UTF-8) and must be
split on ``\\n`` only (byte 0x85 is a line break for ``str.splitlines``); the UCI files are
UTF-8 ``sentence<TAB>label`` lines with unbalanced quotes, so they are split on the last tab,
never parsed as CSV.
"""

import dataclasses
from pathlib import Path

import numpy as np

from experiments.datasets import DataError
from experiments.datasets import locate

RT_FILES = {"rt-polarity/rt-polarity.neg": 0, "rt-polarity/rt-polarity.pos": 1}
UCI_FILES = {
    "amazon": "uci_sentiment_labelled_sentences/amazon_cells_labelled.txt",
    "imdb": "uci_sentiment_labelled_sentences/imdb_labelled.txt",
}
DATASETS = ("rt-polarity", "amazon", "imdb")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Sentences and their labels (0 negative, 1 positive)."""

    name: str
    texts: list[str]
    labels: np.ndarray  # (n,) int32

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: np.ndarray) -> "Corpus":
        return Corpus(self.name, [self.texts[i] for i in rows], self.labels[rows])


def load(name: str, data_dir: str | None = None) -> Corpus:
    """Loads ``"rt-polarity"``, ``"amazon"`` or ``"imdb"`` from ``sentiment/`` in the data folder.

    Example:
      >>> from experiments.sentiment.data import load
      >>> load("yelp")
      Traceback (most recent call last):
      ...
      ValueError: dataset must be one of ('rt-polarity', 'amazon', 'imdb'), got 'yelp'
    """
    if name == "rt-polarity":
        texts, labels = [], []
        for relative, label in RT_FILES.items():
            lines = read_lines(locate(f"sentiment/{relative}", data_dir), encoding="cp1252")
            texts += [line.strip() for line in lines]
            labels += [label] * len(lines)
        return Corpus(name, texts, np.asarray(labels, np.int32))
    if name in UCI_FILES:
        path = locate(f"sentiment/{UCI_FILES[name]}", data_dir)
        texts, labels = [], []
        for number, line in enumerate(read_lines(path, encoding="utf-8"), start=1):
            text, tab, label = line.rpartition("\t")
            if not tab or label.strip() not in ("0", "1"):
                raise DataError(
                    f"{path}, line {number}: expected 'sentence<TAB>0' or "
                    f"'sentence<TAB>1', got {line[:60]!r}"
                )
            texts.append(text.strip())
            labels.append(int(label))
        return Corpus(name, texts, np.asarray(labels, np.int32))
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


def read_lines(path: Path, *, encoding: str) -> list[str]:
    """The lines of ``path`` split on ``\\n`` only; a final newline ends the last line.

    Empty lines inside the file are data errors (a sentence cannot be empty).
    """
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: cannot be decoded as {encoding} ({error})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError(f"{path}, line {number}: empty line")
    return [line.rstrip("\r") for line in lines]


def folds(num_examples: int, num_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``num_folds`` (train, test) index pairs of a seeded shuffle: each example is tested once.

    Example:
      >>> from experiments.sentiment.data import folds
      >>> [(len(tr), len(te)) for tr, te in folds(10, 5, seed=0)][:2]
      [(8, 2), (8, 2)]
    """
    if not 2 <= num_folds <= num_examples:
        raise ValueError(f"num_folds must be in [2, {num_examples}], got {num_folds}")
    order = np.random.default_rng(seed).permutation(num_examples)
    parts = np.array_split(order, num_folds)
    return [
        (np.sort(np.concatenate(parts[:k] + parts[k + 1 :])), np.sort(parts[k]))
        for k in range(num_folds)
    ]
