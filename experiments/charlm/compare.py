"""Every character model for the same wall-clock minutes, side by side.

    python -m experiments.charlm.compare --minutes 15 --models lstm,slstm,mlstm,mamba,transformer \\
        --workdir runs/charlm_compare

For each model (its default size, about 1.2M parameters): train for ``--minutes`` (the
schedule's length is set from the model's measured speed, so the learning rate decays within
the budget; the budget stops it in any case), then report the best validation nats per
character, training characters per second, sampling characters per second at batch 1, and
the bytes of the generation state at positions 128, 512 and 2048: an RNN's carry is the same
at every position, a Transformer's key/value cache holds every position it attends to (the
numbers are those of full attention; the charlm sampler slides a window of --chunk-length
characters, so its cache stops growing there). Writes ``compare.json`` and ``compare.md`` in
--workdir, and each model's run in ``<workdir>/<model>`` (started afresh every time).
"""

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import jax

from experiments.charlm import data
from experiments.charlm import model
from experiments.charlm.configs.default import Config
from experiments.charlm.inference import load
from experiments.charlm.train import make_loss
from experiments.charlm.train import optimizer
from experiments.charlm.train import train_and_evaluate
from experiments.cli import USER_ERRORS
from experiments.cli import ArgumentParser
from experiments.cli import HelpFormatter
from experiments.cli import fail
from experiments.reporting import write_json
from experiments.transformer import tree_bytes
from jaxrnn import train

POSITIONS = (128, 512, 2048)
BUDGET_SHARE = 0.85  # of the minutes planned as updates; evaluations and saving take the rest
COLUMNS = (
    ("model", "model"),
    ("parameters", "parameters"),
    ("steps", "updates"),
    ("val_nats_per_char", "val nats/char"),
    ("train_chars_per_second", "train chars/s"),
    ("sampling_chars_per_second_batch_1", "sampling chars/s (batch 1)"),
    *((f"state_bytes_at_{n}", f"state bytes at {n}") for n in POSITIONS),
)


def steps_per_second(config: Config, corpus: data.Corpus, timed: int = 3) -> float:
    """Updates per second of ``config``'s model on this machine (after compilation)."""
    m = model.make(config)
    params = m.init(jax.random.key(config.seed), len(corpus.vocab))
    fresh = m.initial_carry(params, config.batch_size)
    opt = optimizer(config)
    step = train.make_train_step(make_loss(config, fresh), opt, with_carry=True)
    state = train.init_state(params, opt, seed=config.seed, carry=fresh)
    stream = train.StreamBatches(corpus.train, config.batch_size, config.chunk_length)
    state, metrics, _ = step(state, stream(0))  # compiles
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for n in range(1, timed + 1):
        state, metrics, _ = step(state, stream(n))
    jax.block_until_ready(metrics)
    return timed / (time.perf_counter() - started)


def state_bytes(config: Config, params: Any, position: int) -> int:
    """Bytes of the generation state at ``position`` (batch 1), from its shapes."""
    m = model.make(config)
    shapes = jax.eval_shape(lambda p: m.generation_state(p, 1, position), params)
    return tree_bytes(shapes)


def compare(
    model_names: Sequence[str],
    minutes: float,
    workdir: str,
    base: Config | None = None,
    sizes: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Trains each model of ``model_names`` for ``minutes`` and measures it (see the module's
    docstring); writes ``compare.json`` and ``compare.md`` in ``workdir``.

    Args:
      model_names: names of `experiments.charlm.model.MODELS`.
      minutes: the wall-clock budget of each model's training.
      workdir: where the table and each model's run go.
      base: the config every model starts from (data, batch, chunk, learning rate...);
        None: the default.
      sizes: per model, config fields to override (e.g. ``{"lstm": {"hidden_size": 64}}``).

    Returns:
      One row per model (the table's columns, and the run's folder).
    """
    if isinstance(model_names, str) or not model_names:
        raise ValueError(f"model_names must be a non-empty list, got {model_names!r}")
    for name in model_names:
        if name not in model.MODELS:
            raise ValueError(f"--models: {name!r} is not one of {', '.join(model.MODELS)}")
    if len(set(model_names)) != len(model_names):
        raise ValueError(f"--models names a model twice: {','.join(model_names)}")
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"--minutes must be a number above 0, got {minutes}")
    base = Config() if base is None else base
    configs = []
    for name in model_names:
        config = dataclasses.replace(base, model=name, **(sizes or {}).get(name, {}))
        config.check()
        configs.append(config.resolved())
    corpus = data.load(base.text, base.data_dir or None, base.val_fraction)
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for config in configs:
        rate = steps_per_second(config, corpus)
        num_steps = max(2, int(BUDGET_SHARE * 60 * minutes * rate))
        config = dataclasses.replace(
            config,
            time_budget=minutes,
            num_steps=num_steps,
            eval_every=max(1, num_steps // 4),
        )
        print(
            f"\n=== {config.model}: {minutes:g} min, about {num_steps:,} updates ({rate:.2f}/s) ==="
        )
        run_dir = os.path.join(workdir, config.model)
        train.clear_workdir(run_dir)
        results = train_and_evaluate(config, run_dir)
        _, _, params = load(run_dir)
        rows.append(
            {
                "model": config.model,
                "parameters": results["parameters"],
                "steps": results["steps"],
                "val_nats_per_char": round(results["best_val_nats_per_char"], 4),
                "train_chars_per_second": results["train_chars_per_second"],
                "sampling_chars_per_second_batch_1": results["sampling_chars_per_second_batch_1"],
                **{f"state_bytes_at_{n}": state_bytes(config, params, n) for n in POSITIONS},
                "workdir": run_dir,
            }
        )
        write_outputs(workdir, rows, minutes)
    return rows


def write_outputs(workdir: str, rows: list[dict[str, Any]], minutes: float) -> None:
    """``compare.json`` (the rows) and ``compare.md`` (a table of them)."""
    write_json(os.path.join(workdir, "compare.json"), {"minutes": minutes, "rows": rows})
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" if key == "model" else "---:" for key, _ in COLUMNS) + "|"
    body = [
        "| "
        + " | ".join(
            f"{row[key]:,}" if isinstance(row[key], int) else str(row[key]) for key, _ in COLUMNS
        )
        + " |"
        for row in rows
    ]
    text = (
        f"Each model trained for {minutes:g} min of wall-clock time. State bytes: the "
        "generation state at batch 1 (a Transformer's key/value cache with full attention).\n\n"
        + "\n".join([head, rule, *body])
        + "\n"
    )
    with open(os.path.join(workdir, "compare.md"), "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.charlm.compare",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--minutes", type=float, required=True, help="training budget per model")
    parser.add_argument(
        "--models",
        default=",".join(model.MODELS),
        help="comma-separated models to compare",
    )
    parser.add_argument("--workdir", default="runs/charlm_compare", help="output folder")
    parser.add_argument("--text", default="", help="a UTF-8 text file (default tinyshakespeare)")
    parser.add_argument("--data-dir", default="", help="folder of the shared data sets")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    base = Config(text=args.text, data_dir=args.data_dir, seed=args.seed)
    try:
        compare(names, args.minutes, args.workdir, base)
    except (ValueError, *USER_ERRORS) as error:
        fail(error)
    with open(os.path.join(args.workdir, "compare.md"), encoding="utf-8") as f:
        print("\n" + f.read())


if __name__ == "__main__":
    main()
