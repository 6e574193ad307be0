"""The metrics file of a run: ``<workdir>/metrics.jsonl``, one JSON object per line.

`fit` appends a record per log and per evaluation. Every checkpoint also keeps the history up
to its step, so that on resume a metrics file that was deleted, truncated or cut in the middle
of a line is rebuilt from it (with a warning) and no record is lost.
"""

import contextlib
import json
import os
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from jaxrnn.files import WriteError
from jaxrnn.files import write_atomically
from jaxrnn.train.callbacks import Callback

METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
    """Appends one JSON object per line to ``<workdir>/metrics.jsonl``.

    Examples:
      >>> from jaxrnn.train import MetricsWriter
      >>> import tempfile
      >>> writer = MetricsWriter(tempfile.mkdtemp())
      >>> writer.append({"step": 1, "split": "train", "loss": 0.5})
      >>> writer.read()
      [{'step': 1, 'split': 'train', 'loss': 0.5}]
    """

    def __init__(self, workdir: str | os.PathLike):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, METRICS_FILE)

    def append(self, record: Mapping[str, Any]) -> None:
        """Appends ``record`` as one line; on a full disk or a read-only folder the file is
        cut back to its last whole line and a `WriteError` names it."""
        line = (json.dumps(dict(record)) + "\n").encode("utf-8")
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        try:
            with open(self.path, "ab") as f:
                f.write(line)
                f.flush()
        except OSError as error:
            with contextlib.suppress(OSError):
                os.truncate(self.path, size)
            cause = error.strerror or str(error)
            raise WriteError(error.errno, f"cannot write {self.path}: {cause}") from None

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(os.path.dirname(self.path))

    def rewrite(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Replaces the file's contents with ``records``, atomically."""
        write_atomically(self.path, "".join(json.dumps(dict(r)) + "\n" for r in records))

    def resume_from(self, history: Sequence[Mapping[str, Any]], step: int) -> list[dict]:
        """Makes the file hold exactly the records up to ``step``, as a checkpoint kept them.

        Records after ``step`` (written by a run that was then interrupted) are dropped: the
        resumed run writes them again. Records up to ``step`` that the file lost are restored
        from ``history`` with a warning. Returns the records now in the file.
        """
        try:
            on_disk = [r for r in self.read() if r.get("step", 0) <= step]
        except ValueError as error:  # a damaged line in the middle
            warnings.warn(f"{error}; rebuilding {self.path} from the checkpoint", stacklevel=3)
            on_disk = None
        kept = [dict(r) for r in history]
        if on_disk is not None and on_disk != kept:
            warnings.warn(
                f"{self.path} held {len(on_disk)} of the {len(kept)} records up to step "
                f"{step}; rebuilt it from the checkpoint of step {step}",
                stacklevel=3,
            )
        self.rewrite(kept)
        return kept


class MetricsFile(Callback):
    """The callback that appends every record of a run to ``<workdir>/metrics.jsonl``."""

    def __init__(self, writer: MetricsWriter):
        self.writer = writer

    def on_record(self, loop, record):
        self.writer.append(record)


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``<workdir>/metrics.jsonl`` (empty if there is none).

    A last line cut off in the middle (a run killed while writing it) is skipped with a
    warning; a damaged line anywhere else is a `ValueError` naming the file and line.

    Examples:
      >>> from jaxrnn.train import read_metrics
      >>> read_metrics("/nonexistent")
      []
    """
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):  # no line break after it: the write was cut short
                warnings.warn(
                    f"{path}, line {number}: incomplete last record skipped ({error})",
                    stacklevel=2,
                )
                break
            raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {line!r}")
        records.append(record)
    return records
