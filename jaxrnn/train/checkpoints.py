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

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxrnn import distributed
from jaxrnn.checks import check_choice
from jaxrnn.checks import check_size
from jaxrnn.train.steps import TrainState
from jaxrnn.typing import Params

RECORD_FILE = "jaxrnn_checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is damaged or missing; the message names the folder and the step."""


class ResumeMismatchError(ValueError):
    """A checkpoint holds other settings, params or optimizer state than those asked for."""


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
        check_choice("best_mode", best_mode, ("min", "max"))
        check_size("keep_last", keep_last)
        self.directory = os.path.abspath(os.fspath(directory))
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise CheckpointError(f"{self.directory} is a file, not a checkpoint folder")
        self.keep_last = keep_last
        self.best_metric = best_metric
        self.best_mode = best_mode
        # Orbax keeps every step and reads no metrics: which steps to keep and which is best
        # is decided here, from the records, so a damaged file is never parsed by orbax first.
        options = ocp.CheckpointManagerOptions(
            create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)
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
        """The step with the best ``best_metric``, or the newest if none has metrics."""
        scored = []
        for step in self.all_steps():
            value = (self._read_record(step) or {}).get("metrics", {}) or {}
            if self.best_metric in value:
                scored.append((float(value[self.best_metric]), step))
        if not scored:
            return self.latest_step()
        pick = min if self.best_mode == "min" else max
        return pick(scored, key=lambda score_step: score_step[0])[1]

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
        """
        step = int(state.step)
        if step in self.all_steps() and self.verify(step) is None:
            return  # every process sees the same files, so all return here together
        primary = jax.process_index() == 0
        folder = os.path.join(self.directory, str(step))
        if os.path.exists(folder) and primary:
            shutil.rmtree(folder)
        distributed.barrier(f"jaxrnn checkpoint {step}: folder cleared")
        self.manager.reload()
        self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(state.params),
                opt_state=ocp.args.StandardSave(state.opt_state),
                train=ocp.args.StandardSave(_train_item(state)),
                meta=ocp.args.JsonSave(dict(meta)),
            ),
        )
        self.manager.wait_until_finished()
        distributed.barrier(f"jaxrnn checkpoint {step}: arrays written")
        if primary:
            scores = None if metrics is None else {k: float(v) for k, v in metrics.items()}
            record = {"step": step, "metrics": scores, "files": _fingerprint(folder)}
            _write_record(folder, record)
            self._prune()
        self._checked[step] = None
        distributed.barrier(f"jaxrnn checkpoint {step}: recorded")
        self.manager.reload()

    def _prune(self) -> None:
        steps = self.all_steps()
        keep = set(steps[-self.keep_last :])
        best = self.best_step()
        if best is not None:
            keep.add(best)
        for step in steps:
            if step not in keep:
                shutil.rmtree(os.path.join(self.directory, str(step)), ignore_errors=True)
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

    def restore_latest_intact(self, like: TrainState):
        """The newest intact checkpoint as ``(state, meta)``, or None when there is none.

        Damaged or unfinished checkpoints newer than it are moved to
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
                self._set_aside(damaged)
                return self.restore(like, step)
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

    def restore(self, like: TrainState, step: int | str | None = None):
        """Restores a whole `TrainState` shaped like ``like``: returns ``(state, meta)``.

        Args:
          like: a state with the same structure, shapes and dtypes (e.g. a fresh one).
          step: a step number, ``"latest"`` (None) or ``"best"``.
        """
        found = self._resolve(step)
        meta = self._restore_items(found, meta=ocp.args.JsonRestore())["meta"]
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
        restored = self._restore_items(found, params=ocp.args.StandardRestore(abstract))
        return restored["params"]

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


def _write_record(folder: str, record: Mapping[str, Any]) -> None:
    path = os.path.join(folder, RECORD_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(record), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
