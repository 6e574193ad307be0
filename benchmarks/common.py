"""What the benchmark scripts share."""

import json
import os
from typing import Any


def save_json(path: str, value: Any) -> None:
    """Writes ``value`` as indented JSON to ``path``, creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
