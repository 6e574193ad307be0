"""The text pipeline: tokenizer, vocabulary round-trip, padding, bucketing."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxrnn import text
from jaxrnn import train


def test_word_tokenizer_lowercases_and_splits_punctuation():
    assert text.tokenize("Great film, isn't it? 10/10!") == [
        "great",
        "film",
        ",",
        "isn't",
        "it",
        "?",
        "10",
        "/",
        "10",
        "!",
    ]
    assert text.tokenize("co-writer/director", lower=False) == ["co-writer", "/", "director"]
    assert text.tokenize("Çok güzel!") == ["çok", "güzel", "!"]


def test_turkish_lowercasing():
    assert text.lowercase("IŞIK İSTANBUL", language="tr") == "ışık istanbul"
    assert text.lowercase("Iİ", language="tr") == "ıi"
    assert text.lowercase("I") == "i"  # other languages keep the usual rule
    # Python's own lower() turns İ into i + combining dot, which Turkish must not do.
    assert len(text.lowercase("İ", language="tr")) == 1


def test_char_mode():
    assert text.tokenize("Ab c", mode="char") == ["a", "b", " ", "c"]
    with pytest.raises(ValueError, match="mode must be 'word' or 'char'"):
        text.tokenize("x", mode="bpe")


def test_vocabulary_build_order_min_freq_and_specials():
    vocab = text.Vocabulary.build([["b", "a", "b"], ["c", "a", "b"]], min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "b", "a"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert vocab.encode(["a", "c"], bos=True, eos=True).tolist() == [2, 5, 1, 3]
    with pytest.raises(KeyError, match=r"tokens not in the vocabulary: \['c', 'd'\]"):
        vocab.encode(["a", "c", "d"], unknown="error")


def test_vocabulary_json_round_trip(tmp_path):
    vocab = text.Vocabulary.build([["ışık", "é", "日本"], ["ışık"]])
    vocab.save(tmp_path / "vocab.json")
    again = text.Vocabulary.load(tmp_path / "vocab.json")
    assert again == vocab
    ids = vocab.encode(["日本", "ışık", "nope"])
    assert again.decode(ids) == ["日本", "ışık", "<unk>"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object with a 'tokens' list"):
        text.Vocabulary.load(tmp_path / "bad.json")


def test_decode_stops_at_eos_and_checks_range():
    vocab = text.Vocabulary.build([["x"]])
    assert vocab.decode([2, 4, 3, 4]) == ["x"]
    assert vocab.decode([2, 4, 3], strip_special=False) == ["<bos>", "x", "<eos>"]
    with pytest.raises(
        ValueError, match=r"ids must be token ids in \[0, 5\) \(the vocabulary\), got id 9"
    ):
        vocab.decode([9])


def test_pad_batch_never_truncates():
    ids, lengths = text.pad_batch([[1, 2], [3]], 4)
    assert ids.tolist() == [[1, 2, 0, 0], [3, 0, 0, 0]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="a sequence has 3 tokens, more than length=2"):
        text.pad_batch([[1, 2, 3]], 2)


@given(
    lengths=st.lists(st.integers(1, 70), min_size=1, max_size=60),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 5),
)
def test_bucketing_keeps_every_example_exactly_once(lengths, batch_size, seed):
    sequences = [list(range(1, n + 1)) for n in lengths]
    labels = np.arange(len(sequences))
    batches = text.BucketedBatches(sequences, labels, batch_size=batch_size, seed=seed)
    seen = []
    shapes = set()
    for step in range(batches.steps_per_epoch):
        batch = batches(step)
        shapes.add(batch["ids"].shape)
        real = batch["weights"] > 0
        for row in np.flatnonzero(real):
            n = batch["index"][row]
            assert batch["labels"][row] == n
            assert batch["lengths"][row] == lengths[n]
            assert batch["ids"][row, : lengths[n]].tolist() == sequences[n]
            assert not batch["ids"][row, lengths[n] :].any()
        assert np.all(batch["index"][~real] == -1) and not batch["lengths"][~real].any()
        seen += batch["index"][real].tolist()
    assert sorted(seen) == list(range(len(sequences)))
    assert len(shapes) <= len(batches.buckets)
    assert all(shape[0] == batch_size for shape in shapes)


def test_bucketing_rejects_too_long_sequences():
    with pytest.raises(ValueError, match="more than the largest bucket 4"):
        text.BucketedBatches([[1] * 5], batch_size=2, buckets=(4,))


def test_bucketing_pairs_pads_sources_and_targets_to_one_bucket():
    sources = [[1, 2], [3, 4, 5, 6, 7], [8]]
    targets = [[9, 9, 9, 9, 9, 9], [10], [11, 12]]
    batches = text.BucketedBatches(
        sources, targets=targets, batch_size=2, buckets=(4, 8), shuffle=False
    )
    seen = {}
    for batch in batches.epoch(0):
        assert batch["targets"].shape == batch["ids"].shape
        for row in np.flatnonzero(batch["weights"] > 0):
            n = batch["index"][row]
            seen[n] = batch["ids"].shape[1]
            length = batch["target_lengths"][row]
            assert batch["targets"][row, :length].tolist() == targets[n]
    assert seen == {0: 8, 1: 8, 2: 4}  # the longer of the two sequences picks the bucket


def test_turkish_lowercasing_accepts_language_names():
    for language in ("tr", "tr-TR", "tr_TR", "turkish", "Turkish", "az"):
        assert text.lowercase("I", language) == "ı", language
    assert text.lowercase("I", "en") == "i"


def test_tokenize_and_lowercase_refuse_what_is_not_text():
    with pytest.raises(TypeError, match="text must be a str, got None"):
        text.tokenize(None)
    with pytest.raises(TypeError, match="text must be a str, got b'abc'"):
        text.lowercase(b"abc")


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            ["<pad>", "<unk>", "<bos>", "<eos>", None],
            r"tokens\[4\] must be a non-empty string, got None",
        ),
        (
            ["<pad>", "<unk>", "<bos>", "<eos>", ""],
            r"tokens\[4\] must be a non-empty string, got ''",
        ),
        (["<pad>", "<unk>", "<bos>", "<eos>", "a", "a"], r"repeated: \['a'\]"),
    ],
)
def test_vocabulary_load_names_the_file_and_the_bad_token(tmp_path, tokens, message):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"tokens": tokens}))
    with pytest.raises(ValueError, match=rf"{path}: .*{message}"):
        text.Vocabulary.load(path)


def test_vocabulary_load_of_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_bytes(b'{"tokens": ["\xff"]}')
    with pytest.raises(ValueError, match=rf"{path}: not a vocabulary JSON file"):
        text.Vocabulary.load(path)


def test_batches_refuse_negative_steps():
    batches = [
        text.BucketedBatches([[1, 2], [3]], batch_size=1),
        train.EpochBatches(np.arange(4), batch_size=2),
        train.StreamBatches(np.arange(10), batch_size=2, chunk_length=2),
    ]
    for batch_of in batches:
        with pytest.raises(ValueError, match="step must be an int >= 0, got -1"):
            batch_of(-1)
        with pytest.raises(TypeError, match="step must be an int >= 0, got 1.5"):
            batch_of(1.5)
