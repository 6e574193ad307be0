"""Stock prices: from the last N days' open, high, low and close, predict tomorrow's close.

The lecture's second numeric-prediction example. Reads a daily OHLC(V) CSV (the shared AAPL
file by default, or --csv PATH), splits it chronologically, normalises features with the
training span only, and compares LSTM/GRU many-to-one models with persistence and a linear
autoregression on the same test days.
"""

from collections.abc import Sequence
from pathlib import Path

from experiments.cli import parse
from experiments.cli import run
from experiments.stock.configs.default import Config
from experiments.stock.train import train_and_evaluate


def main(argv: Sequence[str] | None = None) -> None:
    config, workdir = parse(
        Config,
        description=__doc__,
        default_workdir="",
        argv=argv,
        workdir_default_help="runs/stock/<name of the --csv file>, runs/stock/AAPL without --csv",
    )
    if not workdir:
        workdir = str(Path("runs/stock") / (Path(config.csv).stem if config.csv else "AAPL"))
    run(train_and_evaluate, config, workdir)


if __name__ == "__main__":
    main()
