"""Train and evaluate the sentiment classifier; `train_and_evaluate` is the whole experiment."""

import dataclasses
import itertools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.datasets import DataError
from experiments.reporting import format_table
from experiments.reporting import run_settings
from experiments.reporting import save_config
from experiments.reporting import write_json
from experiments.sentiment import bow
from experiments.sentiment import data
from experiments.sentiment import model
from experiments.sentiment.configs.default import Config
from experiments.sentiment.inference import LABELS
from experiments.sentiment.inference import predict_proba
from experiments.sentiment.inference import tokenize
from jaxrnn import text
from jaxrnn import train

LENGTH_BINS = (0, 10, 20, 30, 40, 1000)  # token counts for accuracy-vs-length


def make_splits(config: Config, num_examples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs: one seeded split, or ``config.folds`` folds."""
    if config.folds == 1:
        order = np.random.default_rng(config.split_seed).permutation(num_examples)
        held_out = round(num_examples * config.test_fraction)
        if not 0 < held_out < num_examples:
            raise DataError(
                f"--test-fraction {config.test_fraction} of {num_examples} sentences leaves no "
                "train or test data"
            )
        return [(np.sort(order[held_out:]), np.sort(order[:held_out]))]
    if config.folds > num_examples:
        raise DataError(
            f"--folds {config.folds} needs at least {config.folds} sentences, got {num_examples}"
        )
    return data.folds(num_examples, config.folds, config.split_seed)


def load_embeddings(path: str, vocab: text.Vocabulary, size: int, table: np.ndarray):
    """Overwrites rows of ``table`` with vectors from a word2vec/GloVe text file; returns the
    table and how many vocabulary words were found. A line that is not ``word`` followed by
    ``size`` numbers is a `DataError` naming the file and the line."""
    found = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}, line {number}: not valid UTF-8 (byte 0x{raw[error.start]:02x})"
                ) from None
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2:
                continue  # word2vec header: "count dim"
            word, values = parts[0], parts[1:]
            if len(values) != size:
                raise DataError(
                    f"{path}, line {number}: {len(values)} numbers after the word, but "
                    f"--embed-size is {size}; pass --embed-size {len(values)}"
                )
            try:
                vector = np.asarray([float(v) for v in values], np.float32)
            except ValueError:
                bad = next(v for v in values if not _is_number(v))
                raise DataError(
                    f"{path}, line {number}: {bad[:20]!r} is not a number "
                    f"(expected 'word v1 ... v{size}')"
                ) from None
            if not np.all(np.isfinite(vector)):
                raise DataError(f"{path}, line {number}: the vector of {word!r} is not finite")
            if word in vocab:
                table[vocab.id(word)] = vector
                found += 1
    return table, found


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def classifier_loss(config: Config):
    """``loss_fn(params, batch, key)`` for `jaxrnn.train.fit`: weighted cross-entropy."""
    logits = model.make(config).logits

    def loss_fn(params, batch, key):
        ids = batch["ids"]
        if key is not None and config.word_dropout > 0:
            key, k_words = jax.random.split(key)
            dropped = jax.random.bernoulli(k_words, config.word_dropout, ids.shape)
            ids = jnp.where(dropped & (ids != text.Vocabulary.pad_id), text.Vocabulary.unk_id, ids)
        packed = None
        if "resets" in batch:  # a `text.PackedBatches` batch: several sentences per row
            packed = tuple(batch[k] for k in ("resets", "doc_row", "doc_start", "doc_length"))
        scores = logits(params, ids, batch["lengths"], key, packed)
        weights = batch["weights"]
        loss = optax.softmax_cross_entropy_with_integer_labels(scores, batch["labels"])
        correct = jnp.argmax(scores, axis=-1) == batch["labels"]
        total = jnp.sum(weights)
        return jnp.sum(loss * weights) / total, {
            "accuracy": jnp.sum(correct * weights) / total,
            "weight": total,
        }

    return loss_fn


def train_member(config, vocab, sequences, labels, member: int, workdir: str, embeddings=None):
    """Trains one RNN of the ensemble; returns its params."""
    seed = config.seed * 1000 + member
    kind = text.PackedBatches if config.batching == "packed" else text.BucketedBatches
    batches = kind(sequences, labels, batch_size=config.batch_size, seed=seed)
    if member == 0:
        padding = batches.padding_fraction()
        print(f"{config.batching} batches: {padding:.1%} of the token slots are padding")
    num_steps = config.epochs * batches.steps_per_epoch
    schedule = optax.cosine_decay_schedule(config.learning_rate, num_steps, alpha=0.05)
    optimizer = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(schedule))
    params = model.make(config).init(
        jax.random.key(config.seed * 1000 + member), len(vocab), embeddings
    )
    result = train.fit(
        classifier_loss(config),
        params,
        batches,
        num_steps=num_steps,
        optimizer=optimizer,
        workdir=workdir,
        seed=config.seed * 1000 + member,
        checkpoints=train.Checkpoints(every=batches.steps_per_epoch, keep_last=1),
        log_every=max(1, batches.steps_per_epoch // 4),
        config=run_settings(config, member=member),
        name=os.path.join(os.path.basename(os.path.dirname(workdir)), f"member{member}"),
    )
    return result.params


def run_fold(config: Config, corpus, tokens, train_rows, test_rows, workdir: str):
    """BoW and RNN ensemble on one split; returns test probabilities and timings."""
    os.makedirs(workdir, exist_ok=True)
    train_tokens = [tokens[i] for i in train_rows]
    test_tokens = [tokens[i] for i in test_rows]
    started = time.perf_counter()
    baseline = bow.BagOfWords(
        l2=config.bow_l2, weighting=config.bow_weighting, order=config.bow_order
    ).fit(train_tokens, corpus.labels[train_rows])
    bow.save(baseline, os.path.join(workdir, "bow"))
    p_bow = baseline.predict_proba(test_tokens)
    bow_seconds = time.perf_counter() - started

    vocab = text.Vocabulary.build(train_tokens, min_freq=config.min_freq)
    vocab.save(os.path.join(workdir, "vocab.json"))
    embeddings = None
    if config.embeddings:
        table = np.asarray(model.make(config).init(jax.random.key(0), len(vocab))["embed"])
        table, found = load_embeddings(config.embeddings, vocab, config.embed_size, table.copy())
        print(f"embeddings: {found} of {len(vocab)} vocabulary words found in {config.embeddings}")
        embeddings = table
    train_seqs = [vocab.encode(t) for t in train_tokens]
    test_seqs = [vocab.encode(t) for t in test_tokens]
    started = time.perf_counter()
    members = []
    for member in range(config.ensemble):
        params = train_member(
            config,
            vocab,
            train_seqs,
            corpus.labels[train_rows],
            member,
            os.path.join(workdir, f"member{member}"),
            embeddings,
        )
        members.append(predict_proba(config, params, test_seqs))
    return {
        "bow": p_bow,
        "members": members,
        "rnn_seconds": time.perf_counter() - started,
        "bow_seconds": bow_seconds,
    }


def train_and_evaluate(config: Config, workdir: str) -> dict[str, Any]:
    """Runs the sentiment experiment; writes results.json, a confusion matrix and plots."""
    config.check()
    os.makedirs(workdir, exist_ok=True)
    save_config(workdir, config, "sentiment")
    corpus = data.load(config.dataset, config.data_dir or None)
    tokens = [tokenize(t) for t in corpus.texts]
    splits = make_splits(config, len(corpus))
    per_fold = []
    pooled = {"rows": [], "labels": [], "lengths": [], "bow": [], "rnn": [], "final": []}
    for k, (train_rows, test_rows) in enumerate(splits):
        print(f"\nsplit {k + 1}/{len(splits)}: {len(train_rows)} train, {len(test_rows)} test")
        out = run_fold(
            config, corpus, tokens, train_rows, test_rows, os.path.join(workdir, f"fold{k}")
        )
        labels = corpus.labels[test_rows]
        p_rnn = np.mean(out["members"], axis=0)
        p_final = (p_rnn + out["bow"]) / 2 if config.combine_bow else p_rnn
        accuracy = lambda p, labels=labels: float(np.mean((p > 0.5) == labels))
        fold = {
            "bow": accuracy(out["bow"]),
            "rnn_members": [accuracy(p) for p in out["members"]],
            "rnn_ensemble": accuracy(p_rnn),
            "rnn_plus_bow": accuracy((p_rnn + out["bow"]) / 2),
            "final": accuracy(p_final),
            "rnn_train_seconds": round(out["rnn_seconds"], 1),
        }
        per_fold.append(fold)
        print(
            f"split {k + 1}: bag-of-words {fold['bow']:.4f}, RNN members "
            f"{', '.join(f'{a:.4f}' for a in fold['rnn_members'])}, RNN ensemble "
            f"{fold['rnn_ensemble']:.4f}, RNN + BoW {fold['rnn_plus_bow']:.4f} "
            f"({fold['rnn_train_seconds']} s)"
        )
        pooled["rows"].append(np.asarray(test_rows))
        pooled["labels"].append(labels)
        pooled["lengths"].append(np.asarray([len(tokens[i]) for i in test_rows]))
        pooled["bow"].append(out["bow"])
        pooled["rnn"].append(p_rnn)
        pooled["final"].append(p_final)
    pooled = {k: np.concatenate(v) for k, v in pooled.items()}
    results = summarize(config, per_fold, pooled)
    write_json(os.path.join(workdir, "results.json"), results)
    np.savez(os.path.join(workdir, "test_probabilities.npz"), **pooled)
    print_summary(config, results)

    from experiments.sentiment import plots

    plots.accuracy_vs_length(
        os.path.join(workdir, "accuracy_vs_length.png"), pooled, LENGTH_BINS, config.dataset
    )
    plots.confusion(
        os.path.join(workdir, "confusion_matrix.png"),
        np.asarray(results["confusion_matrix"]),
        LABELS,
    )
    return results


def bow_name(config: Config) -> str:
    """The bag-of-words model's row name, e.g. 'bag-of-words (NB-weighted 1-2-gram LR)'."""
    kind = "NB-weighted " if config.bow_weighting == "nb" else "binary "
    grams = "unigram" if config.bow_order == 1 else f"1-{config.bow_order}-gram"
    return f"bag-of-words ({kind}{grams} LR)"


def summarize(config: Config, per_fold: list[dict], pooled: dict) -> dict[str, Any]:
    models = {
        bow_name(config): [f["bow"] for f in per_fold],
        "RNN (single model, mean of members)": [float(np.mean(f["rnn_members"])) for f in per_fold],
        f"RNN ensemble of {config.ensemble}": [f["rnn_ensemble"] for f in per_fold],
        "RNN ensemble + bag-of-words": [f["rnn_plus_bow"] for f in per_fold],
    }
    final = (pooled["final"] > 0.5).astype(int)
    confusion = np.zeros((2, 2), int)
    np.add.at(confusion, (pooled["labels"], final), 1)
    by_length = []
    for lo, hi in itertools.pairwise(LENGTH_BINS):
        rows = (pooled["lengths"] > lo) & (pooled["lengths"] <= hi)
        if rows.any():
            entry = {
                "tokens": f"{lo + 1}-{hi}" if hi < 1000 else f">{lo}",
                "count": int(rows.sum()),
            }
            for name in ("bow", "rnn", "final"):
                entry[name] = float(np.mean((pooled[name][rows] > 0.5) == pooled["labels"][rows]))
            by_length.append(entry)
    return {
        "dataset": config.dataset,
        "splits": "single split" if config.folds == 1 else f"{config.folds}-fold CV",
        "final_model": "RNN ensemble + bag-of-words"
        if config.combine_bow
        else f"RNN ensemble of {config.ensemble}",
        "accuracy": {
            name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "folds": v}
            for name, v in models.items()
        },
        "rnn_train_seconds_per_split": float(np.mean([f["rnn_train_seconds"] for f in per_fold])),
        "confusion_matrix": confusion.tolist(),
        "confusion_labels": list(LABELS),
        "accuracy_by_length": by_length,
        "per_fold": per_fold,
        "config": dataclasses.asdict(config),
    }


def print_summary(config: Config, results: dict) -> None:
    rows = [
        {
            "model": name,
            "accuracy": f"{100 * v['mean']:.2f}"
            + (f" ± {100 * v['std']:.2f}" if len(v["folds"]) > 1 else ""),
        }
        for name, v in results["accuracy"].items()
    ]
    print(f"\n{results['dataset']}, {results['splits']}: test accuracy (%)")
    print(format_table(rows, ["model", "accuracy"]))
    print(
        f"final model: {results['final_model']}; RNN training "
        f"{results['rnn_train_seconds_per_split']:.0f} s per split"
    )
    (tn, fp), (fn, tp) = results["confusion_matrix"]
    print(
        f"confusion matrix of the final model (rows: true, columns: predicted):\n"
        f"              negative  positive\n  negative  {tn:10d}{fp:10d}\n"
        f"  positive  {fn:10d}{tp:10d}"
    )
