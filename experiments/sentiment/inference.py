"""Using trained sentiment models: tokenize, score id sequences, classify sentences of a run.

The command line (`python -m experiments.sentiment.predict`), the notebook and the training
run's own evaluation all go through these functions.
"""

import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.reporting import load_config
from experiments.reporting import write_json
from experiments.sentiment import bow
from experiments.sentiment import model
from experiments.sentiment.configs.default import Config
from jaxrnn import export
from jaxrnn import text
from jaxrnn import train

LABELS = ("negative", "positive")


def tokenize(sentence: str) -> list[str]:
    """Word tokens, lower-cased, punctuation split (the same for training and prediction)."""
    return text.tokenize(sentence, mode="word", lower=True)


def predict_proba(config: Config, params, sequences: list[np.ndarray]) -> np.ndarray:
    """Probability of 'positive' for each id sequence, in order ``(n,)``."""
    forward = _forward(config)
    batches = text.BucketedBatches(sequences, batch_size=256, shuffle=False).epoch(0)
    out = np.zeros(len(sequences))
    for batch in batches:
        probs = np.asarray(forward(params, batch["ids"], batch["lengths"]))
        real = batch["weights"] > 0
        out[batch["index"][real]] = probs[real]
    return out


class Classifier:
    """The model trained on the first split of a workdir: RNN ensemble (+ bag-of-words)."""

    def __init__(self, workdir: str):
        self.config = load_config(workdir, Config, "sentiment")
        fold = os.path.join(workdir, "fold0")
        self.vocab = text.Vocabulary.load(os.path.join(fold, "vocab.json"))
        like = model.make(self.config).init(jax.random.key(0), len(self.vocab))
        self.members = []
        for member in range(self.config.ensemble):
            checkpoints = train.Checkpointer(os.path.join(fold, f"member{member}", "checkpoints"))
            if checkpoints.latest_step() is None:
                raise FileNotFoundError(
                    f"{fold}/member{member} has no checkpoint: the training "
                    "run did not finish; run it again to resume"
                )
            self.members.append(checkpoints.restore_params(like, "latest"))
        self.bow = bow.load(os.path.join(fold, "bow")) if self.config.combine_bow else None

    def positive_probability(self, sentences: Sequence[str]) -> np.ndarray:
        """P(positive) for each sentence ``(n,)``."""
        tokens = [tokenize(s) for s in sentences]
        sequences = [self.vocab.encode(t) for t in tokens]
        empty = [n for n, seq in enumerate(sequences) if len(seq) == 0]
        if empty:
            raise ValueError(f"sentence {empty[0] + 1} has no words: {sentences[empty[0]]!r}")
        p = np.mean(
            [predict_proba(self.config, params, sequences) for params in self.members], axis=0
        )
        if self.bow is not None:
            p = (p + self.bow.predict_proba(tokens)) / 2
        return p


def export_classifier(workdir: str, path: str) -> dict:
    """Writes the RNN ensemble of a run as one artifact for serving, and a description.

    ``path`` ending in ``.onnx`` gives an ONNX model (jax2onnx), any other name a
    `jax.export` artifact. Either maps ``ids`` ``(b, t)`` int32 (word ids of
    ``<path>.json``'s vocabulary, padded with 0) and ``lengths`` ``(b,)`` int32 to the
    probability of "positive" ``(b,)``, for any ``b`` and ``t``; the ensemble's params are
    constants of the artifact. A run that also averages the bag-of-words model
    (``combine_bow``) is exported without it, which the description says.

    Returns:
      The description written to ``<path>.json``.
    """
    classifier = Classifier(workdir)
    logits = model.make(classifier.config).logits
    members = classifier.members

    def positive(ids, lengths):
        probabilities = [jax.nn.softmax(logits(p, ids, lengths))[:, 1] for p in members]
        return jnp.mean(jnp.stack(probabilities), axis=0)

    args = export.arguments(("b, t", jnp.int32), ("b", jnp.int32))
    written = export.save_by_suffix(
        positive, args, path, input_names=["ids", "lengths"], output_names=["positive"]
    )
    description = {
        "format": written,
        "inputs": {
            "ids": "(b, t) int32 word ids, 0-padded after each sentence",
            "lengths": "(b,) int32 words per sentence, 1 to t",
        },
        "outputs": {"positive": "(b,) float32 probability that the sentence is positive"},
        "tokenizer": "lower-cased words, punctuation split off (jaxrnn.text.tokenize, "
        "mode='word', lower=True); words not in the vocabulary are <unk>",
        "unknown_id": classifier.vocab.encode([text.UNK])[0].item(),
        "vocabulary": list(classifier.vocab.tokens),
        "ensemble_members": len(members),
        "bag_of_words_left_out": bool(classifier.config.combine_bow),
    }
    write_json(path + ".json", description)
    return description


@functools.cache
def _forward(config: Config):
    """P(positive) ``(b,)`` of a padded batch, jitted once per config."""
    logits = model.make(config).logits
    return jax.jit(lambda p, ids, lengths: jax.nn.softmax(logits(p, ids, lengths))[:, 1])
