"""Linear recurrences: parallel (associative scan) against sequential (lax.scan) evaluation.

Forward + backward of ``sum(ys)`` for minGRU, minLSTM and LRU at batch 16, hidden 256, for
several sequence lengths, side by side in one process (median of repeats, ms per call).

    python benchmarks/parallel_scan.py
    python benchmarks/parallel_scan.py --lengths 4096 --json benchmarks/results/parallel.json
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from common import save_json

import jaxrnn

CELLS = {"mingru": jaxrnn.mingru, "minlstm": jaxrnn.minlstm, "lru": jaxrnn.lru}


def timed(fn, args, steps, repeats):
    jax.block_until_ready(fn(*args))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            out = fn(*args)
        jax.block_until_ready(out)
        samples.append(1000 * (time.perf_counter() - start) / steps)
    return statistics.median(samples), min(samples), max(samples)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--lengths", type=int, nargs="*", default=[256, 1024, 4096])
    parser.add_argument("--cells", nargs="*", default=list(CELLS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'cell':8s} {'T':>6s} {'sequential ms':>22s} {'parallel ms':>22s} {'speed-up':>9s}")
    for name in args.cells:
        cell = CELLS[name](args.hidden)
        params = cell.init(jax.random.key(0), args.input)
        for t in args.lengths:
            xs = jax.random.normal(jax.random.key(1), (args.batch, t, args.input))
            timings = {}
            for mode in ("sequential", "parallel"):
                loss = lambda p, x, mode=mode, cell=cell: jnp.sum(
                    jaxrnn.unroll(cell, p, x, strategy=jaxrnn.Strategy(mode=mode))[1]
                )
                fn = jax.jit(jax.value_and_grad(loss))
                timings[mode] = timed(fn, (params, xs), args.steps, args.repeats)
            speedup = timings["sequential"][0] / timings["parallel"][0]
            rows.append(
                {
                    "cell": name,
                    "time_steps": t,
                    "batch": args.batch,
                    "hidden": args.hidden,
                    "sequential_ms": timings["sequential"],
                    "parallel_ms": timings["parallel"],
                    "speedup": speedup,
                }
            )
            cells = [
                f"{m:8.1f} [{lo:6.1f}-{hi:6.1f}]"
                for m, lo, hi in (timings["sequential"], timings["parallel"])
            ]
            print(f"{name:8s} {t:6d} {cells[0]:>22s} {cells[1]:>22s} {speedup:8.1f}x", flush=True)
    if "mingru" in args.cells:
        # What no evaluation order of the recurrence can remove: the input projection, the
        # gates and their gradients, timed with the recurrence left out (h_t = z_t * h~_t).
        cell, t = CELLS["mingru"](args.hidden), max(args.lengths)
        params = cell.init(jax.random.key(0), args.input)
        xs = jax.random.normal(jax.random.key(1), (args.batch, t, args.input))

        def gates_only(p, x):
            _, b = cell.linear.coefficients(p, cell.project(p, jnp.swapaxes(x, 0, 1)))
            return jnp.sum(b)

        fn = jax.jit(jax.value_and_grad(gates_only))
        median, low, high = timed(fn, (params, xs), args.steps, args.repeats)
        sequential = next(r for r in rows if r["cell"] == "mingru" and r["time_steps"] == t)
        print(
            f"mingru T={t}: projection and gates alone, no recurrence: {median:.1f} ms "
            f"[{low:.1f}-{high:.1f}]; a 5x speed-up over sequential needs "
            f"{sequential['sequential_ms'][0] / 5:.1f} ms for everything"
        )
        rows.append({"cell": "mingru", "time_steps": t, "gates_only_ms": (median, low, high)})
    if args.json:
        save_json(args.json, rows)


if __name__ == "__main__":
    main()
