"""Train and evaluate the character-level language model; `train_and_evaluate` runs it all."""

import dataclasses
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import optim
from experiments.charlm import data
from experiments.charlm import model
from experiments.charlm.configs.default import Config
from experiments.charlm.inference import encode_prompt
from experiments.charlm.inference import sampler
from experiments.charlm.inference import sampling_speed
from experiments.reporting import CONFIG_FILE
from experiments.reporting import load_config
from experiments.reporting import run_settings
from experiments.reporting import save_config
from experiments.reporting import write_json
from experiments.validation import ConfigError
from jaxrnn import train

VAL_STREAMS = 16  # parallel streams when scoring the held-out tail
VAL_CHUNK = 250


def masked_cross_entropy(logits, targets, mask):
    """Sum of next-character losses (nats) over valid positions, and their count."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    mask = mask.astype(losses.dtype)
    return jnp.sum(losses * mask), jnp.sum(mask)


def make_loss(config: Config, fresh_carry):
    """Truncated-BPTT loss: each chunk starts from the last chunk's state (no gradient), or from
    zeros on the first chunk of an epoch."""
    apply = model.make(config).apply

    def loss_fn(params, batch, key, carry):
        carry = train.carry_over(carry, batch["reset"], fresh_carry)
        carry, logits = apply(params, batch["inputs"], carry, key)
        total, count = masked_cross_entropy(logits, batch["targets"], batch["mask"])
        loss = total / count
        return loss, {"bits_per_char": loss / math.log(2)}, carry

    return loss_fn


def make_evaluator(config: Config, ids: np.ndarray):
    """``evaluate(params) -> {"loss": nats/char, "bits_per_char": ...}`` on a held-out stream,
    read in order with the state carried across chunks (as the model would read it). The
    Transformer reads it in windows of ``chunk_length`` characters, each on its own, as it
    was trained."""
    m = model.make(config)
    streams = train.StreamBatches(
        ids,
        batch_size=min(VAL_STREAMS, len(ids) - 1),
        chunk_length=VAL_CHUNK if m.stateful else config.chunk_length,
    )
    chunks = [streams(s) for s in range(streams.steps_per_epoch)]

    @jax.jit
    def score(params, carry, batch):
        carry, logits = m.apply(params, batch["inputs"], carry)
        return (carry, *masked_cross_entropy(logits, batch["targets"], batch["mask"]))

    def evaluate(params):
        carry = m.initial_carry(params, streams.batch_size)
        total = count = 0.0
        for batch in chunks:
            carry, t, c = score(params, carry, batch)
            total, count = total + float(t), count + float(c)
        return {"loss": total / count, "bits_per_char": total / count / math.log(2)}

    return evaluate


def check_fits_the_text(config: Config, corpus: data.Corpus) -> None:
    """Refuses, before training, a sample prompt the model cannot read and chunks that would
    be mostly padding."""
    try:
        encode_prompt(corpus.vocab, config.sample_prompt)
    except ValueError as error:
        raise ConfigError(f"--sample-prompt {config.sample_prompt!r}: {error}") from None
    reads = len(config.sample_prompt) - 1 + config.sample_length
    if (
        config.model == "transformer"
        and config.positions == "learned"
        and reads > config.chunk_length
    ):
        raise ConfigError(
            f"--positions learned reads at most --chunk-length {config.chunk_length} "
            f"characters, but the sample reads {reads} (--sample-prompt and "
            "--sample-length); use --positions rotary (it slides its window) or sample less"
        )
    needed = config.batch_size * config.chunk_length + 1
    if len(corpus.train) < needed:
        raise ConfigError(
            f"--batch-size {config.batch_size} streams of --chunk-length {config.chunk_length} "
            f"need at least {needed:,} training characters; {corpus.path} has "
            f"{len(corpus.train):,}. Lower --chunk-length or --batch-size"
        )


class TimeBudget(train.Callback):
    """Stops the run once its training time (a resumed run's earlier time included) reaches
    ``minutes``; `jaxrnn.train.fit` then validates and checkpoints that step."""

    def __init__(self, minutes: float):
        self.minutes = minutes

    def on_update(self, loop, step, state, metrics):
        if loop.elapsed() >= 60 * self.minutes:
            loop.stop(f"time budget of {self.minutes:g} min reached at step {step}")


def check_same_model(config: Config, workdir: str) -> None:
    """Refuses to resume a workdir's checkpoints as another ``--model`` (before its
    config.json is rewritten)."""
    checkpoints = os.path.join(workdir, "checkpoints")
    if not (os.path.isdir(checkpoints) and os.listdir(checkpoints)):
        return
    if not os.path.isfile(os.path.join(workdir, CONFIG_FILE)):
        return
    saved = load_config(workdir, Config, "charlm")
    if saved.model != config.model:
        raise ConfigError(
            f"--workdir {workdir} holds a --model {saved.model} run, which cannot resume as "
            f"--model {config.model}; pass --model {saved.model} to resume it, --fresh to "
            "start afresh, or use another --workdir"
        )


def settings(config: Config) -> dict[str, Any]:
    """What `jaxrnn.train.fit` compares on resume: the config without the time budget and
    without the sizes of the models it is not (so a run of the LSTM, as before the other
    models existed, resumes as it was)."""
    shaping = set().union(*MODEL_FIELDS.values())
    dropped = (shaping - set(MODEL_FIELDS[config.model])) | {"time_budget"}
    if config.model == "lstm":
        dropped.add("model")
    return {k: v for k, v in run_settings(config).items() if k not in dropped}


MODEL_FIELDS = {  # the fields that size each model
    "lstm": ("cell", "embed_size", "hidden_size", "num_layers"),
    "slstm": ("d_model", "num_blocks", "num_heads"),
    "mlstm": ("d_model", "num_blocks", "num_heads"),
    "mamba": ("d_model", "num_blocks", "state_size"),
    "transformer": ("d_model", "num_blocks", "num_heads", "positions"),
}


def optimizer(config: Config):
    return optim.optimizer(
        config.learning_rate,
        config.num_steps,
        warmup_steps=min(200, config.num_steps // 10 + 1),
        end_fraction=0.05,
        weight_decay=config.weight_decay,
    )


def train_and_evaluate(config: Config, workdir: str, callbacks=()) -> dict[str, Any]:
    """Trains the model with truncated BPTT, reports validation nats/bits per character,
    sampling speed and a sample; writes results.json, learning_curve.png and sample.txt."""
    config.check()
    config = config.resolved()
    os.makedirs(workdir, exist_ok=True)
    check_same_model(config, workdir)
    save_config(workdir, config, "charlm")
    corpus = data.load(config.text, config.data_dir or None, config.val_fraction)
    check_fits_the_text(config, corpus)
    corpus.vocab.save(os.path.join(workdir, "vocab.json"))
    print(
        f"{corpus.path}: {len(corpus.train):,} training and {len(corpus.val):,} validation "
        f"characters, {len(corpus.vocab) - 4} distinct in training"
    )
    stream = train.StreamBatches(corpus.train, config.batch_size, config.chunk_length)
    m = model.make(config)
    params = m.init(jax.random.key(config.seed), len(corpus.vocab))
    print(f"model {config.model}: {model.count_params(params):,} parameters")
    fresh = m.initial_carry(params, config.batch_size)
    if config.time_budget:
        callbacks = (TimeBudget(config.time_budget), *callbacks)
    started = time.perf_counter()
    result = train.fit(
        make_loss(config, fresh),
        params,
        stream,
        num_steps=config.num_steps,
        optimizer=optimizer(config),
        val_data=make_evaluator(config, corpus.val),
        evaluation=train.Evaluation(every=config.eval_every),
        workdir=workdir,
        seed=config.seed,
        carry=fresh,
        checkpoints=train.Checkpoints(keep_last=2),
        log_every=max(1, config.eval_every // 5),
        callbacks=callbacks,
        config=settings(config),
        name="charlm",
    )
    seconds = time.perf_counter() - started
    history = result.history
    characters = int(result.state.step) * config.batch_size * config.chunk_length
    val = [r for r in history if r["split"] == "val"]
    best = min(val, key=lambda r: r["loss"])
    best_params = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(
        params, "best"
    )
    prompt = encode_prompt(corpus.vocab, config.sample_prompt)
    sample = sampler(config, config.sample_length, config.sample_temperature)
    text = config.sample_prompt + "".join(
        corpus.vocab.decode(np.asarray(sample(best_params, prompt, jax.random.key(config.seed)))[0])
    )
    speed = sampling_speed(config, best_params, prompt)
    results = {
        "text": corpus.path,
        "train_characters": len(corpus.train),
        "val_characters": len(corpus.val),
        "vocabulary": len(corpus.vocab) - 4,
        "best_val_nats_per_char": best["loss"],
        "best_val_bits_per_char": best["bits_per_char"],
        "best_step": best["step"],
        "steps": int(result.state.step),
        "parameters": model.count_params(params),
        "final_val_nats_per_char": val[-1]["loss"],
        "train_wall_seconds_this_run": round(seconds, 1),
        "train_wall_seconds_total": history[-1]["wall_time"],
        "train_chars_per_second": round(characters / max(history[-1]["wall_time"], 1e-9)),
        "sampling_chars_per_second_batch_1": round(speed),
        "sample": text,
        "config": dataclasses.asdict(config),
    }
    write_json(os.path.join(workdir, "results.json"), results)
    with open(os.path.join(workdir, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(
        f"\nbest validation loss {best['loss']:.4f} nats/char = {best['bits_per_char']:.4f} "
        f"bits/char at step {best['step']} ({history[-1]['wall_time'] / 60:.1f} min of "
        f"training, {results['train_chars_per_second']:,} chars/s)"
    )
    print(f"sampling: {speed:,.0f} characters/s (batch 1, after compilation)")
    print(f"\n--- sample (temperature {config.sample_temperature}) ---\n{text}\n")

    from experiments.charlm import plots

    plots.learning_curve(os.path.join(workdir, "learning_curve.png"), history)
    return results
