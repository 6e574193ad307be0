"""Turkish -> English translation with a GRU encoder-decoder and attention.

The lecture's sequence-to-sequence example. Trains on Tatoeba pairs (split by English
sentence), decodes the test split greedily and with beam search under jit, and reports
sacrebleu BLEU and chrF with examples and attention heat maps. Translate with:
python -m experiments.translate.translate --workdir W "Merhaba."
"""

from collections.abc import Sequence

from experiments.cli import parse
from experiments.cli import run
from experiments.translate.configs.default import Config
from experiments.translate.train import train_and_evaluate


def main(argv: Sequence[str] | None = None) -> None:
    config, workdir = parse(
        Config, description=__doc__, default_workdir="runs/translate", argv=argv
    )
    run(train_and_evaluate, config, workdir)


if __name__ == "__main__":
    main()
