"""benchmarks/gpu_check.sh waits for the first GPU; its --cpu mode runs here so that it cannot
rot in the meantime (tiny sizes: what is checked is that every part runs and reports)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_and_reports_every_part(tmp_path):
    pytest.importorskip("flax", reason="the check times Flax too (the [flax] extra)")
    log = tmp_path / "gpu_check.log"
    done = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--cpu", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": ROOT},
    )
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    for expected in (
        "== tests of the fast paths",
        "passed",
        "LSTM b=4 t=6 i=3 h=8",
        "GRU b=4 t=6 i=3 h=8",
        "jaxrnn (every output)",
        "skipped: jax.experimental.rnn.lstm calls cuDNN: it needs a GPU",
        "mingru  T=    64",
        "LSTM training >= 0.8x cuDNN: not measured",
        "minGRU parallel vs sequential at T=64",
        "== done, status 0",
    ):
        assert expected in text, (expected, text[-3000:])


def test_gpu_check_refuses_to_pretend_without_a_gpu():
    pytest.importorskip("flax", reason="the check imports Flax")
    done = subprocess.run(
        [sys.executable, "gpu_check.py"],
        cwd=os.path.join(ROOT, "benchmarks"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"},
    )
    assert done.returncode != 0
    assert "error: no GPU" in done.stderr and "--cpu" in done.stderr
