"""Checkpoints survive damage: every kind is detected, restoring refuses it, and `fit` falls back
to the newest intact checkpoint with the same result as a run that was never damaged."""

import glob
import os
import shutil
import subprocess
import sys

import chex
import pytest
import toy_problem

from jaxrnn import train

pytestmark = pytest.mark.allow_promotion  # optax is not written for strict dtype promotion

HERE = os.path.dirname(__file__)
SCRIPT = os.path.join(HERE, "toy_problem.py")


def without_time(history):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in history]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return toy_problem.run(str(tmp_path_factory.mktemp("full")), 20)


def largest_file(folder):
    files = [f for f in glob.glob(os.path.join(folder, "**", "*"), recursive=True)]
    return max((f for f in files if os.path.isfile(f)), key=os.path.getsize)


def truncate(step_dir):
    path = largest_file(os.path.join(step_dir, "params"))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def delete_params(step_dir):
    shutil.rmtree(os.path.join(step_dir, "params"))


def empty_metadata(step_dir):
    open(os.path.join(step_dir, "meta", "metadata"), "w").close()


def flip_a_byte(step_dir):
    path = largest_file(os.path.join(step_dir, "opt_state"))
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))


def remove_record(step_dir):  # what a save killed before its record leaves behind
    os.remove(os.path.join(step_dir, "jaxrnn_checkpoint.json"))


DAMAGE = {
    "truncated file": (truncate, "bytes, expected"),
    "deleted params folder": (delete_params, "params/.* is missing"),
    "empty metadata file": (empty_metadata, "meta/metadata: 0 bytes"),
    "flipped byte": (flip_a_byte, "contents differ from when it was saved"),
    "no record": (remove_record, "the save did not finish"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_is_detected_and_fit_resumes_from_the_newest_intact_checkpoint(
    tmp_path, uninterrupted, kind
):
    # Given a run stopped at step 15 whose newest checkpoint (15) is then damaged
    damage, problem = DAMAGE[kind]
    workdir = str(tmp_path / "run")
    toy_problem.run(workdir, 15)
    checkpoints = os.path.join(workdir, "checkpoints")
    damage(os.path.join(checkpoints, "15"))
    # Then restoring it directly is refused with the step and the problem
    if kind != "no record":
        with pytest.raises(train.CheckpointError, match=rf"step 15 .* is damaged \(.*{problem}"):
            train.Checkpointer(checkpoints).restore_params(toy_problem.init_params(), 15)
    # When the run is resumed to step 20
    with pytest.warns(UserWarning, match=rf"checkpoint step 15 in .* is damaged \(.*{problem}"):
        resumed = toy_problem.run(workdir, 20)
    # Then it continued from step 10 and ends exactly as the undamaged run
    chex.assert_trees_all_equal(resumed.state, uninterrupted.state)
    assert without_time(resumed.history) == without_time(uninterrupted.history)
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)
    assert os.path.isdir(os.path.join(workdir, "checkpoints.damaged", "15"))
    assert train.Checkpointer(checkpoints).verify(15) is None  # saved again, intact


def test_no_intact_checkpoint_stops_with_one_line_naming_the_workdir(tmp_path):
    workdir = str(tmp_path / "run")
    toy_problem.run(workdir, 10)
    checkpoints = os.path.join(workdir, "checkpoints")
    for step in train.Checkpointer(checkpoints).all_steps():
        flip_a_byte(os.path.join(checkpoints, str(step)))
    with (
        pytest.warns(UserWarning, match="is damaged"),
        pytest.raises(
            train.CheckpointError, match=rf"no intact checkpoint in {checkpoints} .*resume=False"
        ),
    ):
        toy_problem.run(workdir, 20)


def test_a_kill_during_a_save_resumes_bit_identical(tmp_path, uninterrupted):
    # Given a run killed inside the save of step 10, after orbax wrote it, before the record
    workdir = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(HERE, "toy_problem.py"),
            workdir,
            "20",
            "10",
            "SIGKILL",
            "in-save",
        ],
        capture_output=True,
        text=True,
        timeout=1800,  # only stops a hang: a busy machine is slow
        env=env,
    )
    assert proc.returncode == -9, proc.stderr
    assert train.Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [5]
    # When it is resumed, then the unfinished checkpoint is set aside and nothing differs
    with pytest.warns(UserWarning, match="step 10 .*the save did not finish"):
        resumed = toy_problem.run(workdir, 20)
    chex.assert_trees_all_equal(resumed.state, uninterrupted.state)
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)


def test_best_and_latest_skip_nothing_and_restore_checks_the_step(tmp_path):
    workdir = str(tmp_path / "run")
    toy_problem.run(workdir, 10)
    checkpoints = train.Checkpointer(os.path.join(workdir, "checkpoints"))
    with pytest.raises(train.CheckpointError, match=r"no checkpoint for step 7 .*\[5, 10\]"):
        checkpoints.restore_params(toy_problem.init_params(), 7)
    with pytest.raises(ValueError, match="step must be 'best', 'latest' or a step number"):
        checkpoints.restore_params(toy_problem.init_params(), "foo")
