"""Every CLI answers a mistake a user can make with exit status 2 and one line ``error: ...``
naming the flag, file (and line) or workdir: no traceback, and nothing trained first."""

import dataclasses
import json
import re
import shutil

import pytest

from experiments.ball import main as ball_main
from experiments.charlm import main as charlm_main
from experiments.charlm import sample as charlm_sample
from experiments.charlm.configs.default import Config as CharConfig
from experiments.charlm.train import train_and_evaluate as train_charlm
from experiments.sentiment import main as sentiment_main
from experiments.sentiment import predict as sentiment_predict
from experiments.sentiment.configs.default import Config as SentimentConfig
from experiments.stock import main as stock_main
from experiments.translate import main as translate_main
from experiments.translate import translate as translate_cli

# make test runs each module on one pytest-xdist worker (--dist loadfile), so the
# module-scoped training fixture runs once.

CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak.\n\n") * 40
HEADER = "Date,Open,High,Low,Close,Volume,Name"
AMAZON = ["--dataset", "amazon", "--data-dir", "{files}/data"]


def price_rows(n):
    rows = [HEADER]
    for day in range(n):
        date = f"2020-{1 + day // 28:02d}-{1 + day % 28:02d}"
        rows.append(f"{date},{10 + day % 3},{12 + day % 3},{9 + day % 3},{11 + day % 3},100,X")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    (root / "folder").mkdir()
    (root / "corpus.txt").write_text(CORPUS)
    (root / "short.txt").write_text("x" * 1500)
    (root / "prices40.csv").write_text(price_rows(40))
    (root / "latin1.txt").write_bytes("merhaba\ngüzel bir gün\n".encode("latin-1"))
    (root / "vectors_dim.txt").write_text("good 0.1 0.2\n")
    (root / "vectors_nan.txt").write_text("good " + " ".join(["0.1"] * 299) + " x1\n")
    data = root / "data"
    uci = data / "sentiment" / "uci_sentiment_labelled_sentences"
    uci.mkdir(parents=True)
    sentences = [f"a good film number {n}\t1" if n % 2 else f"a bad film {n}\t0" for n in range(40)]
    (uci / "amazon_cells_labelled.txt").write_text("\n".join(sentences) + "\n")
    (data / "translation_tur_eng").mkdir()
    pairs = ["Hi.\tMerhaba.", "Run!\tKoş!", "Go.\tGit.", "Who?\tKim?", "Wow!\tVay!"]
    (data / "translation_tur_eng" / "tur.txt").write_text("\n".join(pairs) + "\n")
    other = root / "charlm_run"
    other.mkdir()
    # What a charlm run writes first (experiments.reporting.save_config).
    payload = {"experiment": "charlm", "config": dataclasses.asdict(CharConfig())}
    (other / "config.json").write_text(json.dumps(payload))
    return root


@pytest.fixture(scope="module")
def charlm_run(files):
    """A charlm workdir trained for two steps: enough to load and sample."""
    workdir = str(files / "trained_charlm")
    config = CharConfig(
        text=str(files / "corpus.txt"),
        hidden_size=8,
        embed_size=4,
        batch_size=2,
        chunk_length=8,
        num_steps=2,
        eval_every=2,
        sample_length=5,
        sample_prompt="All:",
    )
    train_charlm(config, workdir)
    return workdir


def run_cli(main, argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    return stop.value.code, err


CASES = {
    # Training commands: flag values out of range, refused before any work.
    "stock --batch-size 0": (
        stock_main.main,
        ["--batch-size", "0"],
        r"--batch-size must be at least 1, got 0",
    ),
    "stock --hidden-size -3": (
        stock_main.main,
        ["--hidden-size", "-3"],
        r"--hidden-size must be at least 1, got -3",
    ),
    "stock --val-fraction 1.5": (
        stock_main.main,
        ["--val-fraction", "1.5"],
        r"--val-fraction must be between 0 and 1 \(exclusive\), got 1.5",
    ),
    "stock --window 0": (stock_main.main, ["--window", "0"], r"--window must be at least 1, got 0"),
    "stock --cells": (
        stock_main.main,
        ["--cells", "lstm", "xyz"],
        r"--cells must be one of elman, lstm, gru; got 'xyz'",
    ),
    "stock --window abc": (
        stock_main.main,
        ["--window", "abc"],
        r"Error parsing --window: invalid literal .*'abc' \(see --help\)",
    ),
    "stock --csv DIR": (
        stock_main.main,
        ["--csv", "{files}/folder"],
        r"--csv .*folder is a folder",
    ),
    "stock 40-row CSV": (
        stock_main.main,
        ["--csv", "{files}/prices40.csv"],
        r"prices40.csv has 40 days: too few .*needs at least 51",
    ),
    "stock in a charlm workdir": (
        stock_main.main,
        ["--workdir", "{files}/charlm_run"],
        r"--workdir .*charlm_run holds a charlm run, not a stock one",
    ),
    "stock --workdir FILE": (
        stock_main.main,
        ["--workdir", "{files}/corpus.txt"],
        r"--workdir .*corpus.txt is a file, not a folder",
    ),
    "charlm --num-steps 0": (
        charlm_main.main,
        ["--num-steps", "0"],
        r"--num-steps must be at least 1",
    ),
    "charlm --cell": (
        charlm_main.main,
        ["--cell", "rnn"],
        r"--cell must be one of lstm, gru; got 'rnn'",
    ),
    "charlm --dropout 1": (
        charlm_main.main,
        ["--dropout", "1"],
        r"--dropout must be in \[0, 1\), got 1",
    ),
    "charlm --text DIR": (
        charlm_main.main,
        ["--text", "{files}/folder"],
        r"--text .*folder is a folder",
    ),
    "charlm prompt not in text": (
        charlm_main.main,
        ["--text", "{files}/short.txt"],
        r"--sample-prompt 'ROMEO:': the prompt has characters the model never saw",
    ),
    "charlm --chunk-length": (
        charlm_main.main,
        ["--text", "{files}/corpus.txt", "--chunk-length", "5000", "--sample-prompt", "All"],
        # streams x chunk + 1 characters, with the default number of streams
        rf"--batch-size {CharConfig().batch_size} streams of --chunk-length 5000 need at least "
        rf"{CharConfig().batch_size * 5000 + 1:,} training characters",
    ),
    "sentiment --pooling": (
        sentiment_main.main,
        ["--pooling", "sum"],
        r"--pooling must be one of last, mean, max; got 'sum'",
    ),
    "sentiment --embeddings dim": (
        sentiment_main.main,
        [*AMAZON, "--embeddings", "{files}/vectors_dim.txt"],
        r"vectors_dim.txt, line 1: 2 numbers after the word, but --embed-size is 300",
    ),
    "sentiment --embeddings value": (
        sentiment_main.main,
        [*AMAZON, "--embeddings", "{files}/vectors_nan.txt"],
        r"vectors_nan.txt, line 1: 'x1' is not a number",
    ),
    "sentiment --folds": (
        sentiment_main.main,
        [*AMAZON, "--folds", "50"],
        r"--folds 50 needs at least 50 sentences, got 40",
    ),
    "translate 5 pairs": (
        translate_main.main,
        ["--data-dir", "{files}/data"],
        r"has 5 distinct English sentences; .* need at least 18",
    ),
    "ball --horizons 0": (
        ball_main.main,
        ["--horizons", "0"],
        r"--horizons must be steps ahead >= 1",
    ),
    "ball --cells": (ball_main.main, ["--cells", "lstm", "tcn"], r"--cells must be one of .*'tcn'"),
    # Inference commands.
    "predict non-UTF-8 --file": (
        sentiment_predict.main,
        ["--workdir", "{files}", "--file", "{files}/latin1.txt"],
        r"latin1.txt, line 2: not valid UTF-8 \(byte 0xfc at column 2\)",
    ),
    "translate non-UTF-8 --file": (
        translate_cli.main,
        ["--workdir", "{files}", "--file", "{files}/latin1.txt"],
        r"latin1.txt, line 2: not valid UTF-8",
    ),
    "predict in a charlm workdir": (
        sentiment_predict.main,
        ["--workdir", "{files}/charlm_run", "good"],
        r"holds a charlm run, not a sentiment one",
    ),
    "translate in a charlm workdir": (
        translate_cli.main,
        ["--workdir", "{files}/charlm_run", "Merhaba."],
        r"holds a charlm run, not a translate one",
    ),
    "sample --temperature -1": (
        charlm_sample.main,
        ["--workdir", "{files}", "--temperature", "-1"],
        r"--temperature must be a finite number >= 0, got -1.0",
    ),
    "sample --temperature nan": (
        charlm_sample.main,
        ["--workdir", "{files}", "--temperature", "nan"],
        r"--temperature must be a finite number.*got nan",
    ),
    # Non-finite numbers and impossible integers, refused once for every command at parsing.
    "ball --drag-max nan": (ball_main.main, ["--drag-max", "nan"], r"--drag-max must be a finite"),
    "ball --speed-max inf": (
        ball_main.main,
        ["--speed-max", "inf"],
        r"--speed-max must be a finite number, got inf",
    ),
    "ball --noise-sigma inf": (ball_main.main, ["--noise-sigma", "inf"], r"--noise-sigma must"),
    "charlm --weight-decay inf": (
        charlm_main.main,
        ["--weight-decay", "inf"],
        r"--weight-decay must be a finite number, got inf",
    ),
    "charlm --learning-rate nan": (
        charlm_main.main,
        ["--learning-rate", "nan"],
        r"--learning-rate must be a finite number, got nan",
    ),
    "sample --seed 99999999999999999999": (
        charlm_sample.main,
        ["--workdir", "{files}", "--seed", "99999999999999999999"],
        r"--seed must be an integer in \[0, 4294967295\], got 99999999999999999999",
    ),
    "ball --seed -1": (ball_main.main, ["--seed", "-1"], r"--seed must be an integer in \[0"),
}


@pytest.mark.parametrize("case", CASES)
def test_cli_mistakes_end_in_one_error_line(case, files, capsys, monkeypatch):
    monkeypatch.delenv("JAXRNN_DATA", raising=False)  # nothing may reach the real data sets
    main, argv, message = CASES[case]
    argv = [a.format(files=files) for a in argv]
    if main is not sentiment_predict.main and main is not translate_cli.main:
        if "--workdir" not in argv and main is not charlm_sample.main:
            argv += ["--workdir", str(files / "runs" / case.replace(" ", "_"))]
    code, err = run_cli(main, argv, capsys)
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert re.search(message, lines[0]), lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--top-k", "0"], r"--top-k must be between 1 and \d+ .*got 0"),
        (["--top-k", "1000"], r"--top-k must be between 1 and \d+ .*got 1000"),
        (["--checkpoint", "foo"], r"step must be 'best', 'latest' or a step number, got 'foo'"),
        (["--checkpoint", "7"], r"no checkpoint for step 7 in .*saved steps: \[2\]"),
        (["--prompt", "ROMEO"], r"characters the model never saw in training: 'EMOR'"),
    ],
)
def test_sample_cli_mistakes_on_a_trained_run(charlm_run, argv, message, capsys):
    code, err = run_cli(charlm_sample.main, ["--workdir", charlm_run, *argv], capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), err


def test_resuming_with_another_flag_names_it_and_fresh_starts_afresh(
    charlm_run, files, tmp_path, capsys
):
    # A copy of the tiny run (trained with --hidden-size 8), resumed with --hidden-size 9
    workdir = tmp_path / "run"
    shutil.copytree(charlm_run, workdir, ignore=shutil.ignore_patterns(".lock"))
    tiny = ["--embed-size", "4", "--batch-size", "2", "--chunk-length", "8", "--num-steps", "2"]
    tiny += ["--eval-every", "2", "--sample-length", "5", "--sample-prompt", "All:"]
    argv = ["--workdir", str(workdir), "--text", str(files / "corpus.txt"), *tiny]
    code, err = run_cli(charlm_main.main, [*argv, "--hidden-size", "9"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert re.search(r"\(--hidden-size 8 then, 9 now\); pass --fresh", lines[0]), lines[0]
    charlm_main.main([*argv, "--hidden-size", "9", "--fresh"])
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["config"]["hidden_size"] == 9


def test_tensorboard_flag_writes_events_next_to_the_metrics(files, tmp_path, monkeypatch):
    monkeypatch.delenv("JAXRNN_TENSORBOARD", raising=False)  # restored after the test
    tiny = ["--hidden-size", "8", "--embed-size", "4", "--batch-size", "2", "--num-steps", "2"]
    tiny += ["--chunk-length", "8", "--eval-every", "2", "--sample-length", "5"]
    workdir = tmp_path / "run"
    charlm_main.main(["--workdir", str(workdir), "--text", str(files / "corpus.txt"), *tiny,
                      "--sample-prompt", "All:", "--tensorboard"])  # fmt: skip
    events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_train_and_evaluate_checks_its_config_before_any_work(tmp_path):
    # A notebook calls train_and_evaluate directly: the same message, and nothing written.
    from experiments.sentiment.train import train_and_evaluate

    config = dataclasses.replace(SentimentConfig(), batch_size=0)
    with pytest.raises(ValueError, match="--batch-size must be at least 1, got 0"):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "main, shown",
    [
        (
            charlm_sample.main,
            ["--temperature", "(default: 0.8)", "(default: 500)", "(default: 'best')"],
        ),
        (translate_cli.main, ["--beam", "the run's beam_size"]),
        (sentiment_predict.main, ["--file", "gets an empty output line"]),
    ],
    ids=["sample", "translate", "predict"],
)
def test_inference_help_shows_defaults_and_the_program(main, shown, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m experiments.")
    for piece in shown:
        assert piece in text, piece


def test_fresh_clears_runs_but_not_hidden_folders_or_what_a_run_keeps(tmp_path):
    from experiments import cli

    (tmp_path / "lstm_h1" / "checkpoints" / "5").mkdir(parents=True)
    (tmp_path / "lstm_h1" / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "lstm_h1" / ".lock").write_text("pid 1 on host, since 2026-12-06T10:00:00\n")
    (tmp_path / ".venv" / "lib" / "checkpoints").mkdir(parents=True)  # hidden: not looked at
    (tmp_path / "other_tool" / "checkpoints").mkdir(parents=True)  # not a jaxrnn run
    (tmp_path / "other_tool" / "checkpoints" / "model.pt").write_text("weights")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "metrics.jsonl").write_text("mine\n")
    (tmp_path / "results.json").write_text("{}")
    cli._clear_runs(str(tmp_path))
    assert not (tmp_path / "lstm_h1" / "metrics.jsonl").exists()
    assert not (tmp_path / "lstm_h1" / "checkpoints").exists()
    assert (tmp_path / ".venv" / "lib" / "checkpoints").is_dir()
    assert (tmp_path / "other_tool" / "checkpoints" / "model.pt").exists()
    assert (tmp_path / "notes" / "metrics.jsonl").exists()
    assert not (tmp_path / "notes" / ".lock").exists()
    assert (tmp_path / "results.json").exists()


def test_fresh_does_not_carry_over_to_the_next_command(tmp_path):
    from experiments import cli
    from experiments.charlm.configs.default import Config

    cli.parse(Config, description="", default_workdir=str(tmp_path), argv=["--fresh"])
    cli.parse(Config, description="", default_workdir=str(tmp_path), argv=[])
    assert not cli._FRESH
