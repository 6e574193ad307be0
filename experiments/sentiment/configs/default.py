"""The default sentiment experiment: every field can be overridden on the command line."""

import dataclasses
import os

from experiments.sentiment.bow import WEIGHTINGS
from experiments.sentiment.data import DATASETS
from experiments.sentiment.model import CELLS
from experiments.validation import ConfigError
from experiments.validation import check_config

POOLING = ("last", "mean", "max")
BATCHING = ("bucketed", "packed")


@dataclasses.dataclass(frozen=True)
class Config:
    """Data, model, training and evaluation of the sentiment classifier."""

    dataset: str = "rt-polarity"
    """'rt-polarity' (Pang & Lee, 10,662 sentences), 'amazon' or 'imdb' (UCI, 1,000 each)."""
    data_dir: str = ""
    """Folder holding the shared data sets (sentiment/...). Empty: $JAXRNN_DATA."""
    folds: int = 1
    """1: one seeded split with test_fraction held out; k >= 2: k-fold cross-validation."""
    test_fraction: float = 0.1
    """Held-out fraction when folds = 1."""
    split_seed: int = 0
    """Seeds the split (or the fold assignment)."""
    seed: int = 0
    """Seeds initialisation, dropout and batch order."""
    min_freq: int = 1
    """Words seen fewer times in the training split map to <unk>."""
    embeddings: str = ""
    """Optional word2vec/GloVe text file ('word v1 v2 ...' per line) to initialise embeddings."""
    cell: str = "lstm"
    """'lstm', 'gru' or 'elman'."""
    embed_size: int = 300
    """Word embedding size."""
    hidden_size: int = 150
    """Hidden units per direction."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    bidirectional: bool = True
    """Read each sentence both ways."""
    pooling: str = "max"
    """How the outputs become one vector: 'last' (last valid output), 'mean' or 'max'."""
    embed_dropout: float = 0.5
    """Dropout on the word embeddings."""
    word_dropout: float = 0.0
    """Probability of replacing a training word by <unk>."""
    recurrent_dropout: float = 0.25
    """Variational dropout on h_{t-1} (one mask per sentence for all steps)."""
    layer_dropout: float = 0.3
    """Dropout between stacked layers."""
    output_dropout: float = 0.5
    """Dropout on the pooled features before the output layer."""
    batch_size: int = 50
    """Sentences per update."""
    batching: str = "bucketed"
    """'bucketed' (one sentence per row, rows grouped by length) or 'packed' (several
    sentences end to end per row, the carry reset at each start: less padding)."""
    epochs: int = 4
    """Passes over the training split per ensemble member."""
    learning_rate: float = 2e-3
    """Peak Adam learning rate (cosine decay to 5%)."""
    ensemble: int = 5
    """RNNs trained with different seeds; their probabilities are averaged."""
    combine_bow: bool = True
    """The final model averages the RNN ensemble's probability with the bag-of-words one
    (--no-combine-bow: the RNN ensemble alone)."""
    bow_weighting: str = "nb"
    """Bag-of-words features: 'nb' (naive-Bayes log-count ratios, NBSVM-style) or 'binary'."""
    bow_order: int = 3
    """The bag-of-words model reads n-grams up to this n."""
    bow_l2: float = 1e-4
    """L2 penalty of the bag-of-words logistic regression (on the mean loss)."""

    def check(self) -> None:
        """Raises `ConfigError` naming the first flag out of range."""
        check_config(
            self,
            positive=[
                "folds",
                "min_freq",
                "embed_size",
                "hidden_size",
                "num_layers",
                "batch_size",
                "epochs",
                "learning_rate",
                "ensemble",
                "bow_order",
            ],
            non_negative=["bow_l2"],
            fractions=["test_fraction"],
            rates=[
                "embed_dropout",
                "word_dropout",
                "recurrent_dropout",
                "layer_dropout",
                "output_dropout",
            ],
            choices={
                "dataset": DATASETS,
                "cell": CELLS,
                "pooling": POOLING,
                "batching": BATCHING,
                "bow_weighting": WEIGHTINGS,
            },
        )
        if self.embeddings and os.path.isdir(self.embeddings):
            raise ConfigError(f"--embeddings {self.embeddings} is a folder; give a vector file")
        if self.embeddings and not os.path.isfile(self.embeddings):
            raise ConfigError(f"--embeddings {self.embeddings}: no such file")
