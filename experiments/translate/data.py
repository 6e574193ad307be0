"""Tatoeba Turkish-English pairs: reading, a split by English sentence, tokens and detokenising.

``tur.txt`` lines are ``English<TAB>Turkish``; the source is column 2 (Turkish), the target
column 1 (English). Many English sentences have several Turkish translations, so the split
assigns *distinct English sentences* to train, validation and test: no target sentence is on
two sides. Turkish is lower-cased with the Turkish rules (İ -> i, I -> ı); English keeps its
case, because the references are cased.
"""

import dataclasses
import re

import numpy as np

from experiments.datasets import DataError
from experiments.datasets import locate
from jaxrnn import text

FILE = "translation_tur_eng/tur.txt"


@dataclasses.dataclass(frozen=True)
class Pairs:
    turkish: list[str]
    english: list[str]

    def __len__(self) -> int:
        return len(self.english)

    def subset(self, rows) -> "Pairs":
        return Pairs([self.turkish[i] for i in rows], [self.english[i] for i in rows])


def load(data_dir: str | None = None) -> Pairs:
    """Every pair of ``tur.txt``; a line without exactly one tab is an error naming it."""
    path = locate(FILE, data_dir)
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 ({error})") from None
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    turkish, english = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(
                f"{path}, line {number}: expected 'English<TAB>Turkish', got {line[:60]!r}"
            )
        english.append(fields[0].strip())
        turkish.append(fields[1].strip())
    if not english:
        raise DataError(f"{path}: no sentence pairs")
    return Pairs(turkish, english)


def split_by_english(pairs: Pairs, val_fraction: float, test_fraction: float, seed: int):
    """Row indices ``(train, val, test)``: each distinct English sentence goes to one side.

    Example:
      >>> from experiments.translate.data import Pairs, split_by_english
      >>> pairs = Pairs(["a", "b", "c", "d"], ["Hi.", "Hi.", "Go.", "Run."])
      >>> train, val, test = split_by_english(pairs, 0.34, 0.34, seed=0)
      >>> sorted({pairs.english[i] for i in train}) != sorted({pairs.english[i] for i in test})
      True
    """
    sentences = sorted(set(pairs.english))
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_val = round(len(sentences) * val_fraction)
    n_test = round(len(sentences) * test_fraction)
    side = {}
    for rank, index in enumerate(order):
        side[sentences[index]] = 2 if rank < n_test else 1 if rank < n_test + n_val else 0
    which = np.asarray([side[e] for e in pairs.english])
    return tuple(np.flatnonzero(which == s) for s in (0, 1, 2))


def turkish_tokens(sentence: str) -> list[str]:
    """Lower-cased with Turkish rules, punctuation split.

    Example:
      >>> from experiments.translate.data import turkish_tokens
      >>> turkish_tokens("İstanbul'da IŞIK var.")
      ["istanbul'da", 'ışık', 'var', '.']
    """
    return text.tokenize(sentence, mode="word", lower=True, language="tr")


def english_tokens(sentence: str) -> list[str]:
    """Case kept, punctuation split.

    Example:
      >>> from experiments.translate.data import english_tokens
      >>> english_tokens("Tom isn't here.")
      ['Tom', "isn't", 'here', '.']
    """
    return text.tokenize(sentence, mode="word", lower=False)


_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")
_NO_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenize(tokens: list[str]) -> str:
    """Joins English tokens back into a sentence (the inverse of `english_tokens` on this data).

    Example:
      >>> from experiments.translate.data import detokenize
      >>> detokenize(["Tom", "isn't", "here", ",", "is", "he", "?"])
      "Tom isn't here, is he?"
      >>> detokenize(["It's", "2", ":", "30", "."])
      "It's 2:30."
    """
    sentence = " ".join(tokens)
    sentence = _NO_SPACE_BEFORE.sub(r"\1", sentence)
    sentence = _NO_SPACE_AFTER.sub(r"\1", sentence)
    sentence = re.sub(r"(\d) ?([:/.,]) (\d)", r"\1\2\3", sentence)  # 2:30, 20/20, 3.5
    return re.sub(r'" (.*?) "', r'"\1"', sentence)


SOURCE_BUCKETS = (6, 8, 12, 16, 24, 32, 48, 64)


def encode_sources(units, sentences: list[str]) -> list[np.ndarray]:
    """Turkish sentences as id sequences (``units``: `experiments.translate.units`)."""
    return [units.encode(s) for s in sentences]


def encode_targets(units, sentences: list[str]) -> list[np.ndarray]:
    """English sentences as id sequences ending in <eos>."""
    return [units.encode(s, eos=True) for s in sentences]


def buckets(lengths) -> tuple[int, ...]:
    """The standard buckets up to the first that holds the longest sequence."""
    longest = max(lengths)
    covering = [b for b in SOURCE_BUCKETS if b >= longest]
    top = covering[0] if covering else longest
    return (*tuple(b for b in SOURCE_BUCKETS if b < top), top)
