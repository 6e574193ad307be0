"""Checkpoints with orbax: atomic, never pickled, last N plus the best by a validation metric."""

import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxrnn.train.steps import TrainState
from jaxrnn.typing import Params


class _NoMetricsWarning(logging.Filter):
    """Drops orbax's warning for checkpoints saved without metrics (Ctrl-C or periodic saves):
    they are expected here, and are kept by the keep-last-N rule."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "tracked_metric" not in record.getMessage()


logging.getLogger("absl").addFilter(_NoMetricsWarning())


class Checkpointer:
    """Saves and restores `TrainState` in ``directory`` (one sub-folder per step).

    Orbax writes each checkpoint to a temporary folder and renames it when complete, so an
    interrupted save never leaves a half-written checkpoint behind; arrays are stored with
    tensorstore and metadata as JSON (no pickle). The ``keep_last`` newest checkpoints are
    kept, and also the one with the best ``best_metric`` among those saved with metrics.

    Args:
      directory: where checkpoints live; created if missing.
      keep_last: how many of the newest checkpoints to keep.
      best_metric: the validation metric that ranks checkpoints.
      best_mode: ``"min"`` or ``"max"``.

    Example:
      >>> import tempfile, jax.numpy as jnp
      >>> from jaxrnn.train import Checkpointer, default_optimizer, init_state
      >>> state = init_state({"w": jnp.ones(2)}, default_optimizer())
      >>> ckpt = Checkpointer(tempfile.mkdtemp())
      >>> ckpt.save(state, meta={"note": "start"}, metrics={"loss": 1.0})
      >>> restored, meta = ckpt.restore(state)
      >>> meta["note"], ckpt.latest_step()
      ('start', 0)
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep_last: int = 3,
        best_metric: str = "loss",
        best_mode: str = "min",
    ):
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.best_metric = best_metric
        metric = lambda metrics: metrics[best_metric]
        policy = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(keep_last),
                checkpoint_managers.BestN(
                    get_metric_fn=metric,
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            best_fn=metric,
            best_mode=best_mode,
            create=True,
            enable_async_checkpointing=False,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(
        self,
        state: TrainState,
        *,
        meta: Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Saves ``state`` at its step with JSON ``meta``; ``metrics`` rank it for "best"."""
        step = int(state.step)
        if step in self.manager.all_steps():
            return
        if metrics is not None and self.best_metric not in metrics:
            metrics = None
        self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(state.params),
                opt_state=ocp.args.StandardSave(state.opt_state),
                train=ocp.args.StandardSave(_train_item(state)),
                meta=ocp.args.JsonSave(dict(meta)),
            ),
            metrics=None if metrics is None else {k: float(v) for k, v in metrics.items()},
        )
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        """The newest saved step, or None."""
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The step with the best ``best_metric``, or the newest if none has metrics."""
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        """Every step kept on disk, oldest first."""
        return sorted(self.manager.all_steps())

    def _resolve(self, step: int | str | None) -> int:
        if step in (None, "latest"):
            found = self.latest_step()
        elif step == "best":
            found = self.best_step()
        else:
            found = int(step)
            if found not in self.manager.all_steps():
                raise ValueError(
                    f"no checkpoint for step {found} in {self.directory}; "
                    f"saved steps: {self.all_steps()}"
                )
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return found

    def restore(self, like: TrainState, step: int | str | None = None):
        """Restores a whole `TrainState` shaped like ``like``: returns ``(state, meta)``.

        Args:
          like: a state with the same structure, shapes and dtypes (e.g. a fresh one).
          step: a step number, ``"latest"`` (None) or ``"best"``.
        """
        found = self._resolve(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(
            found,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract.params),
                opt_state=ocp.args.StandardRestore(abstract.opt_state),
                train=ocp.args.StandardRestore(_train_item(abstract)),
                meta=ocp.args.JsonRestore(),
            ),
        )
        train = restored.train
        state = TrainState(
            step=train["step"],
            params=restored.params,
            opt_state=restored.opt_state,
            rng=train["rng"],
            carry=train["carry"],
        )
        return state, dict(restored.meta)

    def restore_params(self, like: Params, step: int | str | None = "best") -> Params:
        """Restores only the params (no optimizer needed), shaped like ``like``.

        Args:
          like: params with the same structure, shapes and dtypes (e.g. from ``init``).
          step: a step number, ``"latest"`` or ``"best"`` (the default).
        """
        found = self._resolve(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(
            found, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract))
        )
        return restored.params

    def restore_meta(self, step: int | str | None = None) -> dict[str, Any]:
        """The JSON metadata saved with a checkpoint."""
        found = self._resolve(step)
        restored = self.manager.restore(found, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored.meta)

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


def _train_item(state: TrainState) -> dict[str, Any]:
    return {"step": state.step, "rng": state.rng, "carry": state.carry}
