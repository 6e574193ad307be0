"""Classify sentences with a trained sentiment model.

    python -m experiments.sentiment.predict --workdir runs/sentiment "a gorgeous , witty film"
    python -m experiments.sentiment.predict --workdir runs/sentiment --file sentences.txt

Prints ``label<TAB>probability`` (the probability of that label) for each sentence, in order;
with --file, exactly one line per input line. Words never seen in training count as <unk>.
An empty line in --file is an error that names the line: nothing is dropped silently.
"""

import argparse
import os
from collections.abc import Sequence

import jax
import numpy as np

from experiments.cli import ArgumentParser
from experiments.cli import fail
from experiments.datasets import read_utf8_lines
from experiments.reporting import load_config
from experiments.sentiment import bow
from experiments.sentiment import model
from experiments.sentiment.configs.default import Config
from experiments.sentiment.train import LABELS
from experiments.sentiment.train import predict_proba
from experiments.sentiment.train import tokenize
from jaxrnn import text
from jaxrnn import train


class Classifier:
    """The model trained on the first split of a workdir: RNN ensemble (+ bag-of-words)."""

    def __init__(self, workdir: str):
        self.config = load_config(workdir, Config, "sentiment")
        fold = os.path.join(workdir, "fold0")
        self.vocab = text.Vocabulary.load(os.path.join(fold, "vocab.json"))
        like = model.init_params(self.config, len(self.vocab), jax.random.key(0))
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


def format_prediction(p_positive: float) -> str:
    """``label<TAB>probability of that label``.

    Example:
      >>> from experiments.sentiment.predict import format_prediction
      >>> format_prediction(0.25)
      'negative\\t0.7500'
    """
    label = int(p_positive > 0.5)
    return f"{LABELS[label]}\t{(p_positive if label else 1 - p_positive):.4f}"


def read_sentences(path: str) -> list[str]:
    """The lines of ``path``; an empty line is an error naming its number."""
    lines = read_utf8_lines(path)
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    empty = [n for n, line in enumerate(lines, start=1) if not line.strip()]
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise ValueError(
            f"{path}, line {empty[0]}{more}: empty line; every line must hold one "
            "sentence (remove empty lines so that output lines match input lines)"
        )
    if not lines:
        raise ValueError(f"{path} is empty: no sentences to classify")
    return [line.rstrip("\r") for line in lines]


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.sentiment.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sentences", nargs="*", help="sentences to classify")
    parser.add_argument("--workdir", required=True, help="folder of a finished training run")
    parser.add_argument("--file", help="classify one sentence per line of this UTF-8 file")
    args = parser.parse_args(argv)
    if bool(args.sentences) == bool(args.file):
        parser.error("give sentences on the command line or --file F (one of the two)")
    try:
        sentences = read_sentences(args.file) if args.file else list(args.sentences)
        classifier = Classifier(args.workdir)
        probabilities = classifier.positive_probability(sentences)
    except (ValueError, OSError) as error:
        fail(error)
    for sentence, p in zip(sentences, probabilities, strict=True):
        line = format_prediction(float(p))
        print(line if args.file else f"{line}\t{sentence}")


if __name__ == "__main__":
    main()
