"""Translate Turkish sentences to English with a trained model.

    python -m experiments.translate.translate --workdir runs/translate "Merhaba." "Nasılsın?"
    python -m experiments.translate.translate --workdir runs/translate --file in.txt --beam 5

With --file, prints exactly one line per input line, in order; an empty input line gives an
empty output line.
"""

import argparse
import os
from collections.abc import Sequence

import jax

from experiments.cli import ArgumentParser
from experiments.cli import fail
from experiments.datasets import read_utf8_lines
from experiments.reporting import load_config
from experiments.translate import model
from experiments.translate.configs.default import Config
from experiments.translate.train import translate
from jaxrnn import text
from jaxrnn import train


def load(workdir: str, which: str = "best"):
    """``(config, params, source_vocab, target_vocab)`` of a trained run."""
    config = load_config(workdir, Config, "translate")
    source = text.Vocabulary.load(os.path.join(workdir, "source_vocab.json"))
    target = text.Vocabulary.load(os.path.join(workdir, "target_vocab.json"))
    like = model.init_params(config, len(source), len(target), jax.random.key(0))
    params = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(like, which)
    return config, params, source, target


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.translate.translate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sentences", nargs="*", help="Turkish sentences")
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--file", help="translate each line of this UTF-8 file")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    args = parser.parse_args(argv)
    if bool(args.sentences) == bool(args.file):
        parser.error("give sentences on the command line or --file F (one of the two)")
    if args.beam < 1:
        parser.error("--beam must be at least 1")
    try:
        if args.file:
            lines = read_utf8_lines(args.file)
            if lines and lines[-1] == "":
                lines.pop()
            sentences = [line.rstrip("\r") for line in lines]
        else:
            sentences = list(args.sentences)
        config, params, source, target = load(args.workdir)
        translations = translate(config, params, source, target, sentences, args.beam)
    except (OSError, ValueError) as error:
        fail(error)
    for line in translations:
        print(line)


if __name__ == "__main__":
    main()
