"""Data-parallel training over several devices with `jax.sharding`.

A `Mesh` with one axis, ``"batch"``, over the devices; batches are split along their leading
axis (`NamedSharding` with ``P("batch")``) and params and optimizer state are replicated. The
jitted train step is unchanged: XLA inserts the gradient all-reduce. `jaxrnn.train.fit` does
all of this with ``data_parallel=True``.

Multi-host: call ``jax.distributed.initialize()`` at the start of every process; `jax.devices()`
then lists the devices of all hosts and `batch_mesh` spans them. Each process must then feed
only its own slice of every batch, assembled with `jax.make_array_from_process_local_data`
(see the README's "Many devices" section).
"""

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

BATCH = "batch"


def batch_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"batch"`` over ``devices`` (default: all of them).

    Examples:
      >>> from jaxrnn.distributed import batch_mesh
      >>> batch_mesh().axis_names
      ('batch',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (BATCH,))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every array of ``tree`` on every device of ``mesh``.

    Examples:
      >>> from jaxrnn.distributed import batch_mesh, replicate
      >>> import jax.numpy as jnp
      >>> params = replicate({"w": jnp.ones(3)}, batch_mesh())
      >>> params["w"].sharding.is_fully_replicated
      True
    """
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Splits every array of ``batch`` along its leading (batch) axis over the mesh.

    Raises:
      ValueError: if a leading dimension is not a multiple of the number of devices.

    Examples:
      >>> from jaxrnn.distributed import batch_mesh, shard_batch
      >>> import numpy as np
      >>> batch = shard_batch({"x": np.zeros((8, 3))}, batch_mesh())
      >>> batch["x"].shape
      (8, 3)
    """
    count = mesh.devices.size
    for leaf in jax.tree.leaves(batch):
        if np.ndim(leaf) == 0:
            continue
        if np.shape(leaf)[0] % count:
            raise ValueError(
                f"a batch array has leading dimension {np.shape(leaf)[0]}, which does not split "
                f"evenly over {count} devices; use a batch size that is a multiple of {count}"
            )
    sharded = NamedSharding(mesh, PartitionSpec(BATCH))
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda leaf: jax.device_put(leaf, sharded if np.ndim(leaf) else replicated), batch
    )
