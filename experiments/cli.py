"""The command line every experiment shares: ``--workdir`` plus one flag per config field.

Anything a user can get wrong (a flag value, a data file, a workdir) ends in one line
``error: ...`` and exit status 2, never a traceback: parse errors from tyro are folded into
that line, and `run` turns the errors listed in `USER_ERRORS` into it.
"""

import argparse
import contextlib
import dataclasses
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from typing import Annotated
from typing import Any

import tyro

from experiments.datasets import DataError
from experiments.datasets import read_utf8_lines
from experiments.validation import ConfigError
from experiments.validation import check_flag_values
from experiments.validation import flag
from jaxrnn.train import CheckpointError
from jaxrnn.train import NonFiniteError
from jaxrnn.train import ResumeMismatchError
from jaxrnn.train import WorkdirInUseError
from jaxrnn.train import WriteError
from jaxrnn.train import clear_workdir
from jaxrnn.train import workdir_lock
from jaxrnn.train.lock import LOCK_FILE
from jaxrnn.train.metrics import METRICS_FILE
from jaxrnn.train.tensorboard import ENVIRONMENT as TENSORBOARD_ENVIRONMENT

FRESH_HELP = (
    "start afresh: delete the checkpoints, metrics and TensorBoard events of earlier runs in "
    "--workdir (and its sub-folders) instead of resuming them"
)
TENSORBOARD_HELP = "also write every metric as TensorBoard events (tensorboard --logdir <workdir>)"
_FRESH: set[str] = set()  # holds "requested" when --fresh was given: `run` clears its workdir

# Errors a user can act on from the message alone: printed without a traceback.
USER_ERRORS = (
    ConfigError,
    DataError,
    CheckpointError,
    ResumeMismatchError,
    NonFiniteError,
    WorkdirInUseError,
    WriteError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
)


def parse(
    config_cls: type,
    *,
    description: str,
    default_workdir: str,
    argv: Sequence[str] | None = None,
    workdir_default_help: str | None = None,
) -> tuple[Any, str]:
    """Parses ``argv`` into ``(config, workdir)``; ``--help`` lists every field with its doc.

    A parse error (an unknown flag, a value of the wrong type) prints one ``error: ...`` line
    and exits with status 2.

    Args:
      config_cls: the experiment's config dataclass (every field has a default).
      description: the text shown above the options.
      default_workdir: where outputs go unless ``--workdir`` says otherwise.
      argv: the arguments (None: ``sys.argv[1:]``).
      workdir_default_help: how ``--help`` states the default workdir when it is computed
        (e.g. from another flag) rather than ``default_workdir`` itself.

    Returns:
      The config and the workdir.

    Example:
      >>> from experiments.cli import parse
      >>> import dataclasses
      >>> @dataclasses.dataclass(frozen=True)
      ... class Config:
      ...     seed: int = 0
      >>> parse(Config, description="demo", default_workdir="runs/demo", argv=["--seed", "3"])
      (Config(seed=3), 'runs/demo')
    """
    workdir_help = "folder for metrics.jsonl, checkpoints, results.json and plots"
    args_cls = dataclasses.make_dataclass(
        "Args",
        [
            (
                "config",
                Annotated[config_cls, tyro.conf.FlagConversionOff],  # --flag True, as written
                dataclasses.field(default_factory=config_cls),
            ),
            (
                "workdir",
                Annotated[
                    str,
                    tyro.conf.arg(
                        help=workdir_help,
                        help_behavior_hint=(
                            f"(default: {workdir_default_help})" if workdir_default_help else None
                        ),
                    ),
                ],
                dataclasses.field(default=default_workdir),
            ),
            (
                "fresh",
                Annotated[bool, tyro.conf.arg(help=FRESH_HELP)],
                dataclasses.field(default=False),
            ),
            (
                "tensorboard",
                Annotated[bool, tyro.conf.arg(help=TENSORBOARD_HELP)],
                dataclasses.field(default=False),
            ),
        ],
        frozen=True,
    )
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            args = tyro.cli(
                args_cls,
                args=argv,
                prog=program(config_cls),
                description=description,
                config=(tyro.conf.OmitArgPrefixes, tyro.conf.FlagCreatePairsOff),
            )
    except SystemExit as stop:
        if stop.code not in (0, None):
            print(f"error: {_parse_error(captured.getvalue())}", file=sys.stderr)
            sys.exit(2)
        sys.stderr.write(captured.getvalue())
        raise
    sys.stderr.write(captured.getvalue())
    try:
        check_flag_values(args.config)
    except ConfigError as error:
        fail(error)
    if args.tensorboard:  # every fit of this command writes TensorBoard events (see fit)
        os.environ[TENSORBOARD_ENVIRONMENT] = "1"
    _FRESH.clear()  # one command's --fresh never carries over to the next parse in a process
    if args.fresh:  # the workdir run() gets may be computed from other flags (stock)
        _FRESH.add("requested")
    return args.config, args.workdir


def program(config_cls: type) -> str:
    """``python -m experiments.<name>`` for a config class of ``experiments.<name>.configs``.

    Example:
      >>> from experiments.cli import program
      >>> from experiments.stock.configs.default import Config
      >>> program(Config)
      'python -m experiments.stock'
    """
    parts = config_cls.__module__.split(".")
    return "python -m " + ".".join(parts[:2]) if parts[0] == "experiments" else parts[0]


def _parse_error(text: str) -> str:
    """The message of tyro's error box, as one line (with a pointer to --help).

    The box is a title, then blocks between dividers (drawn with box characters on a
    terminal, with dashes elsewhere); the message is the first block after the title.
    """
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        body = line.strip().strip("│|╭╮╰╯").strip()
        divider = re.fullmatch(r"[─-]*\s*(.*?)\s*[─-]{3,}", body)
        if divider:  # a divider, or the box's top edge with the title in it
            blocks.append([divider.group(1)] if divider.group(1) else [])
            blocks.append([])
        elif body:
            blocks[-1].append(body)
    blocks = [block for block in blocks if block]
    chosen = blocks[1] if len(blocks) > 1 else blocks[0] if blocks else []
    message = re.sub(r"\s+", " ", " ".join(chosen)).strip() or "could not parse the arguments"
    return f"{message} (see --help)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` of the inference commands: the description as written, and every option's
    default shown (as tyro shows them for the training commands) unless its help states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or action.default in (None, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: {action.default!r})"


def read_input_lines(path: str) -> list[str]:
    """The lines of a ``--file`` for an inference command, one input per line.

    The inference commands print exactly one output line per input line, in order; an empty
    input line gets an empty output line and a warning naming it, so that outputs stay aligned
    with inputs and nothing is dropped. A file with no lines at all is an error.

    Examples:
      >>> import os, tempfile
      >>> from experiments.cli import read_input_lines
      >>> path = os.path.join(tempfile.mkdtemp(), "in.txt")
      >>> _ = open(path, "w", newline="").write("one\\r\\n\\nthree\\n")
      >>> read_input_lines(path)
      ['one', '', 'three']
    """
    lines = read_utf8_lines(path)
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise DataError(f"{path} is empty: nothing to read, one input per line expected")
    return [line.rstrip("\r") for line in lines]


def warn_empty(inputs: Sequence[str], what: str) -> None:
    """Warns (on stderr) about empty inputs, which get empty output lines."""
    empty = [n for n, line in enumerate(inputs, start=1) if not line.strip()]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        print(f"warning: {what} {shown} empty: an empty output line for each", file=sys.stderr)


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors are one line ``error: ...`` (exit status 2), as
    for the training commands."""

    def error(self, message: str):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        try:
            check_flag_values(vars(parsed))
        except ConfigError as error:
            fail(error)
        return parsed


def run(experiment: Callable[[Any, str], Any], config: Any, workdir: str) -> None:
    """Runs ``experiment(config, workdir)`` holding the workdir (one run at a time); a flag,
    data, workdir, resume or NaN problem exits with its message (status 2) instead of a
    traceback."""
    # A warning about the user's data reads as one line, like the errors.
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"
    # A failed write (full disk) is reported in one line below; orbax's writer threads would
    # also log it, once per array, and asyncio again for each of their futures.
    for name in ("absl", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise NotADirectoryError(f"--workdir {workdir} is a file, not a folder")
        with workdir_lock(workdir):
            if _FRESH:
                _FRESH.clear()
                _clear_runs(workdir)
            experiment(config, workdir)
    except ResumeMismatchError as error:
        fail(_with_flags(error, workdir))
    except USER_ERRORS as error:
        fail(error)


def _clear_runs(workdir: str) -> None:
    """``--fresh``: clears every jaxrnn run under ``workdir``: a folder that `fit` locked (its
    ``.lock`` names a process) and that holds ``metrics.jsonl`` or ``checkpoints``. Hidden
    folders and what a run keeps are not looked into; nothing else is touched."""
    kept = {"checkpoints", "checkpoints.damaged", "tensorboard"}
    for folder, names, files in os.walk(workdir):
        if _is_run(folder, names, files):
            clear_workdir(folder)
        names[:] = [n for n in names if not n.startswith(".") and n not in kept]


def _is_run(folder: str, names: list[str], files: list[str]) -> bool:
    if LOCK_FILE not in files or not ("checkpoints" in names or METRICS_FILE in files):
        return False
    with open(os.path.join(folder, LOCK_FILE), encoding="utf-8", errors="replace") as f:
        return f.read(4).startswith("pid ") or os.path.getsize(f.name) == 0


def _with_flags(error: ResumeMismatchError, workdir: str) -> str:
    """The mismatch in the command line's words: flags, and ``--fresh`` to start afresh."""
    if not error.values:
        return str(error).replace("pass resume=False to start over", "pass --fresh to start afresh")
    detail = ", ".join(
        f"{flag(name)} {saved!r} then, {now!r} now" for name, (saved, now) in error.values.items()
    )
    return (
        f"--workdir {workdir} holds a run made with other settings ({detail}); pass --fresh to "
        "delete its checkpoints and metrics and start afresh, or use another --workdir"
    )


def fail(error: BaseException) -> None:
    """Prints ``error: <message>`` (one line) and exits with status 2."""
    message = " ".join(str(error).split()) if str(error) else type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
