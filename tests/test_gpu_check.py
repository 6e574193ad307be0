"""benchmarks/gpu_check.sh waits for a GPU; what can be checked without one is checked here, so
that it cannot rot in the meantime: its --cpu mode runs every section at tiny sizes and prints
every goal line; one failing measurement is reported and the rest still runs; without a GPU
it stops at once and says why."""

import importlib
import json
import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")
GOAL_LINE = re.compile(
    r"^GOAL .+ : (met \(measured .+\)|not met \(measured .+\)|not measured \(.+\))$"
)


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    return importlib.import_module("gpu_check")


def run_script(*args, **env):
    return subprocess.run(
        ["bash", SCRIPT, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHON": sys.executable, **env},
    )


@pytest.mark.slow
def test_cpu_mode_runs_every_section_and_prints_every_goal(tmp_path):
    pytest.importorskip("flax", reason="the check times Flax too (the [flax] extra)")
    log = tmp_path / "gpu_check.log"
    done = run_script("--cpu", str(log))
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    for expected in (
        "device and versions:",
        "== values",
        "== lstm",
        "== mixed",
        "== mingru",
        "b=4 t=6 i=3 h=8",
        "jaxrnn default (fused)",
        "Flax linen OptimizedLSTMCell",
        "T=    64 pallas",
        "== goals",
        "== tests of the fast paths",
        "== done, status 0",
    ):
        assert expected in text, (expected, text[-3000:])
    goals = [line for line in text.splitlines() if line.startswith("GOAL ")]
    assert all(GOAL_LINE.match(line) for line in goals), goals
    # 5 value checks, 2 LSTM goals at one size, 1 mixed precision, 1 minGRU; each printed where
    # it is measured and again in the summary.
    assert len(goals) == 2 * 9, goals
    assert (
        "GOAL LSTM training jaxrnn default (fused) >= 0.8x the JAX cuDNN reference's throughput "
        "at b,t,i,h=(4, 6, 3, 8) : not measured (JAX cuDNN reference: "
        "jax.experimental.rnn.lstm calls cuDNN: it needs a GPU)"
    ) in goals
    assert any("Strategy(cudnn=True)" in g and "backend is cpu" in g for g in goals)
    assert any(g.startswith("GOAL values: minGRU parallel pallas") and ": met" in g for g in goals)
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(results["sections"]) == {"values", "lstm", "mixed", "mingru", "families"}
    assert [g["line"] for g in results["goals"]] == goals[:9]
    assert results["machine"]["jax"]


def test_goal_lines(gpu_check):
    assert gpu_check.goal_text("speed >= 2x", 2.5, 2.0, shown="2.50x") == (
        "met",
        "GOAL speed >= 2x : met (measured 2.50x)",
    )
    assert (
        gpu_check.goal_text("speed >= 2x", 1.5, 2.0)[1]
        == "GOAL speed >= 2x : not met (measured 1.5)"
    )
    assert gpu_check.goal_text("error <= 1e-4", 2e-4, 1e-4, at_least=False)[0] == "not met"
    assert gpu_check.goal_text("error <= 1e-4", 1e-5, 1e-4, at_least=False)[0] == "met"
    assert gpu_check.goal_text("x", reason="ValueError: no") == (
        "not measured",
        "GOAL x : not measured (ValueError: no)",
    )


def test_one_failure_is_reported_and_the_rest_still_runs(gpu_check):
    check = gpu_check.Check(dict(gpu_check.CPU, repeats=2), budget_s=60)
    check.section("lstm")

    def broken():
        raise ValueError("no cuDNN\nsecond line")

    builds = {
        "fine": lambda: ((lambda: 1), (lambda value: None)),
        "broken": broken,
        "skipped": lambda: (_ for _ in ()).throw(gpu_check.NotMeasured("not here")),
    }
    rows = gpu_check.time_side_by_side(check, builds)
    assert list(rows) == ["fine", "broken", "skipped"]
    assert rows["fine"]["timings"] == 2 and rows["fine"]["ms"] >= 0
    assert rows["broken"] == {"reason": "ValueError: no cuDNN"}
    assert rows["skipped"] == {"reason": "not here"}
    check.end = time.monotonic() - 1  # the section's budget is spent: nothing more starts
    value, reason = check.measure(lambda: 1)
    assert value is None and "lstm section's time budget" in reason


def test_an_interrupted_run_reports_the_rest_as_not_measured(gpu_check):
    check = gpu_check.Check(gpu_check.CPU, budget_s=60)
    check.section("mingru")

    def interrupted():
        raise KeyboardInterrupt

    assert check.measure(interrupted)[1].startswith("the run was interrupted")
    assert check.measure(lambda: 1) == (None, check.stopped)
    assert check.goal("g", reason=check.stopped) == "not measured"


def test_without_a_gpu_it_stops_at_once_and_says_why(tmp_path):
    started = time.monotonic()
    done = run_script(str(tmp_path / "gpu_check.log"), JAX_PLATFORMS="cpu")
    assert done.returncode == 2, done.stdout[-2000:]
    assert "error: no GPU" in done.stdout and "--cpu" in done.stdout
    assert "== goals" not in done.stdout
    direct = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"},
    )
    assert direct.returncode == 2
    assert "error: no GPU" in direct.stderr and "--cpu" in direct.stderr
    assert time.monotonic() - started < 60
