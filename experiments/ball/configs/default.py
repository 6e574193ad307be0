"""The default ball-trajectory experiment: every field can be overridden on the command line."""

import dataclasses

from experiments.regression import CELLS
from experiments.validation import ConfigError
from experiments.validation import check_config


@dataclasses.dataclass(frozen=True)
class Config:
    """Simulator, models and training of the ball experiment."""

    seed: int = 0
    """Seeds the simulator, the splits, the initialisation and the batches."""
    num_train: int = 3000
    """Training trajectories."""
    num_val: int = 300
    """Validation trajectories (disjoint from the others)."""
    num_test: int = 600
    """Test trajectories: every window of these is scored."""
    sample_interval: float = 0.25
    """Seconds between two captured positions (the lecture's 0.25 s)."""
    noise_sigma: float = 0.03
    """Standard deviation of the Gaussian measurement noise on each coordinate, in metres."""
    drag_min: float = 0.0
    """Smallest quadratic drag coefficient k (1/m) in a = g - k |v| v."""
    drag_max: float = 0.002
    """Largest drag coefficient; each trajectory draws k uniformly from [drag_min, drag_max]."""
    speed_min: float = 8.0
    """Slowest launch speed, m/s."""
    speed_max: float = 25.0
    """Fastest launch speed, m/s."""
    window: int = 5
    """Positions the many-to-one models see (the lecture's last 5)."""
    cells: tuple[str, ...] = ("elman", "lstm", "gru")
    """Cells trained as many-to-one models, each at every horizon: any of elman, lstm, gru."""
    horizons: tuple[int, ...] = (1, 2)
    """Steps ahead to predict: 1 = 0.25 s, 2 = 0.5 s."""
    many_to_many_cell: str = "gru"
    """Cell of the many-to-many model that predicts the next position at every step ('' skips)."""
    hidden_size: int = 64
    """Hidden units of every RNN."""
    batch_size: int = 128
    """Windows (or trajectories, for many-to-many) per update."""
    num_steps: int = 3000
    """Updates per model."""
    learning_rate: float = 3e-3
    """Peak Adam learning rate (cosine decay to 1% of it)."""
    noise_sweep: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3)
    """Noise levels for the error-vs-noise plot (test set re-noised; models not retrained)."""

    def check(self) -> None:
        """Raises `ConfigError` naming the first flag out of range."""
        check_config(
            self,
            positive=[
                "num_train",
                "num_val",
                "num_test",
                "sample_interval",
                "window",
                "hidden_size",
                "batch_size",
                "num_steps",
                "learning_rate",
                "speed_min",
            ],
            non_negative=["noise_sigma", "drag_min"],
            choices={"cells": CELLS, "many_to_many_cell": [*CELLS, ""]},
        )
        for low, high in (("drag_min", "drag_max"), ("speed_min", "speed_max")):
            if getattr(self, high) < getattr(self, low):
                raise ConfigError(
                    f"--{high.replace('_', '-')} ({getattr(self, high)}) must be at least "
                    f"--{low.replace('_', '-')} ({getattr(self, low)})"
                )
        if not self.horizons or min(self.horizons) < 1:
            raise ConfigError(f"--horizons must be steps ahead >= 1, got {self.horizons}")
        if any(not sigma >= 0 for sigma in self.noise_sweep):
            raise ConfigError(f"--noise-sweep must hold noise levels >= 0, got {self.noise_sweep}")
        if not self.cells and not self.many_to_many_cell:
            raise ConfigError("--cells and --many-to-many-cell are both empty: nothing to train")
