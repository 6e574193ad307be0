"""Linear recurrences ``h_t = a_t * h_{t-1} + b_t`` over all steps at once, on one device
(`linear_scan`) or with the time axis split over the devices of a mesh (`sharded_linear_scan`).

The parallel mode of `jaxrnn.unroll` runs the linear cells (`jaxrnn.mingru`, `jaxrnn.minlstm`,
`jaxrnn.lru`, `jaxrnn.rg_lru`) through these. For the sharded form, each device scans its block
of steps from a zero state, which gives its block's map ``h_in -> A h_in + B`` (``A`` the
product of the block's ``a``, ``B`` its last local state). The devices exchange these summaries
(an all-gather of two ``(batch, n)`` arrays each), fold them in block order to get the state
entering every block, and correct their block's states by ``A_t h_in``. Values and gradients
equal the single-device scan up to rounding; each device holds ``t / devices`` steps.
"""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from jaxrnn.checks import check_choice
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.portable import scan
from jaxrnn.typing import Array


def linear_scan(a: Array, b: Array, *, reverse: bool = False, method: str | None = None) -> Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` from ``h_{-1} = 0``.

    Three algorithms, the same numbers up to rounding:

    - ``"associative"``: `jax.lax.associative_scan`, ``log t`` levels of work over the whole
      array; the fast choice where there are thousands of parallel lanes (GPU, TPU).
    - ``"loop"``: a `jax.lax.scan` over the precomputed coefficients with a hand-written
      backward pass (the reverse recurrence ``g_t = dh_t + a_{t+1} g_{t+1}``) that stores
      nothing but the states. Every sweep of the associative scan reads and writes the whole
      array, and on a CPU memory bandwidth, not arithmetic, is the limit: one sweep is the
      minimum (see ``benchmarks/README.md``).
    - ``"pallas"``: `jaxrnn.pallas.pallas_linear_scan`, a blocked kernel for TPU (Mosaic) and
      GPU (Triton) that reads ``a`` and ``b`` once, keeps the state on chip in float32 and
      writes the states once, with the same backward pass as ``"loop"``; float32, bfloat16,
      float16 and complex64 only. On CPU it runs in Pallas's interpreter: slowly, for tests.

    The default is ``"loop"`` on CPU and ``"associative"`` elsewhere: no GPU or TPU run has
    measured ``"pallas"`` against ``"associative"`` yet.

    Args:
      a: ``(t, ...)`` multipliers.
      b: ``(t, ...)`` inputs, same shape and dtype.
      reverse: run from the last step to the first.
      method: ``"loop"``, ``"associative"``, ``"pallas"`` or None (by backend).

    Returns:
      ``(t, ...)`` states ``h_t``.

    Examples:
      >>> from jaxrnn.parallel import linear_scan
      >>> import jax.numpy as jnp
      >>> linear_scan(jnp.full(4, 0.5), jnp.ones(4))
      Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
    """
    check_choice("method", method, ("loop", "associative", "pallas", None))
    check_operands(a, b)
    if a.shape[0] == 0:
        return jnp.zeros_like(b)
    if method is None:
        method = "loop" if jax.default_backend() == "cpu" else "associative"
    if method == "loop":
        return _linear_loop(a, b, reverse)
    if method == "pallas":
        from jaxrnn.pallas import pallas_linear_scan  # imports Pallas only when asked for

        return pallas_linear_scan(a, b, reverse=reverse)

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a2 * a1, a2 * b1 + b2

    return jax.lax.associative_scan(combine, (a, b), reverse=reverse, axis=0)[1]


def check_operands(a, b) -> None:
    """``a`` and ``b`` of `linear_scan`: arrays of one shape ``(t, ...)`` and one inexact
    dtype (never broadcast against each other: every method must read the same recurrence).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.parallel import check_operands
      >>> check_operands(jnp.ones((5, 1)), jnp.ones((5, 3)))
      Traceback (most recent call last):
      ...
      ValueError: b must be of the shape and dtype of a, (5, 1) float32, got (5, 3) float32
    """
    for name, x in (("a", a), ("b", b)):
        if not hasattr(x, "dtype") or getattr(x, "ndim", 0) == 0:
            fail(name, "an array with a leading time axis, (t, ...)", x, TypeError)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            fail(name, "a floating-point or complex array", said(f"dtype {x.dtype}"), TypeError)
    if a.shape != b.shape or a.dtype != b.dtype:
        fail("b", f"of the shape and dtype of a, {a.shape} {a.dtype}", said(f"{b.shape} {b.dtype}"))


def _loop_states(a, b, reverse):
    def body(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    return scan(body, jnp.zeros_like(b[0]), (a, b), reverse=reverse)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _linear_loop(a, b, reverse):
    return _loop_states(a, b, reverse)


def _linear_loop_fwd(a, b, reverse):
    states = _loop_states(a, b, reverse)
    return states, (a, states)


def _linear_loop_bwd(reverse, residuals, d_states):
    a, states = residuals
    a_next, previous = backward_coefficients(a, states, reverse=reverse)
    g = _loop_states(a_next, d_states, not reverse)
    return g * previous, g


def backward_coefficients(a: Array, states: Array, *, reverse: bool) -> tuple[Array, Array]:
    """What the backward pass of ``h_t = a_t h_{t-1} + b_t`` reads, step by step: ``a_{t+1}``,
    the multipliers of the gradient recurrence ``g_t = dh_t + a_{t+1} g_{t+1}`` (the same
    recurrence run the other way), and ``h_{t-1}``, the state that ``a_t`` multiplied, so that
    ``da_t = g_t h_{t-1}`` and ``db_t = g_t``. "Next" and "previous" are in the order the
    scan read the steps (``reverse``); past either end both are zero.

    Every implementation of `linear_scan` (the loop here, `jaxrnn.pallas`) uses this one
    definition.

    Args:
      a: ``(t, ...)`` multipliers of the forward recurrence.
      states: ``(t, ...)`` its states ``h_t``.
      reverse: whether the forward recurrence ran from the last step to the first.

    Returns:
      ``(a_next, previous)``, both ``(t, ...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.parallel import backward_coefficients
      >>> a_next, previous = backward_coefficients(
      ...     jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 5.0, 6.0]), reverse=False
      ... )
      >>> a_next, previous
      (Array([2., 3., 0.], dtype=float32), Array([0., 4., 5.], dtype=float32))
    """
    if reverse:
        a_next = jnp.concatenate([jnp.zeros_like(a[:1]), a[:-1]], axis=0)
        previous = jnp.concatenate([states[1:], jnp.zeros_like(states[:1])], axis=0)
    else:
        a_next = jnp.concatenate([a[1:], jnp.zeros_like(a[:1])], axis=0)
        previous = jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]], axis=0)
    return a_next, previous


_linear_loop.defvjp(_linear_loop_fwd, _linear_loop_bwd)


def place_over_time(x: Array, mesh: Mesh, axis: str) -> Array:
    """``x`` (time first) laid out with its time axis split over ``axis`` of ``mesh``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.parallel import place_over_time
      >>> from jaxrnn.time_sharding import time_mesh
      >>> place_over_time(jnp.zeros((8, 2)), time_mesh(), "time").shape
      (8, 2)
    """
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(axis)))


def sharded_linear_scan(
    a: Array, b: Array, mesh: Mesh, axis: str, *, reverse: bool = False
) -> Array:
    """All states of ``h_t = a_t h_{t-1} + b_t`` from ``h_{-1} = 0``, as `jaxrnn.linear_scan`,
    with the time axis split over the mesh axis ``axis``.

    A time length that does not split evenly is padded with steps that leave the state as it
    is (``a = 1``, ``b = 0``), and the padding is cut off again.

    Args:
      a: ``(t, ...)`` multipliers.
      b: ``(t, ...)`` inputs, same shape and dtype.
      mesh: the device mesh.
      axis: the name of the mesh axis that the time axis is split over.
      reverse: run from the last step to the first.

    Returns:
      ``(t, ...)`` states, their time axis split over ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.parallel import sharded_linear_scan
      >>> from jaxrnn.time_sharding import time_mesh
      >>> sharded_linear_scan(jnp.full(4, 0.5), jnp.ones(4), time_mesh(), "time")
      Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
    """
    devices = mesh.shape[axis]
    steps = a.shape[0]
    padded = -(-steps // devices) * devices
    if padded != steps:  # steps that leave the state unchanged
        extra = [(0, padded - steps)] + [(0, 0)] * (a.ndim - 1)
        a = jnp.pad(a, extra, constant_values=1)
        b = jnp.pad(b, extra)

    def blocks(a, b):  # one device's block, (t / devices, ...)
        first = a.shape[0] - 1 if reverse else 0
        local = linear_scan(a, b, reverse=reverse)  # from a zero state
        products = linear_scan(a, jnp.zeros_like(b).at[first].set(a[first]), reverse=reverse)
        last = 0 if reverse else -1
        # Every block's map h_in -> A h_in + B, in block order.
        maps_a = jax.lax.all_gather(products[last], axis)
        maps_b = jax.lax.all_gather(local[last], axis)
        # The state leaving each block, then the one entering this block.
        leaving = linear_scan(maps_a, maps_b, reverse=reverse)
        index = jax.lax.axis_index(axis)
        before = index + 1 if reverse else index - 1
        entering = jnp.where(
            (before >= 0) & (before < devices),
            leaving[jnp.clip(before, 0, devices - 1)],
            jnp.zeros_like(leaving[0]),
        )
        return local + products * entering[None]

    spec = PartitionSpec(axis)
    states = jax.shard_map(blocks, mesh=mesh, in_specs=(spec, spec), out_specs=spec)(a, b)
    return place_over_time(states[:steps], mesh, axis)


__all__ = (
    "backward_coefficients",
    "linear_scan",
    "place_over_time",
    "sharded_linear_scan",
)
