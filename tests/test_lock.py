"""One run per workdir: a second run refuses at once, the first finishes intact, and a killed
run leaves no lock behind."""

import os
import subprocess
import sys
import time

import pytest
import toy_problem

from jaxrnn import train

pytestmark = pytest.mark.allow_promotion  # optax is not written for strict dtype promotion

HERE = os.path.dirname(__file__)
SCRIPT = os.path.join(HERE, "toy_problem.py")


def test_a_second_run_in_a_busy_workdir_refuses_and_the_first_finishes_intact(tmp_path):
    # Given a run that holds its workdir, paused at step 7 until this test lets it go on
    workdir = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    first = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "toy_problem.py"),
            workdir,
            "20",
            "7",
            "SIGINT",
            "wait",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 1800  # only stops a hang
        while not os.path.exists(workdir + ".held"):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run never reached step 7"
            time.sleep(0.05)
        # When a second run starts in the same workdir
        with pytest.raises(
            train.WorkdirInUseError, match=rf"in use by another run \(pid {first.pid}"
        ):
            toy_problem.run(workdir, 20)
    finally:
        open(workdir + ".go", "w").close()
        stderr = first.communicate(timeout=1800)[1]
    # Then the first run finished with intact checkpoints and one record per step
    assert first.returncode == 0, stderr
    checkpoints = train.Checkpointer(os.path.join(workdir, "checkpoints"))
    assert checkpoints.all_steps() == [10, 15, 20]
    assert all(checkpoints.verify(step) is None for step in checkpoints.all_steps())
    records = [(r["step"], r["split"]) for r in train.read_metrics(workdir)]
    assert len(records) == len(set(records))
    assert records[-1] == (20, "val")


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    workdir = str(tmp_path / "run")
    code = (
        "import os, signal, sys\n"
        "from jaxrnn.train import workdir_lock\n"
        "with workdir_lock(sys.argv[1]):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    proc = subprocess.run([sys.executable, "-c", code, workdir], env=env, timeout=1800)
    assert proc.returncode == -9
    assert os.path.exists(os.path.join(workdir, ".lock"))  # the file stays, the lock does not
    with train.workdir_lock(workdir):
        pass
