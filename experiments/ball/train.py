"""Train and evaluate the ball-trajectory models; `train_and_evaluate` is the whole experiment."""

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from experiments import optim
from experiments import regression
from experiments.ball import baselines
from experiments.ball import data
from experiments.ball.configs.default import Config
from experiments.reporting import format_table
from experiments.reporting import run_settings
from experiments.reporting import save_config
from experiments.reporting import write_json
from jaxrnn import train


def rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared 3-D distance in metres: ``sqrt(mean ||p - q||^2)``."""
    return float(np.sqrt(np.mean(np.sum((predicted - truth) ** 2, axis=-1))))


@dataclasses.dataclass
class Splits:
    train: data.Trajectories
    val: data.Trajectories
    test: data.Trajectories


def make_splits(config: Config) -> Splits:
    """Train, validation and test throws: disjoint, each from its own seed."""
    kwargs = dict(
        sample_interval=config.sample_interval,
        noise_sigma=config.noise_sigma,
        drag_range=(config.drag_min, config.drag_max),
        speed_range=(config.speed_min, config.speed_max),
        min_samples=config.window + max(config.horizons),
    )
    return Splits(
        train=data.simulate(config.num_train, seed=config.seed * 1000 + 1, **kwargs),
        val=data.simulate(config.num_val, seed=config.seed * 1000 + 2, **kwargs),
        test=data.simulate(config.num_test, seed=config.seed * 1000 + 3, **kwargs),
    )


def train_many_to_one(config: Config, splits: Splits, cell_name: str, horizon: int, workdir):
    """Trains ``window -> position horizon steps later``; returns a predictor and its record."""
    cell = regression.make_cell(cell_name, config.hidden_size)
    train_w = data.make_windows(splits.train, config.window, horizon)
    val_w = data.make_windows(splits.val, config.window, horizon)
    scaler = data.Scaler.fit(train_w)
    xs, ys = scaler.inputs(train_w.inputs), scaler.targets(train_w.inputs, train_w.target_noisy)
    val = (scaler.inputs(val_w.inputs), scaler.targets(val_w.inputs, val_w.target_noisy))

    def loss_fn(params, batch, key):
        del key
        inputs, targets = batch
        return jnp.mean((regression.predict_last(cell, params, inputs) - targets) ** 2)

    params = regression.init_params(cell, jax.random.key(config.seed), 3, 3)
    started = time.perf_counter()
    result = train.fit(
        loss_fn,
        params,
        train.EpochBatches((xs, ys), config.batch_size, seed=config.seed),
        num_steps=config.num_steps,
        optimizer=optim.optimizer(config.learning_rate, config.num_steps),
        val_data=train.eval_batches(val, 4096),
        evaluation=train.Evaluation(every=max(1, config.num_steps // 10)),
        workdir=workdir,
        seed=config.seed,
        config=run_settings(config, model=f"{cell_name}_h{horizon}"),
        name=f"{cell_name} many-to-one, {horizon * config.sample_interval:g} s",
    )
    seconds = time.perf_counter() - started
    best = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(params, "best")
    forward = jax.jit(lambda p, x: regression.predict_last(cell, p, x))

    def predict(windows: np.ndarray) -> np.ndarray:
        return scaler.positions(windows, forward(best, scaler.inputs(windows)))

    return predict, {"train_seconds": round(seconds, 1), "history": result.history}


def train_many_to_many(config: Config, splits: Splits, cell_name: str, workdir):
    """Trains a model that reads a whole throw and predicts the next position at every step."""
    cell = regression.make_cell(cell_name, config.hidden_size)

    def deltas(positions: list[np.ndarray]):
        padded, lengths = data.pad_trajectories(positions)
        steps = np.diff(padded, axis=1, prepend=padded[:, :1])  # (n, t, 3), 0 at t = 0
        valid = np.arange(padded.shape[1])[None, :] < lengths[:, None]
        return np.where(valid[..., None], steps, 0.0), lengths

    train_d, _ = deltas(splits.train.noisy)
    scale = train_d[:, 1:].reshape(-1, 3).std(axis=0) + 1e-6

    def arrays(positions):
        d, lengths = deltas(positions)
        inputs = (d / scale).astype(np.float32)
        targets = np.concatenate([inputs[:, 1:], np.zeros_like(inputs[:, :1])], axis=1)
        return inputs, targets, lengths.astype(np.int32)

    def loss_fn(params, batch, key):
        del key
        inputs, targets, lengths = batch
        out = regression.predict_every(cell, params, inputs, seq_lengths=lengths)
        # The target of step t is the next step's displacement: valid while t + 1 < length.
        mask = (jnp.arange(inputs.shape[1])[None, :] < lengths[:, None] - 1)[..., None]
        err = jnp.where(mask, (out - targets) ** 2, 0.0)
        return jnp.sum(err) / (3 * jnp.sum(mask))

    params = regression.init_params(cell, jax.random.key(config.seed), 3, 3)
    started = time.perf_counter()
    result = train.fit(
        loss_fn,
        params,
        train.EpochBatches(arrays(splits.train.noisy), config.batch_size, seed=config.seed),
        num_steps=config.num_steps,
        optimizer=optim.optimizer(config.learning_rate, config.num_steps),
        val_data=[arrays(splits.val.noisy)],
        evaluation=train.Evaluation(every=max(1, config.num_steps // 10)),
        workdir=workdir,
        seed=config.seed,
        config=run_settings(config, model=f"{cell_name}_many_to_many"),
        name=f"{cell_name} many-to-many",
    )
    seconds = time.perf_counter() - started
    best = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(params, "best")
    forward = jax.jit(lambda p, x, n: regression.predict_every(cell, p, x, seq_lengths=n))

    def predict_next(positions: list[np.ndarray]) -> list[np.ndarray]:
        """For each throw ``(t, 3)``, the predicted position of steps 1..t-1 from the past."""
        inputs, _, lengths = arrays(positions)
        steps = np.asarray(forward(best, inputs, lengths), np.float64) * scale
        return [p[:-1] + steps[n, : len(p) - 1] for n, p in enumerate(positions)]

    @functools.partial(jax.jit, static_argnames="steps")
    def roll(params, observed, steps):
        """One-to-many: read the observed steps, then feed each prediction back as input."""
        carry, ys = jaxrnn.unroll(cell, params["rnn"], observed)
        head = lambda h: h @ params["head"]["w"] + params["head"]["b"]

        def body(state, _):
            carry, predicted = state
            carry, h = cell.step(params["rnn"], carry, predicted)
            return (carry, head(h)), head(h)

        first = head(ys[:, -1])
        _, rest = jax.lax.scan(body, (carry, first), None, length=steps - 1)
        return jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)

    def rollout(observed_positions: np.ndarray, steps: int) -> np.ndarray:
        """From the first observed positions ``(n, 3)`` of one throw, the next ``steps``
        positions ``(steps, 3)`` predicted with no further measurements."""
        inputs, _, _ = arrays([observed_positions])
        deltas = np.asarray(roll(best, inputs, steps), np.float64)[0] * scale
        return observed_positions[-1] + np.cumsum(deltas, axis=0)

    return predict_next, rollout, {"train_seconds": round(seconds, 1), "history": result.history}


def train_and_evaluate(config: Config, workdir: str) -> dict[str, Any]:
    """Runs the whole ball experiment and writes ``results.json`` and plots into ``workdir``.

    Returns:
      The results: per horizon, the test RMSE (m) of every baseline and model, and the
      error-vs-noise sweep.
    """
    config.check()
    os.makedirs(workdir, exist_ok=True)
    save_config(workdir, config, "ball")
    splits = make_splits(config)
    dt = config.sample_interval
    results: dict[str, Any] = {"config": dataclasses.asdict(config), "horizons": {}}
    predictors: dict[tuple[str, int], Any] = {}
    histories: dict[str, list] = {}
    rollout = None  # the many-to-many model drawing whole throws, if one is trained
    rows = []
    for horizon in config.horizons:
        test_w = data.make_windows(splits.test, config.window, horizon)
        table: dict[str, dict[str, float]] = {}
        for name, baseline in baselines.BASELINES.items():
            table[name] = {"rmse": rmse(baseline(test_w.inputs, horizon, dt), test_w.target_clean)}
        for cell_name in config.cells:
            model = f"{cell_name} many-to-one"
            predict, record = train_many_to_one(
                config, splits, cell_name, horizon, os.path.join(workdir, f"{cell_name}_h{horizon}")
            )
            predictors[(cell_name, horizon)] = predict
            histories[f"{model}, {horizon * dt:g} s"] = record.pop("history")
            table[model] = {"rmse": rmse(predict(test_w.inputs), test_w.target_clean), **record}
        if horizon == 1 and config.many_to_many_cell:
            predict_next, rollout, record = train_many_to_many(
                config,
                splits,
                config.many_to_many_cell,
                os.path.join(workdir, f"{config.many_to_many_cell}_many_to_many"),
            )
            predictors[("many_to_many", 1)] = predict_next
            histories[f"{config.many_to_many_cell} many-to-many"] = record.pop("history")
            predicted = predict_next(splits.test.noisy)
            # Score the same targets as the windows: the position after each window.
            guess = np.stack(
                [
                    predicted[n][s + config.window - 1]
                    for n, s in zip(test_w.trajectory, test_w.start, strict=True)
                ]
            )
            table[f"{config.many_to_many_cell} many-to-many"] = {
                "rmse": rmse(guess, test_w.target_clean),
                **record,
            }
            results["rollout"] = rollout_errors(config, splits, rollout)
        physics = table["physics (gravity known)"]["rmse"]
        for name, entry in table.items():
            entry["vs_physics"] = entry["rmse"] / physics
            rows.append({"horizon": f"{horizon * dt:g} s", "model": name, **entry})
        results["horizons"][f"{horizon * dt:g}s"] = table

    best_model = (
        min(config.cells, key=lambda c: results["horizons"][f"{dt:g}s"][f"{c} many-to-one"]["rmse"])
        if config.cells and 1 in config.horizons
        else None
    )
    results["noise_sweep"] = noise_sweep(config, splits, predictors, best_model)
    results["best_rnn_1_step"] = best_model
    write_json(os.path.join(workdir, "results.json"), results)

    print(
        f"\nTest RMSE in metres (3-D distance to the true position), {len(splits.test)} "
        f"throws, noise sigma {config.noise_sigma} m"
    )
    print(format_table(rows, ["horizon", "model", "rmse", "vs_physics", "train_seconds"]))
    if "rollout" in results:
        r = results["rollout"]
        print(
            f"\none-to-many: from the first {r['observed_positions']} positions of each test "
            f"throw, the many-to-many model draws the rest: RMSE {r['rmse_all_points']:.3f} m "
            f"over all drawn points, {r['rmse_last_point']:.3f} m at the last one"
        )
    print(f"\nresults: {os.path.join(workdir, 'results.json')}")

    from experiments.ball import plots  # matplotlib only when plotting

    plots.write_all(workdir, config, splits, predictors, rollout, histories, results, best_model)
    return results


def rollout_errors(config: Config, splits: Splits, rollout, observed: int = 3) -> dict:
    """One-to-many: from the first ``observed`` positions of each test throw, the model draws
    the rest of the trajectory; RMSE over all drawn points, and at the last (landing) one."""
    drawn, truth = [], []
    for clean, noisy in zip(splits.test.clean, splits.test.noisy, strict=True):
        drawn.append(rollout(noisy[:observed], len(clean) - observed))
        truth.append(clean[observed:])
    last = rmse(np.stack([d[-1] for d in drawn]), np.stack([t[-1] for t in truth]))
    return {
        "observed_positions": observed,
        "rmse_all_points": rmse(np.concatenate(drawn), np.concatenate(truth)),
        "rmse_last_point": last,
    }


def noise_sweep(config: Config, splits: Splits, predictors, best_model) -> list[dict]:
    """1-step test RMSE of the baselines and the best RNN when the test throws are re-measured
    with other noise levels (the RNN was trained at ``config.noise_sigma`` only)."""
    if 1 not in config.horizons:
        return []
    sweep = []
    for sigma in config.noise_sweep:
        test = splits.test.with_noise(sigma, seed=config.seed * 1000 + 4)
        windows = data.make_windows(test, config.window, 1)
        entry = {"sigma": sigma}
        for name, baseline in baselines.BASELINES.items():
            if name != "last position":
                entry[name] = rmse(
                    baseline(windows.inputs, 1, config.sample_interval), windows.target_clean
                )
        if best_model is not None:
            entry[f"{best_model} many-to-one"] = rmse(
                predictors[(best_model, 1)](windows.inputs), windows.target_clean
            )
        sweep.append(entry)
    return sweep
