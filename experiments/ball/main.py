"""Ball trajectory: from the last 5 positions of a thrown ball, predict where it will be next.

The lecture's first example. A physics simulator (gravity and air drag) makes the throws;
Elman, LSTM and GRU many-to-one models and a many-to-many model are trained and scored
against classical predictors on the same test windows. Writes results.json and plots.
"""

from collections.abc import Sequence

from experiments.ball.configs.default import Config
from experiments.ball.train import train_and_evaluate
from experiments.cli import parse
from experiments.cli import run


def main(argv: Sequence[str] | None = None) -> None:
    config, workdir = parse(Config, description=__doc__, default_workdir="runs/ball", argv=argv)
    run(train_and_evaluate, config, workdir)


if __name__ == "__main__":
    main()
