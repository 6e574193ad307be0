"""What the benchmark scripts share."""

import collections
import json
import os
import re
from typing import Any


def save_json(path: str, value: Any) -> None:
    """Writes ``value`` as indented JSON to ``path``, creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)


def op_counts(compiled_text: str) -> collections.Counter:
    """How many operations of each kind a compiled XLA program (``.compile().as_text()``)
    has: equal counts mean the same kernels."""
    return collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", compiled_text))
