"""What `jaxrnn.train.fit` does around each step, as callbacks of one protocol.

Each step, the loop updates (``on_update``), evaluates when due (``on_evaluate``), asks for a
checkpoint when due (``on_checkpoint``) and ends the step (``on_step_end``); the
metrics log, the progress bar, checkpointing, early stopping and TensorBoard are callbacks,
and a user's callback is written the same way::

    class PrintLoss(jaxrnn.train.Callback):
        def on_record(self, loop, record):
            if record["split"] == "val":
                print(record["step"], record["loss"])

Every method has a default that does nothing; a callback overrides what it needs. They are
called in list order: `fit`'s own first, then the user's. ``loop`` is the `Loop` of the run.
"""

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxrnn.checks import check_choice
from jaxrnn.checks import check_int
from jaxrnn.checks import check_number
from jaxrnn.checks import fail
from jaxrnn.train.steps import TrainState


class Loop:
    """What a callback can see of the run and do to it.

    Attributes:
      start: the step the run began (or resumed) at.
      num_steps: the step it ends at.
      history: every metrics record so far (as in ``metrics.jsonl``), resumed runs included.
      workdir: the run's folder, or None.
      name: the run's label (for progress lines), or None.
      evaluates: whether the run has validation data.
      stop_reason: why the run stops early (set by `stop`), or None.
      batch_size: the leading size of the last training batch.
      carried: JSON values a callback keeps across a resume (saved with every checkpoint).
      evaluation: the run's `jaxrnn.train.Evaluation` (which metric is best, and how).
    """

    def __init__(self, *, start, num_steps, history, workdir, name, callbacks, elapsed_before,
                 evaluates, carried=None, evaluation=None):  # fmt: skip
        self.start, self.num_steps, self.history = start, num_steps, history
        self.workdir, self.name, self.evaluates = workdir, name, evaluates
        self.callbacks = list(callbacks)
        self.stop_reason: str | None = None
        self.batch_size = 1  # of the last batch: for examples per second
        # What callbacks need on resume besides the history (JSON), saved with each checkpoint.
        self.carried: dict[str, Any] = dict(carried or {})
        self.evaluation = evaluation  # the run's `Evaluation` (best_metric, best_mode)
        clock = time.perf_counter()
        self._elapsed = lambda: elapsed_before + time.perf_counter() - clock

    def elapsed(self) -> float:
        """Seconds of training so far, those before a resume included."""
        return self._elapsed()

    def log(self, record: dict[str, Any]) -> None:
        """Adds a metrics record (``step``, ``split``, values) and tells every callback."""
        record = {**record, "wall_time": round(self.elapsed(), 3)}
        self.history.append(record)
        self.emit("on_record", record)

    def stop(self, reason: str) -> None:
        """Ends the run after this step (with a checkpoint, when it has a workdir)."""
        self.stop_reason = self.stop_reason or reason

    def emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)


class Callback:
    """The protocol of `fit`'s callbacks; every method does nothing unless overridden.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.train import Callback, fit, default_optimizer
      >>> class CountSteps(Callback):
      ...     def __init__(self):
      ...         self.steps = 0
      ...     def on_step_end(self, loop, step, state, metrics):
      ...         self.steps += 1
      >>> counter = CountSteps()
      >>> loss = lambda p, batch, key: (p["w"] - 1.0) ** 2
      >>> _ = fit(loss, {"w": jnp.zeros(())}, lambda step: jnp.zeros(1), num_steps=5,
      ...         callbacks=[counter], progress=False)
      >>> counter.steps
      5
    """

    def on_train_begin(self, loop: Loop, state: TrainState) -> None:
        """Before the first step (of this call: a resumed run begins at ``loop.start``)."""

    def on_update(self, loop: Loop, step: int, state: TrainState, metrics: dict) -> None:
        """Right after each update: ``step`` updates are done, ``metrics`` are this step's
        training metrics (loss, grad_norm and the loss's own)."""

    def on_evaluate(self, loop: Loop, step: int, state: TrainState, metrics: dict) -> None:
        """After each evaluation, with the validation metrics."""

    def on_checkpoint(self, loop: Loop, step: int, state: TrainState, metrics) -> None:
        """When a checkpoint is due (``metrics``: this step's validation metrics or None)."""

    def on_step_end(self, loop: Loop, step: int, state: TrainState, metrics: dict) -> None:
        """At the end of each step, after its evaluation and checkpoint if any were due."""

    def on_record(self, loop: Loop, record: dict[str, Any]) -> None:
        """After each metrics record is added to ``loop.history``."""

    def on_interrupt(self, loop: Loop, state: TrainState, why: str) -> None:
        """When Ctrl-C or a scheduler's SIGTERM stops the run; ``state`` is the last one."""

    def on_train_end(self, loop: Loop, state: TrainState) -> None:
        """After the last step, or when the run stops for any reason (then ``state`` is the
        last good one)."""


class TrainLog(Callback):
    """Logs the mean training metrics every ``every`` steps and at the end."""

    def __init__(self, every: int):
        self.every = check_int("log_every", every, low=1)
        self.window: list[dict[str, float]] = []

    def on_train_begin(self, loop, state):
        # Steps since the last record, as a resumed run's checkpoint kept them: a record
        # averages the same steps whether or not the run was cut in the middle of them.
        self.window = [dict(m) for m in loop.carried.get("train_window", [])]
        self.finished = list(self.window)

    def on_update(self, loop, step, state, metrics):
        self.window.append(metrics)
        if step % self.every == 0 or step == loop.num_steps:
            mean = {k: float(np.mean([m[k] for m in self.window])) for k in self.window[0]}
            loop.log({"step": step, "split": "train", **mean})
            self.window = []
        loop.carried["train_window"] = self.window

    def on_step_end(self, loop, step, state, metrics):
        self.finished = list(self.window)

    def on_interrupt(self, loop, state, why):
        loop.carried["train_window"] = self.finished  # as of the state an interrupt saves


class EarlyStopping(Callback):
    """Stops a run whose validation metric has not improved for ``patience`` evaluations.

    NaN and infinite values never count as an improvement. A resumed run reads the earlier
    evaluations from the history, so stopping does not depend on where the run was cut.

    Args:
      metric: the validation metric watched; None: the run's ``Evaluation.best_metric``.
      mode: ``"min"`` or ``"max"``; None: the run's ``Evaluation.best_mode``.
      patience: evaluations without improvement before stopping.
      min_delta: the least change that counts as an improvement.

    Examples:
      >>> from jaxrnn.train import EarlyStopping
      >>> EarlyStopping("loss", patience=2).patience
      2
    """

    def __init__(
        self,
        metric: str | None = None,
        *,
        mode: str | None = None,
        patience: int = 3,
        min_delta: float = 0.0,
    ):
        if metric is not None and not isinstance(metric, str):
            fail("metric", "the name of a validation metric", metric, TypeError)
        if mode is not None:
            check_choice("mode", mode, ("min", "max"))
        self.metric, self.mode = metric, mode
        self.patience = check_int("patience", patience, low=1)
        self.min_delta = check_number("min_delta", min_delta, low=0)

    def on_train_begin(self, loop, state):
        if not loop.evaluates:
            raise ValueError("EarlyStopping watches validation metrics: pass fit val_data")
        ranking = loop.evaluation
        self.watched = self.metric or (ranking.best_metric if ranking else "loss")
        self.direction = self.mode or (ranking.best_mode if ranking else "min")
        self.best, self.waited = None, 0
        for record in loop.history:
            if record.get("split") == "val":
                self._see(loop, record["step"], record)

    def on_evaluate(self, loop, step, state, metrics):
        self._see(loop, step, metrics)

    def _see(self, loop, step, metrics) -> None:
        value = metrics.get(self.watched)
        if value is None:
            shown = sorted(k for k in metrics if k not in ("step", "split", "wall_time"))
            fail("EarlyStopping.metric", f"one of {shown}", self.watched)
        value = float(value) if self.direction == "max" else -float(value)
        if math.isfinite(value) and (self.best is None or value > self.best + self.min_delta):
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            loop.stop(
                f"early stopping at step {step}: validation {self.watched} has not improved for "
                f"{self.patience} evaluations"
            )


class FunctionCallback(Callback):
    """A plain function ``fn(step, state, metrics)`` called at the end of every step (the form
    `fit` took before callbacks had a protocol)."""

    def __init__(self, fn: Callable[[int, TrainState, dict], None]):
        self.fn = fn

    def on_step_end(self, loop, step, state, metrics):
        self.fn(step, state, metrics)


def as_callbacks(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list of `Callback`: one callback or function is a list of one.

    Examples:
      >>> from jaxrnn.train.callbacks import as_callbacks
      >>> len(as_callbacks(lambda step, state, metrics: None))
      1
    """
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        fail("callbacks", "a list of jaxrnn.train.Callback or functions", callbacks, TypeError)
    out = []
    for n, callback in enumerate(callbacks):
        if isinstance(callback, type):
            fail(f"callbacks[{n}]", "a callback object, e.g. EarlyStopping() (not the class)",
                 callback, TypeError)  # fmt: skip
        if isinstance(callback, Callback):
            out.append(callback)
        elif callable(callback):
            out.append(FunctionCallback(callback))
        else:
            fail(f"callbacks[{n}]", "a jaxrnn.train.Callback or a function", callback, TypeError)
    return out
