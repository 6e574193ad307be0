"""The default Turkish -> English translation experiment: every field is a CLI flag."""

import dataclasses

from experiments.validation import ConfigError
from experiments.validation import check_config


@dataclasses.dataclass(frozen=True)
class Config:
    """Data, model, training and decoding of the translation experiment."""

    data_dir: str = ""
    """Folder holding the shared data sets (translation_tur_eng/tur.txt). Empty: $JAXRNN_DATA."""
    split_seed: int = 0
    """Seeds the split of the distinct English sentences into train / val / test."""
    val_fraction: float = 0.03
    """Fraction of distinct English sentences held out for validation."""
    test_fraction: float = 0.05
    """Fraction of distinct English sentences held out for testing."""
    units: str = "subword"
    """'subword' (sentencepiece unigram pieces trained on the training split) or 'word'."""
    source_pieces: int = 4000
    """Subword units: pieces of the Turkish model (about; fewer if the data supports fewer)."""
    target_pieces: int = 4000
    """Subword units: pieces of the English model."""
    min_freq: int = 2
    """Word units: words seen fewer times in training become <unk> (both languages)."""
    max_source_tokens: int = 32
    """Longest Turkish sentence (units); longer ones are reported and left out of training."""
    max_target_tokens: int = 24
    """Longest English sentence (units, <eos> included)."""
    seed: int = 0
    """Seeds initialisation, dropout and batch order."""
    embed_size: int = 256
    """Word embedding size (source and target)."""
    encoder_size: int = 256
    """GRU units per direction in each encoder layer."""
    encoder_layers: int = 2
    """Stacked bidirectional encoder layers."""
    decoder_size: int = 512
    """GRU units of the decoder."""
    attention_size: int = 256
    """Size of the additive (Bahdanau) attention layer."""
    dropout: float = 0.2
    """Dropout on embeddings, between encoder layers and before the output layer."""
    label_smoothing: float = 0.1
    """Label smoothing of the target distribution."""
    batch_size: int = 64
    """Sentence pairs per update."""
    num_steps: int = 7000
    """Updates."""
    learning_rate: float = 2e-3
    """Peak Adam learning rate (warm-up, cosine decay to 5%)."""
    eval_every: int = 1000
    """Validation loss (and checkpoint) every this many steps."""
    average_last: int = 3
    """Mean of the last this many checkpoints, used when its validation loss beats the best
    checkpoint's (1: no averaging)."""
    beam_size: int = 5
    """Beam width for the beam-search results."""
    length_penalty: float = 0.6
    """Alpha of the length normalisation ((5 + len) / 6) ** alpha in beam search; after
    training, the best of --length-penalties on the validation set replaces it."""
    length_penalties: tuple[float, ...] = (0.0, 0.6, 1.0, 1.5)
    """Alphas tried on the validation set after training (empty: keep --length-penalty)."""
    max_decode_tokens: int = 24
    """Most units generated per sentence."""

    def check(self) -> None:
        """Raises `ConfigError` naming the first flag out of range."""
        check_config(
            self,
            positive=[
                "source_pieces",
                "target_pieces",
                "min_freq",
                "max_source_tokens",
                "max_target_tokens",
                "embed_size",
                "encoder_size",
                "encoder_layers",
                "decoder_size",
                "attention_size",
                "batch_size",
                "num_steps",
                "learning_rate",
                "eval_every",
                "beam_size",
                "average_last",
                "max_decode_tokens",
            ],
            non_negative=["length_penalty"],
            fractions=["val_fraction", "test_fraction"],
            rates=["dropout", "label_smoothing"],
        )
        if any(not 0 <= alpha < 10 for alpha in self.length_penalties):
            raise ConfigError(
                f"--length-penalties must lie in [0, 10), got {list(self.length_penalties)}"
            )
        if self.units not in ("word", "subword"):
            raise ConfigError(f"--units must be 'word' or 'subword', got {self.units!r}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"--val-fraction and --test-fraction must sum to less than 1 (the rest trains), "
                f"got {self.val_fraction} + {self.test_fraction}"
            )
