"""Checking what a user passes in: sizes, dtypes, and values that are only known under jit.

Every check raises a `ValueError` or `TypeError` that names the argument, what was expected and
what was got. A value that is traced under `jax.jit` can only be checked when the compiled code
runs: `check_at_run_time` does that with a host callback, and prints the message as the first
line of the error output, because JAX reports a failed callback as a `JaxRuntimeError` whose
own text starts with an internal traceback.
"""

import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.portable import is_portable


def check_size(name: str, value: Any) -> int:
    """``value`` if it is a positive Python int, else a `ValueError` naming ``name``.

    Examples:
      >>> from jaxrnn.checks import check_size
      >>> check_size("hidden_size", 8)
      8
      >>> check_size("hidden_size", 0)
      Traceback (most recent call last):
      ...
      ValueError: hidden_size must be a positive int, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_real_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype if it is a real floating-point type (float16, bfloat16,
    float32, float64), else a `TypeError`: the cells' gates, initialisers and fused passes are
    real-valued.

    Examples:
      >>> from jaxrnn.checks import check_real_dtype
      >>> import jax.numpy as jnp
      >>> check_real_dtype(jnp.float32)
      dtype('float32')
      >>> check_real_dtype(jnp.complex64)
      Traceback (most recent call last):
      ...
      TypeError: dtype must be a real floating-point type ... got complex64
    """
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or not jnp.issubdtype(resolved, jnp.floating):
        got = resolved if resolved is not None else repr(dtype)
        raise TypeError(
            "dtype must be a real floating-point type (float16, bfloat16, float32 or float64), "
            f"got {got}"
        )
    return resolved


def is_concrete(value: Any) -> bool:
    """Whether ``value`` has a value now (not a tracer inside `jax.jit`, `jax.vmap`, ...).

    Examples:
      >>> from jaxrnn.checks import is_concrete
      >>> import jax.numpy as jnp
      >>> is_concrete(1.0), is_concrete(jnp.ones(2))
      (True, True)
    """
    try:
        np.asarray(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return False
    return True


def check_at_run_time(raise_if_bad: Callable[..., None], *operands: Any) -> None:
    """Calls ``raise_if_bad(*operands)`` now when the operands are concrete, else when the
    compiled code runs (a host callback). ``raise_if_bad`` raises for bad values.

    Under jit, the message is also written to stderr as ``jaxrnn: <error>`` before JAX reports
    the failed callback, so that it is the first thing a user reads.

    Examples:
      >>> from jaxrnn.checks import check_at_run_time
      >>> def positive(x):
      ...     if x <= 0:
      ...         raise ValueError(f"x must be positive, got {x}")
      >>> check_at_run_time(positive, 3.0)
    """
    if all(is_concrete(op) for op in operands):
        raise_if_bad(*(np.asarray(op) for op in operands))
        return
    if is_portable():  # an artifact for serving cannot call back into Python
        return

    def callback(*values):
        try:
            raise_if_bad(*values)
        except (ValueError, TypeError) as error:
            print(f"jaxrnn: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            raise

    jax.debug.callback(callback, *operands)


def check_step(step) -> int:
    """``step`` as an int if it is a whole number ``>= 0`` (batches exist for steps 0, 1, ...).

    Examples:
      >>> from jaxrnn.checks import check_step
      >>> check_step(3)
      3
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        if not (isinstance(step, (jax.Array, np.ndarray)) and np.ndim(step) == 0):
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        value = np.asarray(step)
        if not np.issubdtype(value.dtype, np.integer) or value < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
    return int(step)


def check_init_args(key: Any, input_size: Any, dtype: Any) -> np.dtype:
    """Checks the arguments of a cell's ``init``; returns ``dtype`` as a NumPy dtype.

    Examples:
      >>> from jaxrnn.checks import check_init_args
      >>> import jax, jax.numpy as jnp
      >>> check_init_args(jax.random.key(0), 3, jnp.float32)
      dtype('float32')
    """
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        if not (isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)):
            raise TypeError(
                f"key must be a PRNG key such as jax.random.key(0), got {type(key).__name__}"
                + (f" {key!r}" if np.ndim(key) == 0 else "")
            )
    check_size("input_size", input_size)
    return check_real_dtype(dtype)


def check_batch_shape(batch_shape: Any) -> tuple[Any, ...]:
    """``batch_shape`` as a tuple of ints >= 0 (an int ``b`` is not accepted for ``(b,)``).

    A symbolic size of `jax.export` (``jax.export.symbolic_shape("b")``) is accepted as it is,
    so that a model can be exported with its batch size left open.

    Examples:
      >>> from jaxrnn.checks import check_batch_shape
      >>> check_batch_shape((2, 3))
      (2, 3)
    """
    if not isinstance(batch_shape, (tuple, list)) or not all(
        is_symbolic_size(n)
        or (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0)
        for n in batch_shape
    ):
        raise TypeError(
            f"batch_shape must be a tuple of sizes such as (b,) or (), got {batch_shape!r}"
        )
    return tuple(n if is_symbolic_size(n) else int(n) for n in batch_shape)


def is_symbolic_size(n: Any) -> bool:
    """Whether ``n`` is a symbolic dimension of `jax.export` (a size only known when the
    exported function is called), which JAX has no public type for.

    Examples:
      >>> import jax
      >>> from jaxrnn.checks import is_symbolic_size
      >>> is_symbolic_size(jax.export.symbolic_shape("b")[0]), is_symbolic_size(3)
      (True, False)
    """
    return type(n).__module__.startswith("jax.") and hasattr(n, "dimension_as_value")
