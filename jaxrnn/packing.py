"""Packed sequences: several documents laid end to end in one row, with resets between them.

Padding every sequence of a batch to the longest wastes the steps past each end; packing puts
short documents after one another in rows of a fixed length, and ``jaxrnn.unroll(...,
resets=packed.resets)`` sends the carry back to the initial carry at each document start, so
every document gives the numbers it gives alone (values and gradients). The data side
(`pack`, `place`, `padding_fraction`) is NumPy; reading results per document back out of the
packed rows (`last`, `first`, `unpack`) is jittable.
"""

from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxrnn.checks import check_count
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_size
from jaxrnn.checks import check_token_ids
from jaxrnn.checks import fail
from jaxrnn.checks import is_concrete
from jaxrnn.checks import said
from jaxrnn.typing import Array


class Packed(NamedTuple):
    """Documents packed into rows (`pack`). ``r`` rows of ``L`` steps, ``n`` documents."""

    values: np.ndarray
    """``(r, L, ...)``: the documents laid end to end, ``pad`` after each row's last one."""
    resets: np.ndarray
    """``(r, L)`` bool: True at each document's first step (``resets=`` of `jaxrnn.unroll`)."""
    seq_lengths: np.ndarray
    """``(r,)`` int32: the filled steps of each row (``seq_lengths=`` of `jaxrnn.unroll`)."""
    row: np.ndarray
    """``(n,)`` int32: the row of each document, in the order they were given."""
    start: np.ndarray
    """``(n,)`` int32: the position of each document's first step in its row."""
    length: np.ndarray
    """``(n,)`` int32: each document's length."""


def place(lengths: Sequence[int], row_length: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each document goes: best fit, longest first (a document goes to the fullest row
    it still fits in).

    Args:
      lengths: ``(n,)`` document lengths, each in ``[1, row_length]``.
      row_length: ``L``, the steps of one row.

    Returns:
      ``(row, start, num_rows)``: ``(n,)`` int32 rows and start positions, and the rows used.
      The plan depends only on the lengths and their order (deterministic).

    Examples:
      >>> from jaxrnn.packing import place
      >>> row, start, num_rows = place([3, 5, 2, 4], row_length=7)
      >>> row.tolist(), start.tolist(), num_rows
      ([1, 0, 0, 1], [4, 0, 5, 0], 2)
    """
    lengths = np.asarray(lengths)
    check_size("row_length", row_length)
    if lengths.ndim != 1 or (lengths.size and not np.issubdtype(lengths.dtype, np.integer)):
        fail("lengths", "a 1-D sequence of ints", lengths, TypeError)
    if lengths.size and (lengths.min() < 1 or lengths.max() > row_length):
        bad = int(np.flatnonzero((lengths < 1) | (lengths > row_length))[0])
        raise ValueError(
            f"document {bad} has length {int(lengths[bad])}; every document must have 1 to "
            f"row_length={row_length} steps (nothing is truncated: split long documents or "
            "raise row_length; empty ones have nothing to pack)"
        )
    row = np.zeros(lengths.size, np.int32)
    start = np.zeros(lengths.size, np.int32)
    free: list[list[int]] = [[] for _ in range(row_length + 1)]  # free[k]: rows with k free
    filled: list[int] = []
    for doc in np.argsort(-lengths, kind="stable"):
        need = int(lengths[doc])
        spare = next((k for k in range(need, row_length + 1) if free[k]), None)
        if spare is None:
            r = len(filled)
            filled.append(0)
        else:
            r = free[spare].pop(0)
        row[doc], start[doc] = r, filled[r]
        filled[r] += need
        free[row_length - filled[r]].append(r)
        free[row_length - filled[r]].sort()
    return row, start, len(filled)


def pack(
    sequences: Sequence[Any], row_length: int, *, num_rows: int | None = None, pad: Any = 0
) -> Packed:
    """Lays ``sequences`` end to end in rows of ``row_length`` steps (`place`).

    Args:
      sequences: ``n`` documents, each an array ``(length, ...)`` (token ids ``(length,)`` or
        features ``(length, f)``) with the same trailing shape and dtype.
      row_length: ``L``, the steps of one row.
      num_rows: the rows of the result (a fixed shape for `jax.jit`); more than needed are
        empty (length 0). None: as many as the documents need.
      pad: the value of the steps after each row's last document.

    Returns:
      A `Packed`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> from jaxrnn import packing
      >>> packed = packing.pack([[1, 2, 3], [4, 5], [6]], row_length=4)
      >>> packed.values.tolist(), packed.resets.astype(int).tolist()
      ([[1, 2, 3, 6], [4, 5, 0, 0]], [[1, 0, 0, 1], [1, 0, 0, 0]])
      >>> cell = jaxrnn.gru(8)
      >>> params = cell.init(jax.random.key(0), input_size=1)
      >>> xs = jnp.asarray(packed.values, jnp.float32)[..., None]
      >>> _, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=packed.seq_lengths,
      ...                       resets=packed.resets)
      >>> alone = jaxrnn.unroll(cell, params, jnp.array([[4.0], [5.0]]))[1][-1]
      >>> bool(jnp.allclose(packing.last(ys, packed)[1], alone, atol=1e-6))
      True
    """
    if not len(sequences):
        raise ValueError("sequences is empty: there is nothing to pack")
    docs = [np.asarray(s) for s in sequences]
    for n, d in enumerate(docs):
        if d.ndim < 1 or d.shape[1:] != docs[0].shape[1:]:
            raise ValueError(
                f"sequences[{n}] has shape {d.shape}; every document must be (length, "
                f"*{docs[0].shape[1:]}) like sequences[0]"
            )
    lengths = np.asarray([len(d) for d in docs])
    row, start, needed = place(lengths, row_length)
    if num_rows is None:
        num_rows = needed
    elif check_count("num_rows", num_rows) < needed:
        raise ValueError(
            f"the {len(docs)} documents ({int(lengths.sum())} steps) need {needed} rows of "
            f"{row_length} steps, more than num_rows={num_rows}"
        )
    dtype = np.result_type(*[d.dtype for d in docs])
    values = np.full((num_rows, row_length, *docs[0].shape[1:]), pad, dtype)
    resets = np.zeros((num_rows, row_length), bool)
    seq_lengths = np.zeros(num_rows, np.int32)
    for d, r, s in zip(docs, row, start, strict=True):
        values[r, s : s + len(d)] = d
        resets[r, s] = True
        seq_lengths[r] = max(seq_lengths[r], s + len(d))
    return Packed(values, resets, seq_lengths, row, start, lengths.astype(np.int32))


def padding_fraction(lengths: Sequence[int], shape: tuple[int, int]) -> float:
    """The share of the ``(rows, steps)`` of ``shape`` that no document fills.

    Examples:
      >>> from jaxrnn.packing import padding_fraction
      >>> padding_fraction([3, 2, 1], (2, 4))
      0.25
    """
    rows, steps = shape
    return float(1.0 - np.sum(lengths) / (rows * steps))


def resets_from_segment_ids(segment_ids: Array) -> Array:
    """``resets`` from per-step document ids ``(..., t)`` (a new id starts a document).

    RecurrentGemma's ``segment_pos`` gives them directly: ``resets = segment_pos == 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.packing import resets_from_segment_ids
      >>> resets_from_segment_ids(jnp.array([[0, 0, 1, 1, 1, 2]])).astype(int).tolist()
      [[1, 0, 1, 0, 0, 1]]
    """
    ids = jnp.asarray(segment_ids)
    if ids.ndim < 1 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(
            f"segment_ids must be an int array (..., t), got {ids.dtype} of shape {ids.shape}"
        )
    changed = ids[..., 1:] != ids[..., :-1]
    return jnp.concatenate([jnp.ones_like(ids[..., :1], bool), changed], axis=-1)


def _documents(ys: Any, packed: Packed | Any, start: Any, length: Any, time_major: bool):
    """``ys`` batch-major ``(r, L, ...)`` and the documents' ``(row, start, length)``, checked
    against each other: the rows and steps of ``ys`` are those of ``packed``, and every
    document lies inside a row."""
    check_flag("time_major", time_major)
    if not (hasattr(ys, "shape") and hasattr(ys, "dtype")) or len(ys.shape) < 2:
        fail("ys", "outputs of shape (r, L, ...) (rows, steps of a row, features)", ys)
    ys_bm = jnp.swapaxes(jnp.asarray(ys), 0, 1) if time_major else jnp.asarray(ys)
    if isinstance(packed, Packed):
        if start is not None or length is not None:
            fail("start", "None when a Packed is given (it holds the starts)", said("a value"))
        rows_steps = tuple(packed.resets.shape)
        if tuple(ys_bm.shape[:2]) != rows_steps:
            r, steps = rows_steps
            want = f"({steps}, {r}, ...) (time-major)" if time_major else f"({r}, {steps}, ...)"
            fail(
                "ys",
                f"outputs of shape {want}, the rows and steps of the packed rows",
                said(f"shape {tuple(ys.shape)}"),
                hint="" if time_major else "pass time_major=True for outputs of shape (L, r, ...)",
            )
        return ys_bm, jnp.asarray(packed.row), jnp.asarray(packed.start), jnp.asarray(packed.length)
    parts = {"row": packed, "start": start, "length": length}
    for name, value in parts.items():
        if value is None:
            fail(
                name, "the documents' rows, starts and lengths (or give a Packed)", value, TypeError
            )
        parts[name] = check_token_ids(name, value)
        if parts[name].shape != parts["row"].shape or parts[name].ndim != 1:
            fail(
                name,
                f"of shape {tuple(parts['row'].shape)} like row",
                said(f"shape {parts[name].shape}"),
            )
    row, start, length = parts["row"], parts["start"], parts["length"]
    if is_concrete((row, start, length)) and row.size:
        rows, steps = ys_bm.shape[:2]
        if int(row.max()) >= rows or int(length.min()) < 1 or int((start + length).max()) > steps:
            fail(
                "row",
                f"documents inside the {rows} rows of {steps} steps of ys (row < {rows}, "
                f"length >= 1, start + length <= {steps})",
                said("a document outside them"),
            )
    return ys_bm, row, start, length


def last(
    ys: Array,
    packed: Packed | Array,
    start: Array | None = None,
    length: Array | None = None,
    *,
    time_major: bool = False,
) -> Array:
    """Each document's output at its last step: ``(n, ...)`` from ``ys (r, L, ...)``.

    For a forward unroll this is the document's final hidden state; `first` is the one of a
    reversed unroll. ``packed`` is a `Packed` or its ``row`` with ``start`` and ``length``
    given too (arrays that can be traced under `jax.jit`). The rows and steps of ``ys`` must
    be those of ``packed``: outputs of another layout are refused, not read at the wrong
    places.

    Args:
      ys: per-step outputs ``(r, L, ...)``, or ``(L, r, ...)`` with ``time_major=True``.
      packed: the `Packed` the rows were made with, or its ``row`` array.
      start: with a ``row`` array, the documents' starts.
      length: with a ``row`` array, their lengths.
      time_major: the layout of ``ys``.

    Returns:
      ``(n, ...)``, in the order the documents were given to `pack`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn import packing
      >>> packed = packing.pack([[1, 2, 3], [4, 5]], row_length=5)
      >>> ys = jnp.asarray(packed.values)[..., None]
      >>> packing.last(ys, packed)[:, 0].tolist()
      [3, 5]
      >>> packing.last(jnp.swapaxes(ys, 0, 1), packed, time_major=True)[:, 0].tolist()
      [3, 5]
    """
    ys, row, start, length = _documents(ys, packed, start, length, time_major)
    return ys[row, start + length - 1]


def first(
    ys: Array,
    packed: Packed | Array,
    start: Array | None = None,
    length: Array | None = None,
    *,
    time_major: bool = False,
) -> Array:
    """Each document's output at its first step: ``(n, ...)`` (a reversed unroll's final
    state); arguments as for `last`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn import packing
      >>> packed = packing.pack([[1, 2, 3], [4, 5]], row_length=5)
      >>> packing.first(jnp.asarray(packed.values), packed).tolist()
      [1, 4]
    """
    ys, row, start, _ = _documents(ys, packed, start, length, time_major)
    return ys[row, start]


def unpack(
    ys: Array,
    packed: Packed | Array,
    start: Array | None = None,
    length: Array | None = None,
    *,
    max_length: int | None = None,
    time_major: bool = False,
) -> Array:
    """The documents' outputs one per row again: ``(n, max_length, ...)``, zero after each
    document's end, e.g. for `jaxrnn.pool` with ``packed.length``.

    Args:
      ys: per-step outputs ``(r, L, ...)`` (``(L, r, ...)`` with ``time_major=True``).
      packed: as for `last`.
      start: as for `last`.
      length: as for `last`.
      max_length: the steps of each unpacked row, at least the longest document (nothing is
        cut); None for the longest (needs concrete lengths).
      time_major: the layout of ``ys``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn import packing
      >>> packed = packing.pack([[1, 2, 3], [4, 5], [6]], row_length=4)
      >>> ys = jnp.asarray(packed.values)[..., None]
      >>> packing.unpack(ys, packed, max_length=3)[..., 0].tolist()
      [[1, 2, 3], [4, 5, 0], [6, 0, 0]]
    """
    ys, row, start, length = _documents(ys, packed, start, length, time_major)
    longest = int(length.max(initial=0)) if is_concrete(length) else None
    if max_length is None:
        if longest is None:
            fail(
                "max_length",
                "an int when the lengths are traced (under jax.jit)",
                max_length,
                TypeError,
            )
        max_length = longest
    check_count("max_length", max_length)
    if longest is not None and max_length < longest:
        fail(
            "max_length",
            f"an int >= {longest}, the longest document (nothing is cut silently)",
            max_length,
        )
    steps = jnp.arange(max_length)[None]
    where = jnp.minimum(start[:, None] + steps, ys.shape[1] - 1)  # (n, max_length)
    out = ys[row[:, None], where]
    keep = (steps < length[:, None]).reshape(*where.shape, *(1,) * (ys.ndim - 2))
    return jnp.where(keep, out, jnp.zeros_like(out))
