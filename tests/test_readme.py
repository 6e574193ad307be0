"""The README's Python examples run as written (one after another, like a reader would)."""

import contextlib
import io
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.allow_promotion
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)  # examples may write runs/... into the working directory
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "mine" / "metrics.jsonl").exists()
    # The first example teaches something: its loss falls by orders of magnitude, as the
    # README says, and fit's validation loss falls further.
    losses = [float(x) for x in re.findall(r"mse (\d+\.\d+)", printed.getvalue())]
    assert len(losses) == 7, printed.getvalue()
    assert losses[-1] < losses[0] / 100, losses
    first, last = map(
        float, re.search(r"validation loss (\S+) -> (\S+)", printed.getvalue()).groups()
    )
    assert last < first, (first, last)
