"""Preemption: a scheduler's ``SIGTERM`` stops `fit` the way Ctrl-C does, with a checkpoint.

SLURM, Kubernetes and most batch systems send ``SIGTERM`` and kill the job a grace period
later (30 s by default on Kubernetes, ``KillWait`` on SLURM). While `fit` runs with a workdir,
``SIGTERM`` only sets a flag; the loop sees it at the end of the step, saves, says which step
was saved and exits with status 143 (128 + 15, the status of a process ended by ``SIGTERM``,
which schedulers read as "terminated", not "failed"). A rerun with the same workdir resumes.
"""

import contextlib
import signal
import threading
from collections.abc import Callable
from collections.abc import Iterator

import jax

EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(SystemExit):
    """Raised by `fit` after saving when ``SIGTERM`` arrived: uncaught, Python exits with
    status 143 and no traceback; ``message`` says which step was saved."""

    def __init__(self, message: str):
        super().__init__(EXIT_STATUS)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def sigterm_flag() -> Iterator[Callable[[], bool]]:
    """Within the block, ``SIGTERM`` sets a flag instead of ending the process; yields a
    function that says whether it arrived. The previous handler is restored afterwards.

    Only the main thread can set handlers, and in a run of several processes each would see
    the signal at another step (and wait for the others at the checkpoint's barriers); there
    ``SIGTERM`` keeps its default and the flag stays False.

    Examples:
      >>> import os, signal
      >>> from jaxrnn.train.preemption import sigterm_flag
      >>> with sigterm_flag() as arrived:
      ...     os.kill(os.getpid(), signal.SIGTERM)
      ...     arrived()
      True
    """
    if threading.current_thread() is not threading.main_thread() or jax.process_count() > 1:
        yield lambda: False
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
