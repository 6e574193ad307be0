"""`fit`: the training loop shared by notebooks and experiments.

Progress bar, JSON-lines metrics, periodic evaluation, checkpoints, exact resume, and a clear
stop on a non-finite loss. Everything that is random derives from ``seed`` and the step, and
batches are a function of the step, so a run is reproducible and resumable bit for bit.
"""

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from jaxrnn import distributed
from jaxrnn.train.checkpoints import Checkpointer
from jaxrnn.train.steps import LossFn
from jaxrnn.train.steps import TrainState
from jaxrnn.train.steps import as_float_dict
from jaxrnn.train.steps import default_optimizer
from jaxrnn.train.steps import evaluate
from jaxrnn.train.steps import init_state
from jaxrnn.train.steps import make_eval_step
from jaxrnn.train.steps import make_train_step
from jaxrnn.typing import Carry
from jaxrnn.typing import Params

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


class NonFiniteError(FloatingPointError):
    """Training met a NaN or infinite loss or gradient; ``state`` is the last good state."""

    def __init__(self, message: str, state: TrainState):
        super().__init__(message)
        self.state = state


class ResumeMismatchError(ValueError):
    """The workdir holds a run made with other settings than those passed to `fit`."""


class FitResult(NamedTuple):
    """What `fit` returns."""

    state: TrainState  # the final state (params, optimizer state, step, rng, carry)
    history: list[dict[str, Any]]  # every metrics record of the run, as in metrics.jsonl
    best_step: int | None  # the checkpoint step with the best validation metric, if any

    @property
    def params(self) -> Params:
        return self.state.params


def fit(
    loss_fn: LossFn,
    params: Params,
    train_data: Callable[[int], Any],
    *,
    num_steps: int,
    optimizer=None,
    val_data: Iterable[Any] | Callable[[Params], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    workdir: str | os.PathLike | None = None,
    seed: int = 0,
    carry: Carry | None = None,
    checkpoint_every: int | None = None,
    keep_last: int = 3,
    best_metric: str = "loss",
    best_mode: str = "min",
    log_every: int | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callable[[int, TrainState, dict[str, float]], None]] = (),
    config: Mapping[str, Any] | None = None,
    resume: bool = True,
    data_parallel: bool = False,
) -> FitResult:
    """Trains ``params`` to reduce ``loss_fn`` for ``num_steps`` updates.

    ``loss_fn(params, batch, key)`` returns a scalar loss or ``(loss, metrics)``; ``key`` is a
    fresh PRNG key per step during training and None during evaluation (so dropout switches
    off). With ``carry`` (truncated BPTT), the signature is
    ``loss_fn(params, batch, key, carry) -> (loss, metrics, carry)`` and the carry is passed
    from each step to the next (see `jaxrnn.train.StreamBatches` and `carry_over`).

    With a ``workdir``, metrics are appended to ``<workdir>/metrics.jsonl`` (one JSON object per
    line: step, split, loss, the task's metrics, wall_time) and checkpoints go to
    ``<workdir>/checkpoints`` (the last ``keep_last`` and the best by validation
    ``best_metric``). Calling `fit` again with the same workdir resumes from the newest
    checkpoint and ends with the same params as an uninterrupted run. Ctrl-C saves a
    checkpoint before stopping. A NaN or infinite loss or gradient raises `NonFiniteError`
    naming the step; no checkpoint is written from it.

    Args:
      loss_fn: see above.
      params: initial params (a pytree).
      train_data: ``train_data(step) -> batch``, a pure function of the step, e.g.
        `jaxrnn.train.EpochBatches`.
      num_steps: total number of updates (including those of a resumed run).
      optimizer: an optax optimizer; `default_optimizer` (Adam 1e-3, clipping at norm 1).
      val_data: validation batches (evaluated with ``loss_fn`` and ``key=None``), or a
        function ``params -> {name: value}``.
      eval_every: evaluate every this many steps (and at the end); default ``num_steps//10``.
      workdir: where metrics and checkpoints go; None keeps everything in memory.
      seed: seeds the run's PRNG key.
      carry: initial carry for truncated BPTT; None if the loss takes no carry.
      checkpoint_every: save every this many steps (and at the end); default ``eval_every``.
      keep_last: checkpoints kept besides the best.
      best_metric: validation metric that picks the best checkpoint.
      best_mode: ``"min"`` or ``"max"``.
      log_every: write mean training metrics every this many steps; default ``num_steps//100``.
      progress: show a tqdm bar; by default only on a terminal and when ``CI`` is unset.
      callbacks: ``callback(step, state, metrics)`` after every step.
      config: the run's settings, saved with each checkpoint; resuming with different settings
        (other than ``num_steps``) raises an error instead of silently mixing runs.
      resume: continue from the newest checkpoint in ``workdir`` if there is one; False
        deletes the workdir's checkpoints and metrics and starts over.
      data_parallel: split every batch over all devices (`jaxrnn.distributed`), with params
        and optimizer state replicated; batch sizes must be multiples of the device count.

    Returns:
      A `FitResult` with the final state, the metrics history and the best step.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrnn.train import fit, EpochBatches, default_optimizer
      >>> xs = np.linspace(-1, 1, 64, dtype=np.float32)
      >>> data = EpochBatches((xs, 3 * xs), batch_size=16)
      >>> loss = lambda p, batch, key: jnp.mean((p["w"] * batch[0] - batch[1]) ** 2)
      >>> result = fit(loss, {"w": jnp.zeros(())}, data, num_steps=300,
      ...              optimizer=default_optimizer(0.1), progress=False)
      >>> round(float(result.params["w"]), 2)
      3.0
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    optimizer = default_optimizer() if optimizer is None else optimizer
    eval_every = eval_every or max(1, num_steps // 10)
    checkpoint_every = checkpoint_every or eval_every
    log_every = log_every or max(1, num_steps // 100)
    with_carry = carry is not None
    state = init_state(params, optimizer, seed=seed, carry=carry if with_carry else ())
    train_step = make_train_step(loss_fn, optimizer, with_carry=with_carry)
    run_eval = _evaluator(loss_fn, val_data)
    config = _jsonable(config or {})

    writer = MetricsWriter(workdir) if workdir is not None else None
    checkpointer = None
    elapsed_before = 0.0
    best_step = None
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        if not resume:  # start over: the old run's checkpoints must not mix with the new ones
            shutil.rmtree(os.path.join(workdir, CHECKPOINT_DIR), ignore_errors=True)
        checkpointer = Checkpointer(
            os.path.join(workdir, CHECKPOINT_DIR),
            keep_last=keep_last,
            best_metric=best_metric,
            best_mode=best_mode,
        )
        if resume and checkpointer.latest_step() is not None:
            state, meta = checkpointer.restore(state)
            _check_same_config(meta.get("config", {}), config, workdir)
            elapsed_before = float(meta.get("elapsed", 0.0))
            writer.truncate_after(int(state.step))
        elif writer is not None:
            writer.truncate_after(-1)
    history: list[dict[str, Any]] = [] if writer is None else writer.read()

    def log(record: dict[str, Any]) -> None:
        history.append(record)
        if writer is not None:
            writer.append(record)

    place_batch = lambda batch: batch
    if data_parallel:
        mesh = distributed.batch_mesh()
        state = distributed.replicate(state, mesh)
        place_batch = lambda batch: distributed.shard_batch(batch, mesh)

    start = int(state.step)
    quiet = not _show_progress(progress)
    bar = tqdm(total=num_steps, initial=start, disable=quiet, dynamic_ncols=True, unit="step")
    clock = time.perf_counter()
    elapsed = lambda: elapsed_before + time.perf_counter() - clock
    window: list[dict[str, float]] = []
    last_saved = start if (checkpointer and checkpointer.latest_step() == start) else None
    examples = _batch_size(train_data(start)) if start < num_steps else 0
    try:
        for step in range(start, num_steps):
            new_state, metrics, finite = train_step(state, place_batch(train_data(step)))
            metrics = as_float_dict(metrics)
            if not bool(finite):
                saved = checkpointer.latest_step() if checkpointer else None
                where = (
                    f"; the last good checkpoint (step {saved}) in {checkpointer.directory} is "
                    "intact"
                    if saved is not None
                    else ""
                )
                raise NonFiniteError(
                    f"non-finite loss or gradient at step {step} (loss={metrics['loss']}, "
                    f"grad_norm={metrics['grad_norm']}): training stopped before applying this "
                    f"update{where}. Lower the learning rate, check the batch of step {step} "
                    "for NaN/inf, or clip gradients harder.",
                    state,
                )
            state = new_state
            done = step + 1
            window.append(metrics)
            bar.update(1)
            if done % log_every == 0 or done == num_steps:
                mean = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
                log({"step": done, "split": "train", **mean, "wall_time": round(elapsed(), 3)})
                rate = bar.format_dict.get("rate") or 0.0
                bar.set_postfix(loss=f"{mean['loss']:.4g}", ex_per_s=f"{rate * examples:.0f}")
                window = []
            val_metrics = None
            if run_eval is not None and (done % eval_every == 0 or done == num_steps):
                val_metrics = run_eval(state.params)
                log({"step": done, "split": "val", **val_metrics, "wall_time": round(elapsed(), 3)})
                if quiet and progress is not False:
                    _print_progress(done, num_steps, history, val_metrics, elapsed())
            if checkpointer is not None and (done % checkpoint_every == 0 or done == num_steps):
                meta = {"step": done, "data_position": done, "elapsed": elapsed(), "config": config}
                checkpointer.save(state, meta=meta, metrics=val_metrics)
                last_saved = done
            for callback in callbacks:
                callback(done, state, metrics)
    except KeyboardInterrupt:
        if checkpointer is not None and last_saved != int(state.step):
            meta = {
                "step": int(state.step),
                "data_position": int(state.step),
                "elapsed": elapsed(),
                "config": config,
            }
            checkpointer.save(state, meta=meta)
            print(
                f"\ninterrupted: saved step {int(state.step)} to {checkpointer.directory}; "
                "run again with the same workdir to resume",
                file=sys.stderr,
            )
        raise
    finally:
        bar.close()
        if checkpointer is not None:
            best_step = checkpointer.best_step() if run_eval is not None else None
            checkpointer.close()
    return FitResult(state=state, history=history, best_step=best_step)


class MetricsWriter:
    """Appends one JSON object per line to ``<workdir>/metrics.jsonl``.

    Example:
      >>> import tempfile
      >>> writer = MetricsWriter(tempfile.mkdtemp())
      >>> writer.append({"step": 1, "split": "train", "loss": 0.5})
      >>> writer.read()
      [{'step': 1, 'split': 'train', 'loss': 0.5}]
    """

    def __init__(self, workdir: str | os.PathLike):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, METRICS_FILE)

    def append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record)) + "\n")

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(os.path.dirname(self.path))

    def truncate_after(self, step: int) -> None:
        """Drops records past ``step`` (written by a run that was then interrupted), atomically."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, self.path)


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``<workdir>/metrics.jsonl`` (empty if there is none).

    Example:
      >>> read_metrics("/nonexistent")
      []
    """
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from None
    return records


def _evaluator(loss_fn: LossFn, val_data) -> Callable[[Params], dict[str, float]] | None:
    if val_data is None:
        return None
    if callable(val_data):
        return lambda params: {k: float(v) for k, v in val_data(params).items()}
    batches = list(val_data)
    eval_step = make_eval_step(loss_fn)
    return lambda params: evaluate(eval_step, params, batches)


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty() and not os.environ.get("CI")


def _print_progress(done, num_steps, history, val_metrics, seconds) -> None:
    train = next((r for r in reversed(history) if r["split"] == "train"), None)
    text = f"step {done}/{num_steps}"
    if train is not None:
        text += f"  train loss {train['loss']:.4g}"
    text += "  " + "  ".join(f"val {k} {v:.4g}" for k, v in val_metrics.items())
    print(f"{text}  ({seconds:.1f} s)", flush=True)


def _batch_size(batch: Any) -> int:
    leaves = jax.tree.leaves(batch)
    return int(np.shape(leaves[0])[0]) if leaves and np.ndim(leaves[0]) else 1


def _jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(config), default=str))


def _check_same_config(saved: Mapping[str, Any], now: Mapping[str, Any], workdir) -> None:
    ignore = {"num_steps"}
    keys = (set(saved) | set(now)) - ignore
    changed = sorted(k for k in keys if saved.get(k) != now.get(k))
    if changed:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in changed)
        raise ResumeMismatchError(
            f"{workdir} holds a run with different settings ({detail}); resuming would mix two "
            "runs. Use a new workdir, or pass resume=False to start over in this one."
        )
