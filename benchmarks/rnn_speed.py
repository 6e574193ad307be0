"""LSTM / GRU speed: jaxrnn against Flax, Equinox and PyTorch, side by side in one process.

Task: many-to-one regression (the last hidden state -> a linear head -> MSE). Timed: one
jitted training step with Adam, and forward-only inference, at the issue's reference
configurations (batch, time, input, hidden). Each implementation is warmed up (its compile
time is reported), then timed for ``--steps`` steps with ``block_until_ready``, ``--repeats``
times, round-robin so that all implementations see the same machine load. Printed: median
milliseconds per step, the min-max spread, and each peer's time as a multiple of jaxrnn's
(> 1: jaxrnn is faster). A "limit" row times only the matrix products of the same LSTM (one
input projection plus t sequential (b, h) x (h, g) products; for training, their gradient).
The two Flax NNX rows (jaxrnn.nnx.RNN, and Flax's nnx.RNN over nnx.OptimizedLSTMCell or
nnx.GRUCell) are split once and merged inside the jitted step, Flax's functional pattern.

    python benchmarks/rnn_speed.py --cell lstm
    python benchmarks/rnn_speed.py --cell gru --configs 64,100,32,128
    python benchmarks/rnn_speed.py --cell lstm --no-torch --only jaxrnn.nnx flax.nnx
    python benchmarks/rnn_speed.py --pattern every       # the model takes every output
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python benchmarks/rnn_speed.py --shard-batch     # one CPU device per core
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import save_json

import jaxrnn
from jaxrnn import distributed

CONFIGS = [(64, 100, 32, 128), (64, 100, 32, 512), (32, 500, 32, 128), (256, 50, 8, 64)]
GATES = {"lstm": 4, "gru": 3}


def data(b, t, i, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((b, t, i)).astype(np.float32),
        rng.standard_normal((b, 1)).astype(np.float32),
    )


def jax_trainer(loss_fn, params):
    """``(train_step, infer)`` for a loss over (params, xs, ys); Adam, jitted."""
    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, opt_state, xs, ys):
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, ys)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, opt.init(params)


def make_jaxrnn(cell_name, b, t, i, h, pattern="last"):
    cell = getattr(jaxrnn, cell_name)(h)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"rnn": cell.init(k1, i), "head": jax.random.normal(k2, (h, 1)) * 0.1}

    def predict(params, xs):
        if pattern == "every":  # every output, then the last one (XLA keeps the stacking)
            return jaxrnn.unroll(cell, params["rnn"], xs)[1][:, -1] @ params["head"]
        return jaxrnn.many_to_one(cell, params["rnn"], xs) @ params["head"]

    return params, predict


def make_flax(cell_name, b, t, i, h, pattern="last"):
    import flax.linen as nn

    cell = nn.OptimizedLSTMCell(features=h) if cell_name == "lstm" else nn.GRUCell(features=h)

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            if pattern == "every":
                last = nn.RNN(cell)(xs)[:, -1]
            else:
                carry, _ = nn.RNN(cell, return_carry=True)(xs)
                last = carry[1] if cell_name == "lstm" else carry  # LSTM carry: (c, h)
            return nn.Dense(1, use_bias=False)(last)

    model = Model()
    params = model.init(jax.random.key(0), jnp.zeros((b, t, i)))
    return params, model.apply


def nnx_predict(model):
    """A Flax NNX model as ``(params, predict(params, xs))``: split once, merged inside the
    jitted function (Flax's functional pattern, no per-call graph traversal)."""
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # rest: rng state, if any

    def predict(params, xs):
        # nnx.RNN draws from its Rngs when it builds the carry: fresh copies of that state,
        # made inside the trace, may be advanced there.
        return nnx.merge(graphdef, params, jax.tree.map(jnp.asarray, rest))(xs)

    return params, predict


def make_jaxrnn_nnx(cell_name, b, t, i, h, pattern="last"):
    """`jaxrnn.nnx.RNN` in a Flax NNX model."""
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.rnn = jaxrnn.nnx.RNN(getattr(jaxrnn, cell_name)(h), in_features=i, rngs=rngs)
            self.head = nnx.Linear(h, 1, use_bias=False, rngs=rngs)

        def __call__(self, xs):
            carry, ys = self.rnn(xs, return_carry=True)
            if pattern == "every":
                return self.head(ys[:, -1])
            return self.head(carry.h if cell_name == "lstm" else carry)

    return nnx_predict(Model(nnx.Rngs(0)))


def make_flax_nnx(cell_name, b, t, i, h, pattern="last"):
    """Flax NNX's own ``nnx.RNN(nnx.OptimizedLSTMCell)`` (or ``nnx.GRUCell``)."""
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, rngs):
            make = nnx.OptimizedLSTMCell if cell_name == "lstm" else nnx.GRUCell
            self.rnn = nnx.RNN(make(i, h, rngs=rngs), return_carry=True)
            self.head = nnx.Linear(h, 1, use_bias=False, rngs=rngs)

        def __call__(self, xs):
            carry, ys = self.rnn(xs)
            if pattern == "every":
                return self.head(ys[:, -1])
            return self.head(carry[1] if cell_name == "lstm" else carry)

    return nnx_predict(Model(nnx.Rngs(0)))


def make_equinox(cell_name, b, t, i, h, pattern="last"):
    import equinox as eqx

    k1, k2 = jax.random.split(jax.random.key(0))
    cell = (eqx.nn.LSTMCell if cell_name == "lstm" else eqx.nn.GRUCell)(i, h, key=k1)
    params = {"cell": cell, "head": jax.random.normal(k2, (h, 1)) * 0.1}
    hidden = (lambda carry: carry[0]) if cell_name == "lstm" else (lambda carry: carry)

    def predict(params, xs):
        cell = params["cell"]
        zeros = jnp.zeros((h,))
        init = (zeros, zeros) if cell_name == "lstm" else zeros

        def one(x):  # equinox cells are unbatched: scan one sequence, vmap the batch
            def body(carry, x_t):
                carry = cell(x_t, carry)
                return carry, (hidden(carry) if pattern == "every" else None)

            carry, ys = jax.lax.scan(body, init, x)
            return ys[-1] if pattern == "every" else hidden(carry)

        return jax.vmap(one)(xs) @ params["head"]

    return params, predict


def make_limit(cell_name, b, t, i, h, pattern="last"):
    """Only the matrix products of the cell: a lower bound on any implementation's time."""
    del pattern
    g = GATES[cell_name] * h
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {
        "w_ih": jax.random.normal(k1, (i, g)) * 0.1,
        "w_hh": jax.random.normal(k2, (h, g)) * 0.01,
        "head": jax.random.normal(k3, (h, 1)) * 0.1,
    }

    def predict(params, xs):
        px = jnp.swapaxes(xs, 0, 1) @ params["w_ih"]  # (t, b, g)

        def body(state, px_t):
            return (state @ params["w_hh"] + px_t)[:, :h], None

        state, _ = jax.lax.scan(body, jnp.zeros((xs.shape[0], h)), px)
        return state @ params["head"]

    return params, predict


JAX_IMPLEMENTATIONS = {
    "jaxrnn": make_jaxrnn,
    "jaxrnn.nnx": make_jaxrnn_nnx,
    "flax": make_flax,
    "flax.nnx": make_flax_nnx,
    "equinox": make_equinox,
    "limit (matmuls only)": make_limit,
}


def jax_runners(maker, cell_name, b, t, i, h, pattern="last", shard_batch=False):
    params, predict = maker(cell_name, b, t, i, h, pattern)
    xs, ys = (jnp.asarray(a) for a in data(b, t, i))
    if shard_batch:  # every device (core) runs its share of the batch: jaxrnn.distributed
        mesh = distributed.batch_mesh()
        params = distributed.replicate(params, mesh)
        xs, ys = distributed.shard_batch((xs, ys), mesh)
    loss = lambda p, xs, ys: jnp.mean((predict(p, xs) - ys) ** 2)
    step, opt_state = jax_trainer(loss, params)
    infer = jax.jit(predict)
    state = {"params": params, "opt": opt_state}

    def train_once():
        state["params"], state["opt"], value = step(state["params"], state["opt"], xs, ys)
        return value

    return {
        "train": (train_once, lambda v: v.block_until_ready()),
        "infer": (lambda: infer(state["params"], xs), lambda v: v.block_until_ready()),
    }


def torch_runners(cell_name, b, t, i, h, device="cpu", pattern="last"):
    import torch

    torch.manual_seed(0)
    rnn = (torch.nn.LSTM if cell_name == "lstm" else torch.nn.GRU)(i, h, batch_first=True)
    head = torch.nn.Linear(h, 1, bias=False)
    rnn, head = rnn.to(device), head.to(device)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    xs, ys = (torch.from_numpy(a).to(device) for a in data(b, t, i))
    # On a GPU the kernels run asynchronously: a timing ends when the device is done.
    sync = (lambda v: torch.cuda.synchronize()) if device == "cuda" else (lambda v: None)

    def last(xs):  # PyTorch computes every output either way; h_n is the final carry
        out, state = rnn(xs)
        if pattern == "every":
            return out[:, -1]
        return (state[0] if cell_name == "lstm" else state)[-1]

    def train_once():
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((head(last(xs)) - ys) ** 2)
        loss.backward()
        opt.step()
        return loss

    def infer_once():
        with torch.no_grad():
            return head(last(xs))

    return {"train": (train_once, sync), "infer": (infer_once, sync)}


def time_steps(run: Callable, sync: Callable, steps: int) -> float:
    start = time.perf_counter()
    value = None
    for _ in range(steps):
        value = run()
    sync(value)
    return (time.perf_counter() - start) / steps


def bench_config(
    cell_name, config, steps, repeats, with_torch, only=None, pattern="last", shard_batch=False
):
    b, t, i, h = config
    runners, compile_s = {}, {}
    for name, maker in JAX_IMPLEMENTATIONS.items():
        if only and name not in only and name != "jaxrnn":
            continue
        started = time.perf_counter()
        runners[name] = jax_runners(maker, cell_name, b, t, i, h, pattern, shard_batch)
        for task in ("train", "infer"):
            run, sync = runners[name][task]
            sync(run())  # compile
        compile_s[name] = time.perf_counter() - started
    if with_torch:
        runners["pytorch"] = torch_runners(cell_name, b, t, i, h, pattern=pattern)
        compile_s["pytorch"] = 0.0
    for runner in runners.values():  # one more warm step each
        for task in ("train", "infer"):
            run, sync = runner[task]
            sync(run())
    samples = {name: {"train": [], "infer": []} for name in runners}
    for _ in range(repeats):
        for task in ("train", "infer"):
            for name, runner in runners.items():
                samples[name][task].append(time_steps(*runner[task], steps))
    rows = []
    for name in runners:
        row = {"implementation": name, "compile_s": compile_s[name]}
        for task in ("train", "infer"):
            ms = [1000 * s for s in samples[name][task]]
            row[task] = {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}
        rows.append(row)
    reference = {task: rows[0][task]["median_ms"] for task in ("train", "infer")}
    for row in rows:
        for task in ("train", "infer"):
            row[task]["vs_jaxrnn"] = row[task]["median_ms"] / reference[task]
            row[task]["gflops"] = flops(cell_name, config, task) / row[task]["median_ms"] / 1e6
    return rows


def flops(cell_name, config, task) -> float:
    """The matrix-product FLOPs of one call: ``2 b t (i + h) g`` for the forward pass, three
    times that for a training step (the forward products and the two of their gradient)."""
    b, t, i, h = config
    forward = 2 * b * t * (i + h) * GATES[cell_name] * h
    return forward * (3 if task == "train" else 1)


def print_table(cell_name, config, rows, pattern="last", peak=None) -> None:
    b, t, i, h = config
    print(
        f"\n{cell_name.upper()} batch={b} time={t} input={i} hidden={h}, "
        f"{'every output' if pattern == 'every' else 'final carry only'}   (ms per step: "
        f"median [min-max]; x = time / jaxrnn's time; %peak = matmul FLOP/s / two-core peak)"
    )
    print(
        f"{'implementation':22s} {'train step':>26s} {'x':>6s} {'%peak':>6s} "
        f"{'inference':>26s} {'x':>6s} {'%peak':>6s} {'compile s':>9s}"
    )
    for row in rows:
        cells = []
        for task in ("train", "infer"):
            r = row[task]
            cells.append(f"{r['median_ms']:8.2f} [{r['min_ms']:7.2f}-{r['max_ms']:7.2f}]")
            cells.append(f"{r['vs_jaxrnn']:6.2f}")
            cells.append(f"{100 * r['gflops'] / peak:5.1f}%" if peak else "     -")
        print(
            f"{row['implementation']:22s} {cells[0]:>26s} {cells[1]:>6s} {cells[2]:>6s} "
            f"{cells[3]:>26s} {cells[4]:>6s} {cells[5]:>6s} {row['compile_s']:9.2f}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", choices=sorted(GATES), default="lstm")
    parser.add_argument(
        "--configs",
        nargs="*",
        default=None,
        help="b,t,i,h entries (default: the four reference configurations)",
    )
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per implementation")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument(
        "--pattern",
        choices=["last", "every"],
        default="last",
        help="'last': the model reads only the final carry; 'every': it takes every output "
        "and reads the last (XLA then keeps the stacked outputs)",
    )
    parser.add_argument(
        "--shard-batch",
        action="store_true",
        help="split every JAX batch over all devices; with XLA_FLAGS="
        "--xla_force_host_platform_device_count=N (one CPU device per core) each core runs "
        "its share of every per-step product",
    )
    parser.add_argument(
        "--peak",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "peak.json"),
        help="peak.py's result: rows are also printed as a fraction of this peak",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=sorted(JAX_IMPLEMENTATIONS),
        help="time only these JAX implementations (and jaxrnn, the reference)",
    )
    args = parser.parse_args(argv)
    configs = (
        [tuple(int(v) for v in c.split(",")) for c in args.configs] if args.configs else CONFIGS
    )
    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
        except ImportError:
            print(
                "PyTorch is not installed: skipping it (pip install torch==2.13.0 for the CPU "
                "build)",
                file=sys.stderr,
            )
            with_torch = False
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
    }
    peak = None
    if os.path.exists(args.peak):
        with open(args.peak, encoding="utf-8") as f:
            peak = json.load(f)["peak_gflops"]
        machine["peak_gflops"] = peak
    else:
        print(f"no {args.peak}: run peak.py first for the %peak columns", file=sys.stderr)
    print(f"machine: {machine}")
    results = {
        "machine": machine,
        "cell": args.cell,
        "pattern": args.pattern,
        "shard_batch": args.shard_batch,
        "devices": len(jax.devices()),
        "steps": args.steps,
        "repeats": args.repeats,
        "configs": [],
    }
    for config in configs:
        rows = bench_config(
            args.cell,
            config,
            args.steps,
            args.repeats,
            with_torch,
            args.only,
            args.pattern,
            args.shard_batch,
        )
        print_table(args.cell, config, rows, args.pattern, peak)
        results["configs"].append({"config": dict(zip("btih", config, strict=True)), "rows": rows})
    train_ratios = {}
    for entry in results["configs"]:
        for row in entry["rows"]:
            train_ratios.setdefault(row["implementation"], []).append(row["train"]["vs_jaxrnn"])
    print("\ngeometric mean over configurations of (time / jaxrnn's time), training step:")
    for name, ratios in train_ratios.items():
        print(f"  {name:22s} {float(np.exp(np.mean(np.log(ratios)))):.2f}")
    if args.json:
        save_json(args.json, results)


if __name__ == "__main__":
    main()
