"""Translation: split by English sentence, Turkish lower-casing, attention masking, decoding
invariances, the translate CLI, and a smoke run."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.translate import data
from experiments.translate import model
from experiments.translate import translate as translate_cli
from experiments.translate.configs.default import Config
from experiments.translate.inference import decoders
from experiments.translate.train import train_and_evaluate

# make test runs each module on one pytest-xdist worker (--dist loadfile), so the
# module-scoped training fixture runs once.

TINY = Config(
    embed_size=16,
    encoder_size=16,
    decoder_size=24,
    attention_size=8,
    encoder_layers=2,
    max_decode_tokens=7,
)


def test_split_puts_each_english_sentence_on_one_side(data_dir):
    pairs = data.load(data_dir)
    assert len(pairs) == 72341
    train, val, test = data.split_by_english(pairs, 0.03, 0.05, seed=0)
    assert len(train) + len(val) + len(test) == len(pairs)
    sides = [{pairs.english[i] for i in rows} for rows in (train, val, test)]
    assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    # Sentences with several Turkish translations keep all of them on their side.
    assert len(test) > len(sides[2])


def test_turkish_tokens_use_turkish_case_rules():
    assert data.turkish_tokens("IĞDIR'DA İKİ IRMAK VAR.") == [
        "ığdır'da",
        "iki",
        "ırmak",
        "var",
        ".",
    ]
    assert data.english_tokens("I LIKE IT.") == ["I", "LIKE", "IT", "."]


def test_detokenize_inverts_tokenize_on_almost_all_references(data_dir):
    english = sorted(set(data.load(data_dir).english))
    failures = [e for e in english if data.detokenize(data.english_tokens(e)) != e]
    assert len(failures) < 0.001 * len(english)  # abbreviations like "U.S." and "p.m."


@functools.cache
def tiny_model():
    params = model.make(TINY).init(jax.random.key(0), 30, 25)
    ids = jnp.asarray(
        [[5, 6, 7, 8, 9, 0, 0], [10, 11, 0, 0, 0, 0, 0], [12, 13, 14, 15, 16, 17, 18]]
    )
    lengths = jnp.asarray([5, 2, 7])
    return params, ids, lengths


def test_attention_sums_to_one_and_ignores_padding():
    params, ids, lengths = tiny_model()
    inputs = jnp.asarray([[2, 5, 6], [2, 7, 8], [2, 9, 9]])
    _, weights = model.make(TINY).teacher_forced(params, ids, lengths, inputs)
    np.testing.assert_allclose(weights.sum(axis=-1), np.ones((3, 3)), rtol=1e-5)
    assert float(jnp.abs(weights[0, :, 5:]).max()) == 0.0
    assert float(jnp.abs(weights[1, :, 2:]).max()) == 0.0
    # And the padding's content never matters.
    other = ids.at[0, 5:].set(21).at[1, 2:].set(22)
    logits_a, _ = model.make(TINY).teacher_forced(params, ids, lengths, inputs)
    logits_b, _ = model.make(TINY).teacher_forced(params, other, lengths, inputs)
    np.testing.assert_allclose(logits_a, logits_b, atol=1e-5)


def test_beam_size_one_equals_greedy():
    params, ids, lengths = tiny_model()
    greedy, beam = decoders(TINY)
    g = np.asarray(greedy(params, ids, lengths))
    b = np.asarray(beam(params, ids, lengths, 1))
    for row_g, row_b in zip(g, b, strict=True):
        end = list(row_g).index(3) + 1 if 3 in row_g else len(row_g)  # up to <eos>
        np.testing.assert_array_equal(row_b[:end], row_g[:end])


def test_decoders_never_write_unk_pad_or_bos():
    params, ids, lengths = tiny_model()
    # Make <unk> by far the likeliest word everywhere: the decoders must still avoid it.
    params = {**params, "out_bias": params["out_bias"].at[1].set(100.0)}
    greedy, beam = decoders(TINY)
    for tokens in (greedy(params, ids, lengths), beam(params, ids, lengths, 3)):
        for row in np.asarray(tokens):
            written = row[: list(row).index(3)] if 3 in row else row  # up to <eos>
            assert len(written) and not np.isin(written, model.NEVER_GENERATED).any()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_does_not_depend_on_batch_padding(beam_size):
    params, ids, lengths = tiny_model()
    greedy, beam = decoders(TINY)
    run = (
        (lambda i, n: greedy(params, i, n))
        if beam_size == 1
        else (lambda i, n: beam(params, i, n, beam_size))
    )
    together = np.asarray(run(ids, lengths))
    alone = np.asarray(run(ids[1:2, :2], lengths[1:2]))  # no padding at all
    np.testing.assert_array_equal(together[1], alone[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    workdir = tmp_path_factory.mktemp("translate")
    config = Config(
        data_dir=data_dir,
        num_steps=30,
        eval_every=15,
        embed_size=16,
        encoder_size=16,
        decoder_size=32,
        attention_size=16,
        beam_size=2,
        max_decode_tokens=8,
    )
    return workdir, train_and_evaluate(config, str(workdir))


@pytest.mark.slow
def test_smoke_run_reports_bleu_chrf_and_examples(trained):
    workdir, results = trained
    stored = json.loads((workdir / "results.json").read_text())
    assert stored["test"] == results["test"]
    for name in ("greedy", "beam 2"):
        assert 0 <= stored["test"][name]["bleu"] <= 100
        assert stored["test"][name]["bleu_signature"].startswith("nrefs:1")
    assert len(stored["examples"]) == 10
    assert (workdir / "attention_0.png").exists()
    # Subword units by default: both sentencepiece models are saved with the run, and the
    # length penalty was chosen on the validation set among those tried.
    assert (workdir / "source.spm").exists() and (workdir / "target.spm").exists()
    average = stored["checkpoint_average"]  # the last checkpoints' mean was weighed
    assert average["steps"] == [15, 30] and average["used"] in ("best", "average")
    tried = stored["length_penalty"]["val_bleu"]
    assert sorted(map(float, tried)) == [0.0, 0.6, 1.0, 1.5]
    assert stored["length_penalty"]["chosen"] == max(map(float, tried), key=lambda a: tried[str(a)])
    # The translate command decodes with that choice.
    original = (workdir / "results.json").read_text()
    stored["length_penalty"]["chosen"] = 1.5
    (workdir / "results.json").write_text(json.dumps(stored))
    try:
        assert translate_cli.load(str(workdir))[0].length_penalty == 1.5
    finally:
        (workdir / "results.json").write_text(original)


@pytest.mark.slow
def test_translate_cli_keeps_one_line_per_input_line(trained, tmp_path, capsys):
    workdir, _ = trained
    path = tmp_path / "in.txt"
    path.write_text("Merhaba.\n\nTom burada.\nBilinmeyenkelime xyzzy.\n", encoding="utf-8")
    translate_cli.main(["--workdir", str(workdir), "--file", str(path), "--beam", "2"])
    captured = capsys.readouterr()
    out = captured.out.split("\n")
    assert out[-1] == "" and len(out) == 5  # four lines, each ended by a newline
    assert out[1] == ""  # the empty input line stays empty, with a warning
    assert "warning: line 2 empty" in captured.err
    config, params, source, target = translate_cli.load(str(workdir))
    from experiments.translate.inference import translate

    expected = translate(config, params, source, target, ["Tom burada."], 2)
    assert out[2] == expected[0]


@pytest.mark.slow
def test_translate_cli_decodes_with_the_runs_beam_by_default(trained, monkeypatch, capsys):
    workdir, _ = trained
    beams = []
    real = translate_cli.translate

    def recording(config, params, source, target, sentences, beam_size):
        beams.append(beam_size)
        return real(config, params, source, target, sentences, beam_size)

    monkeypatch.setattr(translate_cli, "translate", recording)
    translate_cli.main(["--workdir", str(workdir), "Merhaba."])
    translate_cli.main(["--workdir", str(workdir), "--beam", "1", "Merhaba."])
    config = translate_cli.load(str(workdir))[0]
    assert beams == [config.beam_size, 1] and config.beam_size > 1
    first, second = capsys.readouterr().out.splitlines()
    assert second == real(*translate_cli.load(str(workdir)), ["Merhaba."], 1)[0]
    assert first == real(*translate_cli.load(str(workdir)), ["Merhaba."], config.beam_size)[0]


def test_subword_units_round_trip_the_english_references(data_dir):
    from experiments.translate import units

    english = sorted(set(data.load(data_dir).english))
    pieces = units.Subwords.train(english[::4], "en", size=1000)
    failures = [e for e in english[:3000] if pieces.decode(pieces.encode(e, eos=True)) != e]
    # sentencepiece's NFKC normalisation rewrites a few characters (e.g. the ellipsis "…").
    assert len(failures) < 0.002 * 3000, failures[:5]


def test_subword_units_split_turkish_words_the_word_vocabulary_calls_unknown():
    from experiments.translate import units

    sentences = ["evde kaldım.", "okulda kaldı.", "evdeyim.", "okuldayım.", "kitap okudum."] * 30
    words = units.Words.build(sentences, "tr", min_freq=2)
    pieces = units.Subwords.train(sentences, "tr", size=40)
    unseen = "Kitapta KALDIM."  # a new word: a known stem and a known suffix
    assert text_unk(words, unseen) > 0
    assert pieces.unk_count(unseen) == 0
    assert pieces.decode(pieces.encode(unseen)) == "kitapta kaldım ."  # lower-cased, split


def text_unk(units_, sentence):
    from jaxrnn import text

    return int((units_.encode(sentence) == text.Vocabulary.unk_id).sum())


def test_subword_units_are_saved_loaded_and_a_damaged_model_is_named(tmp_path):
    from experiments.datasets import DataError
    from experiments.translate import units

    pieces = units.Subwords.train(["Tom is here.", "Mary is not here."] * 20, "en", size=30)
    pieces.save(str(tmp_path), "target")
    again = units.load("subword", str(tmp_path), "target", "en")
    ids = pieces.encode("Mary is here.")
    np.testing.assert_array_equal(again.encode("Mary is here."), ids)
    assert again.pieces(ids) == pieces.pieces(ids) and len(again) == len(pieces)
    with pytest.raises(DataError, match="source.spm is missing: the run's source subword model"):
        units.load("subword", str(tmp_path), "source", "tr")
    (tmp_path / "target.spm").write_bytes(b"not a model")
    with pytest.raises(DataError, match="target.spm: not a sentencepiece model"):
        units.load("subword", str(tmp_path), "target", "en")


def test_units_flag_out_of_range_is_refused():
    from experiments.validation import ConfigError

    with pytest.raises(ConfigError, match="--units must be 'word' or 'subword', got 'char'"):
        Config(units="char").check()
    with pytest.raises(ConfigError, match="--length-penalties must lie in"):
        Config(length_penalties=(0.6, -1.0)).check()
