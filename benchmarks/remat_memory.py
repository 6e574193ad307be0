"""Peak memory of an LSTM training step on very long sequences, with and without ``remat``.

Each setting runs in its own process (so peak RSS is its own), measured by the kernel
(``os.wait4``'s resource usage of that child: the number ``/usr/bin/time -v`` prints as
"Maximum resident set size"). Task: batch 8, hidden 128, input 8, many-to-one MSE, one jitted
training step with Adam after compilation.

    python benchmarks/remat_memory.py                 # T = 10k and 100k, remat off / sqrt(T)
    python benchmarks/remat_memory.py --lengths 10000 --json benchmarks/results/remat.json
    python benchmarks/remat_memory.py --lengths 300000 1000000   # remat only at 1M
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

from common import save_json

CHILD = r"""
import sys, time, json
import jax, jax.numpy as jnp, optax
import jaxrnn

t, remat = int(sys.argv[1]), int(sys.argv[2]) or None
b, i, h = 8, 8, 128
cell = jaxrnn.lstm(h)
params = {"rnn": cell.init(jax.random.key(0), i), "head": jnp.zeros((h, 1))}
xs = jax.random.normal(jax.random.key(1), (b, t, i))
ys = jnp.zeros((b, 1))
opt = optax.adam(1e-3)

def loss(p):
    carry, _ = jaxrnn.unroll(cell, p["rnn"], xs, strategy=jaxrnn.Strategy(remat=remat))
    return jnp.mean((carry.h @ p["head"] - ys) ** 2)

@jax.jit
def step(p, s):
    value, grads = jax.value_and_grad(loss)(p, )
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s, value

state = opt.init(params)
params, state, value = step(params, state)
value.block_until_ready()
started = time.perf_counter()
params, state, value = step(params, state)
value.block_until_ready()
print(json.dumps({"step_seconds": time.perf_counter() - started, "loss": float(value)}))
"""


def run(t: int, remat: int) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(t), str(remat)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    result = {
        "time_steps": t,
        "remat": remat or None,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }
    if os.waitstatus_to_exitcode(status) != 0:
        result["error"] = err.strip().splitlines()[-1][:200] if err.strip() else "killed"
    else:
        result.update(json.loads(out.strip().splitlines()[-1]))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--max-without-remat",
        type=int,
        default=300_000,
        help="longest T run without remat (its memory grows with T; 1M needs about 30 GB)",
    )
    args = parser.parse_args(argv)
    rows = []
    for t in args.lengths:
        for remat in (int(math.sqrt(t)), 0):
            if not remat and t > args.max_without_remat:
                limit = f"--max-without-remat {args.max_without_remat:,}"
                print(f"T={t:>7,}  remat= None  not run ({limit})")
                continue
            row = run(t, remat)
            rows.append(row)
            peak = f"{row['peak_rss_mb']:,.0f} MB"
            status = row.get("error") or f"step {row['step_seconds']:.2f} s"
            print(
                f"T={t:>7,}  remat={row['remat']!s:>5s}  peak RSS {peak:>9s}  {status}",
                flush=True,
            )
    if args.json:
        save_json(args.json, rows)


if __name__ == "__main__":
    main()
