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
from experiments.reporting import save_config
from experiments.reporting import write_json
from experiments.validation import ConfigError
from jaxrnn import decode
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

    def loss_fn(params, batch, key, carry):
        carry = train.carry_over(carry, batch["reset"], fresh_carry)
        carry, logits = model.apply(config, params, batch["inputs"], carry, key)
        total, count = masked_cross_entropy(logits, batch["targets"], batch["mask"])
        loss = total / count
        return loss, {"bits_per_char": loss / math.log(2)}, carry

    return loss_fn


def make_evaluator(config: Config, ids: np.ndarray):
    """``evaluate(params) -> {"loss": nats/char, "bits_per_char": ...}`` on a held-out stream,
    read in order with the state carried across chunks (as the model would read it)."""
    streams = train.StreamBatches(
        ids, batch_size=min(VAL_STREAMS, len(ids) - 1), chunk_length=VAL_CHUNK
    )
    chunks = [streams(s) for s in range(streams.steps_per_epoch)]

    @jax.jit
    def score(params, carry, batch):
        carry, logits = model.apply(config, params, batch["inputs"], carry)
        return (carry, *masked_cross_entropy(logits, batch["targets"], batch["mask"]))

    def evaluate(params):
        carry = model.initial_carry(config, params, streams.batch_size)
        total = count = 0.0
        for batch in chunks:
            carry, t, c = score(params, carry, batch)
            total, count = total + float(t), count + float(c)
        return {"loss": total / count, "bits_per_char": total / count / math.log(2)}

    return evaluate


def sampler(config: Config, length: int, temperature: float, top_k: int | None = None):
    """``sample(params, prompt_ids (b, p), key) -> ids (b, length)``, one jitted function: the
    prompt is read with `jaxrnn.unroll`, then `jaxrnn.decode.generate` samples."""

    @jax.jit
    def sample(params, prompt_ids, key):
        carry = model.initial_carry(config, params, prompt_ids.shape[0])
        if prompt_ids.shape[1] > 1:  # all but the last prompt character build the state
            carry, _ = model.apply(config, params, prompt_ids[:, :-1], carry)
        tokens, _ = decode.generate(
            model.step_fn(config, params),
            carry,
            prompt_ids[:, -1],
            length=length,
            key=key,
            temperature=temperature,
            top_k=top_k,
        )
        return tokens

    return sample


def encode_prompt(vocab, prompt: str) -> np.ndarray:
    """The prompt's character ids ``(1, p)``; characters the model never saw are an error."""
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character")
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise ValueError(
            f"the prompt has characters the model never saw in training: "
            f"{''.join(unknown)!r}; use only characters of the training text"
        )
    return vocab.encode(list(prompt))[None]


def check_fits_the_text(config: Config, corpus: data.Corpus) -> None:
    """Refuses, before training, a sample prompt the model cannot read and chunks that would
    be mostly padding."""
    try:
        encode_prompt(corpus.vocab, config.sample_prompt)
    except ValueError as error:
        raise ConfigError(f"--sample-prompt {config.sample_prompt!r}: {error}") from None
    needed = config.batch_size * config.chunk_length + 1
    if len(corpus.train) < needed:
        raise ConfigError(
            f"--batch-size {config.batch_size} streams of --chunk-length {config.chunk_length} "
            f"need at least {needed:,} training characters; {corpus.path} has "
            f"{len(corpus.train):,}. Lower --chunk-length or --batch-size"
        )


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
    os.makedirs(workdir, exist_ok=True)
    save_config(workdir, config, "charlm")
    corpus = data.load(config.text, config.data_dir or None, config.val_fraction)
    check_fits_the_text(config, corpus)
    corpus.vocab.save(os.path.join(workdir, "vocab.json"))
    print(
        f"{corpus.path}: {len(corpus.train):,} training and {len(corpus.val):,} validation "
        f"characters, {len(corpus.vocab) - 4} distinct in training"
    )
    stream = train.StreamBatches(corpus.train, config.batch_size, config.chunk_length)
    params = model.init_params(config, len(corpus.vocab), jax.random.key(config.seed))
    fresh = model.initial_carry(config, params, config.batch_size)
    started = time.perf_counter()
    result = train.fit(
        make_loss(config, fresh),
        params,
        stream,
        num_steps=config.num_steps,
        optimizer=optimizer(config),
        val_data=make_evaluator(config, corpus.val),
        eval_every=config.eval_every,
        workdir=workdir,
        seed=config.seed,
        carry=fresh,
        keep_last=2,
        log_every=max(1, config.eval_every // 5),
        callbacks=callbacks,
        config={**dataclasses.asdict(config), "data_dir": None},
    )
    seconds = time.perf_counter() - started
    history = result.history
    characters = config.num_steps * config.batch_size * config.chunk_length
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


def sampling_speed(config: Config, params, prompt: np.ndarray, length: int = 5000) -> float:
    """Characters per second of `sampler` at batch 1, timed after compilation (median of 3)."""
    sample = sampler(config, length, 1.0)
    sample(params, prompt, jax.random.key(0)).block_until_ready()
    times = []
    for n in range(3):
        t = time.perf_counter()
        sample(params, prompt, jax.random.key(n + 1)).block_until_ready()
        times.append(time.perf_counter() - t)
    return length / float(np.median(times))
