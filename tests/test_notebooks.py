"""Every notebook runs top to bottom, and is committed with its outputs."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_TIMEOUT = 3600  # seconds; see test_notebook_runs_top_to_bottom
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def skip_without_data(notebook) -> None:
    """Skips a notebook whose metadata names shared data sets that are not here."""
    needed = notebook.metadata.get("jaxrnn", {}).get("data", [])
    root = os.environ.get("JAXRNN_DATA", "")
    missing = [name for name in needed if not os.path.isdir(os.path.join(root, name))]
    if missing:
        pytest.skip(
            f"needs the data sets {missing} in JAXRNN_DATA (got {root!r}); "
            "set JAXRNN_DATA to ../shared/data"
        )


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom(path):
    notebook = nbformat.read(path, as_version=4)
    skip_without_data(notebook)
    # Run from the repository root so that `experiments` imports as it does for a reader.
    # The cell timeout only stops a hang: on a busy machine a cell may take many times what it
    # takes alone, and no test may depend on how fast the machine is.
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": ROOT}},
    ).execute()
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_committed_with_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "run the notebook before committing it"
    assert any(o.output_type == "display_data" for c in code for o in c.outputs), "no plots"
