"""Run with XLA_FLAGS=--xla_force_host_platform_device_count=4: the linear cells unrolled in
parallel mode with the time axis split over the 4 devices, against one device; prints, as
JSON, the largest relative difference of values and gradients per case, and the sharding."""

import json

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.time_sharding import time_mesh

CELLS = {
    "mingru": (jaxrnn.mingru(8), 3),
    "minlstm": (jaxrnn.minlstm(8), 3),
    "lru": (jaxrnn.lru(8, state_size=6), 3),
    "rg_lru": (jaxrnn.rg_lru(8), 8),
}


def relative(x, y) -> float:
    x, y = np.asarray(x), np.asarray(y)
    return float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30))


def main():
    mesh = time_mesh()
    report = {"devices": jax.device_count(), "cases": {}}
    for name, (cell, inputs) in CELLS.items():
        params = cell.init(jax.random.key(0), inputs)
        xs = jax.random.normal(jax.random.key(1), (3, 37, inputs))  # 37: not a multiple of 4
        carry0 = jax.tree.map(lambda c: 0.5 * jnp.ones_like(c), cell.initial_carry(params, (3,)))
        resets = jnp.zeros((3, 37), bool).at[0, 11].set(True).at[2, 30].set(True)
        for reverse in (False, True):
            options = dict(
                reverse=reverse,
                seq_lengths=jnp.array([37, 20, 33]),
                resets=resets,
                initial_carry=carry0,
            )

            def loss(params, xs, sharding, cell=cell, options=options):
                strategy = jaxrnn.Strategy(mode="parallel", time_sharding=sharding)
                carry, ys = jaxrnn.unroll(cell, params, xs, strategy=strategy, **options)
                squares = [jnp.sum(jnp.abs(leaf) ** 2) for leaf in jax.tree.leaves(carry)]
                return jnp.sum(ys**2) + sum(squares), ys

            grad = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
            (v1, ys1), g1 = grad(params, xs, None)
            sharded = jax.jit(grad, static_argnums=2)
            (v2, ys2), g2 = sharded(params, xs, (mesh, "time"))
            report["cases"][f"{name} reverse={reverse}"] = {
                "value": relative(v2, v1),
                "outputs": relative(ys2, ys1),
                "grads": max(
                    relative(a, b)
                    for a, b in zip(jax.tree.leaves(g2), jax.tree.leaves(g1), strict=True)
                ),
            }
    # With a length that splits evenly, the outputs stay split over the devices.
    cell, inputs = CELLS["mingru"]
    params = cell.init(jax.random.key(0), inputs)
    run = jax.jit(
        lambda params, xs: jaxrnn.unroll(
            cell,
            params,
            xs,
            strategy=jaxrnn.Strategy(mode="parallel", time_sharding=(mesh, "time")),
        )[1]
    )
    ys = run(params, jnp.ones((3, 40, inputs)))
    report["output_block"] = list(ys.sharding.shard_shape(ys.shape))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
