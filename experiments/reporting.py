"""Writing what an experiment found: its config, results.json (atomically) and plain tables."""

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from experiments.validation import ConfigError

CONFIG_FILE = "config.json"


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Writes ``value`` as indented JSON via a temporary file and a rename (atomic).

    Example:
      >>> import json
      >>> from experiments.reporting import write_json
      >>> import tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "results.json")
      >>> write_json(path, {"rmse": 0.1})
      >>> json.load(open(path))
      {'rmse': 0.1}
    """
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=False, default=float)
        f.write("\n")
    os.replace(tmp, path)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A fixed-width text table; floats get 4 significant digits.

    Example:
      >>> from experiments.reporting import format_table
      >>> print(format_table([{"model": "lstm", "rmse": 0.123456}], ["model", "rmse"]))
      model  rmse
      -----  ------
      lstm   0.1235
    """

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    body = [[cell(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in body)) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def save_config(workdir: str | os.PathLike, config: Any, experiment: str) -> None:
    """Writes ``<workdir>/config.json`` (the experiment's name and its config) so that a run
    can be reloaded, and so that no other experiment writes into this workdir.

    Raises:
      ConfigError: when the workdir holds a run of another experiment.
    """
    saved = _read_config_file(workdir)
    if saved is not None and not _same_experiment(saved, type(config), experiment):
        raise ConfigError(
            f"--workdir {workdir} holds {_describe(saved)}, not a {experiment} one; "
            "use another --workdir"
        )
    payload = {"experiment": experiment, "config": dataclasses.asdict(config)}
    write_json(os.path.join(workdir, CONFIG_FILE), payload)


def load_config(workdir: str | os.PathLike, config_cls: type, experiment: str) -> Any:
    """The config a run in ``workdir`` was trained with.

    Raises:
      FileNotFoundError: naming the command that trains a model there.
      ConfigError: when the workdir holds a run of another experiment.

    Example:
      >>> from experiments.reporting import load_config, save_config
      >>> import dataclasses, tempfile
      >>> @dataclasses.dataclass(frozen=True)
      ... class Config:
      ...     sizes: tuple[int, ...] = (1, 2)
      >>> workdir = tempfile.mkdtemp()
      >>> save_config(workdir, Config(), "demo")
      >>> load_config(workdir, Config, "demo")
      Config(sizes=(1, 2))
    """
    saved = _read_config_file(workdir)
    if saved is None:
        raise FileNotFoundError(
            f"{workdir} holds no trained model ({os.path.join(workdir, CONFIG_FILE)} is "
            f"missing); train one with: python -m experiments.{experiment} --workdir {workdir}"
        )
    if not _same_experiment(saved, config_cls, experiment):
        raise ConfigError(
            f"--workdir {workdir} holds {_describe(saved)}, not a {experiment} one; pass the "
            f"workdir of a run of python -m experiments.{experiment}"
        )
    fields = saved[1]
    # JSON has no tuples: give tuple-typed fields their tuples back.
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _same_experiment(saved: tuple[str, dict], config_cls: type, experiment: str) -> bool:
    name, fields = saved
    fits = set(fields) <= {f.name for f in dataclasses.fields(config_cls)}
    return fits and name in (experiment, "")


def _describe(saved: tuple[str, dict]) -> str:
    return f"a {saved[0]} run" if saved[0] else "a run of another experiment"


def _read_config_file(workdir) -> tuple[str, dict] | None:
    """``(experiment, fields)`` of ``<workdir>/config.json``, or None if there is none."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is damaged ({error}); use another --workdir") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path} is not a jaxrnn run's config; use another --workdir")
    if isinstance(payload.get("config"), dict) and isinstance(payload.get("experiment"), str):
        return payload["experiment"], payload["config"]
    return "", payload  # written before runs named their experiment


def run_settings(config: Any, **extra: Any) -> dict[str, Any]:
    """The settings `jaxrnn.train.fit` stores with a run and compares on resume: the config's
    fields and ``extra``, without ``data_dir`` (where the data lives is not a setting of the
    run: moving the data folder must not stop a run from resuming).

    Examples:
      >>> import dataclasses
      >>> from experiments.reporting import run_settings
      >>> @dataclasses.dataclass
      ... class Config:
      ...     data_dir: str = "../shared/data"
      ...     hidden_size: int = 64
      >>> run_settings(Config(), model="lstm")
      {'hidden_size': 64, 'model': 'lstm'}
    """
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "data_dir"}
    return {**settings, **extra}
