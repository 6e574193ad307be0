"""Sentiment: decide whether a sentence is positive or negative, with an RNN and a softmax.

The lecture's sequence-classification example. Trains a bidirectional LSTM (max-pooled) on
movie-review snippets (rt-polarity) or UCI product/movie reviews, compares it with a
bag-of-words logistic regression on the same splits, and writes results.json, a confusion
matrix and accuracy-vs-length plot. --folds 10 runs the standard 10-fold cross-validation.
"""

from collections.abc import Sequence

from experiments.cli import parse
from experiments.cli import run
from experiments.sentiment.configs.default import Config
from experiments.sentiment.train import train_and_evaluate


def main(argv: Sequence[str] | None = None) -> None:
    config, workdir = parse(
        Config, description=__doc__, default_workdir="runs/sentiment", argv=argv
    )
    run(train_and_evaluate, config, workdir)


if __name__ == "__main__":
    main()
