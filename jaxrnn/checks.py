"""The one vocabulary for checking what a user passes in.

Every public entry point of jaxrnn checks its arguments with these functions, so that each rule
is written once and every message has one shape: ``<name> must be <expected>, got <got>``,
raised as a `ValueError` (a wrong value) or a `TypeError` (a wrong kind of thing) from a frame
inside jaxrnn.

A value that is traced under `jax.jit` can only be checked when the compiled code runs:
`check_at_run_time` does that with a host callback. JAX reports a failed callback as a
`jax.errors.JaxRuntimeError` whose first line is its own; the message is also printed to stderr
first, and `checked` turns such a failure back into the `ValueError` it was.
"""

import functools
import importlib.util
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.portable import is_portable


def show(value: Any) -> str:
    """A short description of ``value`` for a message: ``repr`` for scalars and strings, kind,
    shape and dtype for arrays, the type's name otherwise.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.checks import show
      >>> show(3), show("a"), show(np.zeros((2, 3), np.uint8))
      ('3', "'a'", 'an array of shape (2, 3) and dtype uint8')
    """
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None), np.generic)):
        text = repr(value.item() if isinstance(value, np.generic) else value)
        return text if len(text) <= 60 else text[:57] + "..."
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    if (
        isinstance(value, (list, tuple))
        and len(value) <= 8
        and not any(isinstance(v, (list, tuple, dict)) or hasattr(v, "shape") for v in value)
    ):
        text = repr(value)
        return text if len(text) <= 60 else f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"


def fail(name: str, expected: str, value: Any, kind: type = ValueError, *, hint: str = "") -> None:
    """Raises ``kind("<name> must be <expected>, got <value>[; hint]")``: every check's message.

    Examples:
      >>> from jaxrnn.checks import fail
      >>> fail("hidden_size", "a positive int", 0)
      Traceback (most recent call last):
      ...
      ValueError: hidden_size must be a positive int, got 0
    """
    got = value if isinstance(value, _Said) else show(value)
    raise kind(f"{name} must be {expected}, got {got}" + (f"; {hint}" if hint else ""))


class _Said(str):
    """A ``got`` that is already words (not a value to `show`)."""


def said(text: str) -> str:
    """``text`` as the ``got`` of `fail`, used as it is.

    Examples:
      >>> from jaxrnn.checks import fail, said
      >>> fail("xs", "float", said("dtype int32"), TypeError)
      Traceback (most recent call last):
      ...
      TypeError: xs must be float, got dtype int32
    """
    return _Said(text)


def _is_integer_scalar(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return (
        isinstance(value, (np.ndarray, jax.Array))
        and value.ndim == 0
        and jnp.issubdtype(value.dtype, jnp.integer)
        and is_concrete(value)
    )


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int if it is a whole number (a Python or NumPy int, not a bool or a
    float) in ``[low, high]``.

    Examples:
      >>> from jaxrnn.checks import check_int
      >>> check_int("top_k", 3, low=1, high=10)
      3
      >>> check_int("top_k", 2.0, low=1)
      Traceback (most recent call last):
      ...
      TypeError: top_k must be a positive int, got 2.0
    """
    if low is not None and high is not None:
        expected = f"an int in [{low}, {high}]"
    elif low == 1:
        expected = "a positive int"
    else:
        expected = "an int" + ("" if low is None else f" >= {low}")
        expected += "" if high is None else f" <= {high}"
    if not _is_integer_scalar(value):
        fail(name, expected, value, TypeError)
    if (low is not None and value < low) or (high is not None and value > high):
        fail(name, expected, int(value))
    return int(value)


def check_size(name: str, value: Any) -> int:
    """``value`` if it is a positive int (a size, a count of steps), else an error naming
    ``name``.

    Examples:
      >>> from jaxrnn.checks import check_size
      >>> check_size("hidden_size", 8)
      8
      >>> check_size("hidden_size", 0)
      Traceback (most recent call last):
      ...
      ValueError: hidden_size must be a positive int, got 0
    """
    return check_int(name, value, low=1)


def check_heads(num_heads: Any, hidden_size: int, size_name: str = "hidden_size") -> int:
    """``num_heads`` if it is a positive int that divides ``hidden_size`` (each head holds
    ``hidden_size / num_heads`` units), else an error naming ``num_heads`` and the size as
    the caller's user wrote it (``size_name``).

    Examples:
      >>> from jaxrnn.checks import check_heads
      >>> check_heads(2, 8)
      2
      >>> check_heads(3, 8)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: num_heads must be a divisor of hidden_size=8 (...), got 3
    """
    check_size("num_heads", num_heads)
    if hidden_size % num_heads:
        fail(
            "num_heads",
            f"a divisor of {size_name}={hidden_size} (each head holds {size_name} / num_heads "
            "units)",
            num_heads,
        )
    return num_heads


def check_count(name: str, value: Any) -> int:
    """``value`` if it is an int ``>= 0``.

    Examples:
      >>> from jaxrnn.checks import check_count
      >>> check_count("length", 0)
      0
    """
    return check_int(name, value, low=0)


def check_step(step: Any) -> int:
    """``step`` as an int if it is a whole number ``>= 0`` (batches exist for steps 0, 1, ...).

    Examples:
      >>> from jaxrnn.checks import check_step
      >>> check_step(3)
      3
    """
    return check_count("step", step)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite real number (not a bool, a string or an array of
    more than one value) within the bounds: ``[low, high]``, an end open when asked.

    Examples:
      >>> from jaxrnn.checks import check_number
      >>> check_number("forget_bias", 1)
      1.0
      >>> check_number("temperature", float("nan"), low=0)
      Traceback (most recent call last):
      ...
      ValueError: temperature must be a finite number >= 0, got nan
    """
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    expected = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    if low is not None and high is not None:
        expected = (
            f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not real and isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0:
        real = (
            jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)
        ) and is_concrete(value)
    if not real:
        fail(name, expected, value, TypeError)
    number = float(value)
    if (
        not math.isfinite(number)
        or (low is not None and (number <= low if low_open else number < low))
        or (high is not None and (number >= high if high_open else number > high))
    ):
        fail(name, expected, number)
    return number


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1)``: a drop rate (1 would drop everything).

    Examples:
      >>> from jaxrnn.checks import check_probability
      >>> check_probability("dropout", 0.25)
      0.25
      >>> check_probability("dropout", 1)
      Traceback (most recent call last):
      ...
      ValueError: dropout must be a number in [0, 1), got 1.0
    """
    return check_number(name, value, low=0.0, high=1.0, high_open=True)


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (a string such as ``"False"`` is refused, not
    read as true).

    Examples:
      >>> from jaxrnn.checks import check_flag
      >>> check_flag("deterministic", "False")
      Traceback (most recent call last):
      ...
      TypeError: deterministic must be True or False, got 'False'
    """
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "True or False", value, TypeError)
    return bool(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Examples:
      >>> from jaxrnn.checks import check_choice
      >>> check_choice("method", "mean", ("last", "mean", "max"))
      'mean'
    """
    if not isinstance(value, (str, type(None), bool, int)) or value not in choices:
        words = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        fail(name, words, value)
    return value


def check_key(name: str, value: Any) -> jax.Array:
    """``value`` if it is one PRNG key: ``jax.random.key(n)`` (or a raw ``uint32 (2,)`` key of
    ``jax.random.PRNGKey``).

    Examples:
      >>> import jax
      >>> from jaxrnn.checks import check_key
      >>> check_key("dropout_key", 42)
      Traceback (most recent call last):
      ...
      TypeError: dropout_key must be a PRNG key such as jax.random.key(0), got 42
    """
    if isinstance(value, jax.Array):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key) and value.shape == ():
            return value
        if value.dtype == jnp.uint32 and value.shape == (2,):
            return value
    fail(name, "a PRNG key such as jax.random.key(0)", value, TypeError)


REAL_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_real_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """``dtype`` as a NumPy dtype if it is a real floating-point type (float16, bfloat16,
    float32, float64), else a `TypeError`: the cells' gates, initialisers and fused passes are
    real-valued. float64 needs JAX's 64-bit types on (``jax_enable_x64``): without them JAX
    would silently make float32 arrays.

    Examples:
      >>> from jaxrnn.checks import check_real_dtype
      >>> import jax.numpy as jnp
      >>> check_real_dtype(jnp.float32)
      dtype('float32')
      >>> check_real_dtype("flaot32")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      TypeError: dtype must be a real floating-point type (...), got 'flaot32'
    """
    try:
        resolved = jnp.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.name not in REAL_DTYPES:
        fail(
            name,
            "a real floating-point type (float16, bfloat16, float32 or float64)",
            said(str(resolved)) if resolved is not None else dtype,
            TypeError,
        )
    if resolved.itemsize == 8 and not jax.config.jax_enable_x64:
        fail(
            name,
            "float32 or narrower while JAX's 64-bit types are off",
            said(resolved.name),
            TypeError,
            hint="turn them on first: jax.config.update('jax_enable_x64', True)",
        )
    return resolved


def check_compute_dtype(compute_dtype: Any, name: str = "compute_dtype") -> Any:
    """None (compute in the params' dtype), or ``compute_dtype`` checked by `check_real_dtype`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.checks import check_compute_dtype
      >>> check_compute_dtype("bfloat16")
      dtype(bfloat16)
      >>> check_compute_dtype(jnp.float8_e4m3fn)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      TypeError: compute_dtype must be a real floating-point type (...), got float8_e4m3fn
    """
    return None if compute_dtype is None else check_real_dtype(compute_dtype, name)


def check_axes(name: str, axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` (ints in ``[-ndim, ndim)``) as non-negative axes of an array of rank ``ndim``;
    an axis past the rank is an error, not taken modulo the rank.

    Examples:
      >>> from jaxrnn.checks import check_axes
      >>> check_axes("shared_axes", (1, -1), ndim=3)
      (1, 2)
      >>> check_axes("shared_axes", (5,), ndim=3)
      Traceback (most recent call last):
      ...
      ValueError: shared_axes must be axes of an array of rank 3 (ints in [-3, 3)), got (5,)
    """
    expected = f"axes of an array of rank {ndim} (ints in [-{ndim}, {ndim}))"
    if not isinstance(axes, (tuple, list)) or not all(_is_integer_scalar(a) for a in axes):
        fail(name, expected, axes, TypeError)
    if any(not -ndim <= a < ndim for a in axes):
        fail(name, expected, tuple(int(a) for a in axes))
    return tuple(int(a) % ndim for a in axes)


def check_lengths(
    name: str, value: Any, batch_shape: tuple[Any, ...], num_steps: Any
) -> jax.Array | None:
    """``value``, lengths of the sequences of a batch, as an int32 array ``batch_shape``, or
    None for None.

    Any integer dtype is accepted (``uint8``, ``int64``, ...); the range ``[0, num_steps]`` is
    checked in that dtype before the cast, so that no length wraps around or is cut to 32
    bits. Concrete values are checked now; traced ones when the compiled code runs
    (`check_at_run_time`). Bools and floats are refused: they are not lengths.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.checks import check_lengths
      >>> check_lengths("seq_lengths", np.array([200, 3], np.uint8), (2,), 300)
      Array([200,   3], dtype=int32)
      >>> check_lengths("seq_lengths", np.array([2**32 + 3, 5]), (2,), 5)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: seq_lengths must lie in [0, 5] (...), got values from 5 to 4294967299
    """
    if value is None:
        return None
    if not hasattr(value, "dtype"):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError, OverflowError):
            fail(name, f"integer lengths of shape {tuple(batch_shape)}", value, TypeError)
    if not jnp.issubdtype(value.dtype, jnp.integer) or value.dtype == np.bool_:
        fail(
            name,
            f"an integer array of shape {tuple(batch_shape)} (one length per sequence)",
            said(f"dtype {value.dtype}"),
            TypeError,
        )
    if tuple(value.shape) != tuple(batch_shape):
        fail(
            name,
            f"of shape {tuple(batch_shape)} (one length per sequence of xs)",
            said(f"shape {tuple(value.shape)}"),
        )

    def raise_if_bad(low, high):
        low, high = int(low), int(high)  # a uint8 0-d array would compare with 300 wrapped
        if low < 0 or high > num_steps:
            raise ValueError(
                f"{name} must lie in [0, {num_steps}] (the time axis of xs), got values from "
                f"{int(low)} to {int(high)}"
            )

    if is_concrete(value):
        values = np.asarray(value)
        if not is_portable() and values.size and isinstance(num_steps, int):
            raise_if_bad(values.min(), values.max())
        return jnp.asarray(values.astype(np.int32))
    if not is_portable() and isinstance(num_steps, int) and math.prod(value.shape):
        check_at_run_time(raise_if_bad, jnp.min(value), jnp.max(value))
    return value.astype(jnp.int32)


def check_token_ids(name: str, value: Any, vocab_size: Any = None) -> jax.Array:
    """``value`` as an int32 array of token ids in ``[0, vocab_size)``: integer dtypes only (a
    float id is refused, not truncated; a bool is not an id). The range is checked now for
    concrete ids, when the compiled code runs for traced ones, not at all when ``vocab_size``
    is None.

    Examples:
      >>> from jaxrnn.checks import check_token_ids
      >>> check_token_ids("first_tokens", [1, 4], vocab_size=5)
      Array([1, 4], dtype=int32)
      >>> check_token_ids("first_tokens", [1, 5], vocab_size=5)
      Traceback (most recent call last):
      ...
      ValueError: first_tokens must be token ids in [0, 5) (the vocabulary), got values from 1 to 5
    """
    if not hasattr(value, "dtype"):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError):
            fail(name, "integer token ids", value, TypeError)
    if not jnp.issubdtype(value.dtype, jnp.integer) or value.dtype == np.bool_:
        fail(
            name,
            "integer token ids",
            said(f"dtype {value.dtype}"),
            TypeError,
            hint="cast them explicitly (e.g. ids.astype(jnp.int32)) if they really are ids",
        )

    def raise_if_bad(low, high):
        low, high = int(low), int(high)
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{name} must be token ids in [0, {vocab_size}) (the vocabulary), got values from "
                f"{int(low)} to {int(high)}"
            )

    if vocab_size is not None and math.prod(value.shape):
        if is_concrete(value):
            values = np.asarray(value)
            raise_if_bad(values.min(), values.max())
        else:
            check_at_run_time(raise_if_bad, jnp.min(value), jnp.max(value))
    if is_concrete(value):
        return jnp.asarray(np.asarray(value).astype(np.int32))
    return value.astype(jnp.int32)


def score_problems(value: Any) -> jax.Array:
    """Per row of scores ``(..., v)``: 0 when a token can be chosen, 1 for a NaN, 2 for +inf,
    3 when every score is ``-inf`` (``-inf`` alone masks a token). What `check_scores`
    reports; `jaxrnn.decode` accumulates it over the steps of a scan and checks once.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.checks import score_problems
      >>> score_problems(np.array([[0.0, -np.inf], [np.nan, 1.0], [-np.inf, -np.inf]])).tolist()
      [0, 1, 3]
    """
    value = jnp.asarray(value)
    return jnp.where(
        jnp.any(jnp.isnan(value), axis=-1),
        1,
        jnp.where(
            jnp.any(value == jnp.inf, axis=-1),
            2,
            jnp.where(jnp.all(value == -jnp.inf, axis=-1), 3, 0),
        ),
    ).astype(jnp.int32)


def check_scores(name: str, problems: Any) -> None:
    """Raises when `score_problems` found a row from which no token can be chosen (NaN, +inf,
    or nothing but ``-inf``); now for concrete values, when the compiled code runs for traced
    ones.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.checks import check_scores, score_problems
      >>> check_scores("logits", score_problems(np.array([[0.0, -np.inf], [np.nan, 1.0]])))
      Traceback (most recent call last):
      ...
      ValueError: logits must be finite scores or -inf (a masked token), got NaN in row 1
    """
    check_at_run_time(functools.partial(_raise_bad_scores, name), problems)


def _raise_bad_scores(name, problems) -> None:
    problems = np.asarray(problems).reshape(-1)
    if problems.any():
        row = int(np.flatnonzero(problems)[0])
        what = {1: "NaN", 2: "+inf", 3: "only -inf (no token left to choose)"}[int(problems[row])]
        raise ValueError(
            f"{name} must be finite scores or -inf (a masked token), got {what} in row {row}"
        )


def check_mask(name: str, value: Any, shape: tuple[Any, ...], layout: str = "") -> jax.Array:
    """``value`` as a bool array of exactly ``shape``; ints (0/1) are refused rather than read
    as truth values, and nothing is broadcast. ``layout`` (``"time-major"``) goes in the
    message.

    Examples:
      >>> from jaxrnn.checks import check_mask
      >>> check_mask("mask", [[True, False]], (1, 2)).shape
      (1, 2)
      >>> check_mask("mask", [[True, False]], (2, 1), "time-major")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: mask must be a bool array of shape (2, 1) (time-major: ...), got shape (1, 2); ...
    """
    expected = f"a bool array of shape {tuple(shape)}"
    if layout:
        expected += f" ({layout}: one entry per step of each sequence)"
    if not hasattr(value, "dtype"):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError):
            fail(name, expected, value, TypeError)
    if value.dtype != np.bool_:
        fail(name, expected, said(f"dtype {value.dtype}"), TypeError)
    if tuple(value.shape) != tuple(shape):
        fail(
            name,
            expected,
            said(f"shape {tuple(value.shape)}"),
            hint="nothing is broadcast silently",
        )
    return jnp.asarray(value)


def describe(tree: Any) -> str:
    """``LSTMCarry(h=(2, 8) float32, c=...)``-style summary of a tree of arrays or shapes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.checks import describe
      >>> describe({"h": jnp.zeros((2, 3))})
      '{h: (2, 3) float32}'
    """
    shapes = jax.tree.map(lambda a: f"{tuple(np.shape(a))} {jnp.result_type(a)}", tree)
    return str(shapes).replace("'", "")


def check_tree(name: str, value: Any, template: Any, *, source: str = "") -> Any:
    """``value`` if it is a pytree of arrays with the structure, shapes and dtypes of
    ``template`` (arrays or `jax.ShapeDtypeStruct` s); ``source`` says where the template
    comes from.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.checks import check_tree
      >>> check_tree("initial_carry", jnp.zeros(3), jnp.zeros(4))
      Traceback (most recent call last):
      ...
      ValueError: initial_carry must be a pytree of arrays matching (4,) float32, got (3,) float32
    """
    spec = lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a))
    want = jax.tree.map(spec, template)
    expected = f"a pytree of arrays matching {source + ': ' if source else ''}{describe(want)}"
    try:
        got = jax.tree.map(spec, value)
    except (TypeError, ValueError):
        fail(name, expected, value, TypeError)
    if jax.tree.structure(got) != jax.tree.structure(want) or jax.tree.leaves(got) != (
        jax.tree.leaves(want)
    ):
        fail(name, expected, said(describe(got)))
    return value


def is_concrete(value: Any) -> bool:
    """Whether ``value`` has a value now (not a tracer inside `jax.jit`, `jax.vmap`, ...).

    Examples:
      >>> from jaxrnn.checks import is_concrete
      >>> import jax.numpy as jnp
      >>> is_concrete(1.0), is_concrete(jnp.ones(2))
      (True, True)
    """
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


# The last failure of a run-time check on this thread, for `checked`.
_FAILED = threading.local()


def check_at_run_time(raise_if_bad: Callable[..., None], *operands: Any) -> None:
    """Calls ``raise_if_bad(*operands)`` now when the operands are concrete, else when the
    compiled code runs (a host callback). ``raise_if_bad`` raises for bad values.

    Under jit, the message is also written to stderr as ``jaxrnn: <error>`` before JAX reports
    the failed callback, so that it is the first thing a user reads; `checked` raises it as
    the error it was.

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
            _FAILED.error = error
            print(f"jaxrnn: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            raise

    jax.debug.callback(callback, *operands)


def checked(fn: Callable) -> Callable:
    """``fn`` (typically jitted) whose failed run-time checks raise the `ValueError` or
    `TypeError` that jaxrnn's check raised, naming the argument in its first line, instead of
    JAX's ``JaxRuntimeError: INTERNAL: CpuCallback error ...`` (kept as its ``__cause__``).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.gru(4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> run = jaxrnn.checked(jax.jit(lambda xs, n: jaxrnn.unroll(cell, params, xs,
      ...                                                         seq_lengths=n)[1]))
      >>> run(jnp.ones((2, 5, 3)), jnp.array([9, 2]))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: seq_lengths must lie in [0, 5] (the time axis of xs), got values from 2 to 9
    """
    if not callable(fn):
        fail("fn", "a function", fn, TypeError)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        _FAILED.error = None
        try:
            return jax.block_until_ready(fn(*args, **kwargs))
        except jax.errors.JaxRuntimeError as error:
            original = getattr(_FAILED, "error", None)
            if original is None or str(original) not in str(error):
                raise
            raise type(original)(str(original)) from error

    return run


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
        is_symbolic_size(n) or (_is_integer_scalar(n) and n >= 0) for n in batch_shape
    ):
        fail("batch_shape", "a tuple of sizes such as (b,) or ()", batch_shape, TypeError)
    return tuple(n if is_symbolic_size(n) else int(n) for n in batch_shape)


def check_init_args(key: Any, input_size: Any, dtype: Any) -> np.dtype:
    """Checks the arguments of a cell's ``init``; returns ``dtype`` as a NumPy dtype.

    Examples:
      >>> from jaxrnn.checks import check_init_args
      >>> import jax, jax.numpy as jnp
      >>> check_init_args(jax.random.key(0), 3, jnp.float32)
      dtype('float32')
    """
    check_key("key", key)
    check_size("input_size", input_size)
    return check_real_dtype(dtype)


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


@functools.cache
def _library_folders() -> tuple[str, ...]:
    """The folders of jaxrnn and of the libraries that call into it (JAX's traces, Flax's
    module machinery): no warning of jaxrnn's is the fault of a line in them."""
    folders = []
    for name in ("jaxrnn", "jax", "jaxlib", "flax"):
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folders.append(os.path.join(location, ""))
    return tuple(folders)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the user's own line: the first caller outside jaxrnn, JAX and Flax,
    however deep the warning is raised (inside a layer, a jitted trace or a Flax module's
    ``__init__``). Python shows a `DeprecationWarning` only when it is attributed to the
    script being run, so a fixed ``stacklevel`` would hide it behind any extra frame.

    Examples:
      >>> import warnings
      >>> from jaxrnn.checks import warn
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     warn("careful")
      >>> str(caught[0].message)
      'careful'
    """
    frame, level = sys._getframe(1), 2  # stacklevel 2: whoever called this function
    while frame is not None and frame.f_code.co_filename.startswith(_library_folders()):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


__all__ = (
    "check_at_run_time",
    "check_axes",
    "check_batch_shape",
    "check_choice",
    "check_count",
    "check_flag",
    "check_init_args",
    "check_int",
    "check_key",
    "check_lengths",
    "check_mask",
    "check_number",
    "check_probability",
    "check_real_dtype",
    "check_scores",
    "check_size",
    "check_step",
    "check_token_ids",
    "check_tree",
    "checked",
    "describe",
    "fail",
    "is_concrete",
    "is_symbolic_size",
    "said",
    "score_problems",
    "show",
)
