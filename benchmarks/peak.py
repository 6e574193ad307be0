"""The physical limit of this CPU for the benchmarks' arithmetic: float32 matrix-product
throughput with one core and with every core busy.

A large product (``--size``, default 2048: 17 GFLOP) keeps the cores' vector units fed from
cache; it is timed with XLA (``jnp.dot``, which splits a large product over the cores) and
with NumPy's BLAS, single-threaded and multi-threaded, and the best of each is reported as
GFLOP/s. ``rnn_speed.py --peak`` reads ``results/peak.json`` to print every row as a
fraction of the all-cores peak.

    python benchmarks/peak.py --json benchmarks/results/peak.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import save_json


def gflops(fn, size: int, repeats: int) -> float:
    """Median GFLOP/s of ``fn()``, one ``size``-cubed product per call, after a warm-up."""
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e9


def measure(size: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    xa, xb = jnp.asarray(a), jnp.asarray(b)
    dot = jax.jit(jnp.dot)
    return {
        "xla": gflops(lambda: dot(xa, xb).block_until_ready(), size, repeats),
        "numpy": gflops(lambda: a @ b, size, repeats),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    parser.add_argument("--one-core", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_core:  # the child: print this process's numbers for one core
        print(json.dumps(measure(args.size, args.repeats)))
        return
    cores = os.cpu_count() or 1
    every_core = measure(args.size, args.repeats)
    # One core: a child process pinned to CPU 0 with one BLAS thread and XLA's Eigen pool off.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"),
    }
    child = subprocess.run(
        ["taskset", "-c", "0", sys.executable, __file__, "--one-core", "--size", str(args.size)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    one_core = json.loads(child.stdout.strip().splitlines()[-1])
    result = {
        "cpus": cores,
        "size": args.size,
        "one_core_gflops": one_core,
        "all_cores_gflops": every_core,
        "peak_gflops": max(every_core.values()),
        "one_core_peak_gflops": max(one_core.values()),
    }
    print(f"float32 {args.size}^3 products, GFLOP/s (median of {args.repeats}):")
    print(f"  one core:   XLA {one_core['xla']:7.1f}   NumPy {one_core['numpy']:7.1f}")
    print(f"  {cores} cores:    XLA {every_core['xla']:7.1f}   NumPy {every_core['numpy']:7.1f}")
    print(f"peak (all cores): {result['peak_gflops']:.1f} GFLOP/s")
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    main()
