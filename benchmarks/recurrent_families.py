"""The newer recurrent families, each form side by side: the mLSTM's sequential, chunkwise and
parallel forms; the Mamba (S6) scan sequential and parallel; and, where installed, the native
PyTorch references (``mlstm_kernels``' recurrent, chunkwise and parallel functions, ``mambapy``'s
sequential and parallel scans) on the same shapes, in one process.

One training step is the forward and backward pass of ``sum(ys)`` (median of repeats, ms per
call). Memory is what XLA reserves for the compiled step's temporaries (its
``memory_analysis``), for every form, including those too large to time here; PyTorch's is not
measured. The jaxrnn timings include the cells' input projections; the PyTorch ones start from
projected ``q, k, v, i, f`` (mLSTM) or ``x, delta, A, B, C, D`` (Mamba).

    python benchmarks/recurrent_families.py
    python benchmarks/recurrent_families.py --lengths 512 2048 8192 --json results/fam.json
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from common import save_json

import jaxrnn

MLSTM_FORMS = {
    "sequential": jaxrnn.Strategy(),
    "chunkwise": jaxrnn.Strategy(mode="chunkwise", chunk_size=64),
    "parallel": jaxrnn.Strategy(mode="parallel"),
}
MAMBA_FORMS = {
    "sequential": jaxrnn.Strategy(),
    "parallel (loop)": jaxrnn.Strategy(mode="parallel", scan_method="loop"),
    "parallel (associative)": jaxrnn.Strategy(mode="parallel", scan_method="associative"),
}


def timed(fn, args, steps, repeats):
    """Median, min and max ms per call of ``fn(*args)`` after one warm-up call."""
    fn(*args)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn(*args)
        samples.append(1000 * (time.perf_counter() - start) / steps)
    return statistics.median(samples), min(samples), max(samples)


def jax_step(cell, strategy, params, xs):
    """The jitted training step and its compiled temporary memory in MiB."""

    def loss(p, x):
        return jnp.sum(jaxrnn.unroll(cell, p, x, strategy=strategy)[1])

    compiled = jax.jit(jax.value_and_grad(loss)).lower(params, xs).compile()
    mib = compiled.memory_analysis().temp_size_in_bytes / 2**20

    def run(p, x):
        return jax.block_until_ready(compiled(p, x))

    return run, mib


def torch_mlstm(batch, heads, t, d):
    """``mlstm_kernels``' native PyTorch forms as ``{name: step}``, or {} when not installed."""
    try:
        import torch
        from mlstm_kernels.torch.chunkwise.native.fwbw import mlstm_chunkwise__native_autograd
        from mlstm_kernels.torch.parallel.native.fwbw import mlstm_parallel__native_autograd
        from mlstm_kernels.torch.recurrent.native_sequence import (
            mlstm_recurrent_sequence__native_fw,
        )
    except ImportError:
        return {}
    g = torch.Generator().manual_seed(0)
    qkv = [torch.randn(batch, heads, t, d, generator=g, requires_grad=True) for _ in range(3)]
    gates = [torch.randn(batch, heads, t, generator=g, requires_grad=True) for _ in range(2)]

    def step(fn, **kw):
        def run():
            fn(*qkv, *gates, **kw).sum().backward()

        return run

    return {
        "sequential": step(mlstm_recurrent_sequence__native_fw),
        "chunkwise": step(mlstm_chunkwise__native_autograd, chunk_size=64),
        "parallel": step(mlstm_parallel__native_autograd),
    }


def torch_mamba(batch, t, d, n):
    """``mambapy``'s sequential and parallel scans as ``{name: step}``, or {} without it."""
    try:
        import torch
        from mambapy.mamba import MambaBlock
        from mambapy.mamba import MambaConfig
    except ImportError:
        return {}
    torch.manual_seed(0)
    block = MambaBlock(MambaConfig(d_model=d // 2, n_layers=1, d_state=n, expand_factor=2))
    x = torch.randn(batch, t, d, requires_grad=True)
    delta = torch.rand(batch, t, d, requires_grad=True)
    b, c = (torch.randn(batch, t, n, requires_grad=True) for _ in range(2))

    def step(fn):
        def run():
            fn(x, delta, -torch.exp(block.A_log), b, c, block.D).sum().backward()

        return run

    return {"sequential": step(block.selective_scan_seq), "parallel": step(block.selective_scan)}


def compare(name, cell, forms, torch_forms, xs, args, max_t):
    """One row per form: jaxrnn's time and memory, and PyTorch's time where it has the form."""
    params = cell.init(jax.random.key(0), xs.shape[-1])
    t = xs.shape[1]
    rows = []
    for form, strategy in forms.items():
        run, mib = jax_step(cell, strategy, params, xs)
        quadratic = form == "parallel" and name == "mlstm"
        timeable = not quadratic or t <= max_t
        ms = timed(run, (params, xs), args.steps, args.repeats)[0] if timeable else None
        torch_run = torch_forms.get(form.split(" ")[0])
        torch_ms = None
        if torch_run is not None and timeable and not form.endswith("(associative)"):
            torch_ms = timed(torch_run, (), args.steps, args.repeats)[0]
        rows.append(
            {"cell": name, "T": t, "form": form, "ms": ms, "temp_MiB": mib, "torch_ms": torch_ms}
        )
        show = lambda v: "-" if v is None else f"{v:.1f}"
        ratio = "-" if ms is None or torch_ms is None else f"{torch_ms / ms:.2f}"
        print(
            f"{name:6s} {t:6d} {form:24s} {show(ms):>10s} {mib:10.1f} {show(torch_ms):>10s} "
            f"{ratio:>8s}",
            flush=True,
        )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--state-size", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="*", default=[512, 1024, 2048, 4096, 8192])
    parser.add_argument("--cells", nargs="*", default=["mlstm", "mamba"])
    parser.add_argument(
        "--max-parallel-t", type=int, default=4096, help="longest T the quadratic form is timed at"
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    h = args.hidden
    print(f"batch {args.batch}, hidden {h}; ms per training step (forward + backward), median")
    print(
        f"{'cell':6s} {'T':>6s} {'form':24s} {'jaxrnn ms':>10s} {'temp MiB':>10s} "
        f"{'torch ms':>10s} {'torch/jax':>8s}"
    )
    rows = []
    for t in args.lengths:
        xs = jax.random.normal(jax.random.key(1), (args.batch, t, h))
        if "mlstm" in args.cells:
            cell = jaxrnn.mlstm(h, num_heads=args.heads)
            ref = torch_mlstm(args.batch, args.heads, t, h // args.heads)
            rows += compare("mlstm", cell, MLSTM_FORMS, ref, xs, args, args.max_parallel_t)
        if "mamba" in args.cells:
            cell = jaxrnn.mamba(h, state_size=args.state_size)
            ref = torch_mamba(args.batch, t, h, args.state_size)
            rows += compare("mamba", cell, MAMBA_FORMS, ref, xs, args, args.max_parallel_t)
    if args.json:
        save_json(args.json, {"config": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
