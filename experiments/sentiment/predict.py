"""Classify sentences with a trained sentiment model.

    python -m experiments.sentiment.predict --workdir runs/sentiment "a gorgeous , witty film"
    python -m experiments.sentiment.predict --workdir runs/sentiment --file sentences.txt
    python -m experiments.sentiment.predict --workdir runs/sentiment --export classifier.jax

Prints ``label<TAB>probability`` (the probability of that label) for each sentence, in order;
with --file, exactly one line per input line. Words never seen in training count as <unk>.
An empty input line (or one with no words) gets an empty output line and a warning naming
it, as in `experiments.translate.translate`: outputs stay aligned with inputs.

--export PATH writes the RNN ensemble for serving instead of classifying: a `jax.export`
artifact (an ONNX model when PATH ends in .onnx) from word ids (b, t) and lengths (b,) to the
probability of "positive", and PATH.json with the vocabulary and the inputs' description
(see `experiments.sentiment.inference.export_classifier`).
"""

import sys
from collections.abc import Sequence

from experiments.cli import ArgumentParser
from experiments.cli import HelpFormatter
from experiments.cli import fail
from experiments.cli import read_input_lines
from experiments.cli import warn_empty
from experiments.sentiment.inference import LABELS
from experiments.sentiment.inference import Classifier
from experiments.sentiment.inference import export_classifier
from experiments.sentiment.inference import tokenize


def format_prediction(p_positive: float) -> str:
    """``label<TAB>probability of that label``.

    Example:
      >>> from experiments.sentiment.predict import format_prediction
      >>> format_prediction(0.25)
      'negative\\t0.7500'
    """
    label = int(p_positive > 0.5)
    return f"{LABELS[label]}\t{(p_positive if label else 1 - p_positive):.4f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m experiments.sentiment.predict",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("sentences", nargs="*", help="sentences to classify")
    parser.add_argument("--workdir", required=True, help="folder of a finished training run")
    parser.add_argument("--file", help="classify one sentence per line of this UTF-8 file")
    parser.add_argument(
        "--export",
        metavar="PATH",
        help="write the model for serving to PATH (.onnx: ONNX, else jax.export) and PATH.json",
    )
    args = parser.parse_args(argv)
    if args.export:
        if args.sentences or args.file:
            parser.error("--export writes the model; give no sentences or --file with it")
        try:
            description = export_classifier(args.workdir, args.export)
        except (ValueError, OSError, ImportError) as error:
            fail(error)
        print(f"wrote {args.export} ({description['format']}) and {args.export}.json")
        if description["bag_of_words_left_out"]:
            print(
                "warning: this run averages the RNNs with a bag-of-words model, which is not "
                "exported: the artifact gives the RNN ensemble's probability alone",
                file=sys.stderr,
            )
        return
    if bool(args.sentences) == bool(args.file):
        parser.error("give sentences on the command line or --file F (one of the two)")
    try:
        sentences = read_input_lines(args.file) if args.file else list(args.sentences)
        classifier = Classifier(args.workdir)
        words = [n for n, s in enumerate(sentences) if classifier.vocab.encode(tokenize(s)).size]
        warn_empty([s if n in set(words) else "" for n, s in enumerate(sentences)], "line")
        probabilities = dict(
            zip(words, classifier.positive_probability([sentences[n] for n in words]), strict=True)
        )
    except (ValueError, OSError) as error:
        fail(error)
    for n, sentence in enumerate(sentences):
        line = format_prediction(float(probabilities[n])) if n in probabilities else ""
        print(line if args.file else f"{line}\t{sentence}")


if __name__ == "__main__":
    main()
