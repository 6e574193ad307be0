"""Checkpoints with orbax: never pickled, atomic, checked for damage on restore, last N + best.

Each checkpoint is a folder ``<directory>/<step>`` that orbax writes to a temporary name and
renames when complete (arrays with tensorstore, metadata as JSON). jaxrnn then writes, last
and atomically, ``<step>/jaxrnn_checkpoint.json``: the size and sha256 of every file of the
checkpoint and the validation metrics that rank it. A folder without that record is an
unfinished save; a file that does not match it is damage (a truncated or rewritten file, a
deleted folder, a flipped byte). Damaged checkpoints are never restored.

In a run of several processes every process calls `Checkpointer.save` and the restores (orbax
writes each array once); process 0 alone writes the records, prunes and sets damaged
checkpoints aside, between barriers, so that no process reads a folder while another
changes it.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxrnn import distributed
from jaxrnn.checks import check_size
from jaxrnn.files import USER_CAUSES
from jaxrnn.files import WriteError
from jaxrnn.files import os_error_code
from jaxrnn.files import write_atomically
from jaxrnn.train.policies import Evaluation
from jaxrnn.train.steps import TrainState
from jaxrnn.typing import Params

RECORD_FILE = "jaxrnn_checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is damaged or missing; the message names the folder and the step."""


class NonFiniteCheckpointError(CheckpointError):
    """A checkpoint's params or optimizer state hold NaN or inf (written before jaxrnn
    checked them): it is never restored."""

    def __str__(self) -> str:
        return self.args[0]


class ResumeMismatchError(ValueError):
    """A checkpoint holds other settings, params or optimizer state than those asked for;
    ``settings`` names the settings that differ and ``values`` maps each to ``(saved, now)``
    (both empty when the params or optimizer state differ)."""

    def __init__(self, message: str, values=None):
        super().__init__(message)
        self.values = dict(values or {})  # setting -> (saved, now)
        self.settings = tuple(self.values)


class Checkpointer:
    """Saves and restores `TrainState` in ``directory`` (one sub-folder per step).

    The ``keep_last`` newest checkpoints are kept, and also the one with the best
    ``best_metric`` among those saved with metrics. Restoring checks the checkpoint's files
    against the record written with it and refuses a damaged one with a `CheckpointError`;
    `restore_latest_intact` instead falls back to the newest intact checkpoint.

    Args:
      directory: where checkpoints live; created if missing.
      keep_last: how many of the newest checkpoints to keep.
      best_metric: the validation metric that ranks checkpoints.
      best_mode: ``"min"`` or ``"max"``.

    Examples:
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
        check_size("keep_last", keep_last)
        self.ranking = Evaluation(best_metric=best_metric, best_mode=best_mode)
        self.directory = os.path.abspath(os.fspath(directory))
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise CheckpointError(f"{self.directory} is a file, not a checkpoint folder")
        self.keep_last = keep_last
        self.best_metric = best_metric
        self.best_mode = best_mode
        # Orbax prunes: the newest keep_last, and the best by the score that `best_step` uses
        # too (a checkpoint without a finite score is not a candidate, so NaN never wins).
        keep = ocp.checkpoint_managers.AnyPreservationPolicy(
            [
                ocp.checkpoint_managers.LatestN(n=keep_last),
                ocp.checkpoint_managers.BestN(
                    get_metric_fn=_rank, n=1, keep_checkpoints_without_metrics=False
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            create=True,
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
            preservation_policy=keep,
            best_fn=_rank,  # only so that orbax writes and reads the metrics; keep decides
            best_mode="max",
        )
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as error:
            raise _write_error(error, f"cannot create {self.directory}") from None
        self._checked: dict[int, str | None] = {}  # step -> problem found (None: intact)

    # ------------------------------------------------------------------------- what is kept

    def all_steps(self) -> list[int]:
        """Every complete checkpoint's step (saved with its record), oldest first; damage is
        only detected when a checkpoint is restored or `verify`-ed."""
        steps = []
        for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
            if name.isdigit() and os.path.isfile(self._record_path(int(name))):
                steps.append(int(name))
        return sorted(steps)

    def latest_step(self) -> int | None:
        """The newest complete step, or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The step with the best ``best_metric`` (NaN and infinite values never win; the
        earliest among equals), None when evaluations were saved but none is finite, or the
        newest step when no checkpoint was saved with metrics."""
        scored, evaluated = [], False
        for step in self.all_steps():
            metrics = (self._read_record(step) or {}).get("metrics")
            evaluated = evaluated or self.best_metric in (metrics or {})
            score = self.ranking.score(metrics)
            if score is not None:
                scored.append(((score, -step), step))
        if scored:
            return max(scored)[1]
        return None if evaluated else self.latest_step()

    # ------------------------------------------------------------------------------- saving

    def save(
        self,
        state: TrainState,
        *,
        meta: Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Saves ``state`` at its step with JSON ``meta``; ``metrics`` rank it for "best".

        A complete checkpoint of the same step is left as it is; an unfinished or damaged one
        is replaced.

        Raises:
          CheckpointError: the params or optimizer state hold NaN or inf (nothing is saved).
          WriteError: the disk is full or the folder read-only; the message names the folder
            and the cause, and nothing of this step is left behind.
        """
        step = int(state.step)
        problem = non_finite_leaf(state)
        if problem is not None:
            raise CheckpointError(
                f"refusing to save step {step} to {self.directory}: {problem}; a checkpoint "
                "must hold finite params and optimizer state"
            )
        if step in self.all_steps() and self.verify(step) is None:
            return  # every process sees the same files, so all return here together
        newest = self.latest_step()
        if newest is not None and step < newest:  # orbax would skip it without a word
            raise CheckpointError(
                f"cannot save step {step} to {self.directory}: it holds the newer step {newest}"
            )
        try:
            self._save(step, state, meta, metrics)
        except Exception as error:
            with contextlib.suppress(Exception):  # orbax's writer threads may still be going
                self.manager.wait_until_finished()
            if jax.process_index() == 0:
                self._remove_unfinished(step)
            converted = _write_error(
                error, f"cannot save checkpoint step {step} to {self.directory}"
            )
            if converted is error:
                raise
            raise converted from None

    def _save(self, step, state, meta, metrics) -> None:
        primary = jax.process_index() == 0
        folder = os.path.join(self.directory, str(step))
        if os.path.exists(folder) and primary:
            shutil.rmtree(folder)
        distributed.barrier(f"jaxrnn checkpoint {step}: folder cleared")
        self.manager.reload()
        scores = None if metrics is None else {k: float(v) for k, v in metrics.items()}
        score = self.ranking.score(scores)
        with _quiet("absl"):  # "Requested tracked_metric; did not provide metrics" per save
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    params=ocp.args.StandardSave(state.params),
                    opt_state=ocp.args.StandardSave(state.opt_state),
                    train=ocp.args.StandardSave(_train_item(state)),
                    meta=ocp.args.JsonSave(dict(meta)),
                ),
                metrics=None if score is None else {"score": score, "step": step},
            )
        self.manager.wait_until_finished()
        distributed.barrier(f"jaxrnn checkpoint {step}: arrays written")
        if primary:
            record = {"step": step, "metrics": scores, "files": _fingerprint(folder)}
            _write_record(folder, record)
        for gone in set(self._checked) - set(self.manager.all_steps()):
            self._checked.pop(gone)
        self._checked[step] = None
        distributed.barrier(f"jaxrnn checkpoint {step}: recorded")
        self.manager.reload()

    def _remove_unfinished(self, step: int) -> None:
        """Removes what a failed save of ``step`` left: its folder and orbax's temporaries.

        tensorstore's writes of the other arrays run on in its own threads after the first
        one fails, and may create files after a first sweep; sweep until three in a row
        find nothing (at most about two seconds).
        """
        clean = 0
        for _ in range(20):
            found = [
                name
                for name in (os.listdir(self.directory) if os.path.isdir(self.directory) else ())
                if name == str(step) or (name.startswith(f"{step}.") and "tmp" in name)
            ]
            for name in found:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            clean = 0 if found else clean + 1
            if clean == 3:
                break
            time.sleep(0.1)
        self._checked.pop(step, None)

    # ------------------------------------------------------------------------------ damage

    def verify(self, step: int) -> str | None:
        """What is wrong with checkpoint ``step`` (None if it is intact), e.g.
        ``"params/d/1a2b...: 10 bytes, expected 202"``."""
        if step not in self._checked:
            self._checked[step] = self._find_damage(step)
        return self._checked[step]

    def _find_damage(self, step: int) -> str | None:
        folder = os.path.join(self.directory, str(step))
        record = self._read_record(step)
        if record is None:
            return f"{RECORD_FILE} is missing or unreadable (the save did not finish)"
        files = record.get("files")
        if not isinstance(files, dict) or not files:
            return f"{RECORD_FILE} lists no files"
        for relative, expected in sorted(files.items()):
            path = os.path.join(folder, relative)
            if not os.path.isfile(path):
                return f"{relative} is missing"
            size, digest = expected
            if os.path.getsize(path) != size:
                return f"{relative}: {os.path.getsize(path)} bytes, expected {size}"
            if _sha256(path) != digest:
                return f"{relative}: contents differ from when it was saved (sha256)"
        return None

    def restore_latest_intact(
        self, like: TrainState, check_meta: Callable[[dict], None] | None = None
    ):
        """The newest intact checkpoint as ``(state, meta)``, or None when there is none.

        ``check_meta`` is passed on to `restore`. Damaged or unfinished checkpoints newer than
        it are moved to
        ``<directory>.damaged/<step>`` with a warning naming the step and the problem, so
        that the resumed run can save those steps again.

        Raises:
          CheckpointError: when checkpoints exist but none is intact.
          ResumeMismatchError: when the newest intact one holds params or optimizer state
            of other shapes, dtypes or structure than ``like``.
        """
        damaged = []
        for name in sorted(os.listdir(self.directory)):
            # Folders of steps whose save never finished (no record): nothing to restore.
            if name.isdigit() and int(name) not in self.all_steps():
                damaged.append((int(name), self._find_damage(int(name))))
        for step in reversed(self.all_steps()):
            problem = self.verify(step)
            if problem is None:
                try:
                    restored = self.restore(like, step, check_meta=check_meta)
                except NonFiniteCheckpointError as error:
                    problem = error.args[1]
                else:
                    self._set_aside(damaged)
                    return restored
            damaged.append((step, problem))
        self._set_aside(damaged)
        if damaged:
            steps = ", ".join(str(step) for step, _ in sorted(damaged))
            raise CheckpointError(
                f"no intact checkpoint in {self.directory} (damaged: step {steps}; moved to "
                f"{self.directory}.damaged); start over with resume=False or use another workdir"
            )
        return None

    def _set_aside(self, damaged: list[tuple[int, str | None]]) -> None:
        distributed.barrier("jaxrnn checkpoints: verified")
        for step, problem in sorted(damaged):
            self._checked.pop(step, None)
            if jax.process_index() != 0:
                continue
            target = os.path.join(f"{self.directory}.damaged", str(step))
            if os.path.exists(target):
                shutil.rmtree(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(os.path.join(self.directory, str(step)), target)
            warnings.warn(
                f"checkpoint step {step} in {self.directory} is damaged ({problem}); moved it "
                f"to {target} and resuming from the newest intact checkpoint before it",
                stacklevel=3,
            )
        distributed.barrier("jaxrnn checkpoints: damaged ones set aside")
        if damaged:
            self.manager.reload()

    # ---------------------------------------------------------------------------- restoring

    def _resolve(self, step: int | str | None) -> int:
        if step in (None, "latest"):
            found = self.latest_step()
        elif step == "best":
            found = self.best_step()
        else:
            try:
                found = int(step)
            except (TypeError, ValueError):
                raise ValueError(
                    f"step must be 'best', 'latest' or a step number, got {step!r}"
                ) from None
            if found not in self.all_steps():
                raise CheckpointError(
                    f"no checkpoint for step {found} in {self.directory}; "
                    f"saved steps: {self.all_steps()}"
                )
        if found is None and step == "best" and self.all_steps():
            raise CheckpointError(
                f"no checkpoint in {self.directory} has a finite validation {self.best_metric} "
                "(every evaluation was NaN or inf); restore step 'latest' or a step number"
            )
        if found is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        problem = self.verify(found)
        if problem is not None:
            others = [s for s in self.all_steps() if s != found]
            raise CheckpointError(
                f"checkpoint step {found} in {self.directory} is damaged ({problem}); "
                f"not restoring it. Other saved steps: {others or 'none'}"
            )
        return found

    def restore(
        self,
        like: TrainState,
        step: int | str | None = None,
        check_meta: Callable[[dict], None] | None = None,
    ):
        """Restores a whole `TrainState` shaped like ``like``: returns ``(state, meta)``.

        Args:
          like: a state with the same structure, shapes and dtypes (e.g. a fresh one).
          step: a step number, ``"latest"`` (None) or ``"best"``.
          check_meta: called with the checkpoint's JSON meta before anything else is read
            (`fit` compares the run's settings there, before the shapes of the params).
        """
        found = self._resolve(step)
        meta = self._restore_items(found, meta=ocp.args.JsonRestore())["meta"]
        if check_meta is not None:
            check_meta(meta)
        saved = meta.get("layout")
        if saved is not None:
            check_layout(saved, layout(like), self.directory, found)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self._restore_items(
            found,
            params=ocp.args.StandardRestore(abstract.params),
            opt_state=ocp.args.StandardRestore(abstract.opt_state),
            train=ocp.args.StandardRestore(_train_item(abstract)),
        )
        train = restored["train"]
        problem = non_finite_leaf(TrainState(0, restored["params"], restored["opt_state"], 0, ()))
        if problem is not None:
            raise NonFiniteCheckpointError(
                f"checkpoint step {found} in {self.directory} holds non-finite values "
                f"({problem}); not restoring it",
                problem,
            )
        state = TrainState(
            step=train["step"],
            params=restored["params"],
            opt_state=restored["opt_state"],
            rng=train["rng"],
            carry=train["carry"],
        )
        return state, dict(meta)

    def restore_params(self, like: Params, step: int | str | None = "best") -> Params:
        """Restores only the params (no optimizer needed), shaped like ``like``.

        Args:
          like: params with the same structure, shapes and dtypes (e.g. from ``init``).
          step: a step number, ``"latest"`` or ``"best"`` (the default).
        """
        found = self._resolve(step)
        meta = self._restore_items(found, meta=ocp.args.JsonRestore())["meta"]
        saved = meta.get("layout")
        if saved is not None:
            check_layout({"params": saved["params"]}, layout_of(params=like), self.directory, found)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        params = self._restore_items(found, params=ocp.args.StandardRestore(abstract))["params"]
        problem = non_finite_leaf(TrainState(0, params, (), 0, ()))
        if problem is not None:
            raise NonFiniteCheckpointError(
                f"checkpoint step {found} in {self.directory} holds non-finite values "
                f"({problem}); not restoring it",
                problem,
            )
        return params

    def _restore_items(self, step: int, **items) -> dict[str, Any]:
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        except (ValueError, KeyError, OSError) as error:
            # The files match their record, so this is not damage: most likely a layout that
            # the record's shapes did not cover. Say so in one line.
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} could not be restored "
                f"({type(error).__name__}: {first})"
            ) from None
        return {name: restored[name] for name in items}

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()

    # ------------------------------------------------------------------------------ records

    def _record_path(self, step: int) -> str:
        return os.path.join(self.directory, str(step), RECORD_FILE)

    def _read_record(self, step: int) -> dict | None:
        try:
            with open(self._record_path(step), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None


def layout(state: TrainState) -> dict[str, list]:
    """``{"params": [[path, shape, dtype], ...], "opt_state": [...]}`` of a state: what a
    checkpoint must match to be restored into it.

    Examples:
      >>> from jaxrnn.train.checkpoints import layout
      >>> import jax.numpy as jnp
      >>> from jaxrnn.train import default_optimizer, init_state
      >>> layout(init_state({"w": jnp.ones(2)}, default_optimizer()))["params"]
      [["['w']", [2], 'float32']]
    """
    return layout_of(params=state.params, opt_state=state.opt_state)


def layout_of(**trees: Any) -> dict[str, list]:
    """`layout` of named pytrees."""
    out = {}
    for name, tree in trees.items():
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        out[name] = [
            [
                jax.tree_util.keystr(path),
                list(getattr(leaf, "shape", np.shape(leaf))),
                str(getattr(leaf, "dtype", None) or np.result_type(leaf)),
            ]
            for path, leaf in leaves
        ]
    return out


def check_layout(saved: Mapping[str, list], now: Mapping[str, list], directory, step) -> None:
    """Raises `ResumeMismatchError` naming the first leaf where ``saved`` and ``now`` differ."""
    for name in now:
        old, new = [list(x) for x in saved.get(name, [])], [list(x) for x in now[name]]
        if old == new:
            continue
        old_by_path = {entry[0]: entry for entry in old}
        new_by_path = {entry[0]: entry for entry in new}
        for path, entry in new_by_path.items():
            if path not in old_by_path:
                detail = f"{name}{path} is not in the checkpoint"
                break
            if old_by_path[path] != entry:
                _, shape, dtype = old_by_path[path]
                detail = (
                    f"{name}{path} is {tuple(shape)} {dtype} in the checkpoint, "
                    f"{tuple(entry[1])} {entry[2]} now"
                )
                break
        else:
            extra = sorted(set(old_by_path) - set(new_by_path))
            detail = (
                f"{name}{extra[0]} is in the checkpoint but not in the state now"
                if extra
                else f"{name} differs in the order of its entries"
            )
        what = "optimizer" if name == "opt_state" else "model"
        raise ResumeMismatchError(
            f"checkpoint step {step} in {directory} was made with another {what}: {detail}. "
            "Use a new workdir, or pass resume=False to start over in this one."
        )


def non_finite_leaf(state: TrainState) -> str | None:
    """``"params['w'] holds NaN"`` for the first params, optimizer-state or carry leaf with a
    NaN or an inf, or None when all are finite.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.train import default_optimizer, init_state
      >>> from jaxrnn.train.checkpoints import non_finite_leaf
      >>> non_finite_leaf(init_state({"w": jnp.array([1.0, jnp.nan])}, default_optimizer()))
      "params['w'] holds NaN"
    """
    trees = (("params", state.params), ("opt_state", state.opt_state), ("carry", state.carry))
    for name, tree in trees:
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            values = np.asarray(jax.device_get(leaf))
            if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
                what = "NaN" if np.isnan(values).any() else "inf"
                return f"{name}{jax.tree_util.keystr(path)} holds {what}"
    return None


@contextlib.contextmanager
def _quiet(name: str):
    """Warnings of logger ``name`` are not shown inside the block (errors still are)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _rank(metrics: Mapping[str, float]) -> tuple[float, int]:
    """Orbax's sort key for `BestN` (the highest is kept): the score, then the earlier step,
    as in `Checkpointer.best_step`."""
    return (metrics["score"], -metrics["step"])


def _write_error(error: Exception, doing: str) -> Exception:
    """A `WriteError` saying ``doing`` and the cause when ``error`` is a full disk, a read-only
    file system or a permission; ``error`` itself otherwise."""
    code = os_error_code(error)
    if code not in USER_CAUSES:
        return error
    return WriteError(code, f"{doing}: {os.strerror(code)}; nothing half-written was left")


def _write_record(folder: str, record: Mapping[str, Any]) -> None:
    write_atomically(os.path.join(folder, RECORD_FILE), json.dumps(dict(record)))


def _fingerprint(folder: str) -> dict[str, list]:
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder)
            if relative != RECORD_FILE:
                files[relative] = [os.path.getsize(path), _sha256(path)]
    return files


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _train_item(state: TrainState) -> dict[str, Any]:
    return {"step": state.step, "rng": state.rng, "carry": state.carry}
