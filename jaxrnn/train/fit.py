"""`fit`: the training loop shared by notebooks and experiments.

The loop only: resume (`jaxrnn.train.checkpoints`), metrics (`jaxrnn.train.metrics`) and the
workdir lock (`jaxrnn.train.lock`) live in their own modules. Everything that is random
derives from ``seed`` and the step, and batches are a function of the step, so a run is
reproducible and resumable bit for bit.
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
import optax
from tqdm import std as tqdm_std

from jaxrnn import distributed
from jaxrnn.checks import check_choice
from jaxrnn.checks import check_int
from jaxrnn.train.checkpoints import Checkpointer
from jaxrnn.train.checkpoints import ResumeMismatchError
from jaxrnn.train.checkpoints import layout
from jaxrnn.train.lock import LOCK_FILE
from jaxrnn.train.lock import workdir_lock
from jaxrnn.train.metrics import MetricsWriter
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

CHECKPOINT_DIR = "checkpoints"


class NonFiniteError(FloatingPointError):
    """Training met a NaN or infinite loss or gradient; ``state`` is the last good state."""

    def __init__(self, message: str, state: TrainState):
        super().__init__(message)
        self.state = state


class LostProcessError(RuntimeError):
    """A process of a multi-process run stopped answering; the message names it."""


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
    optimizer: optax.GradientTransformation | None = None,
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
    name: str | None = None,
    callbacks: Sequence[Callable[[int, TrainState, dict[str, float]], None]] = (),
    config: Mapping[str, Any] | None = None,
    resume: bool = True,
    data_parallel: bool = False,
) -> FitResult:
    """Trains ``params`` to reduce ``loss_fn`` for ``num_steps`` updates.

    ``loss_fn(params, batch, key)`` returns a scalar loss or ``(loss, metrics)`` with scalar
    metrics; ``key`` is a fresh PRNG key per step during training and None during evaluation
    (so dropout switches off). With ``carry`` (truncated BPTT), the signature is
    ``loss_fn(params, batch, key, carry) -> (loss, metrics, carry)`` and the carry is passed
    from each step to the next (see `jaxrnn.train.StreamBatches` and `carry_over`).

    Every batch must have the structure, dtypes, ranks and leading (batch) size of the first;
    other axes may vary (bucketed lengths: each new shape compiles once).

    With a ``workdir``, metrics are appended to ``<workdir>/metrics.jsonl`` (one JSON object per
    line: step, split, loss, the task's metrics, wall_time) and checkpoints go to
    ``<workdir>/checkpoints`` (the last ``keep_last`` and the best by validation
    ``best_metric``). Only one run may use a workdir at a time. Calling `fit` again with the
    same workdir resumes from the newest intact checkpoint and ends with the same params and
    metrics as an uninterrupted run: damaged checkpoints are set aside with a warning, and a
    damaged or deleted metrics file is rebuilt from the checkpoint. Ctrl-C saves a checkpoint
    before stopping. A NaN or infinite loss or gradient raises `NonFiniteError` naming the
    step; no checkpoint is written from it.

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
      progress: True shows a progress bar (in a terminal or a notebook), False shows nothing;
        None shows a bar in a terminal or notebook, or else (in CI, or with output
        redirected) prints a line per evaluation, or per tenth of the run without one.
      name: what is training (e.g. ``"lstm, 0.25 s"``): the bar's label and the prefix of each
        progress line, so that a log of several runs says which line is whose.
      callbacks: ``callback(step, state, metrics)`` after every step.
      config: the run's settings, saved with each checkpoint; resuming with different settings
        (other than ``num_steps``) raises an error instead of silently mixing runs.
      resume: continue from the newest checkpoint in ``workdir`` if there is one; False
        deletes the workdir's checkpoints and metrics and starts over.
      data_parallel: split every batch over all devices (`jaxrnn.distributed`), with params
        and optimizer state replicated; batch sizes must be multiples of the device count.
        In a run of several processes (`jaxrnn.distributed.initialize`) it is required, and
        ``train_data(step)`` and every ``val_data`` batch are this process's share of the
        global batch (`jaxrnn.distributed.process_share`). Process 0 writes the metrics and
        the checkpoint records; all processes read them to resume, so the workdir must be
        on a file system that all of them see.

    Returns:
      A `FitResult` with the final state, the metrics history and the best step.

    Raises:
      ValueError: for arguments out of range, a batch that changes structure, or a
        ``best_metric`` that the evaluation does not return.
      ResumeMismatchError: the workdir holds a run with other settings, params or optimizer.
      CheckpointError: the workdir holds checkpoints but none is intact.
      WorkdirInUseError: another process is running in the workdir.
      NonFiniteError: see above.

    Examples:
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
    num_steps = _count("num_steps", num_steps, low=0)
    eval_every = _count("eval_every", eval_every or max(1, num_steps // 10), low=1)
    checkpoint_every = _count("checkpoint_every", checkpoint_every or eval_every, low=1)
    log_every = _count("log_every", log_every or max(1, num_steps // 100), low=1)
    check_choice("best_mode", best_mode, ("min", "max"))
    if not callable(train_data):
        raise TypeError(
            f"train_data must be a function step -> batch (e.g. jaxrnn.train.EpochBatches), "
            f"got {type(train_data).__name__}"
        )
    if jax.process_count() > 1 and not data_parallel:
        raise ValueError(
            f"this is process {jax.process_index()} of {jax.process_count()} "
            "(jax.distributed is initialized): pass data_parallel=True so that the processes "
            "train one model together"
        )
    optimizer = default_optimizer() if optimizer is None else optimizer
    with_carry = carry is not None
    state = init_state(params, optimizer, seed=seed, carry=carry if with_carry else ())
    mesh = distributed.batch_mesh() if data_parallel else None
    if mesh is not None:  # before resuming, so that the checkpoint is restored replicated
        state = distributed.replicate(state, mesh)
    run = _Run(
        train_step=make_train_step(loss_fn, optimizer, with_carry=with_carry),
        evaluator=_evaluator(loss_fn, val_data, params, best_metric if workdir else None, mesh),
        train_data=train_data,
        num_steps=num_steps,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        best_metric=best_metric,
        progress=progress,
        name=name,
        callbacks=tuple(callbacks),
        config=_jsonable(config or {}),
        mesh=mesh,
    )
    if workdir is None:
        return run.loop(state, history=[], elapsed_before=0.0, checkpointer=None, writer=None)
    workdir = os.fspath(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"workdir {workdir} is a file, not a folder")
    primary = jax.process_index() == 0
    # One run per workdir: process 0 holds the workdir's lock, each other process its own.
    lock_file = LOCK_FILE if primary else f"{LOCK_FILE}.process{jax.process_index()}"
    with workdir_lock(workdir, lock_file=lock_file):
        if not resume and primary:  # start over: the old run's checkpoints must not mix in
            shutil.rmtree(os.path.join(workdir, CHECKPOINT_DIR), ignore_errors=True)
        distributed.barrier("jaxrnn fit: workdir ready")
        checkpointer = Checkpointer(
            os.path.join(workdir, CHECKPOINT_DIR),
            keep_last=keep_last,
            best_metric=best_metric,
            best_mode=best_mode,
        )
        writer = MetricsWriter(workdir) if primary else None
        try:
            state, history, elapsed_before = _resume(
                checkpointer, writer, state, run.config, num_steps, workdir
            )
            return run.loop(state, history, elapsed_before, checkpointer, writer)
        finally:
            checkpointer.close()


def _resume(checkpointer, writer, state, config, num_steps, workdir):
    """``(state, history, elapsed)`` to continue from: the newest intact checkpoint's, or the
    fresh ``state`` with an empty history when there is none."""
    found = checkpointer.restore_latest_intact(state)
    if found is None:
        if writer is not None:
            writer.rewrite([])
        return state, [], 0.0
    restored, meta = found
    _check_same_config(meta.get("config", {}), config, workdir)
    step = int(restored.step)
    if step > num_steps:
        raise ResumeMismatchError(
            f"{workdir} holds a run already trained for {step} steps, more than "
            f"num_steps={num_steps}; pass num_steps >= {step} to continue it, or resume=False "
            "to start over"
        )
    if writer is None:  # not process 0: the checkpoint's history is the file's
        history = [dict(record) for record in meta.get("history", [])]
    else:
        history = writer.resume_from(meta.get("history", []), step)
    return restored, history, float(meta.get("elapsed", 0.0))


class _Run(NamedTuple):
    """What the loop needs, fixed for the whole run."""

    train_step: Callable
    evaluator: Callable[[Params], dict[str, float]] | None
    train_data: Callable[[int], Any]
    num_steps: int
    eval_every: int
    checkpoint_every: int
    log_every: int
    best_metric: str
    progress: bool | None
    name: str | None
    callbacks: tuple
    config: dict[str, Any]
    mesh: Any  # the data-parallel mesh, or None

    def loop(self, state, history, elapsed_before, checkpointer, writer) -> FitResult:
        layout_of_state = layout(state)

        def log(record: dict[str, Any]) -> None:
            history.append(record)
            if writer is not None:
                writer.append(record)

        def save(state: TrainState, metrics=None) -> None:
            meta = {
                "step": int(state.step),
                "elapsed": elapsed(),
                "config": self.config,
                "history": history,
                "layout": layout_of_state,
            }
            checkpointer.save(state, meta=meta, metrics=metrics)

        place_batch = lambda batch: batch
        if self.mesh is not None:
            place_batch = lambda batch: distributed.shard_batch(batch, self.mesh)

        start = int(state.step)
        reporter = _Reporter(
            self.progress, start, self.num_steps, self.evaluator is not None, self.name
        )
        clock = time.perf_counter()
        elapsed = lambda: elapsed_before + time.perf_counter() - clock
        window: list[dict[str, float]] = []
        saved = start if checkpointer and checkpointer.latest_step() == start else None
        signature = None
        try:
            for step in range(start, self.num_steps):
                batch = self.train_data(step)
                signature = _check_batch(batch, step, signature, start)
                new_state, metrics, finite = self.train_step(state, place_batch(batch))
                metrics = as_float_dict(metrics)
                if not bool(finite):
                    raise _non_finite(step, metrics, state, checkpointer)
                state = new_state
                done = step + 1
                window.append(metrics)
                if done % self.log_every == 0 or done == self.num_steps:
                    mean = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
                    log({"step": done, "split": "train", **mean, "wall_time": round(elapsed(), 3)})
                    window = []
                val_metrics = None
                if self.evaluator is not None and (
                    done % self.eval_every == 0 or done == self.num_steps
                ):
                    val_metrics = self.evaluator(state.params)
                    log(
                        {
                            "step": done,
                            "split": "val",
                            **val_metrics,
                            "wall_time": round(elapsed(), 3),
                        }
                    )
                reporter.step(done, history, val_metrics, elapsed(), _batch_size(batch))
                if checkpointer is not None and (
                    done % self.checkpoint_every == 0 or done == self.num_steps
                ):
                    save(state, val_metrics)
                    saved = done
                for callback in self.callbacks:
                    callback(done, state, metrics)
        except Exception as error:
            if jax.process_count() > 1 and not isinstance(error, NonFiniteError):
                lost = _lost_process_error(error, int(state.step), checkpointer)
                if lost is not None:
                    raise lost from error
            raise
        except KeyboardInterrupt:
            if checkpointer is not None and saved != int(state.step):
                save(state)
                print(
                    f"\ninterrupted: saved step {int(state.step)} to {checkpointer.directory}; "
                    "run again with the same workdir to resume",
                    file=sys.stderr,
                )
            raise
        finally:
            reporter.close()
        best_step = checkpointer.best_step() if checkpointer and self.evaluator else None
        return FitResult(state=state, history=history, best_step=best_step)


class _Reporter:
    """Progress: a tqdm bar (terminal or notebook), or plain lines where none can be drawn."""

    def __init__(self, progress, start: int, num_steps: int, evaluates: bool, name=None):
        self.num_steps, self.evaluates, self.name = num_steps, evaluates, name
        self.bar = None
        self.lines = False
        if progress or (progress is None and _can_draw_a_bar()):
            self.bar = _progress_bar(
                total=num_steps, initial=start, dynamic_ncols=True, unit="step", desc=name
            )
        elif progress is None:
            self.lines = True
        self.line_every = max(1, num_steps // 10)

    def step(self, done, history, val_metrics, seconds, examples) -> None:
        if self.bar is not None:
            self.bar.update(1)
            train = _last(history, "train")
            if train is not None and train["step"] == done:
                rate = self.bar.format_dict.get("rate") or 0.0
                self.bar.set_postfix(loss=f"{train['loss']:.4g}", ex_per_s=f"{rate * examples:.0f}")
        elif self.lines and (
            val_metrics is not None
            or (not self.evaluates and (done % self.line_every == 0 or done == self.num_steps))
        ):
            text = _progress_line(done, self.num_steps, history, val_metrics or {}, seconds)
            print(f"{self.name}: {text}" if self.name else text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(**kwargs):
    """A widget bar in Jupyter when ipywidgets is installed, else a text bar.

    Chosen here rather than by `tqdm.auto`, which in a notebook without ipywidgets warns on
    import ("IProgress not found") into every notebook that imports `jaxrnn.train`.
    """
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm import notebook as tqdm_notebook
        except ImportError:
            pass
        else:
            return tqdm_notebook.tqdm(**kwargs)
    return tqdm_std.tqdm(**kwargs)


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _can_draw_a_bar() -> bool:
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty() or _in_notebook()


def _progress_line(done, num_steps, history, val_metrics, seconds) -> str:
    train = _last(history, "train")
    text = f"step {done}/{num_steps}"
    if train is not None:
        text += f"  train loss {train['loss']:.4g}"
    if val_metrics:
        text += "  " + "  ".join(f"val {k} {v:.4g}" for k, v in val_metrics.items())
    return f"{text}  ({seconds:.1f} s)"


def _last(history, split):
    return next((r for r in reversed(history) if r["split"] == split), None)


def _non_finite(step, metrics, state, checkpointer) -> NonFiniteError:
    saved = checkpointer.latest_step() if checkpointer else None
    where = (
        f"; the last good checkpoint (step {saved}) in {checkpointer.directory} is intact"
        if saved is not None
        else ""
    )
    return NonFiniteError(
        f"non-finite loss or gradient at step {step} (loss={metrics['loss']}, "
        f"grad_norm={metrics['grad_norm']}): training stopped before applying this "
        f"update{where}. Lower the learning rate, check the batch of step {step} "
        "for NaN/inf, or clip gradients harder.",
        state,
    )


def _lost_process_error(error, step, checkpointer) -> LostProcessError | None:
    """A `LostProcessError` naming the processes that stopped answering, or None when all
    are alive (then ``error`` is this process's own). Printed at once as well: JAX ends a
    process whose peer died from a background thread, possibly before the caller prints."""
    lost = None
    for _ in range(20):  # the coordinator notices a dead peer within moments of the error
        lost = distributed.lost_processes()
        if lost != []:
            break
        time.sleep(0.1)
    if lost == []:
        return None
    count = jax.process_count()
    who = (
        "process 0 (the coordinator) is unreachable"
        if lost is None
        else f"process {', '.join(map(str, lost))} of {count} stopped answering"
    )
    saved = checkpointer.latest_step() if checkpointer else None
    then = (
        f"; the newest complete checkpoint is step {saved} in {checkpointer.directory}: "
        f"start all {count} processes again with the same workdir to resume from it"
        if saved is not None
        else ""
    )
    first = (str(error).strip().splitlines() or [""])[0][:200]
    message = (
        f"process {jax.process_index()}: {who} at step {step} ({type(error).__name__}: "
        f"{first}){then}"
    )
    print(f"jaxrnn: {message}", file=sys.stderr, flush=True)
    return LostProcessError(message)


def _check_batch(batch, step: int, signature, first_step: int):
    """The batch's signature; a `ValueError` naming the step and the leaf when its structure,
    a dtype, a rank or the leading (batch) size differs from the first batch's."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(batch)
    if not leaves:
        raise ValueError(f"train_data({step}) returned a batch with no arrays: {batch!r}")
    now = (
        treedef,
        [
            (jax.tree_util.keystr(path), np.result_type(leaf), np.ndim(leaf), _lead(leaf))
            for path, leaf in leaves
        ],
    )
    if signature is None:
        return now
    if now[0] != signature[0]:
        raise ValueError(
            f"train_data({step}) returned a batch of another structure than at step "
            f"{first_step}: {now[0]} instead of {signature[0]}"
        )
    for (path, dtype, ndim, lead), (_, dtype0, ndim0, lead0) in zip(
        now[1], signature[1], strict=True
    ):
        if (dtype, ndim, lead) != (dtype0, ndim0, lead0):
            raise ValueError(
                f"train_data({step}) returned batch{path} with dtype {dtype}, rank {ndim} and "
                f"leading size {lead}; at step {first_step} it had dtype {dtype0}, rank {ndim0} "
                f"and leading size {lead0}. Only the sizes of later axes may change between "
                "steps."
            )
    return signature


def _lead(leaf) -> int | None:
    shape = np.shape(leaf)
    return int(shape[0]) if shape else None


def _count(name: str, value: Any, *, low: int) -> int:
    return check_int(name, value, low=low)


def _evaluator(loss_fn, val_data, params, best_metric: str | None, mesh=None):
    """``evaluate(params) -> {name: float}`` or None; checks that every result holds
    ``best_metric`` (for batches, before training, from the shapes alone)."""
    if val_data is None:
        return None
    if callable(val_data):
        run = lambda params: {k: float(v) for k, v in val_data(params).items()}
    else:
        batches = list(val_data)
        if not batches:
            raise ValueError("val_data holds no batches; pass None to train without evaluation")
        if mesh is not None:  # placed once: the same batches every evaluation
            batches = [distributed.shard_batch(batch, mesh) for batch in batches]
        eval_step = make_eval_step(loss_fn)
        if best_metric is not None:
            names = jax.eval_shape(eval_step, params, batches[0])
            _check_best_metric(best_metric, names)
        run = lambda params: evaluate(eval_step, params, batches)
    if best_metric is None:
        return run

    def checked(params):
        metrics = run(params)
        _check_best_metric(best_metric, metrics)
        return metrics

    return checked


def _check_best_metric(best_metric: str, metrics: Mapping[str, Any]) -> None:
    if best_metric not in metrics:
        raise ValueError(
            f"best_metric={best_metric!r} is not among the validation metrics "
            f"{sorted(k for k in metrics if k != 'weight')}; pass one of them"
        )


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
