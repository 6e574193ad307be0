"""Memory per device of a minGRU training step with the time axis split over devices.

Each device count runs in its own process with that many simulated CPU devices
(``--xla_force_host_platform_device_count``). Per device: the bytes XLA allocates for one
device's program (its arguments, outputs and temporaries, from ``memory_analysis()`` of the
compiled step), which is what must fit in one accelerator's memory. The simulated devices of
one process share this machine's 2 cores and its RAM, so the step times say nothing about
real devices and the process's peak RSS is the sum over its devices.

Task: minGRU, batch 1, input 8, hidden 32, ``mode="parallel"``, every output in an MSE loss,
one jitted gradient step; xs is placed split over time before the step.

    python benchmarks/time_sharding_memory.py                        # T = 256k, 1M, 4M
    python benchmarks/time_sharding_memory.py --json benchmarks/results/time_sharding.json
"""

import argparse
import json
import os
import subprocess
import sys

from common import save_json

CHILD = r"""
import json, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import jaxrnn
from jaxrnn.time_sharding import time_mesh

t, run = int(sys.argv[1]), sys.argv[2] == "run"
b, i, h = 1, 8, 32
cell = jaxrnn.mingru(h)
params = cell.init(jax.random.key(0), i)
devices = jax.device_count()
sharding = (time_mesh(), "time") if devices > 1 else None

def loss(params, xs):
    strategy = jaxrnn.Strategy(mode="parallel", time_sharding=sharding)
    _, ys = jaxrnn.unroll(cell, params, xs, strategy=strategy)
    return jnp.mean(ys ** 2)

step = jax.jit(jax.value_and_grad(loss))
place = NamedSharding(time_mesh(), P(None, "time"))
xs_shape = jax.ShapeDtypeStruct((b, t, i), jnp.float32, sharding=place)
compiled = step.lower(params, xs_shape).compile()
m = compiled.memory_analysis()
per_device = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
out = {"t": t, "devices": devices, "per_device_mb": per_device / 2**20,
       "temp_mb": m.temp_size_in_bytes / 2**20}
if run:
    xs = jax.device_put(np.random.default_rng(0).standard_normal((b, t, i), np.float32), place)
    jax.block_until_ready(step(params, xs))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(step(params, xs))
        times.append(time.perf_counter() - start)
    out["step_s"] = sorted(times)[1]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def measure(t: int, devices: int, run: bool) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(t), "run" if run else "compile"],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        return {"t": t, "devices": devices, "error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[262144, 1048576, 4194304])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--budget-mb", type=float, default=1024, help="one device's memory")
    parser.add_argument("--no-run", action="store_true", help="compile only: no step times")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = []
    print(f"{'T':>9} {'devices':>7} {'MB/device':>10} {'fits':>5} {'step s':>8} {'RSS MB':>8}")
    for t in args.lengths:
        for devices in args.devices:
            row = measure(t, devices, not args.no_run)
            row["fits"] = "error" not in row and row["per_device_mb"] <= args.budget_mb
            rows.append(row)
            if "error" in row:
                print(f"{t:>9} {devices:>7}  {row['error']}")
                continue
            print(
                f"{t:>9} {devices:>7} {row['per_device_mb']:>10.0f} "
                f"{'yes' if row['fits'] else 'no':>5} {row.get('step_s', float('nan')):>8.2f} "
                f"{row.get('peak_rss_mb', float('nan')):>8.0f}",
                flush=True,
            )
    if args.json:
        save_json(args.json, {"budget_mb": args.budget_mb, "rows": rows})


if __name__ == "__main__":
    main()
