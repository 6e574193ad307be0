"""Writing what an experiment found: its config, results.json (atomically) and plain tables."""

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

CONFIG_FILE = "config.json"


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Writes ``value`` as indented JSON via a temporary file and a rename (atomic).

    Example:
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


def save_config(workdir: str | os.PathLike, config: Any) -> None:
    """Writes a config dataclass to ``<workdir>/config.json`` so a run can be reloaded."""
    write_json(os.path.join(workdir, CONFIG_FILE), dataclasses.asdict(config))


def load_config(workdir: str | os.PathLike, config_cls: type, experiment: str) -> Any:
    """The config a run in ``workdir`` was trained with.

    Raises:
      FileNotFoundError: naming the command that trains a model there.

    Example:
      >>> import dataclasses, tempfile
      >>> @dataclasses.dataclass(frozen=True)
      ... class Config:
      ...     sizes: tuple[int, ...] = (1, 2)
      >>> workdir = tempfile.mkdtemp()
      >>> save_config(workdir, Config())
      >>> load_config(workdir, Config, "demo")
      Config(sizes=(1, 2))
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{workdir} holds no trained model ({path} is missing); train "
            f"one with: python -m experiments.{experiment} --workdir {workdir}"
        )
    with open(path, encoding="utf-8") as f:
        fields = json.load(f)
    # JSON has no tuples: give tuple-typed fields their tuples back.
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
