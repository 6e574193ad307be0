"""Training: jitted steps, the `fit` loop, checkpoints, batches and truncated BPTT.

Import it as ``from jaxrnn import train``.
"""

from jaxrnn.files import WriteError
from jaxrnn.train.batches import EpochBatches
from jaxrnn.train.batches import StreamBatches
from jaxrnn.train.batches import carry_over
from jaxrnn.train.batches import eval_batches
from jaxrnn.train.callbacks import Callback
from jaxrnn.train.callbacks import EarlyStopping
from jaxrnn.train.callbacks import Loop
from jaxrnn.train.checkpoints import Checkpointer
from jaxrnn.train.checkpoints import CheckpointError
from jaxrnn.train.checkpoints import NonFiniteCheckpointError
from jaxrnn.train.checkpoints import ResumeMismatchError
from jaxrnn.train.fit import FitResult
from jaxrnn.train.fit import LostProcessError
from jaxrnn.train.fit import NonFiniteError
from jaxrnn.train.fit import clear_workdir
from jaxrnn.train.fit import fit
from jaxrnn.train.lock import WorkdirInUseError
from jaxrnn.train.lock import workdir_lock
from jaxrnn.train.metrics import MetricsFile
from jaxrnn.train.metrics import MetricsWriter
from jaxrnn.train.metrics import read_metrics
from jaxrnn.train.policies import Checkpoints
from jaxrnn.train.policies import Evaluation
from jaxrnn.train.preemption import Preempted
from jaxrnn.train.progress import Progress
from jaxrnn.train.saving import SaveCheckpoints
from jaxrnn.train.steps import TrainState
from jaxrnn.train.steps import default_optimizer
from jaxrnn.train.steps import evaluate
from jaxrnn.train.steps import init_state
from jaxrnn.train.steps import make_eval_step
from jaxrnn.train.steps import make_train_step
from jaxrnn.train.tensorboard import TensorBoard

__all__ = (
    "Callback",
    "CheckpointError",
    "Checkpointer",
    "Checkpoints",
    "EarlyStopping",
    "EpochBatches",
    "Evaluation",
    "FitResult",
    "Loop",
    "LostProcessError",
    "MetricsFile",
    "MetricsWriter",
    "NonFiniteCheckpointError",
    "NonFiniteError",
    "Preempted",
    "Progress",
    "ResumeMismatchError",
    "SaveCheckpoints",
    "StreamBatches",
    "TensorBoard",
    "TrainState",
    "WorkdirInUseError",
    "WriteError",
    "carry_over",
    "clear_workdir",
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
