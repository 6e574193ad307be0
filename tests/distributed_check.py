"""Run with XLA_FLAGS=--xla_force_host_platform_device_count=4: trains the toy problem on one
device and data-parallel on all, and prints both loss trajectories as JSON."""

import json

import jax
import numpy as np
import toy_problem

from jaxrnn import distributed
from jaxrnn import train

runs = {}
for data_parallel in (False, True):
    xs, ys = toy_problem.make_data()
    result = train.fit(
        toy_problem.loss_fn,
        toy_problem.init_params(),
        train.EpochBatches((xs, ys), 16, seed=3),
        num_steps=15,
        log_every=1,
        optimizer=train.default_optimizer(1e-2),
        progress=False,
        seed=1,
        data_parallel=data_parallel,
    )
    runs[str(data_parallel)] = {
        "losses": [r["loss"] for r in result.history if r["split"] == "train"],
        "params": [float(v) for v in jax.tree.leaves(result.params)[0].ravel()[:8]],
        "sharding": str(jax.tree.leaves(result.params)[0].sharding),
    }
try:
    distributed.shard_batch({"x": np.zeros((17, 2))}, distributed.batch_mesh())
    uneven = "accepted"
except ValueError as error:
    uneven = str(error)
print(json.dumps({"devices": jax.device_count(), "runs": runs, "uneven": uneven}))
