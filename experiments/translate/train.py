"""Train and evaluate Turkish -> English translation; `train_and_evaluate` runs it all."""

import dataclasses
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sacrebleu

from experiments import optim
from experiments.datasets import DataError
from experiments.reporting import run_settings
from experiments.reporting import save_config
from experiments.reporting import write_json
from experiments.translate import data
from experiments.translate import model
from experiments.translate import units
from experiments.translate.configs.default import Config
from experiments.translate.inference import attention_map
from experiments.translate.inference import score
from experiments.translate.inference import translate
from jaxrnn import text
from jaxrnn import train


@dataclasses.dataclass
class Prepared:
    pairs: data.Pairs
    rows: dict[str, np.ndarray]  # split name -> row indices into pairs
    source_vocab: units.Words | units.Subwords  # Turkish
    target_vocab: units.Words | units.Subwords  # English
    dropped: int  # training pairs left out for being longer than the limits


def prepare(config: Config) -> Prepared:
    pairs = data.load(config.data_dir or None)
    distinct = len(set(pairs.english))
    needed = math.ceil(0.5 / min(config.val_fraction, config.test_fraction)) + 1
    if distinct < needed:
        raise DataError(
            f"{data.FILE} has {distinct} distinct English sentences; --val-fraction "
            f"{config.val_fraction} and --test-fraction {config.test_fraction} need at least "
            f"{needed} to put one in each of train, validation and test"
        )
    train_rows, val_rows, test_rows = data.split_by_english(
        pairs, config.val_fraction, config.test_fraction, config.split_seed
    )
    sources = [pairs.turkish[i] for i in train_rows]
    targets = [pairs.english[i] for i in train_rows]
    source_units = units.build(
        config.units, sources, "tr", size=config.source_pieces, min_freq=config.min_freq
    )
    target_units = units.build(
        config.units, targets, "en", size=config.target_pieces, min_freq=config.min_freq
    )
    fits = [
        len(source_units.encode(s)) <= config.max_source_tokens
        and len(target_units.encode(t, eos=True)) <= config.max_target_tokens
        for s, t in zip(sources, targets, strict=True)
    ]
    kept = train_rows[np.asarray(fits, bool)]
    return Prepared(
        pairs=pairs,
        rows={"train": kept, "val": val_rows, "test": test_rows},
        source_vocab=source_units,
        target_vocab=target_units,
        dropped=len(train_rows) - len(kept),
    )


def pair_batches(config, prepared, split, *, shuffle, batch_size=None):
    """Batches of pairs; a pair's source and target are padded to one bucket length (the
    longer of the two), so short pairs cost short scans in both encoder and decoder."""
    rows = prepared.rows[split]
    sources = data.encode_sources(prepared.source_vocab, [prepared.pairs.turkish[i] for i in rows])
    targets = data.encode_targets(prepared.target_vocab, [prepared.pairs.english[i] for i in rows])
    longest = [max(len(s), len(t)) for s, t in zip(sources, targets, strict=True)]
    return text.BucketedBatches(
        sources,
        targets=targets,
        batch_size=batch_size or config.batch_size,
        buckets=data.buckets(longest),
        seed=config.seed,
        shuffle=shuffle,
    )


def make_loss(config: Config, target_vocab_size: int):
    teacher_forced = model.make(config).teacher_forced

    def loss_fn(params, batch, key):
        targets = batch["targets"]
        bos = jnp.full((targets.shape[0], 1), text.Vocabulary.bos_id, targets.dtype)
        inputs = jnp.concatenate([bos, targets[:, :-1]], axis=1)
        logits, _ = teacher_forced(params, batch["ids"], batch["lengths"], inputs, key)
        mask = (targets != text.Vocabulary.pad_id) & (batch["weights"][:, None] > 0)
        one_hot = jax.nn.one_hot(targets, target_vocab_size)
        smoothed = optax.smooth_labels(one_hot, config.label_smoothing)
        loss = optax.softmax_cross_entropy(logits, smoothed)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        tokens = jnp.sum(mask)
        mean = lambda x: jnp.sum(jnp.where(mask, x, 0.0)) / tokens
        return mean(loss), {"nll": mean(nll), "weight": tokens}

    return loss_fn


def optimizer(config: Config):
    return optim.optimizer(
        config.learning_rate,
        config.num_steps,
        warmup_steps=min(500, config.num_steps // 10 + 1),
        end_fraction=0.05,
    )


def train_and_evaluate(config: Config, workdir: str) -> dict[str, Any]:
    """Trains the attention model, decodes the test split greedily and with beam search, and
    writes results.json, examples and attention heat maps."""
    config.check()
    os.makedirs(workdir, exist_ok=True)
    save_config(workdir, config, "translate")
    prepared = prepare(config)
    prepared.source_vocab.save(workdir, "source")
    prepared.target_vocab.save(workdir, "target")
    sizes = {k: len(v) for k, v in prepared.rows.items()}
    print(
        f"{len(prepared.pairs):,} pairs: {sizes['train']:,} train, {sizes['val']:,} val, "
        f"{sizes['test']:,} test (split by English sentence; {prepared.dropped} over-long "
        f"training pairs left out); vocabularies: {len(prepared.source_vocab):,} Turkish, "
        f"{len(prepared.target_vocab):,} English {config.units}s"
    )
    batches = pair_batches(config, prepared, "train", shuffle=True)
    val = pair_batches(config, prepared, "val", shuffle=False, batch_size=256).epoch(0)
    params = model.make(config).init(
        jax.random.key(config.seed), len(prepared.source_vocab), len(prepared.target_vocab)
    )
    result = train.fit(
        make_loss(config, len(prepared.target_vocab)),
        params,
        batches,
        num_steps=config.num_steps,
        optimizer=optimizer(config),
        val_data=val,
        evaluation=train.Evaluation(every=config.eval_every),
        workdir=workdir,
        seed=config.seed,
        checkpoints=train.Checkpoints(keep_last=max(2, config.average_last)),
        log_every=max(1, config.eval_every // 5),
        config=run_settings(config),
        name="translate",
    )
    train_seconds = result.history[-1]["wall_time"]
    best, averaged = pick_params(
        config, workdir, params, make_loss(config, len(prepared.target_vocab)), val
    )

    config, tuned = choose_length_penalty(config, best, prepared)
    test = prepared.pairs.subset(prepared.rows["test"])
    outputs, scores = {}, {}
    for name, beam_size in (("greedy", 1), (f"beam {config.beam_size}", config.beam_size)):
        t = time.perf_counter()
        outputs[name] = translate(
            config, best, prepared.source_vocab, prepared.target_vocab, test.turkish, beam_size
        )
        scores[name] = {
            **score(outputs[name], test.english),
            "decode_seconds": round(time.perf_counter() - t, 1),
        }
    beam_name = f"beam {config.beam_size}"
    examples = pick_examples(test, outputs[beam_name])
    results = {
        "pairs": sizes,
        "dropped_training_pairs": prepared.dropped,
        "vocabulary": {
            "turkish": len(prepared.source_vocab),
            "english": len(prepared.target_vocab),
        },
        "train_minutes": round(train_seconds / 60, 1),
        "best_step": result.best_step,
        "checkpoint_average": averaged,
        "length_penalty": {"chosen": config.length_penalty, "val_bleu": tuned},
        "test": scores,
        "examples": examples,
        "config": dataclasses.asdict(config),
    }
    write_json(os.path.join(workdir, "results.json"), results)
    print(f"\ntest ({sizes['test']:,} pairs), after {train_seconds / 60:.1f} min of training:")
    for name, s in scores.items():
        print(
            f"  {name:8s} BLEU {s['bleu']:.2f}  chrF {s['chrf']:.2f}  "
            f"({s['decode_seconds']} s to decode)"
        )
    print(f"  {scores['greedy']['bleu_signature']}\n  {scores['greedy']['chrf_signature']}")
    print("\nexamples (Turkish | reference | beam search):")
    for e in examples:
        print(f"  [{e['kind']}] {e['turkish']} | {e['reference']} | {e['translation']}")

    from experiments.translate import plots

    for n, e in enumerate(examples[:4]):
        weights, source, target = attention_map(
            config,
            best,
            prepared.source_vocab,
            prepared.target_vocab,
            e["turkish"],
            e["translation"],
        )
        plots.attention(os.path.join(workdir, f"attention_{n}.png"), weights, source, target)
    print(
        f"\nresults: {os.path.join(workdir, 'results.json')}; attention maps: "
        f"{workdir}/attention_*.png"
    )
    return results


def pick_params(config: Config, workdir: str, like, loss_fn, val):
    """The params to evaluate, and a record of the choice: the best checkpoint, or the mean
    of the last ``config.average_last`` checkpoints when its validation loss is lower."""
    checkpoints = train.Checkpointer(os.path.join(workdir, "checkpoints"))
    best = checkpoints.restore_params(like, "best")
    steps = checkpoints.all_steps()[-config.average_last :] if config.average_last > 1 else []
    if len(steps) < 2:
        return best, None
    restored = [checkpoints.restore_params(like, step) for step in steps]
    mean = jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *restored)
    eval_step = train.make_eval_step(loss_fn)
    losses = {
        "best": train.evaluate(eval_step, best, val)["loss"],
        "average": train.evaluate(eval_step, mean, val)["loss"],
    }
    use = "average" if losses["average"] < losses["best"] else "best"
    print(
        f"validation loss: best checkpoint {losses['best']:.4f}, mean of steps {steps} "
        f"{losses['average']:.4f}; using the {use}"
    )
    record = {"steps": steps, "val_loss": losses, "used": use}
    return (mean if use == "average" else best), record


def choose_length_penalty(config: Config, params, prepared: Prepared):
    """``(config, {alpha: validation BLEU})``: the config with the alpha of
    ``config.length_penalties`` whose beam search scores best on the validation set."""
    if not config.length_penalties:
        return config, {}
    val = prepared.pairs.subset(prepared.rows["val"])
    tuned = {}
    for alpha in config.length_penalties:
        trial = dataclasses.replace(config, length_penalty=float(alpha))
        hypotheses = translate(
            trial,
            params,
            prepared.source_vocab,
            prepared.target_vocab,
            val.turkish,
            config.beam_size,
        )
        tuned[str(alpha)] = round(score(hypotheses, val.english)["bleu"], 2)
    best = max(config.length_penalties, key=lambda alpha: tuned[str(alpha)])
    listed = ", ".join(f"{alpha}: {bleu}" for alpha, bleu in tuned.items())
    print(f"length penalty on validation (beam {config.beam_size}, BLEU): {listed}; using {best}")
    return dataclasses.replace(config, length_penalty=float(best)), tuned


def pick_examples(test: data.Pairs, translations: list[str], count: int = 10, seed: int = 0):
    """Five good and five bad test translations (by sentence chrF), drawn at random."""
    chrf = sacrebleu.metrics.CHRF()
    sentence = [
        chrf.sentence_score(h, [r]).score for h, r in zip(translations, test.english, strict=True)
    ]
    order = np.argsort(sentence)
    rng = np.random.default_rng(seed)
    good = rng.choice(order[len(order) // 2 :], count // 2, replace=False)
    bad = rng.choice(order[: len(order) // 5], count - count // 2, replace=False)
    return [
        {
            "kind": kind,
            "turkish": test.turkish[i],
            "reference": test.english[i],
            "translation": translations[i],
            "chrf": round(sentence[i], 1),
        }
        for kind, rows in (("good", good), ("bad", bad))
        for i in rows
    ]
