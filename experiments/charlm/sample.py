"""Write text with a trained character-level model.

    python -m experiments.charlm.sample --workdir runs/charlm --prompt "ROMEO:" --length 500 \\
        --temperature 0.8

Temperature 0 is greedy decoding; --top-k limits sampling to the k likeliest characters; the
same --seed gives the same text.
"""

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from experiments.charlm import model
from experiments.charlm.configs.default import Config
from experiments.charlm.train import encode_prompt
from experiments.charlm.train import sampler
from experiments.cli import ArgumentParser
from experiments.cli import fail
from experiments.reporting import load_config
from jaxrnn import text
from jaxrnn import train


def load(workdir: str, which: str = "best"):
    """``(config, vocab, params)`` of a trained run."""
    config = load_config(workdir, Config, "charlm")
    vocab = text.Vocabulary.load(os.path.join(workdir, "vocab.json"))
    like = model.init_params(config, len(vocab), jax.random.key(0))
    params = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(like, which)
    return config, vocab, params


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.charlm.sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    parser.add_argument(
        "--length", type=int, default=500, help="characters to generate (default: 500)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature, a finite number >= 0; 0 = greedy (default: 0.8)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="sample among the k likeliest characters (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--checkpoint", default="best", help="'best', 'latest' or a step number (default: best)"
    )
    args = parser.parse_args(argv)
    if args.length < 1:
        parser.error(f"--length must be at least 1, got {args.length}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        parser.error(f"--temperature must be a finite number >= 0, got {args.temperature}")
    try:
        config, vocab, params = load(args.workdir, args.checkpoint)
        if args.top_k is not None and not 1 <= args.top_k <= len(vocab) - len(text.SPECIALS):
            raise ValueError(
                f"--top-k must be between 1 and {len(vocab) - len(text.SPECIALS)} (the "
                f"characters the model knows), got {args.top_k}"
            )
        prompt = encode_prompt(vocab, args.prompt)
        sample = sampler(config, args.length, args.temperature, args.top_k)
        started = time.perf_counter()
        ids = np.asarray(sample(params, prompt, jax.random.key(args.seed)))[0]
        seconds = time.perf_counter() - started
    except (ValueError, OSError) as error:
        fail(error)
    sys.stdout.write(args.prompt + "".join(vocab.decode(ids, strip_special=False)) + "\n")
    print(f"[{args.length} characters in {seconds:.2f} s including compilation]", file=sys.stderr)


if __name__ == "__main__":
    main()
