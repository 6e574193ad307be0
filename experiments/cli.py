"""The command line every experiment shares: ``--workdir`` plus one flag per config field."""

import dataclasses
import sys
from collections.abc import Callable
from collections.abc import Sequence
from typing import Annotated
from typing import Any

import tyro

from experiments.datasets import DataError
from jaxrnn.train import NonFiniteError
from jaxrnn.train import ResumeMismatchError

# Errors a user can act on from the message alone: printed without a traceback.
USER_ERRORS = (DataError, FileNotFoundError, NonFiniteError, ResumeMismatchError)


def parse(
    config_cls: type,
    *,
    description: str,
    default_workdir: str,
    argv: Sequence[str] | None = None,
) -> tuple[Any, str]:
    """Parses ``argv`` into ``(config, workdir)``; ``--help`` lists every field with its doc.

    Args:
      config_cls: the experiment's config dataclass (every field has a default).
      description: the text shown above the options.
      default_workdir: where outputs go unless ``--workdir`` says otherwise.
      argv: the arguments (None: ``sys.argv[1:]``).

    Returns:
      The config and the workdir.

    Example:
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
            ("config", config_cls, dataclasses.field(default_factory=config_cls)),
            (
                "workdir",
                Annotated[str, tyro.conf.arg(help=workdir_help)],
                dataclasses.field(default=default_workdir),
            ),
        ],
        frozen=True,
    )
    args = tyro.cli(
        args_cls,
        args=argv,
        description=description,
        config=(tyro.conf.OmitArgPrefixes, tyro.conf.FlagConversionOff),
    )
    return args.config, args.workdir


def run(experiment: Callable[[Any, str], Any], config: Any, workdir: str) -> None:
    """Runs ``experiment(config, workdir)``; a data, resume or NaN problem exits with its
    message (status 2) instead of a traceback."""
    try:
        experiment(config, workdir)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
