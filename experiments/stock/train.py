"""Train and evaluate next-day close prediction; `train_and_evaluate` is the whole experiment."""

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import optim
from experiments import regression
from experiments.datasets import locate
from experiments.reporting import format_table
from experiments.reporting import run_settings
from experiments.reporting import save_config
from experiments.reporting import write_json
from experiments.stock import data
from experiments.stock.configs.default import Config
from experiments.validation import ConfigError
from jaxrnn import train

DEFAULT_CSV = "stock/AAPL_2006-01-01_to_2018-01-01.csv"


def resolve_csv(config: Config) -> Path:
    """``config.csv`` if given, else the AAPL file of the data folder (``--data-dir``)."""
    if config.csv:
        path = Path(config.csv).expanduser()
        if path.is_dir():
            raise IsADirectoryError(f"--csv {config.csv} is a folder; give a daily price CSV file")
        if not path.is_file():
            raise FileNotFoundError(f"--csv {config.csv!r}: no such file")
        return path
    return locate(DEFAULT_CSV, config.data_dir or None)


def price_metrics(predicted_close, split: data.Split, predicted_return=None) -> dict[str, float]:
    """RMSE and MAE in price units; directional accuracy when a return is predicted."""
    error = predicted_close - split.next_close
    metrics = {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
    if predicted_return is not None:
        moved = split.next_return != 0
        agree = np.sign(predicted_return[moved]) == np.sign(split.next_return[moved])
        metrics["direction_accuracy"] = float(np.mean(agree))
    return metrics


def diebold_mariano(errors_model: np.ndarray, errors_reference: np.ndarray) -> dict[str, float]:
    """Diebold–Mariano test of equal squared-error loss for 1-step forecasts.

    ``d_t = e_model^2 - e_ref^2``; the statistic is ``mean(d) / sqrt(var(d) / n)``, negative
    when the model is better; the two-sided p-value uses the normal distribution.
    """
    d = errors_model**2 - errors_reference**2
    stat = float(d.mean() / math.sqrt(d.var(ddof=1) / len(d)))
    return {"dm_stat": stat, "dm_p_value": float(math.erfc(abs(stat) / math.sqrt(2)))}


def ridge_autoregression(dataset: data.Dataset, penalties: tuple[float, ...]):
    """Linear autoregression on the same flattened windows, fitted on the training span.

    The L2 penalty is the one of ``penalties`` with the lowest validation error.
    Returns ``(predict, penalty)`` with ``predict(split) -> normalised prediction``.
    """

    def design(split: data.Split) -> np.ndarray:
        flat = split.inputs.reshape(len(split.targets), -1).astype(np.float64)
        return np.concatenate([flat, np.ones((len(flat), 1))], axis=1)

    x, y = design(dataset.train), dataset.train.targets.astype(np.float64)
    fits = {}
    for penalty in penalties:
        reg = penalty * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # no penalty on the intercept
        coef = np.linalg.solve(x.T @ x + reg, x.T @ y)
        fits[penalty] = (np.mean((design(dataset.val) @ coef - dataset.val.targets) ** 2), coef)
    penalty = min(fits, key=lambda p: fits[p][0])
    coef = fits[penalty][1]
    return (lambda split: design(split) @ coef), penalty


def train_rnn(config: Config, dataset: data.Dataset, cell_name: str, workdir: str):
    """Many-to-one RNN on the windows; returns a function ``split -> normalised prediction``."""
    cell = regression.make_cell(cell_name, config.hidden_size)
    num_features = dataset.train.inputs.shape[-1]
    if config.batch_size > len(dataset.train.targets):
        raise ConfigError(
            f"--batch-size {config.batch_size} is more than the {len(dataset.train.targets)} "
            "training windows"
        )

    def loss_fn(params, batch, key):
        del key
        inputs, targets = batch
        predicted = regression.predict_last(cell, params, inputs)[:, 0]
        return jnp.mean((predicted - targets) ** 2)

    params = regression.init_params(cell, jax.random.key(config.seed), num_features, 1)
    result = train.fit(
        loss_fn,
        params,
        train.EpochBatches(
            (dataset.train.inputs, dataset.train.targets), config.batch_size, seed=config.seed
        ),
        num_steps=config.num_steps,
        optimizer=optim.optimizer(
            config.learning_rate, config.num_steps, weight_decay=config.weight_decay
        ),
        val_data=[(dataset.val.inputs, dataset.val.targets)],
        evaluation=train.Evaluation(every=max(1, config.num_steps // 15)),
        workdir=workdir,
        seed=config.seed,
        config=run_settings(config, model=cell_name),
        name=cell_name,
    )
    best = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(params, "best")
    forward = jax.jit(lambda p, x: regression.predict_last(cell, p, x)[:, 0])
    return (lambda split: np.asarray(forward(best, split.inputs))), result.history


def train_and_evaluate(config: Config, workdir: str) -> dict[str, Any]:
    """Runs the stock experiment on one CSV; writes results.json and plots into ``workdir``."""
    config.check()
    os.makedirs(workdir, exist_ok=True)
    save_config(workdir, config, "stock")
    csv_path = resolve_csv(config)
    prices = data.read_prices(csv_path)
    dataset = data.make_dataset(prices, config.window, config.val_fraction, config.test_fraction)
    test = dataset.test

    def closes(normalised):
        returns = dataset.to_return(normalised)
        return test.last_close * np.exp(returns), returns

    persistence = test.last_close
    table: dict[str, dict[str, Any]] = {"persistence": price_metrics(persistence, test)}
    predictions = {"persistence": persistence}
    ar_predict, ar_penalty = ridge_autoregression(dataset, config.ridge_penalties)
    ar_close, ar_return = closes(ar_predict(test))
    table["linear autoregression"] = price_metrics(ar_close, test, ar_return)
    predictions["linear autoregression"] = ar_close
    histories = {}
    for cell_name in config.cells:
        predict, history = train_rnn(config, dataset, cell_name, os.path.join(workdir, cell_name))
        close, returns = closes(predict(test))
        table[f"{cell_name} many-to-one"] = price_metrics(close, test, returns)
        predictions[f"{cell_name} many-to-one"] = close
        histories[cell_name] = history
    for name, prediction in predictions.items():
        if name != "persistence":
            test_result = diebold_mariano(
                prediction - test.next_close, persistence - test.next_close
            )
            table[name].update(test_result)
            better = table[name]["rmse"] < table["persistence"]["rmse"]
            significant = test_result["dm_p_value"] < 0.05
            table[name]["beats_persistence"] = (
                "yes"
                if better and significant
                else "no (not significant)"
                if better
                else "no (significantly worse)"
                if significant
                else "no"
            )

    results = {
        "csv": str(csv_path),
        "days": len(prices),
        "first_day": str(prices.dates[0]),
        "last_day": str(prices.dates[-1]),
        "features": dataset.feature_names,
        "ridge_penalty": ar_penalty,
        "split_sizes": {s: len(getattr(dataset, s).targets) for s in ("train", "val", "test")},
        "test_span": [str(test.dates[0]), str(test.dates[-1])],
        "config": dataclasses.asdict(config),
        "test": table,
    }
    write_json(os.path.join(workdir, "results.json"), results)
    rows = [{"model": name, **metrics} for name, metrics in table.items()]
    print(
        f"\n{csv_path.name}: next-day close on the test span {test.dates[0]} .. "
        f"{test.dates[-1]} ({len(test.targets)} days), price units"
    )
    print(
        format_table(
            rows,
            [
                "model",
                "rmse",
                "mae",
                "direction_accuracy",
                "dm_stat",
                "dm_p_value",
                "beats_persistence",
            ],
        )
    )
    print(f"\nresults: {os.path.join(workdir, 'results.json')}")

    from experiments.stock import plots

    plots.predictions(
        os.path.join(workdir, "test_predictions.png"), test, predictions, csv_path.name
    )
    plots.training_curves(os.path.join(workdir, "training_curves.png"), histories)
    return results
