"""Several processes joined by jax.distributed (gloo over loopback) train as one.

Each test starts ``examples/multiprocess_fit.py`` through ``python -m jaxrnn.launch`` and
checks the processes it leaves behind: none.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxrnn import launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "multiprocess_fit.py")
HANG = 600  # only stops a hang: a busy machine is slow

pytestmark = pytest.mark.slow  # one worker runs the module (--dist loadfile): one fixture


def running(marker: str) -> list[int]:
    """Pids of the processes with ``marker`` as one of their arguments (exactly: a shell
    whose command text merely mentions it does not count)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read().split(b"\0"):
                        pids.append(int(name))
            except OSError:
                pass
    return pids


def run(processes: int, workdir, *args) -> subprocess.CompletedProcess:
    if processes == 1:  # a plain process, without jax.distributed
        command = [sys.executable, SCRIPT]
    else:
        command = [sys.executable, "-m", "jaxrnn.launch", "-n", str(processes), SCRIPT]
    assert running(SCRIPT) == [], "processes of an earlier run are still there"
    proc = subprocess.run(
        [*command, "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=HANG,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert running(SCRIPT) == [], "processes left behind"
    return proc


def outcome(path) -> tuple[np.ndarray, list[dict], np.ndarray]:
    with open(path) as f:
        report = json.load(f)
    losses = np.array([r["loss"] for r in report["history"] if r["split"] == "train"])
    history = [{k: v for k, v in r.items() if k != "wall_time"} for r in report["history"]]
    return losses, history, np.concatenate([np.asarray(p) for p in report["params"]])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Uninterrupted runs of 20 steps in 1, 2 and 3 processes: ``{count: (losses, history,
    params)}``, and ``"base"``: the folder of their workdirs ``run1``, ``run2``, ``run3``."""
    base = tmp_path_factory.mktemp("multiprocess")
    out = {}
    for count in (1, 2, 3):
        proc = run(count, base / f"run{count}", "--out", str(base / f"{count}.json"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[count] = outcome(base / f"{count}.json")
    out["base"] = base
    return out


def test_two_and_three_processes_follow_the_single_process_run(runs):
    single_losses, _, single_params = runs[1]
    assert len(single_losses) == 20
    for count in (2, 3):
        losses, _, params = runs[count]
        np.testing.assert_allclose(losses, single_losses, rtol=1e-5)
        np.testing.assert_allclose(params, single_params, rtol=1e-5, atol=1e-6)


def test_metrics_and_checkpoints_are_written_once(runs):
    from jaxrnn.train import read_metrics

    for count in (1, 3):
        workdir = runs["base"] / f"run{count}"
        records = [{k: v for k, v in r.items() if k != "wall_time"} for r in read_metrics(workdir)]
        assert records == runs[count][1]  # one line per record, not one per process
        steps = sorted(int(n) for n in os.listdir(workdir / "checkpoints"))
        assert steps == [10, 15, 20]  # keep_last=3 pruned once, by process 0
        for step in steps:
            names = os.listdir(workdir / "checkpoints" / str(step))
            assert names.count("jaxrnn_checkpoint.json") == 1


def test_a_lost_process_stops_the_others_and_a_rerun_resumes_bit_identically(runs, tmp_path):
    workdir = tmp_path / "run"
    started = time.monotonic()
    proc = run(2, workdir, "--kill-process", "1", "--kill-at", "12")
    print(f"killed run ended in {time.monotonic() - started:.1f} s; {proc.stderr[-2000:]}")
    assert proc.returncode == 1
    assert "error: process 1 of 2" in proc.stderr and "was killed by SIGKILL" in proc.stderr
    assert "all processes ended" in proc.stderr
    checkpoints = sorted(int(n) for n in os.listdir(workdir / "checkpoints"))
    assert checkpoints[-1] == 10  # the step-15 checkpoint was never reached

    proc = run(2, workdir, "--out", str(tmp_path / "resumed.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, history, params = outcome(tmp_path / "resumed.json")
    _, uninterrupted_history, uninterrupted_params = runs[2]
    assert history == uninterrupted_history  # losses and validation, bit for bit
    np.testing.assert_array_equal(params, uninterrupted_params)


def test_a_run_resumes_with_another_process_count(runs, tmp_path):
    workdir = tmp_path / "run"
    proc = run(3, workdir, "--steps", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run(1, workdir, "--steps", "20", "--out", str(tmp_path / "resumed.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses, _, params = outcome(tmp_path / "resumed.json")
    np.testing.assert_allclose(losses, runs[1][0], rtol=1e-5)
    np.testing.assert_allclose(params, runs[1][2], rtol=1e-5, atol=1e-6)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    proc = run(3, tmp_path / "run", "--batch-size", "16")
    assert proc.returncode == 1
    assert "leading dimension 16, which does not split evenly over 3 processes" in proc.stderr


def test_the_launcher_names_the_failed_process_and_ends_the_others(capfd):
    code = (
        "import os, sys, time\n"
        "if os.environ['JAX_PROCESS_ID'] == '1': sys.exit(3)\n"
        "time.sleep(600)\n"
    )
    marker = "launcher-test-" + str(os.getpid())
    status = launch.launch([sys.executable, "-c", code, marker], 3, grace=0.5)
    assert status == 1
    err = capfd.readouterr().err
    assert "error: process 1 of 3 (pid " in err and "exited with status 3" in err
    assert running(marker) == []


def test_the_launcher_passes_the_environment_jax_reads(tmp_path):
    code = (
        "import os\n"
        "keys = ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID')\n"
        f"open(os.path.join({str(tmp_path)!r}, os.environ['JAX_PROCESS_ID']), 'w')"
        ".write(' '.join(os.environ[k] for k in keys))\n"
    )
    assert launch.launch([sys.executable, "-c", code], 2, port=23456) == 0
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == [
        "127.0.0.1:23456 2 0",
        "127.0.0.1:23456 2 1",
    ]


def test_the_launcher_blames_a_process_that_ended_early_before_the_one_that_failed(capfd):
    # Process 1 ends "successfully" at once; process 0 then fails waiting for it.
    code = (
        "import os, sys, time\n"
        "if os.environ['JAX_PROCESS_ID'] == '1': sys.exit(0)\n"
        "time.sleep(1); sys.exit(1)\n"
    )
    assert launch.launch([sys.executable, "-c", code], 2, grace=0.5) == 1
    err = capfd.readouterr().err
    assert re.search(
        r"error: process 0 of 2 \(pid \d+\) exited with status 1, after process 1 \(pid \d+\) "
        r"exited with status 0 while the others were still running: .*look at that one first",
        err,
    ), err


def test_the_launcher_refuses_a_port_in_use_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        script = tmp_path / "x.py"
        script.write_text("")
        proc = subprocess.run(
            [sys.executable, "-m", "jaxrnn.launch", "-n", "2", "--port", str(port), str(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --port {port} on 127.0.0.1 is not free (Address already in use); pass another"
    ]


def test_the_launcher_warns_when_processes_outnumber_the_cores(capfd):
    many = (os.cpu_count() or 1) + 1
    assert launch.launch([sys.executable, "-c", "pass"], many) == 0
    assert f"warning: {many} processes on {many - 1} CPU cores" in capfd.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-n", "0", "x.py"], "--processes must be at least 1, got 0"),
        (["-n", "2", "--port", "70000", "x.py"], "--port must be in 1..65535, got 70000"),
        (["-n", "2", "/nonexistent/x.py"], "script /nonexistent/x.py does not exist"),
        (["x.py"], "the following arguments are required: --processes/-n"),
    ],
)
def test_launcher_arguments_out_of_range_end_in_one_error_line(argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrnn.launch", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {message}"]


def test_fit_names_the_lost_process_and_the_checkpoint_to_resume_from(monkeypatch, capsys):
    import importlib

    import jax

    from jaxrnn import distributed

    fit_module = importlib.import_module("jaxrnn.train.fit")  # the module, not the function

    class Saved:
        directory = "/runs/a/checkpoints"

        def latest_step(self):
            return 10

    monkeypatch.setattr(jax, "process_count", lambda: 3)
    monkeypatch.setattr(distributed, "lost_processes", lambda: [2])
    error = fit_module._lost_process_error(RuntimeError("Gloo all-reduce failed"), 12, Saved())
    expected = (
        "process 0: process 2 of 3 stopped answering at step 12 (RuntimeError: Gloo "
        "all-reduce failed); the newest complete checkpoint is step 10 in "
        "/runs/a/checkpoints: start all 3 processes again with the same workdir to resume "
        "from it"
    )
    assert str(error) == expected
    assert capsys.readouterr().err == f"jaxrnn: {expected}\n"  # printed at once, too

    monkeypatch.setattr(distributed, "lost_processes", lambda: None)
    error = fit_module._lost_process_error(RuntimeError("x"), 12, None)
    assert str(error).startswith("process 0: process 0 (the coordinator) is unreachable")

    monkeypatch.setattr(distributed, "lost_processes", lambda: [])
    monkeypatch.setattr(fit_module.time, "sleep", lambda seconds: None)
    assert fit_module._lost_process_error(RuntimeError("mine"), 12, None) is None


def test_fit_in_several_processes_needs_data_parallel(monkeypatch):
    import jax
    import jax.numpy as jnp

    from jaxrnn import train

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(ValueError, match="process 0 of 2 .*pass data_parallel=True"):
        train.fit(lambda p, b, k: jnp.sum(p), jnp.zeros(()), lambda s: jnp.ones(2), num_steps=1)
