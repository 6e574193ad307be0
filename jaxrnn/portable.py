"""Tracing for artifacts that leave Python: no host callbacks, no reversed scans.

An artifact for serving (`jax.export`, ONNX) cannot call back into Python, and ONNX exporters
(jax2onnx) have no reversed ``lax.scan``. Inside `portable`, jaxrnn traces without the host
callbacks of `jaxrnn.checks.check_at_run_time` (values only known at run time, such as
sequence lengths in range, are then not checked by the artifact; everything known when
tracing still is) and runs every reversed scan as a forward scan over the time-reversed
inputs, which reads the same elements in the same order and so gives the same numbers.
"""

import contextlib
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp

# A stack, so that `portable` nests and restores what was there.
_PORTABLE = [False]


@contextlib.contextmanager
def portable() -> Iterator[None]:
    """Traces jaxrnn code for an artifact that leaves Python (see the module's docstring).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> from jaxrnn.portable import portable
      >>> cell = jaxrnn.gru(4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> f = lambda xs, n: jaxrnn.unroll(cell, params, xs, seq_lengths=n, reverse=True)[1]
      >>> args = jnp.ones((2, 5, 3)), jnp.array([5, 2])
      >>> with portable():
      ...     text = jax.jit(lambda *a: f(*a)).lower(*args).as_text()
      >>> "callback" in text, "reverse = true" in text
      (False, False)
    """
    _PORTABLE.append(True)
    try:
        yield
    finally:
        _PORTABLE.pop()


def is_portable() -> bool:
    """True inside `portable`.

    Examples:
      >>> from jaxrnn.portable import is_portable
      >>> is_portable()
      False
    """
    return _PORTABLE[-1]


def scan(
    body: Callable, carry: Any, xs: Any, *, reverse: bool = False, unroll: int = 1
) -> tuple[Any, Any]:
    """`jax.lax.scan` over the leading (time) axis of ``xs``; inside `portable` a reversed
    scan is a forward scan over flipped inputs whose stacked outputs are flipped back.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.portable import portable, scan
      >>> running = lambda c, x: (c + x, c + x)
      >>> with portable():
      ...     total, partial = scan(running, 0.0, jnp.arange(4.0), reverse=True)
      >>> partial
      Array([6., 6., 5., 3.], dtype=float32)
    """
    if not (reverse and is_portable()):
        return jax.lax.scan(body, carry, xs, reverse=reverse, unroll=unroll)
    flip = lambda tree: jax.tree.map(lambda a: jnp.flip(a, axis=0), tree)
    carry, ys = jax.lax.scan(body, carry, flip(xs), unroll=unroll)
    return carry, flip(ys)


__all__ = (
    "is_portable",
    "portable",
    "scan",
)
