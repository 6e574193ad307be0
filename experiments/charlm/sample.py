"""Write text with a trained character-level model.

    python -m experiments.charlm.sample --workdir runs/charlm --prompt "ROMEO:" --length 500 \\
        --temperature 0.8

Temperature 0 is greedy decoding; --top-k limits sampling to the k likeliest characters; the
same --seed gives the same text.
"""

import argparse
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="characters to generate")
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature; 0 = greedy (default 0.8)",
    )
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--checkpoint", default="best", help="'best', 'latest' or a step")
    args = parser.parse_args(argv)
    if args.length < 1:
        parser.error("--length must be at least 1")
    try:
        config, vocab, params = load(args.workdir, args.checkpoint)
        prompt = encode_prompt(vocab, args.prompt)
        sample = sampler(config, args.length, args.temperature, args.top_k)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    started = time.perf_counter()
    ids = np.asarray(sample(params, prompt, jax.random.key(args.seed)))[0]
    seconds = time.perf_counter() - started
    sys.stdout.write(args.prompt + "".join(vocab.decode(ids, strip_special=False)) + "\n")
    print(f"[{args.length} characters in {seconds:.2f} s including compilation]", file=sys.stderr)


if __name__ == "__main__":
    main()
