"""Character-level language model: learn a text, then write new text one character at a time.

The lecture's sequence-generation problem. Trains an LSTM (or GRU; or --model slstm, mlstm,
mamba, transformer) on tinyshakespeare (or --text PATH) with truncated backpropagation
through time over parallel streams (the Transformer: on each chunk as an independent
window), validates on the held-out last 10% (nats and bits per character), and samples from
the model inside one jitted lax.scan. Sample more with:
python -m experiments.charlm.sample --workdir W.
"""

from collections.abc import Sequence

from experiments.charlm.configs.default import Config
from experiments.charlm.train import train_and_evaluate
from experiments.cli import parse
from experiments.cli import run


def main(argv: Sequence[str] | None = None) -> None:
    config, workdir = parse(Config, description=__doc__, default_workdir="runs/charlm", argv=argv)
    run(train_and_evaluate, config, workdir)


if __name__ == "__main__":
    main()
