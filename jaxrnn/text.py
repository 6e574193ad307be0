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
from jaxrnn.checks import check_choice
from jaxrnn.checks import check_count
from jaxrnn.checks import check_int
from jaxrnn.checks import check_size
from jaxrnn.checks import check_step
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.files import write_atomically

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
    _check_text(text)
    if _dotless_i(language):
        text = text.replace("İ", "i").replace("I", "ı")
    return unicodedata.normalize("NFC", text.lower())


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        fail("text", "a str", text, TypeError)


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
    _check_text(text)
    check_choice("mode", mode, ("word", "char"))
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
        if isinstance(tokens, str) or not isinstance(tokens, Iterable):
            fail("tokens", "a list of token strings, specials first", tokens, TypeError)
        tokens = list(tokens)
        for n, token in enumerate(tokens):
            if not isinstance(token, str) or not token:
                fail(
                    f"tokens[{n}]",
                    "a non-empty string",
                    token,
                    ValueError if token == "" else TypeError,
                )
            if not _encodable(token):
                fail(
                    f"tokens[{n}]",
                    "text that UTF-8 can store (no lone surrogates)",
                    said(ascii(token)),
                    hint="the vocabulary could not be saved",
                )
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
        check_size("min_freq", min_freq)
        if max_size is not None:
            check_int("max_size", max_size, low=len(SPECIALS))
        counts = collections.Counter(t for tokens in _token_lists(token_lists) for t in tokens)
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
        tokens = _tokens("tokens", tokens)
        check_choice("unknown", unknown, ("unk", "error"))
        if unknown == "error":
            missing = sorted({t for t in tokens if t not in self._ids})
            if missing:
                raise KeyError(
                    f"tokens not in the vocabulary: {missing[:10]!r}"
                    + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                )
        ids = [self._ids.get(t, self.unk_id) for t in tokens]
        return np.asarray([self.bos_id] * bos + ids + [self.eos_id] * eos, np.int32)

    def decode(self, ids: Iterable[int], *, strip_special: bool = True) -> list[str]:
        """Ids to tokens; stops at the first ``<eos>`` and drops ``<pad>``/``<bos>`` unless
        ``strip_special`` is False."""
        out = []
        for i in _ids(ids, len(self)):
            if strip_special:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
            out.append(self.tokens[i])
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``{"tokens": [...]}`` as JSON, atomically (`jaxrnn.files.write_atomically`:
        nothing half-written, nothing left behind when the disk is full)."""
        write_atomically(path, json.dumps({"tokens": self.tokens}, ensure_ascii=False))

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
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: {error}") from None


def _encodable(token: str) -> bool:
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_SPLIT_FIRST = "split each text into tokens first (jaxrnn.text.tokenize)"


def _tokens(name: str, tokens: Any) -> list[str]:
    """``tokens`` as a list of strings: a str is refused (it would be read as its characters),
    and so is an entry that is not a str (an id where a token belongs)."""
    if isinstance(tokens, str) or not isinstance(tokens, Iterable):
        hint = _SPLIT_FIRST if isinstance(tokens, str) else ""
        fail(name, "a list of token strings", tokens, TypeError, hint=hint)
    tokens = list(tokens)
    for n, token in enumerate(tokens):
        if not isinstance(token, str):
            fail(f"{name}[{n}]", "a token string", token, TypeError)
    return tokens


def _token_lists(token_lists: Any) -> Iterable[list[str]]:
    """Each entry of ``token_lists`` as a list of strings, checked as it is read."""
    if isinstance(token_lists, str) or not isinstance(token_lists, Iterable):
        fail("token_lists", "an iterable of token lists", token_lists, TypeError)
    for n, tokens in enumerate(token_lists):
        if isinstance(tokens, str):
            fail(
                f"token_lists[{n}]",
                "a list of token strings, not one string (it would be read as characters)",
                tokens,
                TypeError,
                hint=_SPLIT_FIRST,
            )
        yield _tokens(f"token_lists[{n}]", tokens)


def _ids(ids: Any, size: int) -> list[int]:
    """``ids`` as Python ints in ``[0, size)``: ints of any width, never floats or bools."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        fail("ids", "a sequence of integer token ids", ids, TypeError)
    values = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
        what = said(f"dtype {values.dtype}") if values.ndim == 1 else said(f"shape {values.shape}")
        fail("ids", "a 1-D sequence of integer token ids", what, TypeError)
    if values.size and (values.min() < 0 or values.max() >= size):
        bad = int(values[(values < 0) | (values >= size)][0])
        fail("ids", f"token ids in [0, {size}) (the vocabulary)", said(f"id {bad}"))
    return [int(i) for i in values]


def _id_sequences(name: str, sequences: Any, *, allow_empty: bool = False) -> list[np.ndarray]:
    """``sequences`` as int32 arrays: each a 1-D sequence of integer ids (floats are refused,
    not truncated; an id past int32 is refused, not wrapped)."""
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Sequence | np.ndarray):
        fail(name, "a list of token-id sequences", sequences, TypeError)
    if not len(sequences) and not allow_empty:
        fail(name, "a list of at least one token-id sequence", said("an empty list"))
    out = []
    for row, seq in enumerate(sequences):
        ids = np.asarray(seq)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            got = said(f"dtype {ids.dtype}") if ids.ndim == 1 else said(f"shape {ids.shape}")
            fail(f"{name}[{row}]", "a 1-D sequence of integer token ids", got, TypeError)
        if ids.size and (ids.min() < np.iinfo(np.int32).min or ids.max() > np.iinfo(np.int32).max):
            fail(f"{name}[{row}]", "ids that fit int32", said(f"id {int(ids.max())}"))
        out.append(ids.astype(np.int32))
    return out


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
    sequences = _id_sequences("sequences", sequences, allow_empty=True)
    lengths = np.asarray([len(s) for s in sequences], np.int32)
    longest = int(lengths.max(initial=0))
    length = longest if length is None else check_count("length", length)
    check_int("pad_id", pad_id)
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
        sequences = _id_sequences("sequences", sequences)
        check_size("batch_size", batch_size)
        lengths = np.asarray([len(s) for s in sequences])
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"labels has {len(labels)} entries for {len(sequences)} sequences")
        if targets is not None:
            if len(targets) != len(sequences):
                raise ValueError(
                    f"targets has {len(targets)} entries for {len(sequences)} sequences"
                )
            targets = _id_sequences("targets", targets, allow_empty=True)
            lengths = np.maximum(lengths, [len(t) for t in targets])
        buckets = tuple(sorted(buckets or bucket_lengths(int(lengths.max()))))
        if lengths.max() > buckets[-1]:
            raise ValueError(
                f"a sequence has {int(lengths.max())} tokens, more than the largest "
                f"bucket {buckets[-1]}; add a larger bucket"
            )
        self.sequences = sequences
        self.labels = None if labels is None else np.asarray(labels)
        self.targets = targets
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
        self.sequences = _id_sequences("sequences", sequences)
        check_size("batch_size", batch_size)
        check_size("row_multiple", row_multiple)
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"labels has {len(labels)} entries for {len(sequences)} sequences")
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
