"""Write text with a trained character-level model.

    python -m experiments.charlm.sample --workdir runs/charlm --prompt "ROMEO:" --length 500 \\
        --temperature 0.8

Temperature 0 is greedy decoding; --top-k limits sampling to the k likeliest characters; the
same --seed gives the same text.

--export PATH writes one step of the sampler for serving instead of sampling: a `jax.export`
artifact (an ONNX model when PATH ends in .onnx) from a character id per stream (b,) and the
carry to the next character's logits and the new carry, and PATH.json with the vocabulary and
the carry's parts (see `experiments.charlm.inference.export_step`).

    python -m experiments.charlm.sample --workdir runs/charlm --export step.jax
"""

import math
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from experiments.charlm.inference import encode_prompt
from experiments.charlm.inference import export_step
from experiments.charlm.inference import load
from experiments.charlm.inference import sampler
from experiments.cli import ArgumentParser
from experiments.cli import HelpFormatter
from experiments.cli import fail
from jaxrnn import text


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.charlm.sample",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--prompt", default="\n", help="text to start from ")
    parser.add_argument("--length", type=int, default=500, help="characters to generate")
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature, a finite number >= 0; 0 = greedy",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="sample among the k likeliest characters (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--checkpoint", default="best", help="'best', 'latest' or a step number")
    parser.add_argument(
        "--export",
        metavar="PATH",
        help="write one sampler step for serving to PATH (.onnx: ONNX, else jax.export) and "
        "PATH.json, instead of sampling",
    )
    args = parser.parse_args(argv)
    if args.export:
        try:
            description = export_step(args.workdir, args.export, args.checkpoint)
        except (ValueError, OSError, ImportError) as error:
            fail(error)
        print(f"wrote {args.export} ({description['format']}) and {args.export}.json")
        return
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
