"""Training: jitted steps, the `fit` loop, checkpoints, batches and truncated BPTT.

Import it as ``from jaxrnn import train``.
"""

from jaxrnn.train.batches import EpochBatches
from jaxrnn.train.batches import StreamBatches
from jaxrnn.train.batches import carry_over
from jaxrnn.train.batches import eval_batches
from jaxrnn.train.checkpoints import Checkpointer
from jaxrnn.train.checkpoints import CheckpointError
from jaxrnn.train.checkpoints import ResumeMismatchError
from jaxrnn.train.fit import FitResult
from jaxrnn.train.fit import LostProcessError
from jaxrnn.train.fit import NonFiniteError
from jaxrnn.train.fit import fit
from jaxrnn.train.lock import WorkdirInUseError
from jaxrnn.train.lock import workdir_lock
from jaxrnn.train.metrics import MetricsWriter
from jaxrnn.train.metrics import read_metrics
from jaxrnn.train.steps import TrainState
from jaxrnn.train.steps import default_optimizer
from jaxrnn.train.steps import evaluate
from jaxrnn.train.steps import init_state
from jaxrnn.train.steps import make_eval_step
from jaxrnn.train.steps import make_train_step

__all__ = (
    "CheckpointError",
    "Checkpointer",
    "EpochBatches",
    "FitResult",
    "LostProcessError",
    "MetricsWriter",
    "NonFiniteError",
    "ResumeMismatchError",
    "StreamBatches",
    "TrainState",
    "WorkdirInUseError",
    "carry_over",
    "default_optimizer",
    "eval_batches",
    "evaluate",
    "fit",
    "init_state",
    "make_eval_step",
    "make_train_step",
    "read_metrics",
    "workdir_lock",
)
