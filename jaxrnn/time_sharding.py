"""The time axis of a linear recurrence split over devices:
``jaxrnn.Strategy(mode="parallel", time_sharding=(time_mesh(), "time"))``.

The scan itself is `jaxrnn.parallel.sharded_linear_scan` (re-exported here); this module
makes the mesh and checks the ``(mesh, axis)`` pair.

Only the linear cells can be cut this way: an LSTM's or GRU's step reads ``h_{t-1}`` through
a nonlinearity, so block ``k`` cannot start before block ``k - 1`` ends, and a pipeline over
devices runs no faster than one device. Shard their batch instead (`jaxrnn.distributed`).
"""

from jax.sharding import Mesh

from jaxrnn.checks import fail
from jaxrnn.distributed import one_axis_mesh
from jaxrnn.parallel import place_over_time
from jaxrnn.parallel import sharded_linear_scan

TIME = "time"


def time_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"time"`` over ``devices`` (default: all of them), for
    ``jaxrnn.Strategy(mode="parallel", time_sharding=(mesh, "time"))``.

    Examples:
      >>> from jaxrnn.time_sharding import time_mesh
      >>> time_mesh().axis_names
      ('time',)
    """
    return one_axis_mesh(TIME, devices)


def check_time_sharding(time_sharding) -> tuple[Mesh, str]:
    """``(mesh, axis)`` from `jaxrnn.Strategy`'s ``time_sharding``, or a `ValueError` that
    says what was expected.

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
        fail(
            "time_sharding",
            "(mesh, axis name), e.g. (jaxrnn.time_sharding.time_mesh(), 'time')",
            time_sharding,
        )
    mesh, axis = time_sharding
    if axis not in mesh.axis_names:
        fail("time_sharding", f"an axis of the mesh, one of {mesh.axis_names}", axis)
    return mesh, axis


__all__ = (
    "TIME",
    "check_time_sharding",
    "place_over_time",
    "sharded_linear_scan",
    "time_mesh",
)
