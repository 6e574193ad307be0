"""Writing what an experiment found: results.json (atomically) and plain-text tables."""

import json
import math
import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any


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
