"""Importing an experiment never changes the user's matplotlib backend (notebooks keep their
inline plots)."""

import subprocess
import sys


def test_importing_experiments_leaves_the_matplotlib_backend_alone():
    code = (
        "import matplotlib; matplotlib.use('svg'); import importlib\n"
        "for name in ('ball', 'stock', 'sentiment', 'charlm', 'translate'):\n"
        "    importlib.import_module(f'experiments.{name}.plots')\n"
        "    importlib.import_module(f'experiments.{name}.train')\n"
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "svg"
