"""The training harness: exact resume, NaN stop, checkpoints, metrics, determinism, TBPTT."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import toy_problem

import jaxrnn
from jaxrnn import train

pytestmark = pytest.mark.allow_promotion  # optax is not written for strict dtype promotion

HERE = os.path.dirname(__file__)


def without_time(history):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in history]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return toy_problem.run(str(tmp_path_factory.mktemp("full")), 20)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_resume_after_kill_is_bit_identical(tmp_path, uninterrupted, signal_name):
    # Given a run killed after step 13 (checkpoints every 5 steps; SIGINT saves one at 13)
    workdir = str(tmp_path / "run")
    script = os.path.join(HERE, "toy_problem.py")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    proc = subprocess.run(
        [sys.executable, script, workdir, "20", "13", signal_name],
        capture_output=True,
        text=True,
        timeout=1800,  # only stops a hang: a busy machine is slow
        env=env,
    )
    assert proc.returncode != 0, "the run was supposed to be killed"
    assert "Traceback" not in proc.stderr or "KeyboardInterrupt" in proc.stderr, proc.stderr
    saved = train.Checkpointer(os.path.join(workdir, "checkpoints")).all_steps()
    assert max(saved) == (13 if signal_name == "SIGINT" else 10)
    # When it is resumed in a fresh process (this one) with the same workdir
    resumed = toy_problem.run(workdir, 20)
    # Then params, optimizer state and metrics equal those of the uninterrupted run, bit for bit
    chex.assert_trees_all_equal(resumed.state, uninterrupted.state)
    assert without_time(resumed.history) == without_time(uninterrupted.history)
    assert without_time(train.read_metrics(workdir)) == without_time(uninterrupted.history)


def test_same_seed_same_metrics(tmp_path, uninterrupted):
    again = toy_problem.run(None, 20)
    assert without_time(again.history) == without_time(uninterrupted.history)
    chex.assert_trees_all_equal(again.params, uninterrupted.params)


def test_metrics_file_contents(uninterrupted, tmp_path):
    result = toy_problem.run(str(tmp_path), 20, log_every=4)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    val_steps = [r["step"] for r in records if r["split"] == "val"]
    assert train_steps == [4, 8, 12, 16, 20] and val_steps == [5, 10, 15, 20]
    for record in records:
        assert {"step", "split", "loss", "mse", "wall_time"} <= set(record)
        assert all(isinstance(v, (int, float, str)) for v in record.values())
    # The val loss equals an independent evaluation of the final params.
    xs, ys = toy_problem.make_data()
    final = toy_problem.loss_fn(result.params, (xs[64:], ys[64:]), None)[0]
    np.testing.assert_allclose(records[-1]["loss"], float(final), rtol=1e-5)


def test_checkpoints_keep_last_n_and_best(tmp_path):
    # Given a validation metric that is best at step 4 and worse afterwards
    scores = iter([5.0, 1.0, 3.0, 4.0, 6.0, 7.0])  # at steps 2, 4, ..., 12
    xs, ys = toy_problem.make_data()
    # When training saves a checkpoint at every evaluation and keeps the last two
    result = train.fit(
        toy_problem.loss_fn,
        toy_problem.init_params(),
        train.EpochBatches((xs, ys), 16),
        num_steps=12,
        val_data=lambda params: {"loss": next(scores)},
        evaluation=train.Evaluation(every=2),
        checkpoints=train.Checkpoints(keep_last=2),
        workdir=str(tmp_path),
        progress=False,
    )
    # Then the last two and the best survive
    ckpt = train.Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [4, 10, 12]
    assert result.best_step == 4 and ckpt.best_step() == 4
    best = ckpt.restore_params(toy_problem.init_params(), "best")
    assert jax.tree.structure(best) == jax.tree.structure(result.params)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    xs, ys = toy_problem.make_data()
    batches = train.EpochBatches((xs, ys), 16)

    def poisoned(step):
        x, y = batches(step)
        return (x * np.nan, y) if step == 7 else (x, y)

    with pytest.raises(
        train.NonFiniteError,
        match=r"non-finite loss or gradient at step 7 "
        r".*last good checkpoint \(step 5\)",
    ):
        train.fit(
            toy_problem.loss_fn,
            toy_problem.init_params(),
            poisoned,
            num_steps=20,
            checkpoints=train.Checkpoints(every=5),
            workdir=str(tmp_path),
            progress=False,
        )
    ckpt = train.Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [5]
    params = ckpt.restore_params(toy_problem.init_params(), "latest")
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(params))
    # The clean run stopped at 5 has exactly these params.
    clean = train.fit(
        toy_problem.loss_fn, toy_problem.init_params(), batches, num_steps=5, progress=False
    )
    chex.assert_trees_all_equal(params, clean.params)


def test_resume_with_other_settings_is_refused(tmp_path):
    toy_problem.run(str(tmp_path), 5)
    xs, ys = toy_problem.make_data()
    with pytest.raises(
        ValueError,
        match=r"holds a run with different settings \(toy: saved 1, "
        r"now 2\)",
    ):
        train.fit(
            toy_problem.loss_fn,
            toy_problem.init_params(),
            train.EpochBatches((xs, ys), 16),
            num_steps=10,
            workdir=str(tmp_path),
            seed=1,
            config={"toy": 2},
            progress=False,
        )


def test_epoch_batches_cover_each_epoch_once():
    batches = train.EpochBatches(np.arange(10), batch_size=3, seed=0)
    assert batches.steps_per_epoch == 3
    epoch0 = np.concatenate([batches(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9
    assert not np.array_equal(epoch0, np.concatenate([batches(s) for s in range(3, 6)]))
    np.testing.assert_array_equal(batches(4), train.EpochBatches(np.arange(10), 3, seed=0)(4))
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 10\], got 11"):
        train.EpochBatches(np.arange(10), batch_size=11)


@pytest.mark.parametrize("n,b,k", [(101, 4, 7), (50, 7, 3), (20, 1, 19)])
def test_stream_batches_cover_the_stream_without_gap_or_overlap(n, b, k):
    stream = np.arange(n)
    batches = train.StreamBatches(stream, batch_size=b, chunk_length=k)
    seen_inputs, seen_targets = [], []
    for step in range(batches.steps_per_epoch):
        batch = batches(step)
        assert bool(batch["reset"]) == (step == 0)
        assert batch["inputs"].shape == (b, k)
        seen_inputs.append(batch["inputs"][batch["mask"]])
        seen_targets.append(batch["targets"][batch["mask"]])
        np.testing.assert_array_equal(
            batch["targets"][batch["mask"]], batch["inputs"][batch["mask"]] + 1
        )
    assert sorted(np.concatenate(seen_targets).tolist()) == list(range(1, n))
    assert sorted(np.concatenate(seen_inputs).tolist()) == list(range(n - 1))
    assert bool(batches(batches.steps_per_epoch)["reset"])  # the next epoch starts afresh


def test_carried_state_across_chunks_equals_one_long_unroll():
    cell = jaxrnn.gru(6)
    params = cell.init(jax.random.key(0), 1)
    stream = np.sin(np.arange(121, dtype=np.float32) / 3)[:, None]
    batches = train.StreamBatches(stream, batch_size=3, chunk_length=8)
    fresh = cell.initial_carry(params, (3,))
    carry, outputs = fresh, []
    for step in range(batches.steps_per_epoch):
        batch = batches(step)
        carry = train.carry_over(carry, jnp.asarray(batch["reset"]), fresh)
        carry, ys = jaxrnn.unroll(cell, params, jnp.asarray(batch["inputs"]), initial_carry=carry)
        outputs.append(ys)
    _, long_ys = jaxrnn.unroll(cell, params, jnp.asarray(batches.inputs))
    np.testing.assert_allclose(jnp.concatenate(outputs, axis=1), long_ys, atol=1e-6)


def test_truncated_bptt_gradient_stops_at_the_chunk_boundary():
    cell = jaxrnn.elman(3)
    params = cell.init(jax.random.key(0), 1)
    xs = jnp.ones((1, 4, 1))
    carry_in = jnp.full((1, 3), 0.5)
    grad = jax.grad(
        lambda c: jnp.sum(
            jaxrnn.unroll(
                cell, params, xs, initial_carry=train.carry_over(c, jnp.asarray(False), c * 0)
            )[1]
        )
    )
    np.testing.assert_array_equal(grad(carry_in), np.zeros((1, 3)))


def test_fit_with_carry_threads_state_between_steps():
    cell = jaxrnn.gru(4)
    params = {"rnn": cell.init(jax.random.key(0), 1), "head": jnp.zeros((4, 1))}
    stream = np.sin(np.arange(200, dtype=np.float32) / 4)[:, None]
    batches = train.StreamBatches(stream, batch_size=2, chunk_length=10)
    fresh = cell.initial_carry(params["rnn"], (2,))
    seen = []

    def loss_fn(params, batch, key, carry):
        carry = train.carry_over(carry, batch["reset"], fresh)
        seen.append(None)
        carry, ys = jaxrnn.unroll(cell, params["rnn"], batch["inputs"], initial_carry=carry)
        err = (ys @ params["head"] - batch["targets"]) ** 2
        loss = jnp.sum(jnp.where(batch["mask"][..., None], err, 0.0)) / jnp.sum(batch["mask"])
        return loss, {}, carry

    result = train.fit(
        loss_fn,
        params,
        batches,
        num_steps=30,
        carry=fresh,
        progress=False,
        optimizer=train.default_optimizer(3e-2),
    )
    losses = [r["loss"] for r in result.history if r["split"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
    assert result.state.carry.shape == (2, 4) and float(jnp.abs(result.state.carry).sum()) > 0


def toy_fit(workdir=None, **kwargs):
    xs, ys = toy_problem.make_data()
    arguments = dict(
        loss_fn=toy_problem.loss_fn,
        params=toy_problem.init_params(),
        train_data=train.EpochBatches((xs[:64], ys[:64]), 16),
        num_steps=6,
        val_data=train.eval_batches((xs[64:], ys[64:]), 16),
        workdir=workdir,
        progress=False,
    )
    arguments.update(kwargs)
    return train.fit(arguments.pop("loss_fn"), arguments.pop("params"), **arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"evaluation": train.Evaluation}, "evaluation must be a jaxrnn.train.Evaluation"),
        ({"checkpoints": {"every": 5}}, "checkpoints must be a jaxrnn.train.Checkpoints"),
        ({"log_every": 2.5}, r"log_every must be a positive int, got 2.5"),
        ({"num_steps": -1}, "num_steps must be an int >= 0, got -1"),
        ({"callbacks": [3]}, r"callbacks\[0\] must be a jaxrnn.train.Callback or a function"),
        ({"train_data": [1, 2]}, "train_data must be a function step -> batch"),
        ({"val_data": []}, "val_data holds no batches"),
    ],
)
def test_fit_refuses_arguments_out_of_range(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        toy_fit(**kwargs)


def test_fit_refuses_a_best_metric_that_no_evaluation_returns(tmp_path):
    # Batches: found from the shapes alone, before the first step.
    with pytest.raises(
        ValueError, match=r"best_metric='accuracy' is not among .*\['loss', 'mse'\]"
    ):
        toy_fit(str(tmp_path / "a"), evaluation=train.Evaluation(best_metric="accuracy"))
    # A function: found at its first evaluation.
    with pytest.raises(ValueError, match=r"best_metric='accuracy' is not among .*\['loss'\]"):
        toy_fit(
            str(tmp_path / "b"),
            evaluation=train.Evaluation(best_metric="accuracy"),
            val_data=lambda p: {"loss": 1.0},
        )


def test_fit_refuses_a_metric_that_is_not_a_scalar():
    def loss_fn(params, batch, key):
        loss, metrics = toy_problem.loss_fn(params, batch, key)
        return loss, {**metrics, "per_example": batch[1][:, 0]}

    with pytest.raises(
        ValueError, match=r"metric 'per_example' must be a scalar, got shape \(16,\)"
    ):
        toy_fit(loss_fn=loss_fn)


def test_fit_names_the_step_and_leaf_of_a_batch_that_changes():
    xs, ys = toy_problem.make_data()
    batches = train.EpochBatches((xs[:64], ys[:64]), 16)

    def changing(step):
        x, y = batches(step)
        return (x, y.astype(np.int32)) if step == 3 else (x, y)

    with pytest.raises(
        ValueError, match=r"train_data\(3\) returned batch\[1\] with dtype int32.*at step 0"
    ):
        toy_fit(train_data=changing)

    def restructured(step):
        x, y = batches(step)
        return {"x": x, "y": y} if step == 2 else (x, y)

    with pytest.raises(ValueError, match=r"train_data\(2\) returned a batch of another structure"):
        toy_fit(train_data=restructured)


def test_resume_with_other_params_or_optimizer_names_the_first_differing_leaf(tmp_path):
    workdir = str(tmp_path)
    toy_fit(workdir)
    wider = dict(toy_problem.init_params(), head=jnp.zeros((8, 2)))
    with pytest.raises(
        train.ResumeMismatchError,
        match=r"another model: params\['head'\] is \(8, 1\) float32 in the checkpoint, "
        r"\(8, 2\) float32 now",
    ):
        toy_fit(workdir, params=wider, loss_fn=lambda p, b, k: jnp.sum(p["head"]), val_data=None)
    renamed = {"cell": toy_problem.init_params()["rnn"], "head": toy_problem.init_params()["head"]}
    with pytest.raises(train.ResumeMismatchError, match=r"params\['cell'\]\['b'\] is not in"):
        toy_fit(workdir, params=renamed, loss_fn=lambda p, b, k: jnp.sum(p["head"]), val_data=None)
    with pytest.raises(
        train.ResumeMismatchError,
        match=r"another optimizer: opt_state\S+ is in the checkpoint but not in the state now",
    ):
        toy_fit(workdir, optimizer=optax.sgd(0.1))


def test_resuming_a_finished_run_with_fewer_steps_is_refused(tmp_path):
    toy_fit(str(tmp_path), num_steps=6)
    with pytest.raises(
        train.ResumeMismatchError, match=r"already trained for 6 steps, more than num_steps=4"
    ):
        toy_fit(str(tmp_path), num_steps=4)
    assert toy_fit(str(tmp_path), num_steps=6).state.step == 6  # the same length: nothing to do


def test_fit_prints_progress_lines_where_no_bar_can_be_drawn(capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    toy_fit(progress=None, val_data=None, num_steps=20)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [f"{n}/20" for n in range(2, 21, 2)]
    assert all("train loss" in line for line in lines)


def test_progress_lines_name_the_model_that_is_training(capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    toy_fit(progress=None, val_data=None, num_steps=20, name="lstm, 0.25 s")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert all(line.startswith("lstm, 0.25 s: step ") for line in lines), lines
