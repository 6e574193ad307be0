"""`TensorBoard`: the callback that writes every metrics record as TensorBoard scalars.

Written with tensorboardX (pure Python on protobuf, no TensorFlow): one tag per split and
metric (``train/loss``, ``val/accuracy``), at the record's step, next to ``metrics.jsonl``. A
resumed run purges the events after its checkpoint's step, as it rewrites ``metrics.jsonl``,
so that TensorBoard shows one curve. View with ``tensorboard --logdir <workdir>/tensorboard``.
"""

import os

import jax

from jaxrnn.checks import fail
from jaxrnn.train.callbacks import Callback

TENSORBOARD_DIR = "tensorboard"
ENVIRONMENT = "JAXRNN_TENSORBOARD"  # set to 1: every fit with a workdir writes events


class TensorBoard(Callback):
    """Writes each train and validation record to TensorBoard event files.

    Args:
      logdir: where the event files go; None: ``<workdir>/tensorboard`` (a run without a
        workdir then needs a ``logdir``).

    Examples:
      >>> import os, tempfile, jax.numpy as jnp
      >>> from jaxrnn.train import TensorBoard, fit
      >>> loss = lambda p, batch, key: (p["w"] - 1.0) ** 2
      >>> logdir = tempfile.mkdtemp()
      >>> _ = fit(loss, {"w": jnp.zeros(())}, lambda step: jnp.zeros(1), num_steps=4,
      ...         callbacks=[TensorBoard(logdir)], progress=False)
      >>> any(name.startswith("events.out.tfevents") for name in os.listdir(logdir))
      True
    """

    def __init__(self, logdir: str | os.PathLike | None = None):
        if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
            fail("logdir", "a folder's path (a str or a pathlib.Path) or None", logdir, TypeError)
        self.logdir = None if logdir is None else os.fspath(logdir)
        self.writer = None

    def on_train_begin(self, loop, state):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError(
                "jaxrnn.train.TensorBoard writes with tensorboardX: pip install tensorboardX "
                "(or jaxrnn[tensorboard])"
            ) from None
        logdir = self.logdir
        if logdir is None:
            if loop.workdir is None:
                raise ValueError(
                    "TensorBoard() without a logdir writes into the workdir: pass fit a workdir, "
                    "or TensorBoard(logdir=...)"
                )
            logdir = os.path.join(loop.workdir, TENSORBOARD_DIR)
        if os.path.exists(logdir) and not os.path.isdir(logdir):
            raise NotADirectoryError(f"TensorBoard logdir {logdir} is a file, not a folder")
        if jax.process_index() == 0:  # as for metrics.jsonl: one writer
            purge = loop.start + 1 if loop.start > 0 else None
            self.writer = SummaryWriter(logdir=logdir, purge_step=purge, flush_secs=10)

    def on_record(self, loop, record):
        if self.writer is None:
            return
        for name, value in record.items():
            if name not in ("step", "split", "wall_time") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{record['split']}/{name}", value, record["step"])

    def on_train_end(self, loop, state):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
