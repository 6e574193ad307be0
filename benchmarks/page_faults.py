"""How much fresh memory one step makes the kernel fault in: jaxrnn, Flax and PyTorch.

A jitted call gets its temporary buffers from ``malloc``; glibc serves blocks over 32 MiB with
a fresh ``mmap``, which the kernel zero-fills one 4 KiB page at a time on first touch. This
script counts the minor page faults (``getrusage``) of one LSTM/GRU training step and one
inference step per implementation, at the reference configurations, and times a 64 MB
elementwise op with a fresh output and with a donated (reused) one. Compare a run with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` in the environment (transparent huge pages):

    python benchmarks/page_faults.py
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/page_faults.py
"""

import argparse
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import rnn_speed

PAGE_MB = resource.getpagesize() / 2**20


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(run, sync, calls: int) -> tuple[float, float]:
    """(median ms per call, MB faulted in per call) after two warm-up calls."""
    sync(run())
    sync(run())
    before, times = _faults(), []
    for _ in range(calls):
        start = time.perf_counter()
        sync(run())
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), (_faults() - before) / calls * PAGE_MB


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", choices=sorted(rnn_speed.GATES), default="lstm")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    args = parser.parse_args(argv)

    x = jnp.ones((4096, 16, 256))
    fresh = jax.jit(lambda a: a * 2.0 + 1.0)
    donated = jax.jit(lambda a: a * 0.5 + 1.0, donate_argnums=0)
    state = {"x": x + 0}

    def donated_once():
        state["x"] = donated(state["x"])
        return state["x"]

    ready = lambda v: v.block_until_ready()
    for name, run in (("fresh output", lambda: fresh(x)), ("donated buffer", donated_once)):
        ms, mb = measure(run, ready, args.calls)
        print(f"x * 2 + 1 on 64 MB, {name:15s} {ms:7.1f} ms/call {mb:8.1f} MB faulted/call")

    print(f"\n{args.cell.upper()}: MB faulted in per step (median ms per step)")
    names = ["jaxrnn", "flax"]
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: skipping it", file=sys.stderr)
        else:
            names.append("pytorch")
    print(f"{'b, t, i, h':18s} " + " ".join(f"{n + ' train':>22s}" for n in names))
    for config in rnn_speed.CONFIGS:
        cells = []
        for name in names:
            if name == "pytorch":
                runners = rnn_speed.torch_runners(args.cell, *config)
            else:
                maker = rnn_speed.JAX_IMPLEMENTATIONS[name]
                runners = rnn_speed.jax_runners(maker, args.cell, *config)
            ms, mb = measure(*runners["train"], args.calls)
            cells.append(f"{mb:8.1f} MB ({ms:6.1f} ms)")
        print(f"{config!s:18s} " + " ".join(f"{c:>22s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
