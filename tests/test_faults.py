"""The training harness under faults: NaN, preemption, full disks, read-only folders, threads,
links and resumes with other settings. Each test is a promise `fit` makes and once broke."""

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import toy_problem

from jaxrnn import train
from jaxrnn.train import checkpoints as checkpoints_module
from jaxrnn.train import metrics as metrics_module

pytestmark = pytest.mark.allow_promotion  # optax is not written for strict dtype promotion

HERE = os.path.dirname(__file__)
SCRIPT = os.path.join(HERE, "toy_problem.py")
ENV = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}


def without_time(history):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in history]


def toy_fit(workdir, num_steps=10, **kwargs):
    xs, ys = toy_problem.make_data()
    arguments = dict(
        num_steps=num_steps,
        val_data=train.eval_batches((xs[64:], ys[64:]), 16),
        workdir=workdir,
        progress=False,
    )
    arguments.update(kwargs)
    return train.fit(
        toy_problem.loss_fn,
        toy_problem.init_params(),
        train.EpochBatches((xs[:64], ys[:64]), 16),
        **arguments,
    )


def every_checkpoint_is_finite(directory):
    ckpt = train.Checkpointer(directory)
    for step in ckpt.all_steps():
        params = ckpt.restore_params(toy_problem.init_params(), step)
        assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(params)), step
    return ckpt.all_steps()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return toy_problem.run(str(tmp_path_factory.mktemp("full")), 30)


# ------------------------------------------------------------------------------- NaN


def test_an_update_that_makes_params_nan_stops_before_it_and_is_never_saved(tmp_path):
    # optax.sgd(nan): the loss and the gradients are finite, the updated params are not.
    with pytest.raises(train.NonFiniteError, match=r"optimizer's update made params .* step 0"):
        toy_fit(
            str(tmp_path),
            optimizer=optax.sgd(float("nan")),
            checkpoints=train.Checkpoints(every=1),
        )
    assert every_checkpoint_is_finite(tmp_path / "checkpoints") == []


def test_a_checkpoint_is_refused_unless_finite():
    state = train.init_state({"w": jnp.array([1.0, jnp.inf])}, train.default_optimizer())
    ckpt = train.Checkpointer(os.path.join(os.environ.get("TMPDIR", "/tmp"), "x"))
    with pytest.raises(train.CheckpointError, match=r"refusing to save step 0 .*params\['w'\]"):
        ckpt.save(state, meta={})


def test_a_nan_checkpoint_from_before_is_never_restored(tmp_path, monkeypatch):
    # Given steps 5 (finite) and 10 (NaN params, as written before saves were checked)
    ckpt = train.Checkpointer(tmp_path)
    state = train.init_state(toy_problem.init_params(), train.default_optimizer())
    ckpt.save(state._replace(step=jnp.asarray(5)), meta={})
    monkeypatch.setattr(checkpoints_module, "non_finite_leaf", lambda state: None)
    poisoned = jax.tree.map(lambda p: p * jnp.nan, state.params)
    ckpt.save(state._replace(step=jnp.asarray(10), params=poisoned), meta={})
    monkeypatch.undo()
    # Then restoring it names the leaf, and resuming falls back to step 5
    with pytest.raises(train.CheckpointError, match=r"step 10 .* holds non-finite .*NaN"):
        ckpt.restore(state, 10)
    with pytest.warns(UserWarning, match=r"step 10 .* holds NaN"):
        restored, _ = train.Checkpointer(tmp_path).restore_latest_intact(state)
    assert int(restored.step) == 5


def test_nan_and_inf_validation_losses_never_become_best(tmp_path):
    scores = iter([float("nan"), 2.0, float("inf"), 1.0, float("nan"), 3.0])
    result = toy_fit(
        str(tmp_path),
        num_steps=12,
        val_data=lambda params: {"loss": next(scores)},
        evaluation=train.Evaluation(every=2),
        checkpoints=train.Checkpoints(keep_last=1),
    )
    ckpt = train.Checkpointer(tmp_path / "checkpoints")
    assert result.best_step == ckpt.best_step() == 8
    assert ckpt.all_steps() == [8, 12]  # pruning kept the best, not a NaN


def test_a_run_whose_evaluations_are_all_nan_has_no_best(tmp_path):
    result = toy_fit(str(tmp_path), num_steps=4, val_data=lambda params: {"loss": float("nan")})
    assert result.best_step is None
    with pytest.raises(train.CheckpointError, match="no checkpoint .* finite validation loss"):
        train.Checkpointer(tmp_path / "checkpoints").restore_params(toy_problem.init_params())


# ------------------------------------------------------------------------ preemption


def run_until_sigterm(workdir, num_steps, at_step):
    """Runs the toy problem in a subprocess and sends it SIGTERM when it reports ``at_step``."""
    child = subprocess.Popen(
        [sys.executable, SCRIPT, workdir, str(num_steps), "report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    for line in child.stdout:
        if line.strip() == f"step {at_step}":
            child.send_signal(signal.SIGTERM)
            break
    child.stdout.read()
    stderr = child.stderr.read()
    return child.wait(timeout=1800), stderr


def test_sigterm_saves_and_every_rerun_resumes_bit_identically(tmp_path, uninterrupted):
    workdir = str(tmp_path / "run")
    at_steps = sorted(random.Random(29).sample(range(1, 26), 5))
    stopped = []
    for at_step in at_steps:
        status, stderr = run_until_sigterm(workdir, 30, at_step)
        assert status == 143, stderr
        assert "Traceback" not in stderr, stderr
        saved = train.Checkpointer(os.path.join(workdir, "checkpoints")).latest_step()
        assert f"preempted (SIGTERM): saved step {saved} to" in stderr
        assert saved >= at_step
        stopped.append(saved)
    resumed = toy_problem.run(workdir, 30)
    chex.assert_trees_all_equal(resumed.state, uninterrupted.state)
    assert without_time(resumed.history) == without_time(uninterrupted.history)
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)


# -------------------------------------------------------------- full disks, read-only folders


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs where the test may mount one (as root), else a skip."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def leftovers(folder):
    return [
        os.path.join(root, name)
        for root, dirs, files in os.walk(folder)
        for name in dirs + files
        if "tmp" in name
    ]


def test_a_full_disk_is_one_line_leaves_nothing_behind_and_a_rerun_resumes(
    small_disk, uninterrupted
):
    workdir = str(small_disk / "run")
    toy_problem.run(workdir, 10)
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, free - 4096))
    with pytest.raises(train.WriteError) as caught:
        toy_problem.run(workdir, 30)
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message, message
    assert workdir in message
    assert leftovers(workdir) == []
    filler.unlink()
    resumed = toy_problem.run(workdir, 30)
    chex.assert_trees_all_equal(resumed.state, uninterrupted.state)
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)


def test_a_read_only_workdir_is_one_line(small_disk):
    workdir = str(small_disk / "run")
    toy_problem.run(workdir, 5)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(train.WriteError) as caught:
        toy_problem.run(workdir, 10)
    message = str(caught.value)
    assert "\n" not in message and "Read-only file system" in message, message


@pytest.mark.parametrize(
    ("code", "cause"),
    [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")],
)
def test_a_failing_writer_is_one_line_and_leaves_no_partial_checkpoint(
    tmp_path, monkeypatch, code, cause
):
    # Where no tmpfs can be mounted: orbax's writer fails as tensorstore reports it.
    workdir = str(tmp_path / "run")
    toy_problem.run(workdir, 5)
    original = train.Checkpointer._save

    def failing(self, step, state, meta, metrics):
        os.makedirs(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp", "params"))
        raise ValueError(f"RESOURCE_EXHAUSTED: Failed writing [os_error_code='{code}']")

    monkeypatch.setattr(train.Checkpointer, "_save", failing)
    with pytest.raises(train.WriteError, match=rf"checkpoint step 10 .*: {cause}; nothing"):
        toy_problem.run(workdir, 10)
    assert leftovers(workdir) == []
    monkeypatch.setattr(train.Checkpointer, "_save", original)
    assert int(toy_problem.run(workdir, 10).state.step) == 10


def test_a_full_disk_while_logging_cuts_the_metrics_file_back_to_whole_lines(tmp_path, monkeypatch):
    writer = train.MetricsWriter(tmp_path)
    writer.append({"step": 1, "split": "train", "loss": 1.0})

    class HalfWritten:
        """A file on a disk that fills up after 7 bytes."""

        def __init__(self, path, mode):
            self.file = open(path, mode)

        def write(self, data):
            self.file.write(data[:7])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *args):
            self.file.close()

    monkeypatch.setattr(metrics_module, "open", HalfWritten, raising=False)
    with pytest.raises(train.WriteError, match="metrics.jsonl: No space left on device"):
        writer.append({"step": 2, "split": "train", "loss": 0.5})
    monkeypatch.undo()
    assert writer.read() == [{"step": 1, "split": "train", "loss": 1.0}]


# --------------------------------------------------------------------- one run per workdir


def test_a_second_thread_is_refused_like_a_second_process(tmp_path):
    workdir = str(tmp_path)
    inside, release = threading.Event(), threading.Event()
    errors = []

    def hold(step, state, metrics):
        if step == 2:
            inside.set()
            release.wait(600)

    def first():
        try:
            toy_fit(workdir, num_steps=4, callbacks=[hold])
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(600)
        with pytest.raises(train.WorkdirInUseError, match="another run in this process"):
            toy_fit(workdir, num_steps=4)
    finally:
        release.set()
        thread.join()
    assert errors == []


def test_resume_false_starts_afresh_through_a_symlinked_checkpoint_folder(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "checkpoints").symlink_to(scratch)
    toy_fit(str(workdir), num_steps=10, config={"toy": 1})
    # Another config with resume=False: a fresh run, not the old one's resume (or a refusal)
    result = toy_fit(str(workdir), num_steps=4, config={"toy": 2}, resume=False)
    assert int(result.state.step) == 4
    assert (workdir / "checkpoints").is_symlink()
    assert max(train.Checkpointer(workdir / "checkpoints").all_steps()) == 4
    fresh = toy_fit(None, num_steps=4)
    assert without_time(result.history) == without_time(fresh.history)


# -------------------------------------------------------------------- settings on resume


def test_resuming_with_another_seed_is_refused(tmp_path):
    toy_fit(str(tmp_path), num_steps=4, seed=1)
    with pytest.raises(train.ResumeMismatchError, match=r"seed: saved 1, now 2") as caught:
        toy_fit(str(tmp_path), num_steps=8, seed=2)
    assert caught.value.values == {"seed": (1, 2)}


def test_a_config_holding_nan_resumes(tmp_path):
    config = {"dropout": float("nan"), "sizes": [1, 2]}
    toy_fit(str(tmp_path), num_steps=4, config=config)
    assert int(toy_fit(str(tmp_path), num_steps=8, config=config).state.step) == 8


# -------------------------------------------------------------------- arguments of fit


def test_one_callback_function_is_a_list_of_one():
    seen = []
    toy_fit(None, num_steps=3, callbacks=lambda step, state, metrics: seen.append(step))
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("returned", [0.5, {"loss": "low"}, {}])
def test_a_val_data_function_must_return_named_numbers(returned):
    with pytest.raises(TypeError, match=r"val_data\(params\).* must be a"):
        toy_fit(None, num_steps=2, val_data=lambda params: returned)


def test_the_old_keywords_still_work_with_a_deprecation_warning(recwarn):
    with pytest.warns(DeprecationWarning, match=r"pass evaluation=jaxrnn.train.Evaluation\(ev"):
        old = toy_fit(None, num_steps=4, eval_every=2, best_mode="min")
    new = toy_fit(None, num_steps=4, evaluation=train.Evaluation(every=2))
    assert without_time(old.history) == without_time(new.history)
    with pytest.raises(TypeError, match="checkpoints= and keep_last="):
        toy_fit(None, num_steps=4, checkpoints=train.Checkpoints(), keep_last=2)


# ------------------------------------------------------------------------ callbacks


def test_early_stopping_stops_saves_and_stays_stopped_on_resume(tmp_path, capsys):
    scores = [3.0, 2.0, float("nan"), 2.5, 2.1, 1.0]
    feed = lambda: iter(scores)
    source = feed()
    stop = lambda: train.EarlyStopping("loss", patience=3)
    result = toy_fit(
        str(tmp_path),
        num_steps=12,
        val_data=lambda params: {"loss": next(source)},
        evaluation=train.Evaluation(every=2),
        callbacks=[stop()],
    )
    # NaN is no improvement: 2.0 at step 4, then NaN, 2.5, 2.1 -> stop at step 10
    assert int(result.state.step) == 10
    assert "early stopping at step 10" in capsys.readouterr().err
    assert train.Checkpointer(tmp_path / "checkpoints").latest_step() == 10
    again = toy_fit(
        str(tmp_path),
        num_steps=12,
        val_data=lambda params: {"loss": 0.0},
        evaluation=train.Evaluation(every=2),
        callbacks=[stop()],
    )
    assert int(again.state.step) == 10


def test_a_callback_sees_every_event_in_order():
    class Events(train.Callback):
        def __init__(self):
            self.seen = []

        def on_train_begin(self, loop, state):
            self.seen.append(("begin", loop.start))

        def on_update(self, loop, step, state, metrics):
            self.seen.append(("update", step))

        def on_evaluate(self, loop, step, state, metrics):
            self.seen.append(("evaluate", step))

        def on_step_end(self, loop, step, state, metrics):
            self.seen.append(("end", step))

        def on_train_end(self, loop, state):
            self.seen.append(("finish", int(state.step)))

    events = Events()
    toy_fit(None, num_steps=2, evaluation=train.Evaluation(every=2), callbacks=[events])
    assert events.seen == [
        ("begin", 0),
        ("update", 1),
        ("end", 1),
        ("update", 2),
        ("evaluate", 2),
        ("end", 2),
        ("finish", 2),
    ]


# ------------------------------------------------------------------------ TensorBoard


def test_tensorboard_events_hold_the_numbers_of_metrics_jsonl(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    workdir = str(tmp_path)
    toy_fit(workdir, num_steps=6, log_every=2, callbacks=[train.TensorBoard()])
    toy_fit(workdir, num_steps=10, log_every=2, callbacks=[train.TensorBoard()])  # resumed
    records = train.read_metrics(workdir)
    events = event_accumulator.EventAccumulator(os.path.join(workdir, "tensorboard"))
    events.Reload()
    expected = {}
    for record in records:
        for name, value in record.items():
            if name not in ("step", "split", "wall_time"):
                expected.setdefault(f"{record['split']}/{name}", []).append((record["step"], value))
    assert sorted(events.Tags()["scalars"]) == sorted(expected)
    for tag, pairs in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in pairs], tag
        np.testing.assert_allclose([v for _, v in got], [v for _, v in pairs], rtol=1e-6)


# ------------------------------------------------- interruptions inside a step (review findings)


def resumable_fit(workdir, callbacks=(), val_hook=None):
    """The toy run with records every 4 steps, evaluations and saves every 5."""
    xs, ys = toy_problem.make_data()
    batches = train.eval_batches((xs[64:], ys[64:]), 16)
    step_eval = train.make_eval_step(toy_problem.loss_fn)

    def val_data(params):
        if val_hook is not None:
            val_hook()
        return train.evaluate(step_eval, params, batches)

    return toy_fit(
        workdir,
        num_steps=20,
        log_every=4,
        val_data=val_data,
        evaluation=train.Evaluation(every=5),
        callbacks=list(callbacks),
    )


@pytest.fixture(scope="module")
def resumable_baseline(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("baseline")
    result = resumable_fit(str(workdir))
    return result, train.Checkpointer(workdir / "checkpoints").best_step()


def test_an_interrupt_between_two_records_resumes_the_same_records(tmp_path, resumable_baseline):
    # Cut at step 7: the record of step 8 must still average steps 5 to 8.
    def cut(step, state, metrics):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resumable_fit(str(tmp_path), callbacks=[cut])
    resumed = resumable_fit(str(tmp_path))
    chex.assert_trees_all_equal(resumed.state, resumable_baseline[0].state)
    assert without_time(resumed.history) == without_time(resumable_baseline[0].history)


def test_ctrl_c_during_an_evaluation_saves_the_last_finished_step(tmp_path, resumable_baseline):
    calls = []

    def interrupt_the_second_evaluation():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resumable_fit(str(tmp_path), val_hook=interrupt_the_second_evaluation)
    assert train.Checkpointer(tmp_path / "checkpoints").latest_step() == 9
    resumed = resumable_fit(str(tmp_path))
    assert without_time(resumed.history) == without_time(resumable_baseline[0].history)
    assert without_time(train.read_metrics(tmp_path)) == without_time(resumed.history)


def test_sigterm_at_an_evaluation_step_keeps_its_score(tmp_path, resumable_baseline):
    class TermAt10(train.Callback):
        def on_evaluate(self, loop, step, state, metrics):
            if step == 10:
                os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(train.Preempted) as stopped:
        resumable_fit(str(tmp_path), callbacks=[TermAt10()])
    assert stopped.value.code == 143
    ckpt = train.Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 10
    assert ckpt._read_record(10)["metrics"] is not None  # saved as due, with its score
    resumed = resumable_fit(str(tmp_path))
    chex.assert_trees_all_equal(resumed.state, resumable_baseline[0].state)
    assert resumed.best_step == resumable_baseline[1]


# ------------------------------------------------------------- a hostile pass (second review)


def test_a_fit_or_clear_nested_in_a_running_fit_is_refused(tmp_path):
    workdir = str(tmp_path)
    caught = []

    def nested(step, state, metrics):
        if step == 2:
            for attempt in (
                lambda: toy_fit(workdir, resume=False),
                lambda: train.clear_workdir(workdir),
            ):
                with pytest.raises(train.WorkdirInUseError, match="a fit is"):
                    attempt()
                caught.append(step)

    toy_fit(workdir, num_steps=4, callbacks=[nested])
    assert caught == [2, 2]
    assert [r["step"] for r in train.read_metrics(workdir) if r["split"] == "val"] == [1, 2, 3, 4]


def test_ctrl_c_in_a_callback_after_a_save_keeps_that_checkpoint(tmp_path, resumable_baseline):
    class CutAfterSave(train.Callback):
        def on_checkpoint(self, loop, step, state, metrics):
            if step == 10:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resumable_fit(str(tmp_path), callbacks=[CutAfterSave()])
    assert train.Checkpointer(tmp_path / "checkpoints").latest_step() == 10
    resumed = resumable_fit(str(tmp_path))
    assert without_time(resumed.history) == without_time(resumable_baseline[0].history)


def test_an_infinite_carry_stops_training_and_is_never_saved(tmp_path):
    def loss(params, batch, key, carry):
        value = jnp.mean((params["w"] - batch) ** 2)
        return value, {}, carry * 1e30

    with pytest.raises(
        train.NonFiniteError, match=r"\(or the loss the carry\) NaN or inf at step 0"
    ):
        train.fit(loss, {"w": jnp.zeros(2)}, lambda step: jnp.ones(2), num_steps=4,
                  carry=jnp.full(2, 1e10), workdir=str(tmp_path), progress=False,
                  checkpoints=train.Checkpoints(every=1))  # fmt: skip
    ckpt = train.Checkpointer(tmp_path / "checkpoints")
    like = train.init_state({"w": jnp.zeros(2)}, train.default_optimizer(), carry=jnp.zeros(2))
    for step in ckpt.all_steps():
        assert bool(jnp.all(jnp.isfinite(ckpt.restore(like, step)[0].carry)))


def test_a_stop_asked_for_at_the_end_of_a_step_is_saved(tmp_path):
    class StopAt3(train.Callback):
        def on_step_end(self, loop, step, state, metrics):
            if step == 3:
                loop.stop("enough")

    result = toy_fit(str(tmp_path), num_steps=10, callbacks=[StopAt3()],
                     checkpoints=train.Checkpoints(every=5))  # fmt: skip
    assert int(result.state.step) == 3
    assert train.Checkpointer(tmp_path / "checkpoints").latest_step() == 3


def test_early_stopping_watches_the_runs_best_metric_by_default():
    rising = iter(range(10))
    result = toy_fit(
        None,
        num_steps=8,
        val_data=lambda params: {"loss": 1.0, "acc": float(next(rising))},
        evaluation=train.Evaluation(every=1, best_metric="acc", best_mode="max"),
        callbacks=[train.EarlyStopping(patience=2)],
    )
    assert int(result.state.step) == 8  # acc rose at every evaluation: no stop
    with pytest.raises(ValueError, match="EarlyStopping watches validation metrics"):
        toy_fit(None, num_steps=2, val_data=None, callbacks=[train.EarlyStopping()])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"callbacks": [train.EarlyStopping]}, TypeError, r"callbacks\[0\] must be a callback obj"),
        ({"workdir": b"/tmp/x"}, TypeError, r"workdir must be a folder's path"),
        ({"log_every": 0}, ValueError, r"log_every must be a positive int, got 0"),
        ({"progress": "no"}, TypeError, r"progress must be"),
        ({"val_data": lambda p: {"loss": 1j}}, TypeError, r"val_data\(params\)\['loss'\] must be"),
        ({"val_data": lambda p: {"loss": 10**400}}, TypeError, r"val_data\(params\)\['loss'\]"),
    ],
)
def test_more_arguments_a_user_can_get_wrong_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        toy_fit(kwargs.pop("workdir", None), num_steps=2, **kwargs)


def test_tensorboard_names_a_bad_logdir(tmp_path):
    with pytest.raises(TypeError, match="logdir must be"):
        train.TensorBoard(123)
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(NotADirectoryError, match="TensorBoard logdir .*afile is a file"):
        toy_fit(None, num_steps=2, callbacks=[train.TensorBoard(afile)])


def test_clear_workdir_of_a_missing_folder_makes_nothing(tmp_path):
    train.clear_workdir(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
