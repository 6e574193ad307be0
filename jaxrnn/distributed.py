"""Data-parallel training over several devices and several processes with `jax.sharding`.

A `Mesh` with one axis, ``"batch"``, over the devices; batches are split along their leading
axis (`NamedSharding` with ``P("batch")``) and params and optimizer state are replicated. The
jitted train step is unchanged: XLA inserts the gradient all-reduce. `jaxrnn.train.fit` does
all of this with ``data_parallel=True``.

Several processes (one per host, or several on one machine): call `initialize` at the start
of every process. `jax.devices()` then lists the devices of all processes, `batch_mesh` spans
them, and every process passes only its share of each global batch (`process_share` cuts it
from the global batch); `shard_batch` joins the shares with
`jax.make_array_from_process_local_data`. ``python -m jaxrnn.launch`` starts the processes
on one machine. The time axis of the linear recurrences can be split over devices as well:
``jaxrnn.Strategy(mode="parallel", time_sharding=...)``.
"""

import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

BATCH = "batch"


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    **kwargs: Any,
) -> None:
    """Joins this process to a multi-process JAX run (`jax.distributed.initialize`).

    Arguments left out are read from the environment variables ``JAX_COORDINATOR_ADDRESS``
    (``host:port`` of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (which
    ``python -m jaxrnn.launch`` sets), or else detected by JAX on SLURM, Open MPI and
    Kubernetes. CPU devices exchange gradients through gloo (JAX's CPU collectives), which
    this selects unless another implementation was chosen. Call it once, before anything
    else uses JAX. ``kwargs`` go to `jax.distributed.initialize` (e.g.
    ``heartbeat_timeout_seconds``: how long before a lost process is declared dead).

    Raises:
      ValueError: ``JAX_NUM_PROCESSES`` or ``JAX_PROCESS_ID`` is not an integer, or the
        process id is out of range.

    Examples:
      >>> from jaxrnn import distributed
      >>> distributed.initialize  # doctest: +ELLIPSIS
      <function initialize at ...>
    """
    num_processes = _from_env("JAX_NUM_PROCESSES", num_processes)
    process_id = _from_env("JAX_PROCESS_ID", process_id)
    if num_processes is not None and process_id is not None:
        if not 0 <= process_id < num_processes:
            raise ValueError(
                f"process_id must be in [0, {num_processes}) for {num_processes} processes, "
                f"got {process_id}"
            )
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        **kwargs,
    )


def _from_env(name: str, value: int | None) -> int | None:
    if value is not None or not os.environ.get(name):
        return value
    try:
        return int(os.environ[name])
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {os.environ[name]!r}") from None


def batch_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"batch"`` over ``devices`` (default: all of them, of every
    process).

    Examples:
      >>> from jaxrnn.distributed import batch_mesh
      >>> batch_mesh().axis_names
      ('batch',)
    """
    return one_axis_mesh(BATCH, devices)


def one_axis_mesh(name: str, devices=None) -> Mesh:
    """A mesh with the one axis ``name`` over ``devices`` (default: all of them, of every
    process).

    Examples:
      >>> from jaxrnn.distributed import one_axis_mesh
      >>> one_axis_mesh("data").axis_names
      ('data',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (name,))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every array of ``tree`` on every device of ``mesh``.

    With several processes, every process must pass the same values (e.g. params made from
    the same seed).

    Examples:
      >>> from jaxrnn.distributed import batch_mesh, replicate
      >>> import jax.numpy as jnp
      >>> params = replicate({"w": jnp.ones(3)}, batch_mesh())
      >>> params["w"].sharding.is_fully_replicated
      True
    """
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def place(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))

    return jax.tree.map(place, tree)


def process_share(batch: Any) -> Any:
    """This process's rows of a global batch: the ``i``-th of `jax.process_count` equal
    blocks of every array's leading axis, for process ``i``. One process gets the whole batch.

    Raises:
      ValueError: if a leading dimension does not split evenly over the processes.

    Examples:
      >>> from jaxrnn.distributed import process_share
      >>> import numpy as np
      >>> process_share({"x": np.arange(8)})["x"].shape  # one process: all rows
      (8,)
    """
    count, index = jax.process_count(), jax.process_index()
    if count == 1:
        return batch
    _check_even(batch, count, "processes")
    return jax.tree.map(
        lambda leaf: (
            leaf
            if np.ndim(leaf) == 0
            else leaf[index * (len(leaf) // count) : (index + 1) * (len(leaf) // count)]
        ),
        batch,
    )


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Splits every array of ``batch`` along its leading (batch) axis over the mesh.

    With several processes, ``batch`` is this process's share (`process_share`) and the
    global batch is the shares of processes 0, 1, ... end to end.

    Raises:
      ValueError: if a leading dimension is not a multiple of the number of devices (of
        this process's devices, with several processes).

    Examples:
      >>> from jaxrnn.distributed import batch_mesh, shard_batch
      >>> import numpy as np
      >>> batch = shard_batch({"x": np.zeros((8, 3))}, batch_mesh())
      >>> batch["x"].shape
      (8, 3)
    """
    sharded = NamedSharding(mesh, PartitionSpec(BATCH))
    replicated = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        _check_even(batch, mesh.devices.size, "devices")
        return jax.tree.map(
            lambda leaf: jax.device_put(leaf, sharded if np.ndim(leaf) else replicated), batch
        )
    local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    _check_even(batch, local, "devices of this process")
    return jax.tree.map(
        lambda leaf: jax.make_array_from_process_local_data(
            sharded if np.ndim(leaf) else replicated, np.asarray(leaf)
        ),
        batch,
    )


def _check_even(batch: Any, count: int, what: str) -> None:
    for leaf in jax.tree.leaves(batch):
        if np.ndim(leaf) and np.shape(leaf)[0] % count:
            raise ValueError(
                f"a batch array has leading dimension {np.shape(leaf)[0]}, which does not "
                f"split evenly over {count} {what}; use a batch size that is a multiple of "
                f"{count}"
            )


def barrier(name: str) -> None:
    """Waits until every process has reached the barrier ``name`` (nothing with one process).

    Examples:
      >>> from jaxrnn.distributed import barrier
      >>> barrier("checkpoint saved")
    """
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def lost_processes() -> list[int] | None:
    """The processes that the coordinator (process 0) no longer hears from, or None when
    that cannot be known (one process, or the coordinator itself is gone).

    Examples:
      >>> from jaxrnn.distributed import lost_processes
      >>> lost_processes() is None  # one process
      True
    """
    if jax.process_count() == 1:
        return None
    try:
        from jax._src import distributed as jax_distributed  # the client has no public handle

        live = jax_distributed.global_state.client.get_live_nodes(list(range(jax.process_count())))
    except Exception:
        return None
    return sorted(set(range(jax.process_count())) - set(live))


__all__ = (
    "BATCH",
    "barrier",
    "batch_mesh",
    "initialize",
    "lost_processes",
    "one_axis_mesh",
    "process_share",
    "replicate",
    "shard_batch",
)
