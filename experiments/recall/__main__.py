"""Accuracy against the number of key-value pairs, for several models (a quick CPU run).

    python -m experiments.recall --models lstm,gru,mingru,mamba,mlstm,transformer \\
        --pairs 2,4,8,16 --steps 300 --d-model 32
    python -m experiments.recall --paired --pairs 2,4,8,16 --steps 500 --d-model 64 \\
        --seq-len 32 --keys 64 --batch-size 32 --learning-rate 3e-3 --out curve.json

Prints one line per model and, with --out PATH, writes the curve as JSON.
"""

import sys
from collections.abc import Sequence

from experiments.cli import ArgumentParser
from experiments.cli import HelpFormatter
from experiments.cli import fail
from experiments.recall.model import MODELS
from experiments.recall.train import Settings
from experiments.recall.train import curve
from experiments.reporting import write_json


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.recall", description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument("--pairs", default="2,4,8,16", help="comma-separated numbers of pairs")
    parser.add_argument("--steps", type=int, default=300, help="updates per model and count")
    parser.add_argument("--d-model", type=int, default=32, help="the Transformer's width")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--paired", action="store_true", help="each key-value pair at one position")
    parser.add_argument("--keys", type=int, default=32, help="key (and value) vocabulary size")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per update")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak Adam rate")
    parser.add_argument("--out", default="", help="write the curve to this JSON file")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    try:
        pairs = [int(k) for k in args.pairs.split(",") if k.strip()]
    except ValueError:
        parser.error(f"--pairs must be comma-separated integers, got {args.pairs!r}")
    settings = Settings(
        d_model=args.d_model,
        seq_len=args.seq_len,
        num_keys=args.keys,
        num_values=args.keys,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        paired=args.paired,
    )
    try:
        result = curve(names, pairs, args.steps, args.seed, settings)
        if args.out:
            write_json(args.out, {**result, "settings": settings._asdict(), "steps": args.steps})
    except (ValueError, OSError) as error:
        fail(error)
    print("chance (1/K): " + "  ".join(f"{c:.2f}" for c in result["chance"]), file=sys.stderr)


if __name__ == "__main__":
    main()
