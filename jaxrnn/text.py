"""Text to arrays: tokenizers, vocabularies, padding and length-bucketed batches.

Used by the sentiment, generation and translation experiments, and by anyone feeding text to
an RNN. Everything here is NumPy on the host; the arrays it makes go to jitted code.
"""

import collections
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxrnn import packing
from jaxrnn.checks import check_step

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3 in every vocabulary

# A word is a run of letters/digits with inner apostrophes or hyphens kept ("don't",
# "co-writer"); every other non-space character is a token of its own.
_WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]", re.UNICODE)


def lowercase(text: str, language: str | None = None) -> str:
    """Lower-cases ``text``; a Turkish or Azerbaijani ``language`` (``"tr"``, ``"tr-TR"``,
    ``"turkish"``, ``"az"``, ...) applies the Turkish rules.

    Turkish has two i's: dotted ``İ/i`` and dotless ``I/ı``. Python's ``str.lower`` maps
    ``I`` to ``i`` and ``İ`` to ``i`` plus a combining dot, both wrong for Turkish.

    Examples:
      >>> from jaxrnn.text import lowercase
      >>> lowercase("İSTANBUL'DA IŞIK", language="tr")
      "istanbul'da ışık"
      >>> lowercase("DIŞ")
      'diş'
      >>> lowercase("I", "turkish")
      'ı'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if _dotless_i(language):
        text = text.replace("İ", "i").replace("I", "ı")
    return unicodedata.normalize("NFC", text.lower())


_DOTLESS_I = {"tr", "az", "tur", "aze", "turkish", "azerbaijani", "azeri"}


def _dotless_i(language: str | None) -> bool:
    """Whether ``language`` (``"tr"``, ``"tr-TR"``, ``"turkish"``, ...) has the Turkish i's."""
    if language is None:
        return False
    if not isinstance(language, str):
        raise TypeError(f"language must be a str such as 'tr' or None, got {language!r}")
    return language.lower().replace("_", "-").split("-")[0] in _DOTLESS_I


def tokenize(
    text: str,
    *,
    mode: str = "word",
    lower: bool = True,
    language: str | None = None,
) -> list[str]:
    """Splits ``text`` into word tokens (punctuation separated) or characters.

    Args:
      text: the text.
      mode: ``"word"`` or ``"char"``.
      lower: lower-case first (with the rules of ``language``).
      language: ``"tr"`` for Turkish lower-casing, else None.

    Returns:
      The tokens.

    Examples:
      >>> from jaxrnn.text import tokenize
      >>> tokenize("Don't panic: it's 4.5 stars!")
      ["don't", 'panic', ':', "it's", '4', '.', '5', 'stars', '!']
      >>> tokenize("Hi!", mode="char", lower=False)
      ['H', 'i', '!']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if mode not in ("word", "char"):
        raise ValueError(f"mode must be 'word' or 'char', got {mode!r}")
    if lower:
        text = lowercase(text, language)
    if mode == "char":
        return list(text)
    return _WORD.findall(text)


class Vocabulary:
    """A token <-> id mapping with reserved ids for padding, unknown, begin and end.

    Ids 0..3 are ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``; the other tokens follow by
    decreasing frequency (ties broken alphabetically, so the same data gives the same ids).
    Build it from the training split only.

    Examples:
      >>> from jaxrnn.text import Vocabulary
      >>> vocab = Vocabulary.build([["a", "b", "a"], ["c"]], min_freq=2)
      >>> vocab.tokens
      ['<pad>', '<unk>', '<bos>', '<eos>', 'a']
      >>> vocab.encode(["a", "zzz"]).tolist()
      [4, 1]
      >>> vocab.decode([2, 4, 3, 0])
      ['a']
    """

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        bad = [(n, t) for n, t in enumerate(tokens) if not isinstance(t, str) or not t]
        if bad:
            n, token = bad[0]
            raise ValueError(f"vocabulary tokens must be non-empty strings; token {n} is {token!r}")
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {list(SPECIALS)}, got {tokens[:4]}")
        if len(set(tokens)) != len(tokens):
            duplicates = [t for t, n in collections.Counter(tokens).items() if n > 1]
            raise ValueError(f"vocabulary tokens must be unique; repeated: {duplicates[:5]}")
        self.tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> "Vocabulary":
        """Counts tokens and keeps those seen at least ``min_freq`` times (at most ``max_size``
        in all, specials included)."""
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < len(SPECIALS)):
            raise ValueError(
                f"max_size must be an int >= {len(SPECIALS)} or None, got {max_size!r}"
            )
        counts = collections.Counter(t for tokens in token_lists for t in tokens)
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def id(self, token: str) -> int:
        """The id of ``token`` (``unk_id`` if it is not in the vocabulary)."""
        return self._ids.get(token, self.unk_id)

    def encode(
        self,
        tokens: Sequence[str],
        *,
        bos: bool = False,
        eos: bool = False,
        unknown: str = "unk",
    ) -> np.ndarray:
        """Tokens to an int32 id array; unknown tokens become ``<unk>`` (or raise with
        ``unknown="error"``, naming the tokens)."""
        if isinstance(tokens, str) or not isinstance(tokens, Iterable):
            raise TypeError(
                f"tokens must be a list of token strings, got {type(tokens).__name__}"
                + (
                    "; split the text first (jaxrnn.text.tokenize)"
                    if isinstance(tokens, str)
                    else ""
                )
            )
        tokens = list(tokens)
        if unknown == "error":
            missing = sorted({t for t in tokens if t not in self._ids})
            if missing:
                raise KeyError(
                    f"tokens not in the vocabulary: {missing[:10]!r}"
                    + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                )
        elif unknown != "unk":
            raise ValueError(f"unknown must be 'unk' or 'error', got {unknown!r}")
        ids = [self._ids.get(t, self.unk_id) for t in tokens]
        return np.asarray([self.bos_id] * bos + ids + [self.eos_id] * eos, np.int32)

    def decode(self, ids: Iterable[int], *, strip_special: bool = True) -> list[str]:
        """Ids to tokens; stops at the first ``<eos>`` and drops ``<pad>``/``<bos>`` unless
        ``strip_special`` is False."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self)} tokens")
            if strip_special:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
            out.append(self.tokens[i])
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``{"tokens": [...]}`` as JSON, atomically."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"tokens": self.tokens}, f, ensure_ascii=False)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Reads a vocabulary written by `save`."""
        try:
            with open(path, encoding="utf-8") as f:
                payload = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a vocabulary JSON file ({error})") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("tokens"), list):
            raise ValueError(f"{path}: expected a JSON object with a 'tokens' list")
        try:
            return cls(payload["tokens"])
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def pad_batch(
    sequences: Sequence[Sequence[int]],
    length: int | None = None,
    *,
    pad_id: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads id sequences into ``(b, length)`` int32 and returns their lengths ``(b,)``.

    A sequence longer than ``length`` is an error: nothing is truncated silently.

    Examples:
      >>> from jaxrnn.text import pad_batch
      >>> ids, lengths = pad_batch([[5, 6, 7], [8]])
      >>> ids.tolist(), lengths.tolist()
      ([[5, 6, 7], [8, 0, 0]], [3, 1])
    """
    lengths = np.asarray([len(s) for s in sequences], np.int32)
    longest = int(lengths.max(initial=0))
    length = longest if length is None else length
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be an int >= 0 or None, got {length!r}")
    for row, seq in enumerate(sequences):
        ids = np.asarray(seq)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"sequence {row} must hold integer ids, got dtype {ids.dtype}")
    if longest > length:
        raise ValueError(
            f"a sequence has {longest} tokens, more than length={length}; "
            "pass a larger length (sequences are never truncated silently)"
        )
    ids = np.full((len(sequences), length), pad_id, np.int32)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    return ids, lengths


def bucket_lengths(max_length: int, *, smallest: int = 8, growth: float = 1.5) -> tuple[int, ...]:
    """A fixed ladder of padded lengths up to ``max_length``: each about ``growth`` times the
    last, rounded up to a multiple of 8. Few shapes (few compilations), little padding.

    Examples:
      >>> from jaxrnn.text import bucket_lengths
      >>> bucket_lengths(60)
      (8, 16, 24, 40, 64)
    """
    sizes = []
    size = smallest
    while True:
        size = int(math.ceil(size / 8) * 8)
        sizes.append(size)
        if size >= max_length:
            return tuple(sizes)
        size = max(size + 8, int(size * growth))


class BucketedBatches:
    """Length-bucketed, right-padded batches: ``batches(step)`` is the batch of update ``step``.

    Each example goes to the smallest bucket that holds it. Every epoch shuffles each bucket,
    cuts it into batches of ``batch_size`` and shuffles the order of all batches (seeded by
    ``(seed, epoch)``). A bucket's last batch is filled up with empty rows of weight 0, so
    every example appears exactly once per epoch and there is one array shape per bucket.

    A batch is a dict: ``ids`` ``(b, L)`` int32, ``lengths`` ``(b,)`` int32, ``weights``
    ``(b,)`` float32 (1 for examples, 0 for filler), ``index`` ``(b,)`` int64 (the example's
    position in ``sequences``, -1 for filler) and, when given, ``labels`` ``(b, ...)``, or
    ``targets`` ``(b, L)`` with ``target_lengths`` ``(b,)`` for sequence-to-sequence pairs
    (a pair goes to the bucket that holds the longer of its two sequences).

    Args:
      sequences: token-id sequences.
      labels: one label per sequence (any array with that leading dimension), or None.
      targets: one target token sequence per sequence (sequence to sequence), or None.
      batch_size: rows per batch.
      buckets: padded lengths; default `bucket_lengths` of the longest sequence.
      seed: seeds the shuffling.
      shuffle: False keeps examples in order (evaluation).

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.text import BucketedBatches
      >>> batches = BucketedBatches([[1, 2], [3], [4, 5, 6]], np.array([0, 1, 0]), batch_size=2,
      ...                           buckets=(2, 4), shuffle=False)
      >>> [b["ids"].shape for b in batches.epoch(0)]
      [(2, 2), (2, 4)]
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        labels: Any = None,
        *,
        targets: Sequence[Sequence[int]] | None = None,
        batch_size: int,
        buckets: Sequence[int] | None = None,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if not len(sequences):
            raise ValueError("sequences is empty: there is nothing to batch")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        lengths = np.asarray([len(s) for s in sequences])
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"labels has {len(labels)} entries for {len(sequences)} sequences")
        if targets is not None:
            if len(targets) != len(sequences):
                raise ValueError(
                    f"targets has {len(targets)} entries for {len(sequences)} sequences"
                )
            lengths = np.maximum(lengths, [len(t) for t in targets])
        buckets = tuple(sorted(buckets or bucket_lengths(int(lengths.max()))))
        if lengths.max() > buckets[-1]:
            raise ValueError(
                f"a sequence has {int(lengths.max())} tokens, more than the largest "
                f"bucket {buckets[-1]}; add a larger bucket"
            )
        self.sequences = [np.asarray(s, np.int32) for s in sequences]
        self.labels = None if labels is None else np.asarray(labels)
        self.targets = None if targets is None else [np.asarray(t, np.int32) for t in targets]
        self.batch_size, self.buckets, self.seed, self.shuffle = batch_size, buckets, seed, shuffle
        which = np.searchsorted(np.asarray(buckets), lengths)  # smallest bucket >= length
        self.members = [np.flatnonzero(which == b) for b in range(len(buckets))]
        self.steps_per_epoch = sum(math.ceil(len(m) / batch_size) for m in self.members)
        self._plan: tuple[int, list] | None = None

    def _epoch_plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        if self._plan is not None and self._plan[0] == epoch:
            return self._plan[1]
        rng = np.random.default_rng([self.seed, epoch])
        plan = []
        for bucket, members in enumerate(self.members):
            order = rng.permutation(members) if self.shuffle else members
            plan += [
                (bucket, order[i : i + self.batch_size])
                for i in range(0, len(order), self.batch_size)
            ]
        if self.shuffle:
            plan = [plan[i] for i in rng.permutation(len(plan))]
        self._plan = (epoch, plan)
        return plan

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        epoch, index = divmod(check_step(step), self.steps_per_epoch)
        bucket, rows = self._epoch_plan(epoch)[index]
        return self._batch(bucket, rows)

    def epoch(self, epoch: int = 0) -> list[dict[str, np.ndarray]]:
        """All batches of one epoch (e.g. for evaluation with ``shuffle=False``)."""
        return [self._batch(b, rows) for b, rows in self._epoch_plan(epoch)]

    def padding_fraction(self, epoch: int = 0) -> float:
        """The share of the epoch's ``ids`` entries that are padding (`PackedBatches` has
        less)."""
        batches = self.epoch(epoch)
        return 1.0 - sum(int(b["lengths"].sum()) for b in batches) / sum(
            b["ids"].size for b in batches
        )

    def _batch(self, bucket: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        filler = self.batch_size - len(rows)
        ids, lengths = pad_batch(
            [self.sequences[r] for r in rows] + [[]] * filler, self.buckets[bucket]
        )
        batch = {
            "ids": ids,
            "lengths": lengths,
            "weights": np.asarray([1.0] * len(rows) + [0.0] * filler, np.float32),
            "index": np.concatenate([rows, np.full(filler, -1)]).astype(np.int64),
        }
        if self.labels is not None:
            fill = np.zeros((filler, *self.labels.shape[1:]), self.labels.dtype)
            batch["labels"] = np.concatenate([self.labels[rows], fill])
        if self.targets is not None:
            batch["targets"], batch["target_lengths"] = pad_batch(
                [self.targets[r] for r in rows] + [[]] * filler, self.buckets[bucket]
            )
        return batch


class PackedBatches:
    """Batches of ``batch_size`` examples packed end to end into rows (`jaxrnn.packing`):
    ``batches(step)`` is the batch of update ``step``, for models run with ``resets=``.

    Every epoch shuffles the examples (seeded by ``(seed, epoch)``) and cuts them into groups
    of ``batch_size``; each group is packed into rows of ``row_length`` steps, the row count
    rounded up to a multiple of ``row_multiple`` (few shapes, few compilations). The last group
    is filled up with one-token filler examples of weight 0, so every example appears exactly
    once per epoch.

    A batch is a dict: ``ids`` ``(r, L)`` int32, ``lengths`` ``(r,)`` (filled steps per row),
    ``resets`` ``(r, L)`` bool, and per example ``doc_row``, ``doc_start``, ``doc_length``
    ``(b,)`` int32 (where it lies), ``weights`` ``(b,)`` float32, ``index`` ``(b,)`` int64 (-1
    for filler) and, when given, ``labels`` ``(b, ...)``.

    Args:
      sequences: token-id sequences, each 1 to ``row_length`` long.
      labels: one label per sequence, or None.
      batch_size: examples per batch.
      row_length: steps per row; default the longest sequence rounded up to a multiple of 8.
      row_multiple: the row count of every batch is a multiple of this.
      seed: seeds the shuffling.
      shuffle: False keeps examples in order (evaluation).

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.text import PackedBatches
      >>> batches = PackedBatches([[1, 2], [3], [4, 5, 6]], np.array([0, 1, 0]), batch_size=3,
      ...                         row_length=4, row_multiple=1, shuffle=False)
      >>> batch = batches(0)
      >>> batch["ids"].tolist(), batch["doc_row"].tolist(), batch["doc_start"].tolist()
      ([[4, 5, 6, 3], [1, 2, 0, 0]], [1, 0, 0], [0, 3, 0])
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        labels: Any = None,
        *,
        batch_size: int,
        row_length: int | None = None,
        row_multiple: int = 4,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if not len(sequences):
            raise ValueError("sequences is empty: there is nothing to batch")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if row_multiple < 1:
            raise ValueError(f"row_multiple must be positive, got {row_multiple}")
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"labels has {len(labels)} entries for {len(sequences)} sequences")
        self.sequences = [np.asarray(s, np.int32) for s in sequences]
        lengths = np.asarray([len(s) for s in self.sequences])
        self.row_length = row_length or int(math.ceil(lengths.max() / 8) * 8)
        packing.place(lengths, self.row_length)  # every sequence fits (a named error if not)
        self.labels = None if labels is None else np.asarray(labels)
        self.batch_size, self.row_multiple = batch_size, row_multiple
        self.seed, self.shuffle = seed, shuffle
        self.steps_per_epoch = math.ceil(len(sequences) / batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        count = len(self.sequences)
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng([self.seed, epoch]).permutation(count)

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        epoch, index = divmod(check_step(step), self.steps_per_epoch)
        rows = self._order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        return self._batch(rows)

    def epoch(self, epoch: int = 0) -> list[dict[str, np.ndarray]]:
        """All batches of one epoch."""
        order = self._order(epoch)
        size = self.batch_size
        return [self._batch(order[i : i + size]) for i in range(0, len(order), size)]

    def padding_fraction(self, epoch: int = 0) -> float:
        """The share of the epoch's ``ids`` entries that are padding."""
        batches = self.epoch(epoch)
        filled = sum(int(b["lengths"].sum()) for b in batches)
        return 1.0 - filled / sum(b["ids"].size for b in batches)

    def _batch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        filler = self.batch_size - len(rows)
        docs = [self.sequences[r] for r in rows] + [np.zeros(1, np.int32)] * filler
        needed = packing.place([len(d) for d in docs], self.row_length)[2]
        num_rows = -(-needed // self.row_multiple) * self.row_multiple
        packed = packing.pack(docs, self.row_length, num_rows=num_rows)
        batch = {
            "ids": packed.values,
            "lengths": packed.seq_lengths,
            "resets": packed.resets,
            "doc_row": packed.row,
            "doc_start": packed.start,
            "doc_length": packed.length,
            "weights": np.asarray([1.0] * len(rows) + [0.0] * filler, np.float32),
            "index": np.concatenate([rows, np.full(filler, -1)]).astype(np.int64),
        }
        if self.labels is not None:
            fill = np.zeros((filler, *self.labels.shape[1:]), self.labels.dtype)
            batch["labels"] = np.concatenate([self.labels[rows], fill])
        return batch
