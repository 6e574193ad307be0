"""`SaveCheckpoints`: the callback through which `fit` saves, resumably.

Each checkpoint holds the state and, as JSON, what a resumed run needs to continue as if it
had never stopped: the step, the training time so far, the run's settings and seed, the
metrics history up to that step and the layout of the params and optimizer state.
"""

import sys
from typing import Any

from jaxrnn.train.callbacks import Callback
from jaxrnn.train.checkpoints import Checkpointer
from jaxrnn.train.checkpoints import layout


class SaveCheckpoints(Callback):
    """Saves when a checkpoint is due and when the run is interrupted (Ctrl-C, SIGTERM).

    Args:
      checkpointer: where the checkpoints go.
      settings: JSON-able ``{"config": ..., "seed": ...}`` saved with each checkpoint and
        compared on resume.
    """

    def __init__(self, checkpointer: Checkpointer, settings: dict[str, Any]):
        self.checkpointer, self.settings = checkpointer, settings
        self.saved: int | None = None

    def on_train_begin(self, loop, state):
        self.layout = layout(state)
        step = int(state.step)
        self.saved = step if self.checkpointer.latest_step() == step else None

    def on_checkpoint(self, loop, step, state, metrics):
        self.save(loop, state, metrics)

    def on_interrupt(self, loop, state, why):
        step = int(state.step)
        if self.saved is not None and self.saved >= step:
            step = self.saved  # saved already (an interrupt in a callback after the save)
        else:
            self.save(loop, state, None)
        where = self.checkpointer.directory
        print(
            f"\n{why}: saved step {step} to {where}; run again with the same workdir to resume",
            file=sys.stderr,
            flush=True,
        )

    def save(self, loop, state, metrics) -> None:
        step = int(state.step)
        meta = {
            "step": step,
            "elapsed": loop.elapsed(),
            **self.settings,
            # An interrupt saves the last finished step: not the records of the one cut short.
            "history": [r for r in loop.history if r["step"] <= step],
            "carried": loop.carried,
            "layout": self.layout,
        }
        self.checkpointer.save(state, meta=meta, metrics=metrics)
        self.saved = int(state.step)
