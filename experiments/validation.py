"""Checking an experiment's config before any work: each error names the command-line flag.

Every experiment's ``train_and_evaluate`` calls its config's ``check()`` first, so a notebook
that builds a config by hand gets the same message as the command line.
"""

import dataclasses
import math
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

SEED_RANGE = (0, 2**32 - 1)  # what jax.random.key and numpy's generators take
INT_RANGE = (-(2**63), 2**63 - 1)


class ConfigError(ValueError):
    """A config value out of range; the message names the flag."""


def flag(name: str) -> str:
    """The command-line flag of config field ``name``.

    Example:
      >>> from experiments.validation import flag
      >>> flag("batch_size")
      '--batch-size'
    """
    return "--" + name.replace("_", "-")


def check_flag_values(values: Any) -> None:
    """Raises `ConfigError` naming the first flag whose value no experiment can use: a NaN or
    infinite number, a seed outside [0, 2**32 - 1], an integer beyond 64 bits. Called once for
    every command, on a config dataclass or on a ``{name: value}`` mapping (argparse's).

    Example:
      >>> from experiments.validation import check_flag_values
      >>> check_flag_values({"learning_rate": float("nan")})
      Traceback (most recent call last):
      ...
      experiments.validation.ConfigError: --learning-rate must be a finite number, got nan
    """
    if dataclasses.is_dataclass(values):
        values = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    for name, value in values.items() if isinstance(values, Mapping) else ():
        for entry in value if isinstance(value, (tuple, list)) else (value,):
            _check_flag_value(name, entry)


def _check_flag_value(name: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag(name)} must be a finite number, got {value}")
    if isinstance(value, int):
        low, high = SEED_RANGE if name == "seed" or name.endswith("_seed") else INT_RANGE
        if not low <= value <= high:
            raise ConfigError(f"{flag(name)} must be an integer in [{low}, {high}], got {value}")


def check_config(
    config: Any,
    *,
    positive: Iterable[str] = (),
    non_negative: Iterable[str] = (),
    fractions: Iterable[str] = (),
    rates: Iterable[str] = (),
    choices: dict[str, Iterable[str]] | None = None,
) -> None:
    """Raises `ConfigError` naming the flag of the first field out of range.

    Args:
      config: a config dataclass.
      positive: int fields that must be >= 1 (float fields: > 0).
      non_negative: fields that must be >= 0.
      fractions: fields in the open interval (0, 1).
      rates: fields in [0, 1) (dropout rates).
      choices: ``{field: allowed values}``; a tuple field checks each entry.

    Example:
      >>> import dataclasses
      >>> from experiments.validation import check_config
      >>> @dataclasses.dataclass
      ... class Config:
      ...     batch_size: int = 0
      >>> check_config(Config(), positive=["batch_size"])
      Traceback (most recent call last):
      ...
      experiments.validation.ConfigError: --batch-size must be at least 1, got 0
    """

    def value(name):
        return getattr(config, name)

    for name in positive:
        v = value(name)
        if isinstance(v, float) and not v > 0:
            raise ConfigError(f"{flag(name)} must be above 0, got {v}")
        if not isinstance(v, float) and v < 1:
            raise ConfigError(f"{flag(name)} must be at least 1, got {v}")
    for name in non_negative:
        if not value(name) >= 0:
            raise ConfigError(f"{flag(name)} must be at least 0, got {value(name)}")
    for name in fractions:
        if not 0 < value(name) < 1:
            raise ConfigError(
                f"{flag(name)} must be between 0 and 1 (exclusive), got {value(name)}"
            )
    for name in rates:
        if not 0 <= value(name) < 1:
            raise ConfigError(f"{flag(name)} must be in [0, 1), got {value(name)}")
    for name, allowed in (choices or {}).items():
        allowed = list(allowed)
        given = value(name)
        for entry in given if isinstance(given, tuple) else (given,):
            if entry not in allowed:
                raise ConfigError(
                    f"{flag(name)} must be one of {', '.join(map(str, allowed))}; got {entry!r}"
                )
