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
    source_vocab: text.Vocabulary
    target_vocab: text.Vocabulary
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
    source = [data.turkish_tokens(s) for s in pairs.turkish]
    target = [data.english_tokens(s) for s in pairs.english]
    fits = [
        len(source[i]) <= config.max_source_tokens
        and len(target[i]) + 1 <= config.max_target_tokens
        for i in train_rows
    ]
    kept = train_rows[np.asarray(fits, bool)]
    return Prepared(
        pairs=pairs,
        rows={"train": kept, "val": val_rows, "test": test_rows},
        source_vocab=text.Vocabulary.build([source[i] for i in kept], min_freq=config.min_freq),
        target_vocab=text.Vocabulary.build([target[i] for i in kept], min_freq=config.min_freq),
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
    prepared.source_vocab.save(os.path.join(workdir, "source_vocab.json"))
    prepared.target_vocab.save(os.path.join(workdir, "target_vocab.json"))
    sizes = {k: len(v) for k, v in prepared.rows.items()}
    print(
        f"{len(prepared.pairs):,} pairs: {sizes['train']:,} train, {sizes['val']:,} val, "
        f"{sizes['test']:,} test (split by English sentence; {prepared.dropped} over-long "
        f"training pairs left out); vocabularies: {len(prepared.source_vocab):,} Turkish, "
        f"{len(prepared.target_vocab):,} English words"
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
        eval_every=config.eval_every,
        workdir=workdir,
        seed=config.seed,
        keep_last=2,
        log_every=max(1, config.eval_every // 5),
        config=run_settings(config),
        name="translate",
    )
    train_seconds = result.history[-1]["wall_time"]
    best = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(params, "best")

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
