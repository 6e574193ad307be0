"""The speed half of ``benchmarks/gpu_check.sh``: LSTM/GRU training and inference against Flax,
cuDNN through JAX (``jax.experimental.rnn``) and PyTorch, and the linear recurrences in
parallel against sequential mode, each side by side in one process.

    python benchmarks/gpu_check.py            # on a GPU: the reference sizes, a GPU size
    python benchmarks/gpu_check.py --cpu      # tiny sizes, any machine (tested in make test)

Printed: median ms per step over repeats, [min-max], and x = time / jaxrnn's time (> 1:
jaxrnn is faster); then the GPU goals stated as met or not. ``--json`` keeps everything.
"""

import argparse
import platform
import statistics
import sys

import jax
import jax.numpy as jnp
import rnn_speed
from common import save_json

import jaxrnn

GPU_CONFIGS = [*rnn_speed.CONFIGS, (256, 512, 64, 1024)]  # the four reference sizes + a GPU one
CPU_CONFIGS = [(4, 6, 3, 8)]
GPU_LENGTHS = (4096, 65536)
CPU_LENGTHS = (16, 64)
GOALS = {
    "lstm_train_vs_cudnn": 0.8,  # jaxrnn's LSTM training step >= 0.8x cuDNN at the GPU size
    "mingru_parallel_speedup": 10.0,  # minGRU parallel >= 10x sequential at T = 65,536
}


def make_cudnn(cell_name, b, t, i, h, pattern="last"):
    """cuDNN's LSTM through ``jax.experimental.rnn`` (GPU only), reading the final carry."""
    del pattern
    from jax.experimental import rnn as cudnn

    if cell_name != "lstm":
        raise NotImplementedError("jax.experimental.rnn has only an LSTM")
    if jax.default_backend() != "gpu":
        raise NotImplementedError("jax.experimental.rnn.lstm calls cuDNN: it needs a GPU")
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "rnn": cudnn.init_lstm_weight(k1, i, h, 1, False),
        "head": jax.random.normal(k2, (h, 1)) * 0.1,
    }
    zeros = jnp.zeros((1, b, h))
    lengths = jnp.full((b,), t, jnp.int32)

    def predict(params, xs):
        _, h_n, _ = cudnn.lstm(xs, zeros, zeros, params["rnn"], lengths, i, h, 1, 0.0, False)
        return h_n[0] @ params["head"]

    return params, predict


IMPLEMENTATIONS = {  # name: (maker, pattern), see rnn_speed.py
    "jaxrnn": (rnn_speed.make_jaxrnn, "last"),
    "jaxrnn (every output)": (rnn_speed.make_jaxrnn, "every"),
    "flax": (rnn_speed.make_flax, "last"),
    "cudnn (jax.experimental.rnn)": (make_cudnn, "last"),
}


def time_config(cell_name, config, steps, repeats, with_torch, device):
    runners, skipped = {}, {}
    for name, (maker, pattern) in IMPLEMENTATIONS.items():
        try:
            runners[name] = rnn_speed.jax_runners(maker, cell_name, *config, pattern)
            for run, sync in runners[name].values():
                sync(run())
                sync(run())
        except NotImplementedError as error:
            runners.pop(name, None)
            skipped[name] = str(error)
    if with_torch:
        runners["pytorch"] = rnn_speed.torch_runners(cell_name, *config, device=device)
        for run, sync in runners["pytorch"].values():
            sync(run())
    samples = {name: {"train": [], "infer": []} for name in runners}
    for _ in range(repeats):
        for task in ("train", "infer"):
            for name, runner in runners.items():
                samples[name][task].append(rnn_speed.time_steps(*runner[task], steps))
    rows = {}
    for name in runners:
        rows[name] = {}
        for task in ("train", "infer"):
            ms = [1000 * s for s in samples[name][task]]
            rows[name][task] = {
                "median_ms": statistics.median(ms),
                "min_ms": min(ms),
                "max_ms": max(ms),
            }
    for name in rows:
        for task in ("train", "infer"):
            rows[name][task]["vs_jaxrnn"] = (
                rows[name][task]["median_ms"] / rows["jaxrnn"][task]["median_ms"]
            )
    return rows, skipped


def time_linear(lengths, batch, hidden, steps, repeats):
    rows = []
    for name in ("mingru", "lru"):
        cell = getattr(jaxrnn, name)(hidden)
        params = cell.init(jax.random.key(0), 32)
        for t in lengths:
            xs = jax.random.normal(jax.random.key(1), (batch, t, 32))
            ms = {}
            for mode in ("sequential", "parallel"):
                loss = lambda p, x, mode=mode, cell=cell: jnp.sum(
                    jaxrnn.unroll(cell, p, x, strategy=jaxrnn.Strategy(mode=mode))[1]
                )
                fn = jax.jit(jax.value_and_grad(loss))
                run = lambda fn=fn, params=params, xs=xs: fn(params, xs)
                sync = jax.block_until_ready
                sync(run())
                ms[mode] = statistics.median(
                    1000 * rnn_speed.time_steps(run, sync, steps) for _ in range(repeats)
                )
            rows.append({"cell": name, "t": t, **ms, "speedup": ms["sequential"] / ms["parallel"]})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="tiny sizes, for any machine")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    if not args.cpu and not on_gpu:
        raise SystemExit(
            f"error: no GPU (JAX's backend is {jax.default_backend()!r}); run with --cpu for the "
            "tiny-size check"
        )
    configs, lengths = (CPU_CONFIGS, CPU_LENGTHS) if args.cpu else (GPU_CONFIGS, GPU_LENGTHS)
    steps, repeats = (2, 2) if args.cpu else (10, 5)
    device = "cuda" if on_gpu else "cpu"
    try:
        import torch

        with_torch = True
        if device == "cuda" and not torch.cuda.is_available():
            print("PyTorch has no CUDA here: skipping it", file=sys.stderr)
            with_torch = False
    except ImportError:
        print("PyTorch is not installed: skipping it", file=sys.stderr)
        with_torch = False
    machine = {
        "platform": platform.platform(),
        "jax": jax.__version__,
        "devices": str(jax.devices()),
    }
    print(f"machine: {machine}")
    results = {"machine": machine, "configs": [], "linear": []}
    for cell_name in ("lstm", "gru"):
        for config in configs:
            rows, skipped = time_config(cell_name, config, steps, repeats, with_torch, device)
            results["configs"].append(
                {"cell": cell_name, "config": config, "rows": rows, "skipped": skipped}
            )
            b, t, i, h = config
            print(f"\n{cell_name.upper()} b={b} t={t} i={i} h={h} (ms: median [min-max]; x)")
            for name, row in rows.items():
                cells = [
                    f"{row[task]['median_ms']:9.2f} [{row[task]['min_ms']:8.2f}-"
                    f"{row[task]['max_ms']:8.2f}] {row[task]['vs_jaxrnn']:5.2f}"
                    for task in ("train", "infer")
                ]
                print(f"  {name:30s} train {cells[0]}   infer {cells[1]}")
            for name, why in skipped.items():
                print(f"  {name:30s} skipped: {why}")
    batch, hidden = (2, 8) if args.cpu else (16, 256)
    print(f"\nlinear recurrences, forward + backward of sum(ys), batch {batch}, hidden {hidden}:")
    results["linear"] = time_linear(lengths, batch, hidden, steps, repeats)
    for row in results["linear"]:
        print(
            f"  {row['cell']:7s} T={row['t']:>6d}  sequential {row['sequential']:9.2f} ms  "
            f"parallel {row['parallel']:9.2f} ms  speed-up {row['speedup']:5.2f}x"
        )
    print("\ngoals:")
    largest = [e for e in results["configs"] if e["cell"] == "lstm"][-1]
    cudnn = largest["rows"].get("cudnn (jax.experimental.rnn)")
    if cudnn is None:
        print("  LSTM training >= 0.8x cuDNN: not measured (no cuDNN here)")
    else:
        ratio = cudnn["train"]["median_ms"] / largest["rows"]["jaxrnn"]["train"]["median_ms"]
        verdict = "met" if ratio >= GOALS["lstm_train_vs_cudnn"] else "NOT met"
        print(f"  LSTM training vs cuDNN at {largest['config']}: {ratio:.2f}x ({verdict})")
    longest = max((r for r in results["linear"] if r["cell"] == "mingru"), key=lambda r: r["t"])
    verdict = "met" if longest["speedup"] >= GOALS["mingru_parallel_speedup"] else "NOT met"
    speedup = f"{longest['speedup']:.2f}x"
    print(f"  minGRU parallel vs sequential at T={longest['t']}: {speedup} ({verdict})")
    if args.json:
        save_json(args.json, results)


if __name__ == "__main__":
    main()
