"""The default stock experiment: every field can be overridden on the command line."""

import dataclasses

from experiments.regression import CELLS
from experiments.validation import ConfigError
from experiments.validation import check_config


@dataclasses.dataclass(frozen=True)
class Config:
    """Data, models and training of the stock experiment."""

    csv: str = ""
    """Daily OHLC(V) CSV (Date,Open,High,Low,Close[,Adj Close][,Volume][,Name]). Empty: the
    AAPL file of the shared data folder."""
    data_dir: str = ""
    """Folder holding the shared data sets (stock/...). Empty: $JAXRNN_DATA."""
    seed: int = 0
    """Seeds the initialisation and the batches."""
    window: int = 20
    """Days the models see (features of each day) before predicting the next close."""
    val_fraction: float = 0.15
    """Fraction of days, after the training span, used for validation (chronological)."""
    test_fraction: float = 0.15
    """Fraction of the last days used for testing."""
    cells: tuple[str, ...] = ("lstm", "gru")
    """Cells trained as many-to-one models: any of elman, lstm, gru."""
    hidden_size: int = 32
    """Hidden units of the RNNs."""
    batch_size: int = 64
    """Windows per update."""
    num_steps: int = 1500
    """Updates per model."""
    learning_rate: float = 1e-3
    """Peak Adam learning rate (cosine decay)."""
    weight_decay: float = 1e-4
    """Decoupled weight decay (AdamW); daily returns are mostly noise, so keep models small."""
    ridge_penalties: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
    """L2 penalties tried for the linear autoregression; the best on validation is used."""

    def check(self) -> None:
        """Raises `ConfigError` naming the first flag out of range."""
        check_config(
            self,
            positive=["window", "hidden_size", "batch_size", "num_steps", "learning_rate"],
            non_negative=["weight_decay"],
            fractions=["val_fraction", "test_fraction"],
            choices={"cells": CELLS},
        )
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"--val-fraction and --test-fraction must sum to less than 1 (the rest trains), "
                f"got {self.val_fraction} + {self.test_fraction}"
            )
        if not self.cells:
            raise ConfigError(f"--cells must name at least one of {', '.join(CELLS)}")
        if not self.ridge_penalties or min(self.ridge_penalties) <= 0:
            raise ConfigError(f"--ridge-penalties must be positive, got {self.ridge_penalties}")
