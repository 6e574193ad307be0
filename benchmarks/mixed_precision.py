"""Mixed precision on this machine: float32 params with bfloat16 compute against float32.

One jitted training step (Adam, many-to-one MSE, jaxrnn's default fused path) and forward-only
inference, for float32, mixed (``compute_dtype=jnp.bfloat16``, float32 params and carries) and
all-bfloat16 (bfloat16 params), side by side in one process, round-robin over ``--repeats``.
Printed: median milliseconds per step and each variant's time as a multiple of float32's
(< 1: faster than float32). On a CPU, XLA may compute bfloat16 products by widening them, so
the ratio says what bfloat16 costs here, not what it saves on a GPU or TPU.

    python benchmarks/mixed_precision.py
    python benchmarks/mixed_precision.py --cell gru --configs 64,100,32,512 --repeats 7
"""

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn

CONFIGS = [(64, 100, 32, 128), (64, 100, 32, 512), (32, 500, 32, 128)]
VARIANTS = ("float32", "mixed", "bfloat16")


def build(cell_name, variant, b, t, i, h):
    """``(train_step, infer, state)`` of one variant at one size."""
    make = getattr(jaxrnn, cell_name)
    cell = make(h, compute_dtype=jnp.bfloat16) if variant == "mixed" else make(h)
    dtype = jnp.bfloat16 if variant == "bfloat16" else jnp.float32
    params = {
        "rnn": cell.init(jax.random.key(0), i, dtype=dtype),
        "w": jnp.zeros((h, 1), dtype),
    }
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((b, t, i)), dtype)
    ys = jnp.asarray(rng.standard_normal((b, 1)), jnp.float32)
    optimizer = optax.adam(1e-3)

    def loss(params, xs, ys):
        last = jaxrnn.many_to_one(cell, params["rnn"], xs)
        predicted = (last @ params["w"].astype(last.dtype)).astype(jnp.float32)
        return jnp.mean((predicted - ys) ** 2)

    @jax.jit
    def train_step(params, opt_state):
        value, grads = jax.value_and_grad(loss)(params, xs, ys)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    infer = jax.jit(lambda params: jaxrnn.many_to_one(cell, params["rnn"], xs))
    return train_step, infer, (params, optimizer.init(params))


def milliseconds(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return 1e3 * (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--configs", nargs="*", help="b,t,i,h sizes")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configs = [tuple(map(int, c.split(","))) for c in args.configs] if args.configs else CONFIGS
    print(f"{args.cell}, {platform.processor() or platform.machine()}, jax {jax.__version__}")
    print(f"{'(b, t, i, h)':20s} {'pass':6s}" + "".join(f"{v:>12s}" for v in VARIANTS))
    for config in configs:
        built = {v: build(args.cell, v, *config) for v in VARIANTS}
        runs = {}
        for v, (train_step, infer, (params, opt_state)) in built.items():
            jax.block_until_ready(train_step(params, opt_state))  # compile
            jax.block_until_ready(infer(params))
            runs[v] = {
                "train": lambda s=train_step, p=params, o=opt_state: s(p, o),
                "infer": lambda f=infer, p=params: f(p),
            }
        for kind in ("train", "infer"):
            times = {v: [] for v in VARIANTS}
            for _ in range(args.repeats):  # round-robin: every variant sees the same load
                for v in VARIANTS:
                    times[v].append(milliseconds(runs[v][kind], args.steps))
            median = {v: statistics.median(times[v]) for v in VARIANTS}
            cells = "".join(f"{median[v]:9.2f} ms" for v in VARIANTS)
            ratios = ", ".join(f"{v} {median[v] / median['float32']:.2f}x" for v in VARIANTS[1:])
            print(f"{config!s:20s} {kind:6s}{cells}   ({ratios} of float32's time)")


if __name__ == "__main__":
    main()
