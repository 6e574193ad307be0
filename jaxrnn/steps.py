"""Which steps of a batch of sequences are real: ``seq_lengths``, ``mask`` and ``resets``, read
once, by one function, for the scan and for the heads.

`jaxrnn.unroll` decides which steps run from `read`; `jaxrnn.pool` (and so
`jaxrnn.many_to_one`) finds each sequence's last step from the same `read` of the same
arguments, so a head cannot disagree with the scan about which step is last.
"""

from typing import Any
from typing import NamedTuple

import jax.numpy as jnp

from jaxrnn.checks import check_lengths
from jaxrnn.checks import check_mask
from jaxrnn.typing import Array


class Steps(NamedTuple):
    """The real steps of a batch, time-major: ``t`` steps of sequences of ``batch`` shape.

    ``valid`` and ``resets`` are None when every step is real or no document starts inside a
    row, so the fast paths stay fast.
    """

    lengths: Array | None  # (*batch,) int32 valid lengths, or None
    mask: Array | None  # (t, *batch) bool: the mask as given, time-major, or None
    valid: Array | None  # (t, *batch) bool: the steps that run (lengths and mask), or None
    resets: Array | None  # (t, *batch) bool: document starts (in input order), or None

    def last(self, num_steps: int, batch_shape: tuple[int, ...]) -> Array:
        """``(*batch,)`` int32: the position of each sequence's last real step, -1 if none.

        Examples:
          >>> import jax.numpy as jnp
          >>> from jaxrnn.steps import read
          >>> mask = jnp.array([[True, True, False], [False, False, False]])
          >>> steps = read(None, mask, None, num_steps=3, batch_shape=(2,), time_major=False)
          >>> steps.last(3, (2,)).tolist()
          [1, -1]
        """
        if self.valid is None:
            return jnp.full(batch_shape, num_steps - 1, jnp.int32)
        if self.mask is None:  # from the lengths alone
            return self.lengths - 1
        position = jnp.arange(num_steps, dtype=jnp.int32).reshape((-1,) + (1,) * len(batch_shape))
        return jnp.max(jnp.where(self.valid, position, -1), axis=0)


def valid_steps(lengths: Array, num_steps: int) -> Array:
    """``(t, *batch)`` bool: True where step ``t`` of a sequence is within its length.

    Examples:
      >>> from jaxrnn.steps import valid_steps
      >>> import jax.numpy as jnp
      >>> valid_steps(jnp.array([2, 0]), 3).tolist()
      [[True, False], [True, False], [False, False]]
    """
    lengths = jnp.asarray(lengths, jnp.int32)
    steps = jnp.arange(num_steps, dtype=jnp.int32).reshape((num_steps,) + (1,) * lengths.ndim)
    return steps < lengths[None]


def read(
    seq_lengths: Any,
    mask: Any,
    resets: Any,
    *,
    num_steps: int,
    batch_shape: tuple[int, ...],
    time_major: bool = True,
) -> Steps:
    """Checks ``seq_lengths`` ``(*batch,)``, ``mask`` and ``resets`` (``(*batch, t)``, or
    ``(t, *batch)`` when ``time_major``) and combines them into `Steps`.

    Args:
      seq_lengths: integer lengths in ``[0, t]`` of any integer dtype, or None.
      mask: bool, True on the steps that run, or None.
      resets: bool, True where a document starts, or None.
      num_steps: ``t``.
      batch_shape: the batch axes.
      time_major: the layout of ``mask`` and ``resets``.

    Returns:
      `Steps`; a step runs when it is within its sequence's length *and* its mask is True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.steps import read
      >>> steps = read(jnp.array([2, 3]), None, None, num_steps=3, batch_shape=(2,))
      >>> steps.valid.tolist()
      [[True, True], [True, True], [False, True]]
    """
    lengths = check_lengths("seq_lengths", seq_lengths, batch_shape, num_steps)
    valid = None if lengths is None else valid_steps(lengths, num_steps)
    if mask is not None:
        mask = _steps_array("mask", mask, num_steps, batch_shape, time_major)
        valid = mask if valid is None else valid & mask
    if resets is not None:
        resets = _steps_array("resets", resets, num_steps, batch_shape, time_major)
    return Steps(lengths, mask, valid, resets)


def _steps_array(name, value, num_steps, batch_shape, time_major) -> Array:
    """``mask`` or ``resets`` checked and made time-major ``(t, *batch)``."""
    if time_major:
        return check_mask(name, value, (num_steps, *batch_shape), "time-major")
    checked = check_mask(name, value, (*batch_shape, num_steps), "batch-major")
    return jnp.moveaxis(checked, -1, 0)


def in_scan_order(steps: Steps, reverse: bool) -> Array | None:
    """The steps before which the carry goes back to the initial one, in the order the scan
    reads them: the document starts, or, reading backwards, the documents' last steps (the
    step before each start). Resets past a sequence's length are dropped.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.steps import in_scan_order, read
      >>> steps = read(None, None, jnp.array([[True], [False], [True]]), num_steps=3,
      ...              batch_shape=(1,))
      >>> in_scan_order(steps, reverse=True)[:, 0].tolist()
      [False, True, False]
    """
    starts = steps.resets
    if starts is None:
        return None
    lengths_valid = None if steps.lengths is None else valid_steps(steps.lengths, starts.shape[0])
    if lengths_valid is not None:
        starts = starts & lengths_valid
    if not reverse:
        return starts
    ends = jnp.concatenate([starts[1:], jnp.zeros_like(starts[:1])], axis=0)
    return ends if lengths_valid is None else ends & lengths_valid


def expand(mask: Array, like: Array) -> Array:
    """``mask`` with trailing unit axes to broadcast against ``like``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.steps import expand
      >>> expand(jnp.ones((3, 2), bool), jnp.ones((3, 2, 4))).shape
      (3, 2, 1)
    """
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


__all__ = (
    "Steps",
    "expand",
    "in_scan_order",
    "read",
    "valid_steps",
)
