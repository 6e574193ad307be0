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
    # As the notebooks read it: a relative JAXRNN_DATA is relative to the repository root.
    root = os.path.join(ROOT, os.environ.get("JAXRNN_DATA", "../shared/data"))
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
    # Run in notebooks/, where Jupyter starts a notebook's kernel. The cell timeout only stops
    # a hang: on a busy machine a cell may take many times what it takes alone, and no test may
    # depend on how fast the machine is.
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.dirname(path)}},
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
    # A reader should not meet warnings: importing jaxrnn.train once put tqdm's
    # "IProgress not found" into every notebook.
    warnings = [
        o.text.strip().splitlines()[0]
        for c in code
        for o in c.outputs
        if o.output_type == "stream" and o.name == "stderr" and "Warning" in o.text
    ]
    assert not warnings, warnings


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
@pytest.mark.parametrize("start_in", ["notebooks", "repository root"])
def test_the_first_cell_finds_the_code_and_the_data_from_where_jupyter_starts(path, start_in):
    # Only the imports cell: the whole notebook runs once above (from notebooks/).
    notebook = nbformat.read(path, as_version=4)
    first = next(c for c in notebook.cells if c.cell_type == "code")
    if "experiments" not in first.source:
        pytest.skip("imports nothing from experiments/ and reads no data")
    cwd = {"notebooks": os.path.dirname(path), "repository root": ROOT}
    probe = nbformat.v4.new_notebook(
        cells=[
            first,
            nbformat.v4.new_code_cell("print(ROOT); print(os.path.isdir(DATA))"),
        ]
    )
    NotebookClient(
        probe,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd[start_in])}},
    ).execute()
    printed = probe.cells[1].outputs[0].text.split()
    assert printed[0] == ROOT
    assert printed[1] == str(
        os.path.isdir(os.path.join(ROOT, os.environ.get("JAXRNN_DATA", "../shared/data")))
    )
