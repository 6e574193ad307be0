"""The goals half of ``benchmarks/gpu_check.sh``: every GPU goal measured side by side in one
process, each stated on one line that says whether it was met.

    python benchmarks/gpu_check.py --json results/gpu_check.json   # on an NVIDIA GPU
    python benchmarks/gpu_check.py --cpu                           # tiny sizes, any machine

Sections, in this order, each with its share of ``--budget`` seconds (time a section leaves
unused goes to the next ones; a measurement that would start after its section's share is
spent is reported as not measured, and one that runs past it by more than ``GRACE_S`` is
stopped where Python regains control):

1. values: every GPU path (the default fused LSTM, ``Strategy(cudnn=True)``, mixed precision,
   minGRU's parallel scans "associative" and "pallas") against the same model on the CPU
   (`jax.devices("cpu")`), at ``jax_default_matmul_precision="highest"`` (no TF32), as the
   largest ``max |gpu - cpu| / max |cpu|`` over the outputs and over the gradients;
2. lstm: the LSTM training step (many-to-one, Adam) of jaxrnn's default, jaxrnn with
   ``Strategy(cudnn=True)``, Flax linen's ``OptimizedLSTMCell`` under ``nn.RNN``, cuDNN
   through ``jax.experimental.rnn.lstm`` (the JAX cuDNN reference) and PyTorch's
   ``nn.LSTM`` (cuDNN), at the four reference sizes and (256, 512, 64, 1024);
3. mixed: mixed precision (``compute_dtype=jnp.bfloat16``, float32 params) against float32;
4. mingru: minGRU forward + backward, ``mode="parallel"`` with ``scan_method`` "associative"
   and "pallas" against sequential ``jaxrnn.Strategy()``, at T = 4,096 and 65,536;
5. families: the mLSTM's sequential, chunkwise and parallel forms and the Mamba scan
   sequential and parallel, forward + backward at T = 2,048 and 8,192 (a table, no goal).

Every goal is printed as ``GOAL <what> : met (measured X)``, ``: not met (measured X)`` or
``: not measured (reason)``, where it is measured and again together at the end. An error in
one measurement (an exception, a cuDNN fallback, the budget) becomes its "not measured" reason
and the rest still runs. Exit status: 0, or 1 when a value check is not met (a wrong result,
not a slow one). ``--json`` writes everything after each section. Timing: each implementation
is compiled, run once more (that run sets the steps per timing, about ``target_s`` = 0.25 s
on a GPU), then timed ``repeats`` times round-robin with the others; the median is kept.
Float32 runs at JAX's default matmul precision (TF32 on recent NVIDIA GPUs, as PyTorch's cuDNN
LSTM); only the value checks ask for "highest".
"""

import argparse
import contextlib
import functools
import importlib
import platform
import signal
import statistics
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import rnn_speed
from common import save_json

import jaxrnn
from jaxrnn.cudnn import CudnnFallbackWarning
from jaxrnn.cudnn import why_not

GPU = {
    "lstm_configs": [(256, 512, 64, 1024), *rnn_speed.CONFIGS],  # (b, t, i, h); the GPU size first
    "mixed_configs": [(64, 100, 32, 512), (256, 512, 64, 1024)],  # hidden >= 512
    "lengths": (4096, 65536),
    "mingru": (16, 32, 256),  # batch, input, hidden
    "values_lstm": (8, 64, 16, 128),
    "values_mingru": (4, 300, 16, 96),  # 384 lanes, 300 steps: neither a multiple of a block
    "families": (8, 256, (2048, 8192)),  # batch, hidden, lengths
    "repeats": 3,
    "target_s": 0.25,
}
CPU = {
    "lstm_configs": [(4, 6, 3, 8)],
    "mixed_configs": [(4, 6, 3, 8)],
    "lengths": (64,),
    "mingru": (2, 3, 8),
    "values_lstm": (2, 5, 3, 8),
    "values_mingru": (2, 9, 3, 6),
    "families": (2, 8, (16,)),
    "repeats": 1,
    "target_s": 0.0,
}
# Shares of --budget per section, in the order they run.
PLAN = {"values": 30, "lstm": 120, "mixed": 40, "mingru": 55, "families": 25}
DEFAULT_BUDGET_S = sum(PLAN.values())  # 270 s; gpu_check.sh stops the process at 300 s
GRACE_S = 15  # how far past its section's share one measurement may run before it is stopped
MAX_STEPS = 50

GOALS = {
    "default_vs_cudnn": 0.8,  # jaxrnn's default training throughput / the JAX cuDNN reference's
    "cudnn_strategy_vs_cudnn": 0.95,  # Strategy(cudnn=True) / the JAX cuDNN reference
    "mixed_vs_float32": 1.5,  # mixed precision training throughput / float32's, hidden >= 512
    "mingru_parallel_speedup": 10.0,  # best parallel / sequential at the longest T
}
FLOAT32_TOLERANCE = 1e-4  # max |gpu - cpu| / max |cpu|, per array, at "highest" precision
BFLOAT16_TOLERANCE = 5e-2  # the same for mixed precision: a few bfloat16 roundings (2^-8)

NAMES = {
    "default": "jaxrnn default (fused)",
    "cudnn_strategy": "jaxrnn Strategy(cudnn=True)",
    "flax": "Flax linen OptimizedLSTMCell",
    "jax_cudnn": "JAX cuDNN reference",
    "torch": "PyTorch nn.LSTM",
}


class NotMeasured(Exception):
    """A measurement that cannot run here; its message is the reason printed."""


class OverBudget(Exception):
    """Raised (by SIGALRM) in a measurement that runs past its section's share."""


def describe(error: BaseException) -> str:
    """``ExceptionType: first line of the message``, short enough for one line."""
    if isinstance(error, NotMeasured):
        return str(error)
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 300 else text[:297] + "..."


def goal_text(name, measured=None, threshold=None, *, at_least=True, shown=None, reason=None):
    """``(status, line)`` of one goal: ``GOAL name : met (measured shown)``, ``not met``, or
    ``not measured (reason)`` when ``reason`` is given or nothing was measured."""
    if reason is not None or measured is None:
        status, tail = "not measured", f"({reason or 'no measurement'})"
    else:
        met = measured >= threshold if at_least else measured <= threshold
        status = "met" if met else "not met"
        tail = f"(measured {shown if shown is not None else f'{measured:.3g}'})"
    return status, f"GOAL {name} : {status} {tail}"


@contextlib.contextmanager
def alarm(seconds):
    """Raises `OverBudget` in this (main) thread after ``seconds``, where Python next runs."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(signum, frame):
        raise OverBudget(f"stopped after running {GRACE_S} s past its section's time budget")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Check:
    """The state of one run: sizes, budget, goals and results."""

    def __init__(self, sizes, budget_s, json_path=None, plan=None):
        self.sizes = sizes
        self.json_path = json_path
        self.plan = dict(plan or PLAN)
        scale = budget_s / sum(self.plan.values())
        self.plan = {name: share * scale for name, share in self.plan.items()}
        self.start = time.monotonic()
        self.name, self.end = None, self.start
        self.stopped = None  # a reason once the process was interrupted: nothing more runs
        self.goals = []
        self.results = {"budget_s": self.plan, "sections": {}, "goals": self.goals}

    def section(self, name):
        """Starts section ``name``: it may run until the sum of the shares so far."""
        self.finish()
        self.name, self.began = name, time.monotonic()
        names = list(self.plan)
        self.end = self.start + sum(self.plan[n] for n in names[: names.index(name) + 1])
        self.results["sections"][name] = []
        print(f"\n== {name} (until {self.end - self.start:.0f} s of {self.total():.0f} s)")
        return self.results["sections"][name]

    def finish(self):
        """Notes how long the current section took."""
        if self.name is not None:
            took = time.monotonic() - self.began
            self.results.setdefault("took_s", {})[self.name] = took
            print(f"({self.name} took {took:.0f} s)")

    def total(self):
        return sum(self.plan.values())

    def left(self):
        return self.end - time.monotonic()

    def measure(self, fn, *args):
        """``(fn(*args), None)``, or ``(None, reason)`` when it raised, or when the section's
        budget is spent or the run was interrupted (then ``fn`` is not called)."""
        if self.stopped:
            return None, self.stopped
        if self.left() <= 0:
            return (
                None,
                f"the {self.name} section's time budget ({self.plan[self.name]:.0f} s) was spent",
            )
        try:
            with alarm(self.left() + GRACE_S):
                return fn(*args), None
        except KeyboardInterrupt:
            self.stopped = "the run was interrupted (gpu_check.sh's hard time limit)"
            return None, self.stopped
        except Exception as error:  # one failure is reported; the rest still runs
            return None, describe(error)

    def goal(self, name, measured=None, threshold=None, **kwargs):
        status, line = goal_text(name, measured, threshold, **kwargs)
        print(line, flush=True)
        self.goals.append(
            {
                "goal": name,
                "status": status,
                "measured": measured,
                "threshold": threshold,
                "line": line,
            }
        )
        return status

    def save(self):
        if self.json_path:
            save_json(self.json_path, self.results)


# --- timing ---


def timed(run, sync, target_s):
    """Runs once more (compiled already) and returns ``(ms of that run, steps per timing)``."""
    start = time.perf_counter()
    sync(run())
    seconds = time.perf_counter() - start
    steps = int(min(MAX_STEPS, max(1, target_s / max(seconds, 1e-9))))
    return 1000 * seconds, steps


def compile_and_size(build, target_s):
    """Builds a ``(run, sync)``, compiles it, and sizes its timings: a dict ``runner``."""
    run, sync = build()
    start = time.perf_counter()
    sync(run())
    compile_s = time.perf_counter() - start
    first_ms, steps = timed(run, sync, target_s)
    return {
        "run": run,
        "sync": sync,
        "compile_s": compile_s,
        "first_ms": first_ms,
        "steps": steps,
        "ms": [],
    }


def time_side_by_side(check, builds):
    """Compiles each of ``builds`` (name: () -> (run, sync)), then times them round-robin so
    that all see the same machine state. Returns ``{name: row}``: a row has ``ms`` (median
    ms per step) or ``reason`` (why it was not measured)."""
    rows, built = {}, {}
    for name, build in builds.items():
        runner, reason = check.measure(compile_and_size, build, check.sizes["target_s"])
        if reason:
            rows[name] = {"reason": reason}
        else:
            built[name] = runner
    active = list(built)
    for _ in range(check.sizes["repeats"]):
        for name in list(active):
            r = built[name]
            seconds, reason = check.measure(rnn_speed.time_steps, r["run"], r["sync"], r["steps"])
            if reason:
                active.remove(name)
                r["cut"] = reason
            else:
                r["ms"].append(1000 * seconds)
    for name, r in built.items():
        ms = r["ms"] or [r["first_ms"]]  # the sizing run stands in when no timing fitted
        rows[name] = {
            "ms": statistics.median(ms),
            "timings": len(r["ms"]),
            "steps": r["steps"],
            "compile_s": r["compile_s"],
            **({"cut": r["cut"]} if "cut" in r else {}),
        }
    return {name: rows[name] for name in builds}


# --- the models ---


def jaxrnn_maker(strategy=None, compute_dtype=None):
    """A maker for `rnn_speed.jax_runners`: jaxrnn's LSTM (the head and keys of
    `rnn_speed.make_jaxrnn`) with this strategy and compute dtype. With ``cudnn=True`` it
    raises `NotMeasured` where cuDNN would not run (`jaxrnn.cudnn.why_not`)."""

    def make(cell_name, b, t, i, h, pattern="last"):
        del pattern
        cell = getattr(jaxrnn, cell_name)(h, compute_dtype=compute_dtype)
        k1, k2 = jax.random.split(jax.random.key(0))
        params = {"rnn": cell.init(k1, i), "head": jax.random.normal(k2, (h, 1)) * 0.1}
        if strategy is not None and strategy.cudnn:
            reason = why_not(cell, params["rnn"], jnp.zeros((b, t, i)))
            if reason:
                raise NotMeasured(f"cuDNN would not run: {reason}")

        def predict(params, xs):
            last = jaxrnn.many_to_one(cell, params["rnn"], xs, strategy=strategy)
            return (last @ params["head"].astype(last.dtype)).astype(jnp.float32)

        return params, predict

    return make


def make_cudnn(cell_name, b, t, i, h, pattern="last"):
    """cuDNN's LSTM through ``jax.experimental.rnn`` (GPU only), reading the final carry: the
    JAX cuDNN reference."""
    del pattern
    from jax.experimental import rnn as cudnn

    if cell_name != "lstm":
        raise NotMeasured("jax.experimental.rnn has only an LSTM")
    if jax.default_backend() != "gpu":
        raise NotMeasured("jax.experimental.rnn.lstm calls cuDNN: it needs a GPU")
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


def jax_train(maker, config):
    """``() -> (run, sync)`` of one Adam training step (`rnn_speed.jax_runners`). A cuDNN
    fallback warning while it compiles is an error: what falls back is not cuDNN."""

    def build():
        runner = rnn_speed.jax_runners(maker, "lstm", *config, "last")["train"]
        run, sync = runner
        traced = []

        def strict_run():
            if traced:  # compiled: nothing warns any more, and timings pay for no filter
                return run()
            with warnings.catch_warnings():
                warnings.simplefilter("error", CudnnFallbackWarning)
                value = run()
            traced.append(True)
            return value

        return strict_run, sync

    return build


def torch_train(config, on_gpu):
    def build():
        import torch

        if on_gpu and not torch.cuda.is_available():
            raise NotMeasured(f"PyTorch {torch.__version__} has no CUDA here")
        if on_gpu and not torch.backends.cudnn.is_available():
            raise NotMeasured(f"PyTorch {torch.__version__} has no cuDNN here")
        device = "cuda" if on_gpu else "cpu"
        return rnn_speed.torch_runners("lstm", *config, device=device)["train"]

    return build


# --- the sections ---


def relative_error(values, reference):
    """The largest ``max |x - r| / max |r|`` over the arrays of two pytrees (float64)."""
    worst = 0.0
    for x, r in zip(jax.tree.leaves(values), jax.tree.leaves(reference), strict=True):
        x, r = np.asarray(x, np.float64), np.asarray(r, np.float64)
        worst = max(worst, float(np.max(np.abs(x - r)) / max(float(np.max(np.abs(r))), 1e-6)))
    return worst


@functools.cache  # one jitted function per (cell, strategy): one compile per device
def outputs_and_grads(cell, strategy):
    """A jitted ``(params, xs, w) -> (ys, grads of sum(ys * w) for params and xs)``."""

    def fn(params, xs, w):
        def loss(params, xs):
            _, ys = jaxrnn.unroll(cell, params, xs, strategy=strategy)
            ys = ys.astype(jnp.float32)
            return jnp.sum(ys * w), ys

        (_, ys), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)
        return ys, grads

    return jax.jit(fn)


def compare(cell, strategy, size, reference_strategy):
    """``(error of the outputs, error of the gradients)`` of ``strategy`` on the default
    device against ``reference_strategy`` on the CPU."""
    b, t, i, h = size
    keys = jax.random.split(jax.random.key(1), 3)
    params = cell.init(keys[0], i)
    xs = jax.random.normal(keys[1], (b, t, i))
    w = jax.random.normal(keys[2], (b, t, h))
    if strategy.cudnn and (reason := why_not(cell, params, xs)):
        raise NotMeasured(f"cuDNN would not run: {reason}")
    here = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    with jax.default_matmul_precision("highest"), warnings.catch_warnings():
        warnings.simplefilter("error", CudnnFallbackWarning)
        got = outputs_and_grads(cell, strategy)(*jax.device_put((params, xs, w), here))
        want = outputs_and_grads(cell, reference_strategy)(*jax.device_put((params, xs, w), cpu))
        got, want = jax.device_get((got, want))
    return relative_error(got[0], want[0]), relative_error(got[1], want[1])


def value_checks(check):
    rows = check.section("values")
    on = jax.devices()[0].platform
    print(
        f"outputs and gradients on {on} against the CPU, at jax_default_matmul_precision="
        "'highest'; error: max |device - cpu| / max |cpu| over each array"
    )
    lstm_size, mingru_size = check.sizes["values_lstm"], check.sizes["values_mingru"]
    lstm, mingru = jaxrnn.lstm(lstm_size[3]), jaxrnn.mingru(mingru_size[3])
    mixed = jaxrnn.lstm(lstm_size[3], compute_dtype=jnp.bfloat16)
    plain = jaxrnn.Strategy()
    parallel = functools.partial(jaxrnn.Strategy, mode="parallel")
    paths = [  # name, cell, strategy on the device, on the CPU, size, tolerance
        ("default LSTM (fused)", lstm, plain, plain, lstm_size, FLOAT32_TOLERANCE),
        (
            "LSTM Strategy(cudnn=True)",
            lstm,
            jaxrnn.Strategy(cudnn=True),
            plain,
            lstm_size,
            FLOAT32_TOLERANCE,
        ),
        (
            "mixed precision LSTM (compute_dtype=bfloat16)",
            mixed,
            plain,
            plain,
            lstm_size,
            BFLOAT16_TOLERANCE,
        ),
        (
            "minGRU parallel associative",
            mingru,
            parallel(scan_method="associative"),
            plain,
            mingru_size,
            FLOAT32_TOLERANCE,
        ),
        (
            "minGRU parallel pallas",
            mingru,
            parallel(scan_method="pallas"),
            plain,
            mingru_size,
            FLOAT32_TOLERANCE,
        ),
    ]
    for name, cell, strategy, reference, size, tolerance in paths:
        errors, failed = check.measure(compare, cell, strategy, size, reference)
        label = f"values: {name} {on} vs cpu, b,t,i,h={size}, error <= {tolerance:g}"
        if failed:
            check.goal(label, reason=failed)
            rows.append({"path": name, "size": size, "tolerance": tolerance, "reason": failed})
            continue
        worst = max(errors)
        shown = f"outputs {errors[0]:.1e}, grads {errors[1]:.1e}"
        check.goal(label, worst, tolerance, at_least=False, shown=shown)
        rows.append(
            {
                "path": name,
                "size": size,
                "tolerance": tolerance,
                "outputs_error": errors[0],
                "grads_error": errors[1],
            }
        )
    check.save()


def lstm_training(check, on_gpu):
    rows = check.section("lstm")
    print("LSTM training step: many-to-one, last carry -> linear head -> MSE, Adam, jitted")
    for config in check.sizes["lstm_configs"]:
        builds = {
            "default": jax_train(jaxrnn_maker(), config),
            "cudnn_strategy": jax_train(jaxrnn_maker(jaxrnn.Strategy(cudnn=True)), config),
            "flax": jax_train(rnn_speed.make_flax, config),
            "jax_cudnn": jax_train(make_cudnn, config),
            "torch": torch_train(config, on_gpu),
        }
        timings = time_side_by_side(check, builds)
        b, t, i, h = config
        print(
            f"\nb={b} t={t} i={i} h={h}  (ms per step, median; sequences/s; x = throughput "
            "/ the JAX cuDNN reference's)"
        )
        reference = timings["jax_cudnn"].get("ms")
        for key, row in timings.items():
            name = NAMES[key] + (" (cuDNN)" if key == "torch" and on_gpu else "")
            if "ms" in row:
                ratio = f"{reference / row['ms']:6.2f}x" if reference else "      -"
                cut = f"  (cut short: {row['cut']})" if "cut" in row else ""
                print(
                    f"  {name:32s} {row['ms']:10.2f} ms {1000 * b / row['ms']:12.0f} seq/s "
                    f"{ratio}{cut}"
                )
            else:
                print(f"  {name:32s} not measured ({row['reason']})")
        rows.append({"config": config, "rows": timings})
        lstm_goals(check, config, timings)
        check.save()


def lstm_goals(check, config, timings):
    reference = timings["jax_cudnn"]
    torch_row = timings["torch"]
    for key, threshold in (
        ("default", GOALS["default_vs_cudnn"]),
        ("cudnn_strategy", GOALS["cudnn_strategy_vs_cudnn"]),
    ):
        label = (
            f"LSTM training {NAMES[key]} >= {threshold}x the JAX cuDNN reference's "
            f"throughput at b,t,i,h={config}"
        )
        row = timings[key]
        if "ms" not in row:
            check.goal(label, reason=f"{NAMES[key]}: {row['reason']}")
        elif "ms" not in reference:
            check.goal(label, reason=f"{NAMES['jax_cudnn']}: {reference['reason']}")
        else:
            ratio = reference["ms"] / row["ms"]
            shown = f"{ratio:.2f}x"
            if "ms" in torch_row:
                shown += f"; {torch_row['ms'] / row['ms']:.2f}x PyTorch's"
            check.goal(label, ratio, threshold, shown=shown)


def mixed_precision(check):
    rows = check.section("mixed")
    print(
        "LSTM training step (as above, jaxrnn default path): compute_dtype=bfloat16 with "
        "float32 params against float32"
    )
    for config in check.sizes["mixed_configs"]:
        builds = {
            "float32": jax_train(jaxrnn_maker(), config),
            "mixed": jax_train(jaxrnn_maker(compute_dtype=jnp.bfloat16), config),
        }
        timings = time_side_by_side(check, builds)
        for key, row in timings.items():
            shown = f"{row['ms']:10.2f} ms" if "ms" in row else f"not measured ({row['reason']})"
            print(f"  b,t,i,h={config} {key:8s} {shown}")
        label = (
            f"mixed precision training >= {GOALS['mixed_vs_float32']}x float32's "
            f"throughput at b,t,i,h={config}"
        )
        missing = [f"{k}: {r['reason']}" for k, r in timings.items() if "ms" not in r]
        if missing:
            check.goal(label, reason="; ".join(missing))
        else:
            ratio = timings["float32"]["ms"] / timings["mixed"]["ms"]
            check.goal(label, ratio, GOALS["mixed_vs_float32"], shown=f"{ratio:.2f}x")
        rows.append({"config": config, "rows": timings})
        check.save()


def mingru_train(t, strategy, sizes):
    def build():
        batch, inputs, hidden = sizes
        cell = jaxrnn.mingru(hidden)
        params = cell.init(jax.random.key(0), inputs)
        xs = jax.random.normal(jax.random.key(1), (batch, t, inputs))

        def loss(params, xs):
            return jnp.sum(jaxrnn.unroll(cell, params, xs, strategy=strategy)[1])

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return (lambda: fn(params, xs)), jax.block_until_ready

    return build


def mingru_parallel(check):
    rows = check.section("mingru")
    batch, inputs, hidden = check.sizes["mingru"]
    print(
        f"minGRU forward + backward of sum(ys), batch {batch}, input {inputs}, hidden "
        f"{hidden}: mode='parallel' against jaxrnn.Strategy() (sequential)"
    )
    strategies = {
        "sequential": jaxrnn.Strategy(),
        "associative": jaxrnn.Strategy(mode="parallel", scan_method="associative"),
        "pallas": jaxrnn.Strategy(mode="parallel", scan_method="pallas"),
    }
    for t in check.sizes["lengths"]:
        builds = {k: mingru_train(t, s, check.sizes["mingru"]) for k, s in strategies.items()}
        timings = time_side_by_side(check, builds)
        sequential = timings["sequential"].get("ms")
        for key, row in timings.items():
            if "ms" not in row:
                print(f"  T={t:>6d} {key:12s} not measured ({row['reason']})")
                continue
            speedup = f"  {sequential / row['ms']:7.2f}x sequential" if sequential else ""
            print(f"  T={t:>6d} {key:12s} {row['ms']:10.2f} ms{speedup}")
        rows.append({"t": t, "rows": timings})
        check.save()
    longest = rows[-1]
    timings = longest["rows"]
    label = (
        f"minGRU parallel (best of pallas, associative) >= "
        f"{GOALS['mingru_parallel_speedup']}x sequential at T={longest['t']}"
    )
    parallel = {k: timings[k]["ms"] for k in ("pallas", "associative") if "ms" in timings[k]}
    if "ms" not in timings["sequential"]:
        check.goal(label, reason=f"sequential: {timings['sequential']['reason']}")
    elif not parallel:
        check.goal(
            label,
            reason="; ".join(f"{k}: {timings[k]['reason']}" for k in ("pallas", "associative")),
        )
    else:
        best = min(parallel, key=parallel.get)
        speedup = timings["sequential"]["ms"] / parallel[best]
        check.goal(
            label, speedup, GOALS["mingru_parallel_speedup"], shown=f"{speedup:.1f}x with {best}"
        )


FAMILY_FORMS = {
    "mlstm": {
        "sequential": jaxrnn.Strategy(),
        "chunkwise": jaxrnn.Strategy(mode="chunkwise", chunk_size=64),
        "parallel": jaxrnn.Strategy(mode="parallel"),
    },
    "mamba": {"sequential": jaxrnn.Strategy(), "parallel": jaxrnn.Strategy(mode="parallel")},
}


def family_train(name, t, strategy, sizes):
    def build():
        batch, hidden, _ = sizes
        make = {"mlstm": jaxrnn.mlstm, "mamba": jaxrnn.mamba}[name]
        cell = make(hidden)
        params = cell.init(jax.random.key(0), hidden)
        xs = jax.random.normal(jax.random.key(1), (batch, t, hidden))

        def loss(params, xs):
            return jnp.sum(jaxrnn.unroll(cell, params, xs, strategy=strategy)[1])

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return (lambda: fn(params, xs)), jax.block_until_ready

    return build


def families(check):
    rows = check.section("families")
    batch, hidden, lengths = check.sizes["families"]
    print(f"mLSTM and Mamba forward + backward of sum(ys), batch {batch}, hidden {hidden}")
    for name, forms in FAMILY_FORMS.items():
        for t in lengths:
            builds = {
                k: family_train(name, t, s, check.sizes["families"]) for k, s in forms.items()
            }
            timings = time_side_by_side(check, builds)
            for key, row in timings.items():
                shown = (
                    f"{row['ms']:10.2f} ms" if "ms" in row else f"not measured ({row['reason']})"
                )
                print(f"  {name:6s} T={t:>6d} {key:12s} {shown}")
            rows.append({"cell": name, "t": t, "rows": timings})
            check.save()


# --- the run ---


def versions():
    """The device and the versions of everything timed."""
    device = jax.devices()[0]
    found = {
        "device": f"{device.platform} {device.device_kind}",
        "devices": len(jax.devices()),
        "platform_version": " ".join(str(getattr(device.client, "platform_version", "?")).split()),
        "jax_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jaxrnn": jaxrnn.__version__,
    }
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "torch"):
        try:
            found[name] = importlib.import_module(name).__version__
        except Exception as error:  # absent or broken: said, not fatal
            found[name] = f"not available ({describe(error)})"
    try:
        import torch

        found["torch_cuda"] = f"{torch.version.cuda} (available: {torch.cuda.is_available()})"
        found["torch_cudnn"] = str(torch.backends.cudnn.version())
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        found["torch_tf32"] = f"matmul {tf32[0]}, cudnn {tf32[1]}"
    except Exception as error:
        found["torch_cuda"] = f"not available ({describe(error)})"
    return found


def summary(check):
    print("\n== goals")
    for goal in check.goals:
        print(goal["line"])
    counts = {
        s: sum(g["status"] == s for g in check.goals) for s in ("met", "not met", "not measured")
    }
    print(", ".join(f"{n} {s}" for s, n in counts.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="tiny sizes, for any machine")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for all sections (default {DEFAULT_BUDGET_S}; --cpu: "
        "600), shared as " + ", ".join(f"{k} {v}" for k, v in PLAN.items()),
    )
    args = parser.parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    if not args.cpu and not on_gpu:
        print(
            f"error: no GPU (JAX's backend is {jax.default_backend()!r}); run with --cpu for "
            "the tiny-size check",
            file=sys.stderr,
        )
        return 2
    # gpu_check.sh stops a run that overstays with SIGINT: a KeyboardInterrupt, even where
    # the shell started this process with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    budget = args.budget or (600.0 if args.cpu else float(DEFAULT_BUDGET_S))
    found = versions()
    check = Check(CPU if args.cpu else GPU, budget, args.json)  # the budget starts now
    if args.cpu:
        print("--cpu: tiny sizes on any machine; no number below says anything about a GPU")
    print("device and versions:")
    for key, value in found.items():
        print(f"  {key:17s} {value}")
    check.results.update(
        machine=found, mode="cpu" if args.cpu else "gpu", goals_set=GOALS, sizes=check.sizes
    )
    for section in (
        value_checks,
        lambda c: lstm_training(c, on_gpu),
        mixed_precision,
        mingru_parallel,
        families,
    ):
        try:
            section(check)
        except KeyboardInterrupt:
            check.stopped = "the run was interrupted (gpu_check.sh's hard time limit)"
            print(f"\n{check.stopped}: what is left is reported as not measured")
    check.finish()
    check.save()
    summary(check)
    wrong = [g for g in check.goals if g["goal"].startswith("values:") and g["status"] == "not met"]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
