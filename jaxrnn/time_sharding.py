"""The time axis of a linear recurrence split over devices (``unroll(..., time_sharding=)``).

``h_t = a_t h_{t-1} + b_t`` over a time axis cut into one block per device. Each device
scans its block from a zero state, which gives its block's map ``h_in -> A h_in + B`` (``A``
the product of the block's ``a``, ``B`` its last local state). The devices exchange these
summaries (an all-gather of two ``(batch, n)`` arrays each), fold them in block order to get
the state entering every block, and correct their block's states by ``A_t h_in``. Values and
gradients equal the single-device scan up to rounding; each device holds ``t / devices``
steps.

Only the linear cells can be cut this way: an LSTM's or GRU's step reads ``h_{t-1}`` through
a nonlinearity, so block ``k`` cannot start before block ``k - 1`` ends, and a pipeline over
devices runs no faster than one device. Shard their batch instead (`jaxrnn.distributed`).
"""

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from jaxrnn.distributed import one_axis_mesh
from jaxrnn.typing import Array

TIME = "time"


def time_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"time"`` over ``devices`` (default: all of them), for
    ``unroll(..., time_sharding=(mesh, "time"))``.

    Examples:
      >>> from jaxrnn.time_sharding import time_mesh
      >>> time_mesh().axis_names
      ('time',)
    """
    return one_axis_mesh(TIME, devices)


def check_time_sharding(time_sharding) -> tuple[Mesh, str]:
    """``(mesh, axis)`` from ``unroll``'s ``time_sharding`` argument, or a `ValueError`
    that says what was expected.

    Examples:
      >>> from jaxrnn.time_sharding import check_time_sharding, time_mesh
      >>> check_time_sharding((time_mesh(), "time"))[1]
      'time'
    """
    if (
        not isinstance(time_sharding, tuple)
        or len(time_sharding) != 2
        or not isinstance(time_sharding[0], Mesh)
        or not isinstance(time_sharding[1], str)
    ):
        raise ValueError(
            "time_sharding must be (mesh, axis name), e.g. (jaxrnn.time_sharding.time_mesh(), "
            f"'time'), got {time_sharding!r}"
        )
    mesh, axis = time_sharding
    if axis not in mesh.axis_names:
        raise ValueError(
            f"time_sharding names mesh axis {axis!r}, but the mesh has axes {mesh.axis_names}"
        )
    return mesh, axis


def place_over_time(x: Array, mesh: Mesh, axis: str) -> Array:
    """``x`` (time first) laid out with its time axis split over ``axis`` of ``mesh``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.time_sharding import place_over_time, time_mesh
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
      >>> from jaxrnn.time_sharding import sharded_linear_scan, time_mesh
      >>> sharded_linear_scan(jnp.full(4, 0.5), jnp.ones(4), time_mesh(), "time")
      Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
    """
    from jaxrnn.scan import linear_scan

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
    "TIME",
    "check_time_sharding",
    "place_over_time",
    "sharded_linear_scan",
    "time_mesh",
)
