"""Batches as a pure function of the step, so that a resumed run reads exactly the same data.

`EpochBatches` shuffles arrays of examples once per epoch; `StreamBatches` cuts one long
sequence into parallel streams and chunks for truncated BPTT; `carry_over` joins the chunks.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.checks import check_int
from jaxrnn.checks import check_size
from jaxrnn.checks import check_step
from jaxrnn.typing import Array
from jaxrnn.typing import Carry


class EpochBatches:
    """Shuffled minibatches of a dataset: ``batches(step)`` is the batch of update ``step``.

    Epoch ``e`` visits the examples in the order of a permutation seeded by ``(seed, e)``;
    the last incomplete batch of an epoch is dropped so every batch has one shape (one
    compilation).

    Args:
      data: a pytree of arrays sharing the leading dimension ``n`` (e.g. ``(xs, ys)``).
      batch_size: examples per batch, at most ``n``.
      seed: seeds the shuffling.

    Examples:
      >>> from jaxrnn.train import EpochBatches
      >>> import numpy as np
      >>> batches = EpochBatches((np.arange(10), np.arange(10) * 2), batch_size=4, seed=0)
      >>> xs, ys = batches(0)
      >>> xs.shape, batches.steps_per_epoch
      ((4,), 2)
    """

    def __init__(self, data: Any, batch_size: int, *, seed: int = 0):
        leaves = jax.tree.leaves(data)
        if not leaves:
            raise ValueError("data must hold at least one array")
        sizes = {np.shape(leaf)[0] for leaf in leaves}
        if len(sizes) != 1:
            raise ValueError(f"all arrays in data must share the leading dimension, got {sizes}")
        self.num_examples = sizes.pop()
        if self.num_examples == 0:
            raise ValueError("data holds no examples (its arrays have leading dimension 0)")
        batch_size = check_int("batch_size", batch_size, low=1, high=self.num_examples)
        self.data = jax.tree.map(np.asarray, data)
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = self.num_examples // batch_size
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of example indices used in ``epoch``."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = (epoch, rng.permutation(self.num_examples))
        return self._order[1]

    def __call__(self, step: int) -> Any:
        epoch, index = divmod(check_step(step), self.steps_per_epoch)
        rows = self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        return jax.tree.map(lambda leaf: leaf[rows], self.data)


def eval_batches(data: Any, batch_size: int) -> list[Any]:
    """The whole dataset in order, in batches of ``batch_size`` (the last may be smaller).

    Args:
      data: a pytree of arrays sharing the leading dimension.
      batch_size: examples per batch.

    Returns:
      A list of batches covering every example once.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.train import eval_batches
      >>> len(eval_batches(np.arange(10), 4))
      3
    """
    batch_size = check_size("batch_size", batch_size)
    n = np.shape(jax.tree.leaves(data)[0])[0]
    return [
        jax.tree.map(lambda leaf, s=start: np.asarray(leaf)[s : s + batch_size], data)
        for start in range(0, n, batch_size)
    ]


class StreamBatches:
    """One long sequence as ``batch_size`` parallel streams, read in chunks of ``chunk_length``.

    The inputs are ``stream[:-1]`` and the targets ``stream[1:]``. They are split into
    ``batch_size`` contiguous rows; row ``r`` continues exactly where its previous chunk
    ended, so the RNN state can be carried from one chunk to the next (truncated BPTT). The
    last row is padded at its end (``mask`` False there) so that every target appears exactly
    once per epoch and every chunk has one shape. ``reset`` is True on the first chunk of
    each epoch: the carried state starts afresh.

    Args:
      stream: ``(n, ...)`` array, e.g. token ids ``(n,)``.
      batch_size: ``b``, the number of parallel streams.
      chunk_length: ``k``, the number of steps BPTT runs through per update.

    Examples:
      >>> from jaxrnn.train import StreamBatches
      >>> import numpy as np
      >>> batches = StreamBatches(np.arange(21), batch_size=2, chunk_length=5)
      >>> batch = batches(0)
      >>> batch["inputs"].tolist(), batch["targets"][0].tolist(), bool(batch["reset"])
      ([[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]], [1, 2, 3, 4, 5], True)
      >>> batches.steps_per_epoch
      2
    """

    def __init__(self, stream: Array, batch_size: int, chunk_length: int):
        stream = np.asarray(stream)
        if stream.ndim < 1 or stream.shape[0] < 2:
            raise ValueError(f"stream must hold at least 2 steps, got shape {stream.shape}")
        batch_size = check_size("batch_size", batch_size)
        chunk_length = check_size("chunk_length", chunk_length)
        num_targets = stream.shape[0] - 1
        if batch_size > num_targets:
            raise ValueError(
                f"batch_size must be at most {num_targets} (one target per stream), got "
                f"{batch_size}"
            )
        row = math.ceil(num_targets / batch_size)
        row = math.ceil(row / chunk_length) * chunk_length
        total = row * batch_size
        pad = [(0, total - num_targets)] + [(0, 0)] * (stream.ndim - 1)
        self.inputs = np.pad(stream[:-1], pad).reshape((batch_size, row, *stream.shape[1:]))
        self.targets = np.pad(stream[1:], pad).reshape((batch_size, row, *stream.shape[1:]))
        self.mask = (np.arange(total) < num_targets).reshape(batch_size, row)
        self.batch_size, self.chunk_length = batch_size, chunk_length
        self.steps_per_epoch = row // chunk_length

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        chunk = check_step(step) % self.steps_per_epoch
        window = slice(chunk * self.chunk_length, (chunk + 1) * self.chunk_length)
        return {
            "inputs": self.inputs[:, window],
            "targets": self.targets[:, window],
            "mask": self.mask[:, window],
            "reset": np.asarray(chunk == 0),
        }


def carry_over(carry: Carry, reset: Array, fresh: Carry) -> Carry:
    """The carry to start a chunk from: ``fresh`` at an epoch start, else the last chunk's.

    Gradients stop here (`jax.lax.stop_gradient`): truncated BPTT backpropagates through one
    chunk only, while the forward pass continues the state across chunks.

    Args:
      carry: the carry at the end of the previous chunk.
      reset: () bool, True on the first chunk of an epoch.
      fresh: the initial carry (e.g. ``cell.initial_carry(params, (b,))``).

    Returns:
      The carry to start the chunk with.

    Examples:
      >>> from jaxrnn.train import carry_over
      >>> import jax.numpy as jnp
      >>> carry_over(jnp.ones(2), jnp.asarray(True), jnp.zeros(2))
      Array([0., 0.], dtype=float32)
    """
    chosen = jax.tree.map(lambda old, new: jnp.where(reset, new, old), carry, fresh)
    return jax.lax.stop_gradient(chosen)
