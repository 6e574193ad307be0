"""The default character-level language model: every field can be overridden on the CLI."""

import dataclasses
import math

from experiments.charlm.model import CELLS
from experiments.validation import ConfigError
from experiments.validation import check_config


@dataclasses.dataclass(frozen=True)
class Config:
    """Data, model and training of the character-level language model."""

    text: str = ""
    """A UTF-8 text file to learn. Empty: tinyshakespeare from the shared data folder."""
    data_dir: str = ""
    """Folder holding the shared data sets (tinyshakespeare/input.txt). Empty: $JAXRNN_DATA."""
    val_fraction: float = 0.1
    """The last part of the text, held out for validation (contiguous)."""
    seed: int = 0
    """Seeds initialisation and dropout."""
    cell: str = "lstm"
    """'lstm' or 'gru'."""
    embed_size: int = 64
    """Character embedding size."""
    hidden_size: int = 512
    """Hidden units per layer."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    dropout: float = 0.3
    """Dropout on the embeddings, between layers and before the output layer."""
    batch_size: int = 32
    """Parallel streams of text (truncated BPTT)."""
    chunk_length: int = 100
    """Characters per chunk: backpropagation runs through this many steps."""
    num_steps: int = 10000
    """Updates (each reads batch_size x chunk_length characters)."""
    learning_rate: float = 2e-3
    """Peak Adam learning rate (warm-up, then cosine decay to 5%)."""
    weight_decay: float = 0.1
    """Decoupled weight decay (AdamW)."""
    eval_every: int = 500
    """Validate (and checkpoint) every this many steps."""
    sample_length: int = 500
    """Characters sampled into the results at the end."""
    sample_prompt: str = "ROMEO:"
    """Prompt of that sample."""
    sample_temperature: float = 0.8
    """Temperature of that sample."""

    def check(self) -> None:
        """Raises `ConfigError` naming the first flag out of range."""
        check_config(
            self,
            positive=[
                "embed_size",
                "hidden_size",
                "num_layers",
                "batch_size",
                "chunk_length",
                "num_steps",
                "learning_rate",
                "eval_every",
                "sample_length",
            ],
            non_negative=["weight_decay", "sample_temperature"],
            fractions=["val_fraction"],
            rates=["dropout"],
            choices={"cell": CELLS},
        )
        if not math.isfinite(self.sample_temperature):
            raise ConfigError(f"--sample-temperature must be finite, got {self.sample_temperature}")
        if not self.sample_prompt:
            raise ConfigError("--sample-prompt must hold at least one character")
