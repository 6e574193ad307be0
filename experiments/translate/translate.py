"""Translate Turkish sentences to English with a trained model.

    python -m experiments.translate.translate --workdir runs/translate "Merhaba." "Nasılsın?"
    python -m experiments.translate.translate --workdir runs/translate --file in.txt --beam 5

Prints exactly one line per input line, in order. An empty input line gets an empty output
line and a warning naming it, as in `experiments.sentiment.predict`: outputs stay aligned with
inputs. Decodes with the beam the run was evaluated with (its config's beam_size, 5 by
default) unless --beam says otherwise; --beam 1 is greedy.
"""

from collections.abc import Sequence

from experiments.cli import ArgumentParser
from experiments.cli import HelpFormatter
from experiments.cli import fail
from experiments.cli import read_input_lines
from experiments.cli import warn_empty
from experiments.translate.inference import load
from experiments.translate.inference import translate


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.translate.translate",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("sentences", nargs="*", help="Turkish sentences")
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--file", help="translate each line of this UTF-8 file")
    parser.add_argument(
        "--beam",
        type=int,
        default=None,
        help="beam size, 1 = greedy (default: the run's beam_size, with which it was scored)",
    )
    args = parser.parse_args(argv)
    if bool(args.sentences) == bool(args.file):
        parser.error("give sentences on the command line or --file F (one of the two)")
    if args.beam is not None and args.beam < 1:
        parser.error("--beam must be at least 1")
    try:
        sentences = read_input_lines(args.file) if args.file else list(args.sentences)
        warn_empty(sentences, "line" if args.file else "sentence")
        config, params, source, target = load(args.workdir)
        beam = config.beam_size if args.beam is None else args.beam
        translations = translate(config, params, source, target, sentences, beam)
    except (OSError, ValueError) as error:
        fail(error)
    for line in translations:
        print(line)


if __name__ == "__main__":
    main()
