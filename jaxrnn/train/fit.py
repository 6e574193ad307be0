"""`fit`: the training loop shared by notebooks and experiments.

The loop reads step -> maybe evaluate -> maybe save; everything around it is a callback
(`jaxrnn.train.callbacks`): the metrics log, progress, checkpoints, early stopping,
TensorBoard and the user's own. Resume (`jaxrnn.train.checkpoints`), the metrics file
(`jaxrnn.train.metrics`), the workdir lock (`jaxrnn.train.lock`) and preemption
(`jaxrnn.train.preemption`) live in their own modules. Everything that is random derives from
``seed`` and the step, and batches are a function of the step, so a run is reproducible and
resumable bit for bit.
"""

import contextlib
import json
import math
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

from jaxrnn import distributed
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_int
from jaxrnn.checks import fail
from jaxrnn.files import WriteError
from jaxrnn.train import policies
from jaxrnn.train.callbacks import Callback
from jaxrnn.train.callbacks import Loop
from jaxrnn.train.callbacks import TrainLog
from jaxrnn.train.callbacks import as_callbacks
from jaxrnn.train.checkpoints import Checkpointer
from jaxrnn.train.checkpoints import ResumeMismatchError
from jaxrnn.train.lock import LOCK_FILE
from jaxrnn.train.lock import WorkdirInUseError
from jaxrnn.train.lock import workdir_lock
from jaxrnn.train.metrics import METRICS_FILE
from jaxrnn.train.metrics import MetricsFile
from jaxrnn.train.metrics import MetricsWriter
from jaxrnn.train.policies import Checkpoints
from jaxrnn.train.policies import Evaluation
from jaxrnn.train.preemption import Preempted
from jaxrnn.train.preemption import sigterm_flag
from jaxrnn.train.progress import Progress
from jaxrnn.train.saving import SaveCheckpoints
from jaxrnn.train.steps import LossFn
from jaxrnn.train.steps import TrainState
from jaxrnn.train.steps import as_float_dict
from jaxrnn.train.steps import default_optimizer
from jaxrnn.train.steps import evaluate
from jaxrnn.train.steps import init_state
from jaxrnn.train.steps import make_eval_step
from jaxrnn.train.steps import make_train_step
from jaxrnn.train.tensorboard import ENVIRONMENT as TENSORBOARD_ENVIRONMENT
from jaxrnn.train.tensorboard import TENSORBOARD_DIR
from jaxrnn.train.tensorboard import TensorBoard
from jaxrnn.typing import Carry
from jaxrnn.typing import Params

CHECKPOINT_DIR = "checkpoints"


class NonFiniteError(FloatingPointError):
    """Training met a NaN or infinite loss, gradient or updated params; ``state`` is the last
    good state."""

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
    evaluation: Evaluation | None = None,
    workdir: str | os.PathLike | None = None,
    checkpoints: Checkpoints | None = None,
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    carry: Carry | None = None,
    log_every: int | None = None,
    progress: bool | None = None,
    name: str | None = None,
    callbacks: Sequence[Callback | Callable] = (),
    data_parallel: bool = False,
    **deprecated: Any,
) -> FitResult:
    """Trains ``params`` to reduce ``loss_fn`` for ``num_steps`` updates.

    ``loss_fn(params, batch, key)`` returns a scalar loss or ``(loss, metrics)`` with scalar
    metrics; ``key`` is a fresh PRNG key per step during training and None during evaluation
    (so dropout switches off). With ``carry`` (truncated BPTT), the signature is
    ``loss_fn(params, batch, key, carry) -> (loss, metrics, carry)`` and the carry is passed
    from each step to the next (see `jaxrnn.train.StreamBatches` and `carry_over`).

    Every batch must have the structure, dtypes, ranks and leading (batch) size of the first;
    other axes may vary (bucketed lengths: each new shape compiles once).

    Each step reads: update, evaluate when ``evaluation.every`` says so, save when
    ``checkpoints.every`` says so. Logging, progress, saving, early stopping and TensorBoard
    are callbacks (`jaxrnn.train.Callback`), and ``callbacks`` adds the caller's own.

    With a ``workdir``, metrics are appended to ``<workdir>/metrics.jsonl`` (one JSON object per
    line: step, split, loss, the task's metrics, wall_time) and checkpoints go to
    ``<workdir>/checkpoints``. Only one run may use a workdir at a time. Calling `fit` again
    with the same workdir resumes from the newest intact checkpoint and ends with the same
    params and metrics as an uninterrupted run: damaged checkpoints are set aside with a
    warning, and a damaged or deleted metrics file is rebuilt from the checkpoint. Ctrl-C
    saves a checkpoint before stopping; so does a scheduler's ``SIGTERM``, which then exits
    with status 143 (`jaxrnn.train.preemption`). A NaN or infinite loss, gradient or updated
    param raises `NonFiniteError` naming the step, and no checkpoint holds one.

    Args:
      loss_fn: see above.
      params: initial params (a pytree).
      train_data: ``train_data(step) -> batch``, a pure function of the step, e.g.
        `jaxrnn.train.EpochBatches`.
      num_steps: total number of updates (including those of a resumed run).
      optimizer: an optax optimizer; `default_optimizer` (Adam 1e-3, clipping at norm 1).
      val_data: validation batches (evaluated with ``loss_fn`` and ``key=None``), or a
        function ``params -> {name: value}``.
      evaluation: when to evaluate and which metric is best (`Evaluation`).
      workdir: where metrics and checkpoints go; None keeps everything in memory.
      checkpoints: when to save and what to keep (`Checkpoints`).
      resume: continue from the newest checkpoint in ``workdir`` if there is one; False
        starts over (`clear_workdir`: checkpoints, metrics and TensorBoard events go).
      config: the run's settings, saved with each checkpoint; resuming with different settings
        (other than ``num_steps``) or another ``seed`` raises `ResumeMismatchError` instead of
        silently mixing runs.
      seed: seeds the run's PRNG key.
      carry: initial carry for truncated BPTT; None if the loss takes no carry.
      log_every: write mean training metrics every this many steps; default ``num_steps//100``.
      progress: True shows a progress bar (in a terminal or a notebook), False shows nothing;
        None shows a bar in a terminal or notebook, or else (in CI, or with output
        redirected) prints a line per evaluation, or per tenth of the run without one.
      name: what is training (e.g. ``"lstm, 0.25 s"``): the bar's label and the prefix of each
        progress line, so that a log of several runs says which line is whose.
      callbacks: `Callback` objects (e.g. `EarlyStopping`, `TensorBoard`), or functions
        ``fn(step, state, metrics)`` called at the end of every step. With a workdir and the
        environment variable ``JAXRNN_TENSORBOARD=1`` (the experiments' ``--tensorboard``),
        `TensorBoard` is added without asking.
      data_parallel: split every batch over all devices (`jaxrnn.distributed`), with params
        and optimizer state replicated; batch sizes must be multiples of the device count.
        In a run of several processes (`jaxrnn.distributed.initialize`) it is required, and
        ``train_data(step)`` and every ``val_data`` batch are this process's share of the
        global batch (`jaxrnn.distributed.process_share`). Process 0 writes the metrics and
        the checkpoint records; all processes read them to resume, so the workdir must be
        on a file system that all of them see.
      **deprecated: ``eval_every``, ``best_metric``, ``best_mode`` (now in ``evaluation``),
        ``checkpoint_every`` and ``keep_last`` (now in ``checkpoints``), until jaxrnn 0.2.

    Returns:
      A `FitResult` with the final state, the metrics history and the best step.

    Raises:
      ValueError: for arguments out of range, a batch that changes structure, or a
        ``best_metric`` that the evaluation does not return.
      ResumeMismatchError: the workdir holds a run with other settings, params or optimizer.
      CheckpointError: the workdir holds checkpoints but none is intact.
      WorkdirInUseError: another run (process or thread) is using the workdir.
      WriteError: the workdir's disk is full or it is read-only (one line, nothing
        half-written left behind; rerun after freeing space to resume).
      NonFiniteError: see above.
      Preempted: ``SIGTERM`` arrived (a `SystemExit` with status 143), after saving.

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
    evaluation, checkpoints = policies.resolve(evaluation, checkpoints, deprecated)
    num_steps = check_int("num_steps", num_steps, low=0)
    seed = check_int("seed", seed, low=-(2**63), high=2**63 - 1)
    eval_every = evaluation.every or max(1, num_steps // 10)
    log_every = max(1, num_steps // 100) if log_every is None else log_every
    log_every = check_int("log_every", log_every, low=1)
    if progress is not None:
        check_flag("progress", progress)
    callbacks = as_callbacks(callbacks)
    if not callable(train_data):
        fail("train_data", "a function step -> batch (e.g. jaxrnn.train.EpochBatches)",
             train_data, TypeError)  # fmt: skip
    if jax.process_count() > 1 and not data_parallel:
        raise ValueError(
            f"this is process {jax.process_index()} of {jax.process_count()} "
            "(jax.distributed is initialized): pass data_parallel=True so that the processes "
            "train one model together"
        )
    optimizer = default_optimizer() if optimizer is None else optimizer
    state = init_state(params, optimizer, seed=seed, carry=() if carry is None else carry)
    mesh = distributed.batch_mesh() if data_parallel else None
    if mesh is not None:  # before resuming, so that the checkpoint is restored replicated
        state = distributed.replicate(state, mesh)
    best = evaluation.best_metric if workdir is not None else None
    run = _Run(
        train_step=make_train_step(loss_fn, optimizer, with_carry=carry is not None),
        evaluator=_evaluator(loss_fn, val_data, params, best, mesh),
        train_data=train_data,
        num_steps=num_steps,
        eval_every=eval_every,
        checkpoint_every=checkpoints.every or eval_every,
        mesh=mesh,
    )
    run.evaluation = evaluation
    own = [TrainLog(log_every), Progress(progress, name)]
    if workdir is not None and os.environ.get(TENSORBOARD_ENVIRONMENT, "") not in ("", "0"):
        own.append(TensorBoard())
    if workdir is None:
        return run.start(state, ([], 0.0, {}), own + callbacks, None, name)
    ranking = [evaluation.best_metric, evaluation.best_mode]  # orbax keeps scores by it
    settings = {"config": _jsonable(config or {}), "seed": seed, "ranking": ranking}
    return _fit_in(_check_workdir(workdir), run, state, settings, evaluation, checkpoints, resume,
                   own, callbacks, name)  # fmt: skip


def _fit_in(workdir, run, state, settings, evaluation, checkpoints, resume, own, callbacks, name):
    """`fit` with a workdir: hold it, resume or start afresh, save as the run goes."""
    primary = jax.process_index() == 0
    # One run per workdir: process 0 holds the workdir's lock, each other process its own.
    lock_file = LOCK_FILE if primary else f"{LOCK_FILE}.process{jax.process_index()}"
    with workdir_lock(workdir, lock_file=lock_file), _running(workdir):
        if not resume and primary:  # start over: the old run's checkpoints must not mix in
            _clear(workdir)
        distributed.barrier("jaxrnn fit: workdir ready")
        checkpointer = Checkpointer(
            os.path.join(workdir, CHECKPOINT_DIR),
            keep_last=checkpoints.keep_last,
            best_metric=evaluation.best_metric,
            best_mode=evaluation.best_mode,
        )
        writer = MetricsWriter(workdir) if primary else None
        try:
            state, resumed = _resume(checkpointer, writer, state, settings, run, workdir)
            own = [*own, SaveCheckpoints(checkpointer, settings)]
            if writer is not None:
                own.insert(1, MetricsFile(writer))
            run.checkpointer = checkpointer
            with sigterm_flag() as preempted:
                run.preempted = preempted
                result = run.start(state, resumed, own + callbacks, workdir, name)
                if preempted():  # during the last save: everything is saved, stop as asked
                    raise Preempted("preempted by SIGTERM as the run ended; all of it is saved")
            best = checkpointer.best_step() if run.evaluator is not None else None
            return result._replace(best_step=best)
        finally:
            checkpointer.close()


_RUNNING: set[str] = set()  # real paths of the workdirs a fit of this process is training in


@contextlib.contextmanager
def _running(workdir: str):
    """Marks ``workdir`` as trained in; the lock is re-entrant for its thread (an experiment
    holds its workdir around `fit`), so a `fit` or `clear_workdir` nested in a running fit's
    callback is refused here."""
    path = os.path.realpath(workdir)
    if path in _RUNNING:
        raise WorkdirInUseError(
            f"{workdir} is in use: a fit is already training in it (this call came from inside "
            "it, e.g. from a callback); use another workdir"
        )
    _RUNNING.add(path)
    try:
        yield
    finally:
        _RUNNING.discard(path)


def clear_workdir(workdir: str | os.PathLike) -> None:
    """Deletes a run's checkpoints, metrics and TensorBoard events from ``workdir``, holding
    its lock; what else is there (results, plots, a vocabulary) stays. A ``checkpoints``
    folder that is a symbolic link (e.g. to scratch space) keeps its link, and is emptied.

    Raises:
      WorkdirInUseError: a run is using the workdir.
      WriteError: something could not be deleted (the message names it).

    Examples:
      >>> import os, tempfile
      >>> from jaxrnn.train import clear_workdir
      >>> workdir = tempfile.mkdtemp()
      >>> _ = open(os.path.join(workdir, "metrics.jsonl"), "w").write("{}\\n")
      >>> clear_workdir(workdir)
      >>> os.listdir(workdir)
      ['.lock']
    """
    workdir = _check_workdir(workdir)
    if not os.path.exists(workdir):
        return  # nothing to clear, and no folder made for it
    if os.path.realpath(workdir) in _RUNNING:
        raise WorkdirInUseError(f"{workdir} is in use: a fit is training in it")
    with workdir_lock(workdir):
        _clear(workdir)


def _clear(workdir: str) -> None:
    for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.damaged", METRICS_FILE, TENSORBOARD_DIR):
        path = os.path.join(workdir, name)
        try:
            if os.path.islink(path) and os.path.isdir(path):
                for entry in os.listdir(path):
                    _remove(os.path.join(path, entry))
            elif os.path.lexists(path):
                _remove(path)
        except OSError as error:
            raise WriteError(
                error.errno, f"cannot clear {path} to start afresh: {error.strerror}"
            ) from None


def _check_workdir(workdir: Any) -> str:
    """``workdir`` as a str path; a `TypeError` naming it for anything else (bytes, a number)
    and a `NotADirectoryError` when it is a file."""
    path = os.fspath(workdir) if isinstance(workdir, (str, os.PathLike)) else None
    if not isinstance(path, str):
        fail("workdir", "a folder's path (a str or a pathlib.Path)", workdir, TypeError)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"workdir {path} is a file, not a folder")
    return path


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _resume(checkpointer, writer, state, settings, run, workdir):
    """``(state, (history, elapsed, carried))`` to continue from: the newest intact
    checkpoint's, or the fresh ``state`` with an empty history when there is none."""

    def same_settings(meta):
        saved = {k: meta.get(k, settings[k]) for k in ("seed", "ranking")}
        saved["config"] = meta.get("config", {})
        _check_same_settings(saved, settings, workdir)

    found = checkpointer.restore_latest_intact(state, check_meta=same_settings)
    if found is None:
        if writer is not None:
            writer.rewrite([])
        return state, ([], 0.0, {})
    restored, meta = found
    step = int(restored.step)
    if step > run.num_steps:
        raise ResumeMismatchError(
            f"{workdir} holds a run already trained for {step} steps, more than "
            f"num_steps={run.num_steps}; pass num_steps >= {step} to continue it, or "
            "resume=False to start over"
        )
    if writer is None:  # not process 0: the checkpoint's history is the file's
        history = [dict(record) for record in meta.get("history", [])]
    else:
        history = writer.resume_from(meta.get("history", []), step)
    carried = dict(meta.get("carried", {}))
    return restored, (history, float(meta.get("elapsed", 0.0)), carried)


class _Run:
    """The loop: step -> maybe evaluate -> maybe save, with callbacks around each."""

    def __init__(self, train_step, evaluator, train_data, num_steps, eval_every,
                 checkpoint_every, mesh):  # fmt: skip
        self.train_step, self.evaluator, self.train_data = train_step, evaluator, train_data
        self.num_steps, self.eval_every = num_steps, eval_every
        self.checkpoint_every, self.mesh = checkpoint_every, mesh
        self.checkpointer: Checkpointer | None = None
        self.evaluation = Evaluation()
        self.preempted: Callable[[], bool] = lambda: False
        self.signature = None

    def start(self, state, resumed, callbacks, workdir, name) -> FitResult:
        history, elapsed, carried = resumed
        loop = Loop(start=int(state.step), num_steps=self.num_steps, history=history,
                    workdir=workdir, name=name, callbacks=callbacks, elapsed_before=elapsed,
                    evaluates=self.evaluator is not None, carried=carried,
                    evaluation=self.evaluation)  # fmt: skip
        state = self.loop(state, loop)
        if loop.stop_reason:
            print(f"{name}: {loop.stop_reason}" if name else loop.stop_reason, file=sys.stderr)
        return FitResult(state=state, history=history, best_step=None)

    def loop(self, state: TrainState, loop: Loop) -> TrainState:
        loop.emit("on_train_begin", state)
        finished = state  # the newest state whose step was evaluated and saved when due
        try:
            for step in range(loop.start, self.num_steps):
                if loop.stop_reason:
                    break
                state, metrics = self.update(finished, step, loop)
                done = step + 1
                loop.emit("on_update", done, state, metrics)
                val_metrics = self.maybe_evaluate(state, done, loop)
                saving = _due(done, self.checkpoint_every, self.num_steps) or loop.stop_reason
                if saving:
                    loop.emit("on_checkpoint", done, state, val_metrics)
                finished = state
                loop.emit("on_step_end", done, state, metrics)
                if loop.stop_reason and not saving:  # asked for at the end of the step
                    loop.emit("on_checkpoint", done, state, val_metrics)
                if self.preempted():
                    raise _Terminated
        except KeyboardInterrupt:
            loop.emit("on_interrupt", finished, "interrupted")
            raise
        except _Terminated:
            loop.emit("on_interrupt", finished, "preempted (SIGTERM)")
            raise Preempted(f"preempted by SIGTERM after step {int(finished.step)}") from None
        except Exception as error:
            if jax.process_count() > 1 and not isinstance(error, NonFiniteError):
                lost = _lost_process_error(error, int(finished.step), self.checkpointer)
                if lost is not None:
                    raise lost from error
            raise
        finally:
            loop.emit("on_train_end", finished)
        return finished

    def update(self, state: TrainState, step: int, loop: Loop):
        batch = self.train_data(step)
        self.signature = _check_batch(batch, step, self.signature, loop.start)
        loop.batch_size = _batch_size(batch)
        if self.mesh is not None:
            batch = distributed.shard_batch(batch, self.mesh)
        new_state, metrics, finite = self.train_step(state, batch)
        metrics = as_float_dict(metrics)
        if not bool(finite):
            raise _non_finite(step, metrics, state, self.checkpointer)
        return new_state, metrics

    def maybe_evaluate(self, state: TrainState, done: int, loop: Loop):
        due = _due(done, self.eval_every, self.num_steps) or loop.stop_reason
        if self.evaluator is None or not due:
            return None
        metrics = self.evaluator(state.params)
        loop.log({"step": done, "split": "val", **metrics})
        loop.emit("on_evaluate", done, state, metrics)
        return metrics


class _Terminated(Exception):
    """SIGTERM arrived: raised in the loop, turned into `Preempted` after saving."""


def _due(done: int, every: int, num_steps: int) -> bool:
    return done % every == 0 or done == num_steps


def _non_finite(step, metrics, state, checkpointer) -> NonFiniteError:
    saved = checkpointer.latest_step() if checkpointer else None
    where = (
        f"; the last good checkpoint (step {saved}) in {checkpointer.directory} is intact "
        "and finite"
        if saved is not None
        else ""
    )
    loss, grad_norm = metrics["loss"], metrics["grad_norm"]
    what = (
        "non-finite loss or gradient"
        if not (math.isfinite(loss) and math.isfinite(grad_norm))
        else "the optimizer's update made params or optimizer state (or the loss the carry) "
        "NaN or inf"
    )
    return NonFiniteError(
        f"{what} at step {step} (loss={loss}, grad_norm={grad_norm}): training stopped "
        f"before applying this update{where}. Lower the learning rate, check the batch of "
        f"step {step} for NaN/inf, or clip gradients harder.",
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
            (jax.tree_util.keystr(path), _dtype(leaf), np.ndim(leaf), _lead(leaf))
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


def _dtype(leaf) -> np.dtype:
    return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.result_type(leaf)


def _lead(leaf) -> int | None:
    shape = np.shape(leaf)
    return int(shape[0]) if shape else None


def _evaluator(loss_fn, val_data, params, best_metric: str | None, mesh=None):
    """``evaluate(params) -> {name: float}`` or None; checks that every result holds
    ``best_metric`` (for batches, before training, from the shapes alone)."""
    if val_data is None:
        return None
    if callable(val_data):
        run = lambda params: _metrics_of(val_data(params))
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


def _metrics_of(result: Any) -> dict[str, float]:
    """A ``val_data`` function's result as ``{name: float}``; a `TypeError` names what it
    returned otherwise."""
    if not isinstance(result, Mapping) or not result:
        fail("val_data(params)", "a dict {metric name: number}, e.g. {'loss': 0.5}", result,
             TypeError)  # fmt: skip
    out = {}
    for key, value in result.items():
        try:
            out[key] = float(value) if np.ndim(value) == 0 and isinstance(key, str) else None
        except (TypeError, ValueError, OverflowError):
            out[key] = None
        if out[key] is None or isinstance(value, (str, bytes)):
            fail(f"val_data(params)[{key!r}]", "a real number (a metric's value)", value, TypeError)
    return out


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


def _check_same_settings(saved: Mapping[str, Any], now: Mapping[str, Any], workdir) -> None:
    """Raises `ResumeMismatchError` naming every setting that differs (``seed`` and the
    config's keys but ``num_steps``). Values are compared as JSON, so that NaN equals NaN."""
    pairs = {k: (saved[k], now[k]) for k in ("seed", "ranking")}
    keys = (set(saved["config"]) | set(now["config"])) - {"num_steps"}
    pairs.update({k: (saved["config"].get(k), now["config"].get(k)) for k in keys})
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    changed = sorted(k for k, (old, new) in pairs.items() if not same(old, new))
    if changed:
        detail = ", ".join(f"{k}: saved {pairs[k][0]!r}, now {pairs[k][1]!r}" for k in changed)
        raise ResumeMismatchError(
            f"{workdir} holds a run with different settings ({detail}); resuming would mix two "
            "runs. Use a new workdir, or pass resume=False to start over in this one.",
            {k: pairs[k] for k in changed},
        )
