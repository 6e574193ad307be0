"""Multi-query associative recall (MQAR) sequences, deterministic by seed.

A sequence of ``seq_len`` tokens opens with ``num_pairs`` key-value pairs ``k1 v1 k2 v2 ...``
(distinct keys and distinct values, from two disjoint vocabularies), then holds ``num_queries``
of those keys again, each at a random position of the rest, with the filler token 0
elsewhere. At a query the model must output the value bound to that key (as if the value
came next); the loss and the accuracy count only those positions (Arora et al. 2023,
"Zoology", section 3).

Token ids: 0 filler, ``1 .. num_keys`` keys, ``num_keys + 1 .. num_keys + num_values``
values.

With ``paired=True`` each pair arrives at one position instead of two: the inputs are
``(b, t, 2)``, the key and the value id of a position (a query carries its key and the filler),
and the models add the two embeddings. A Transformer then solves the task with one attention
layer (the query's key matches the pair's key), so what is left to measure is how many pairs a
model's state can hold, which is the limit this task is about.

Shapes: ``b`` sequences, ``t`` = ``seq_len`` positions.
"""

import dataclasses

import numpy as np

FILLER = 0


@dataclasses.dataclass(frozen=True)
class Task:
    """The sizes of one recall task (every field checked by `check`)."""

    num_pairs: int
    """``K``: key-value pairs at the start of each sequence."""
    seq_len: int = 64
    """Tokens per sequence (pairs, then queries among filler)."""
    num_queries: int | None = None
    """Keys asked again per sequence; None: every key (``K``), if the sequence has room."""
    num_keys: int = 32
    """Size of the key vocabulary (at least ``K``: keys in a sequence are distinct)."""
    num_values: int = 32
    """Size of the value vocabulary (at least ``K``: values in a sequence are distinct)."""
    paired: bool = False
    """Each pair at one position (inputs ``(b, t, 2)``), see the module's docstring."""

    @property
    def vocab_size(self) -> int:
        """Filler, keys and values."""
        return 1 + self.num_keys + self.num_values

    @property
    def pair_positions(self) -> int:
        """Positions the pairs take: ``K`` paired, ``2 K`` otherwise."""
        return self.num_pairs if self.paired else 2 * self.num_pairs

    @property
    def queries(self) -> int:
        """Queries per sequence."""
        return self.num_pairs if self.num_queries is None else self.num_queries

    def check(self) -> "Task":
        """This task, or a `ValueError` naming the first size out of range."""
        for name in ("num_pairs", "seq_len", "num_keys", "num_values"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        q = self.queries
        if not isinstance(q, (int, np.integer)) or isinstance(q, bool) or q < 1:
            raise ValueError(f"num_queries must be an integer >= 1 (or None), got {q!r}")
        if self.num_pairs > self.num_keys:
            raise ValueError(
                f"num_pairs={self.num_pairs} distinct keys need num_keys >= {self.num_pairs}, "
                f"got num_keys={self.num_keys}"
            )
        if self.num_pairs > self.num_values:
            raise ValueError(
                f"num_pairs={self.num_pairs} distinct values need num_values >= "
                f"{self.num_pairs}, got num_values={self.num_values}"
            )
        if q > self.num_pairs:
            raise ValueError(
                f"num_queries={q} must be at most num_pairs={self.num_pairs} (each query asks "
                "for a different key)"
            )
        if not isinstance(self.paired, bool):
            raise ValueError(f"paired must be True or False, got {self.paired!r}")
        if self.pair_positions + q > self.seq_len:
            raise ValueError(
                f"seq_len={self.seq_len} has no room for {self.num_pairs} pairs "
                f"({self.pair_positions} positions) and {q} queries: need seq_len >= "
                f"{self.pair_positions + q}"
            )
        return self


def batch(task: Task, batch_size: int, seed: int | tuple[int, ...]) -> dict[str, np.ndarray]:
    """``batch_size`` recall sequences, the same for the same ``seed``.

    Args:
      task: the sizes (`Task`).
      batch_size: ``b``.
      seed: an int, or a tuple of ints (e.g. ``(seed, step)``) for `numpy.random.default_rng`.

    Returns:
      ``{"inputs": (b, t) int32 ((b, t, 2) paired), "targets": (b, t) int32, "mask": (b, t)
      bool}``: the
      targets are the values at query positions (0 elsewhere); ``mask`` marks the queries.

    Example:
      >>> from experiments.recall.data import Task, batch
      >>> data = batch(Task(num_pairs=2, seq_len=8, num_keys=4, num_values=4), 1, seed=0)
      >>> data["inputs"].shape, int(data["mask"].sum())
      ((1, 8), 2)
    """
    task.check()
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    rng = np.random.default_rng(seed)
    b, k, q, t = batch_size, task.num_pairs, task.queries, task.seq_len
    # Distinct keys and values per row: the first k of random permutations of each vocabulary.
    keys = np.argsort(rng.random((b, task.num_keys)), axis=1)[:, :k] + 1
    values = np.argsort(rng.random((b, task.num_values)), axis=1)[:, :k] + 1 + task.num_keys
    start = task.pair_positions
    if task.paired:
        inputs = np.full((b, t, 2), FILLER, np.int32)
        inputs[:, :k, 0], inputs[:, :k, 1] = keys, values
    else:
        inputs = np.full((b, t), FILLER, np.int32)
        inputs[:, 0 : 2 * k : 2], inputs[:, 1 : 2 * k : 2] = keys, values
    # Which pairs are asked (distinct), and where (distinct positions after the pairs).
    asked = np.argsort(rng.random((b, k)), axis=1)[:, :q]
    where = np.sort(np.argsort(rng.random((b, t - start)), axis=1)[:, :q], axis=1) + start
    rows = np.arange(b)[:, None]
    if task.paired:
        inputs[rows, where, 0] = keys[rows, asked]
    else:
        inputs[rows, where] = keys[rows, asked]
    targets = np.zeros((b, t), np.int32)
    targets[rows, where] = values[rows, asked]
    mask = np.zeros((b, t), bool)
    mask[rows, where] = True
    return {"inputs": inputs, "targets": targets, "mask": mask}
