"""The default character-level language model: every field can be overridden on the CLI.

``--model`` picks the network; the LSTM's sizes are the fields ``embed_size``, ``hidden_size``
and ``num_layers``, the other models' ``d_model`` and ``num_blocks``, whose 0 means the
model's own default in `MODEL_SIZES` (chosen so that every model has about the LSTM's 1.2M
parameters on tinyshakespeare's 69 characters).
"""

import dataclasses
import math

from experiments.charlm.model import CELLS
from experiments.charlm.model import MODELS
from experiments.transformer import POSITIONS
from experiments.validation import ConfigError
from experiments.validation import check_config

# (d_model, num_blocks) of each model when --d-model / --num-blocks are 0.
# Parameters on 69 characters: lstm 1,221,509 (embedding 64, hidden 512), slstm 1,152,709,
# mlstm 1,131,749, mamba 1,203,141, transformer 1,195,717.
MODEL_SIZES = {
    "slstm": (160, 4),
    "mlstm": (112, 4),
    "mamba": (208, 4),
    "transformer": (128, 6),
}


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
    model: str = "lstm"
    """'lstm' (the --cell RNN), 'slstm', 'mlstm' (xLSTM blocks), 'mamba' (Mamba blocks) or
    'transformer' (causal, pre-LN)."""
    cell: str = "lstm"
    """--model lstm: 'lstm' or 'gru'."""
    embed_size: int = 64
    """--model lstm: character embedding size."""
    hidden_size: int = 512
    """--model lstm: hidden units per layer."""
    num_layers: int = 1
    """--model lstm: stacked recurrent layers."""
    d_model: int = 0
    """The other models: width of the embedding and the blocks (0: the model's default)."""
    num_blocks: int = 0
    """The other models: stacked blocks (0: the model's default)."""
    num_heads: int = 4
    """slstm, mlstm and transformer: heads (must divide --d-model)."""
    state_size: int = 16
    """mamba: state size per channel."""
    positions: str = "rotary"
    """transformer: 'rotary' or 'learned' positions."""
    dropout: float = 0.3
    """Dropout on the embeddings, between layers and before the output layer (transformer:
    also on each block's attention and MLP branches)."""
    batch_size: int = 32
    """Parallel streams of text (truncated BPTT)."""
    chunk_length: int = 100
    """Characters per chunk: backpropagation runs through this many steps (the
    transformer's window: it reads each chunk on its own)."""
    num_steps: int = 10000
    """Updates (each reads batch_size x chunk_length characters)."""
    time_budget: float = 0.0
    """Stop training after this many minutes (then validate, checkpoint and sample as at the
    end); 0: no limit. Not a setting of the run: a resume may change it."""
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

    def resolved(self) -> "Config":
        """This config with the model's default ``d_model`` and ``num_blocks`` for those that
        are 0 (the LSTM has neither: unchanged).

        Example:
          >>> from experiments.charlm.configs.default import Config
          >>> config = Config(model="transformer").resolved()
          >>> config.d_model, config.num_blocks
          (128, 6)
        """
        if self.model not in MODEL_SIZES:
            return self
        d_model, num_blocks = MODEL_SIZES[self.model]
        return dataclasses.replace(
            self, d_model=self.d_model or d_model, num_blocks=self.num_blocks or num_blocks
        )

    def check(self) -> None:
        """Raises `ConfigError` naming the first flag out of range."""
        check_config(
            self,
            positive=[
                "embed_size",
                "hidden_size",
                "num_layers",
                "num_heads",
                "state_size",
                "batch_size",
                "chunk_length",
                "num_steps",
                "learning_rate",
                "eval_every",
                "sample_length",
            ],
            non_negative=[
                "d_model",
                "num_blocks",
                "time_budget",
                "weight_decay",
                "sample_temperature",
            ],
            fractions=["val_fraction"],
            rates=["dropout"],
            choices={"model": MODELS, "cell": CELLS, "positions": POSITIONS},
        )
        if not math.isfinite(self.sample_temperature):
            raise ConfigError(f"--sample-temperature must be finite, got {self.sample_temperature}")
        if not self.sample_prompt:
            raise ConfigError("--sample-prompt must hold at least one character")
        sized = self.resolved()
        if self.model in ("slstm", "mlstm", "transformer") and sized.d_model % self.num_heads:
            raise ConfigError(
                f"--num-heads {self.num_heads} must divide --d-model {sized.d_model} "
                f"(--model {self.model})"
            )
        if (
            self.model == "transformer"
            and self.positions == "rotary"
            and (sized.d_model // self.num_heads) % 2
        ):
            raise ConfigError(
                f"--model transformer needs an even width per head (rotary positions): "
                f"--d-model {sized.d_model} / --num-heads {self.num_heads} is odd"
            )
