"""The metrics file: no record is lost when it is deleted, truncated or cut mid-line."""

import json
import os
import warnings

import pytest
import toy_problem

from jaxrnn import train

pytestmark = pytest.mark.allow_promotion  # optax is not written for strict dtype promotion


def without_time(history):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in history]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return toy_problem.run(str(tmp_path_factory.mktemp("full")), 20)


def delete(path):
    os.remove(path)


def truncate_mid_line(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def drop_a_middle_line(path):
    lines = open(path).read().splitlines(keepends=True)
    del lines[len(lines) // 2]
    open(path, "w").writelines(lines)


@pytest.mark.parametrize("damage", [delete, truncate_mid_line, drop_a_middle_line])
def test_a_damaged_metrics_file_is_rebuilt_on_resume(tmp_path, uninterrupted, damage):
    # Given a run stopped at step 15 whose metrics file is then damaged
    workdir = str(tmp_path / "run")
    toy_problem.run(workdir, 15)
    damage(os.path.join(workdir, "metrics.jsonl"))
    # When it is resumed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = toy_problem.run(workdir, 20)
    messages = [str(w.message) for w in caught]
    # (a line cut mid-record also gets its own warning when it is read)
    assert any("rebuilt it from the checkpoint of step 15" in m for m in messages), messages
    # Then no record is lost and none is duplicated
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)
    assert without_time(resumed.history) == without_time(uninterrupted.history)


def test_deleting_the_file_during_a_run_loses_nothing_after_resume(tmp_path, uninterrupted):
    workdir = str(tmp_path / "run")

    def delete_at_7(step, state, metrics):
        if step == 7:
            os.remove(os.path.join(workdir, "metrics.jsonl"))

    toy_problem.run(workdir, 15, callbacks=(delete_at_7,))
    with pytest.warns(UserWarning, match="held .* of the .* records up to step 15"):
        toy_problem.run(workdir, 20)
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)


def test_read_metrics_skips_a_cut_last_line_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "split": "train", "loss": 1.0}) + '\n{"step": 2, "spl')
    with pytest.warns(UserWarning, match=r"metrics.jsonl, line 2: incomplete last record skipped"):
        records = train.read_metrics(tmp_path)
    assert records == [{"step": 1, "split": "train", "loss": 1.0}]
    path.write_text('{"step": 1,\n' + json.dumps({"step": 2}) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 1: not valid JSON"):
        train.read_metrics(tmp_path)
