"""Sentiment experiment: loaders read every row, padding never matters, predict CLI, smoke run."""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.datasets import DataError
from experiments.sentiment import bow
from experiments.sentiment import data
from experiments.sentiment import inference
from experiments.sentiment import model
from experiments.sentiment import predict
from experiments.sentiment.configs.default import Config
from experiments.sentiment.train import classifier_loss
from experiments.sentiment.train import train_and_evaluate
from jaxrnn import text
from tests.serving import run_without_jaxrnn

# make test runs each module on one pytest-xdist worker (--dist loadfile), so the
# module-scoped training fixture runs once.


def test_rt_polarity_reads_every_row_as_cp1252(data_dir):
    corpus = data.load("rt-polarity", data_dir)
    assert len(corpus) == 10662 and np.bincount(corpus.labels).tolist() == [5331, 5331]
    assert any("clichés" in t for t in corpus.texts)  # 0xE9
    assert any("interwoven…" in t for t in corpus.texts)  # 0x85 is "…" in cp1252, not a break
    assert all(t == t.strip() and t for t in corpus.texts)


@pytest.mark.parametrize("name", ["amazon", "imdb"])
def test_uci_files_read_every_row(data_dir, name):
    corpus = data.load(name, data_dir)
    assert len(corpus) == 1000 and np.bincount(corpus.labels).tolist() == [500, 500]
    if name == "imdb":  # unbalanced quotes and U+0085 inside sentences survive
        assert any("\x85" in t for t in corpus.texts)
        assert sum(t.count('"') % 2 for t in corpus.texts) > 0


def test_uci_malformed_and_empty_lines_are_errors(tmp_path, monkeypatch):
    folder = tmp_path / "sentiment" / "uci_sentiment_labelled_sentences"
    folder.mkdir(parents=True)
    path = folder / "amazon_cells_labelled.txt"
    path.write_text("good phone\t1\nno label here\n")
    with pytest.raises(
        DataError,
        match=r"amazon_cells_labelled.txt, line 2: expected "
        r"'sentence<TAB>0'",
    ):
        data.load("amazon", str(tmp_path))
    path.write_text("good phone\t1\n\nbad\t0\n")
    with pytest.raises(DataError, match=r"line 2: empty line"):
        data.load("amazon", str(tmp_path))
    path.write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        data.load("amazon", str(tmp_path))


def test_folds_test_every_example_once():
    splits = data.folds(103, 10, seed=1)
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested.tolist()) == list(range(103))
    for train, test in splits:
        assert not set(train) & set(test) and len(train) + len(test) == 103


def test_predictions_do_not_depend_on_padding():
    config = Config(embed_size=8, hidden_size=6, num_layers=2)
    params = model.make(config).init(jax.random.key(0), 20)
    ids = jnp.asarray([[5, 6, 7, 8, 0, 0], [9, 4, 0, 0, 0, 0]])
    lengths = jnp.asarray([4, 2])
    short = model.make(config).logits(params, ids[:, :4], lengths)
    garbage = ids.at[:, 4:].set(13).at[1, 2:].set(17)  # other tokens in the padding
    long = model.make(config).logits(params, garbage, lengths)
    np.testing.assert_allclose(short, long, atol=1e-6)


def test_packed_batches_give_the_loss_and_gradients_of_bucketed_ones():
    # Several sentences per row with resets: the same per-sentence logits, loss and gradients
    # as one sentence per row, with less padding.
    rng = np.random.default_rng(0)
    sequences = [rng.integers(2, 30, size=n) for n in rng.integers(1, 20, size=24)]
    labels = rng.integers(0, 2, size=24)
    config = Config(embed_size=8, hidden_size=6, pooling="mean", batch_size=24)
    bucketed = text.BucketedBatches(sequences, labels, batch_size=24, buckets=(24,), shuffle=False)(
        0
    )
    packed = text.PackedBatches(sequences, labels, batch_size=24, row_length=24, shuffle=False)
    packed_batch = packed(0)
    assert packed.padding_fraction() < bucketed_padding(bucketed) / 2
    np.testing.assert_array_equal(packed_batch["index"], bucketed["index"])
    params = model.make(config).init(jax.random.key(0), 30)
    loss_fn = classifier_loss(config)
    grad = jax.value_and_grad(lambda p, batch: loss_fn(p, batch, None), has_aux=True)
    (loss, _), grads = jax.jit(grad)(params, bucketed)
    (loss_p, _), grads_p = jax.jit(grad)(params, packed_batch)
    np.testing.assert_allclose(loss_p, loss, rtol=1e-6)
    chex.assert_trees_all_close(grads_p, grads, rtol=1e-4, atol=1e-6)
    # With dropout too (masks differ per row, so only the shapes and finiteness are shared).
    loss_d, _ = loss_fn(params, packed_batch, jax.random.key(1))
    assert np.isfinite(float(loss_d))


def bucketed_padding(batch):
    return 1.0 - batch["lengths"].sum() / batch["ids"].size


def test_bow_baseline_learns_and_round_trips(tmp_path):
    docs = [["great", "fun"], ["dull", "mess"], ["great", "cast"], ["a", "mess"]] * 5
    labels = np.array([1, 0, 1, 0] * 5)
    fitted = bow.BagOfWords(l2=1e-3).fit(docs, labels)
    assert np.array_equal(fitted.predict_proba(docs) > 0.5, labels == 1)
    bow.save(fitted, str(tmp_path))
    again = bow.load(str(tmp_path))
    np.testing.assert_allclose(again.predict_proba(docs), fitted.predict_proba(docs))


def test_nb_ratios_are_the_smoothed_log_ratio_of_class_frequencies():
    docs = [["good", "fun"], ["good"], ["bad", "fun"]]
    fitted = bow.BagOfWords(l2=1e-3, weighting="nb", order=1).fit(docs, np.array([1, 1, 0]))
    # presence counts (positive, negative): bad (0, 1), fun (1, 1), good (2, 0); alpha = 1
    p, q = np.array([1, 2, 3]) / 6, np.array([2, 2, 1]) / 5
    expected = np.log(p) - np.log(q)
    got = [float(fitted.values[fitted.features[w]]) for w in ("bad", "fun", "good")]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(fitted.values[0]) == 0.0  # the padding feature counts for nothing


def test_nb_features_scale_the_logit_and_survive_a_round_trip(tmp_path):
    docs = [["great", "fun"], ["dull", "mess"], ["great", "cast"], ["a", "mess"]] * 5
    labels = np.array([1, 0, 1, 0] * 5)
    fitted = bow.BagOfWords(l2=1e-3, weighting="nb", order=3).fit(docs, labels)
    assert np.array_equal(fitted.predict_proba(docs) > 0.5, labels == 1)
    w, b = np.asarray(fitted.params["w"]), float(fitted.params["b"])
    ids = [fitted.features[g] for g in bow.ngrams(["great", "fun"], 3)]
    logit = sum(w[i] * float(fitted.values[i]) for i in ids) + b
    np.testing.assert_allclose(
        fitted.predict_proba([["great", "fun"]])[0], 1 / (1 + np.exp(-logit)), rtol=1e-5
    )
    bow.save(fitted, str(tmp_path))
    again = bow.load(str(tmp_path))
    assert (again.weighting, again.order) == ("nb", 3)
    np.testing.assert_allclose(again.predict_proba(docs), fitted.predict_proba(docs))


def test_a_bow_model_saved_before_feature_values_loads_as_binary(tmp_path):
    docs, labels = [["great"], ["dull"]] * 5, np.array([1, 0] * 5)
    fitted = bow.BagOfWords(l2=1e-3).fit(docs, labels)
    bow.save(fitted, str(tmp_path))
    (tmp_path / "values.npy").unlink()
    np.testing.assert_allclose(
        bow.load(str(tmp_path)).predict_proba(docs), fitted.predict_proba(docs)
    )


def test_a_damaged_bow_file_is_named(tmp_path):
    docs, labels = [["great"], ["dull"]] * 5, np.array([1, 0] * 5)
    bow.save(bow.BagOfWords(l2=1e-3, weighting="nb").fit(docs, labels), str(tmp_path))
    for name in ("values.npy", "weights.npy"):
        good = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(good[:100])
        with pytest.raises(ValueError, match=f"{name}: damaged or not a saved array"):
            bow.load(str(tmp_path))
        (tmp_path / name).write_bytes(good)


def test_bow_flags_out_of_range_are_named():
    with pytest.raises(ValueError, match="--bow-weighting"):
        dataclasses.replace(Config(), bow_weighting="tfidf").check()
    with pytest.raises(ValueError, match="--bow-order must be at least 1, got 0"):
        dataclasses.replace(Config(), bow_order=0).check()
    with pytest.raises(ValueError, match="documents but"):
        bow.BagOfWords().fit([["a"], ["b"]], np.array([1]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    workdir = tmp_path_factory.mktemp("sentiment")
    config = Config(
        dataset="amazon",
        data_dir=data_dir,
        embed_size=16,
        hidden_size=8,
        epochs=1,
        ensemble=2,
        batch_size=32,
        combine_bow=True,
    )
    results = train_and_evaluate(config, str(workdir))
    return workdir, results


@pytest.mark.slow
def test_smoke_run_writes_results_and_plots(trained):
    workdir, results = trained
    stored = json.loads((workdir / "results.json").read_text())
    assert stored["accuracy"] == results["accuracy"]
    assert sum(map(sum, stored["confusion_matrix"])) == 100  # every test sentence, once
    for name in ("accuracy_vs_length.png", "confusion_matrix.png", "fold0/vocab.json"):
        assert (workdir / name).exists()
    stored = np.load(workdir / "test_probabilities.npz")
    assert len(set(stored["rows"].tolist())) == len(stored["rows"]) == 100
    # the final model is the average of the two (combine_bow), and its accuracy is the table's
    np.testing.assert_allclose(stored["final"], (stored["bow"] + stored["rnn"]) / 2, rtol=1e-6)
    accuracy = np.mean((stored["final"] > 0.5) == stored["labels"])
    assert accuracy == pytest.approx(results["accuracy"]["RNN ensemble + bag-of-words"]["mean"])
    # the NB-weighted trigram model of the default config, saved with its feature values
    saved = bow.load(str(workdir / "fold0" / "bow"))
    assert (saved.weighting, saved.order) == ("nb", 3)


@pytest.mark.slow
def test_predict_cli_on_a_file_keeps_count_and_order(trained, tmp_path, capsys):
    workdir, _ = trained
    lines = ["Great phone, works perfectly!", "zzqx unknownword blorp", "Terrible, broke in a day."]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    predict.main(["--workdir", str(workdir), "--file", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    classifier = inference.Classifier(str(workdir))
    expected = [predict.format_prediction(float(p)) for p in classifier.positive_probability(lines)]
    assert out == expected
    for line in out:
        label, probability = line.split("\t")
        assert label in ("negative", "positive") and 0.5 <= float(probability) <= 1.0


@pytest.mark.slow
def test_predict_cli_mirrors_empty_lines_with_a_warning(trained, tmp_path, capsys):
    # The same treatment as translate: one output line per input line, empty for empty.
    workdir, _ = trained
    path = tmp_path / "in.txt"
    path.write_text("fine\n\nalso fine\n", encoding="utf-8")
    predict.main(["--workdir", str(workdir), "--file", str(path)])
    captured = capsys.readouterr()
    out = captured.out.split("\n")
    assert len(out) == 4 and out[1] == "" and out[3] == ""
    assert out[0].split("\t")[0] in ("negative", "positive")
    assert "warning: line 2 empty" in captured.err


def test_predict_cli_without_a_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        predict.main(["--workdir", str(tmp_path), "hello"])
    assert "holds no trained model" in capsys.readouterr().err


@pytest.mark.slow
def test_export_cli_writes_an_artifact_a_process_without_jaxrnn_serves(trained, tmp_path, capsys):
    workdir, _ = trained
    path = tmp_path / "classifier.jax"
    predict.main(["--workdir", str(workdir), "--export", str(path)])
    captured = capsys.readouterr()
    assert f"wrote {path} (jax.export)" in captured.out
    assert "bag-of-words model, which is not exported" in captured.err  # combine_bow=True
    sentences = ["Great phone, works perfectly!", "zzqx unknownword", "Terrible.", "ok"]
    classifier = inference.Classifier(str(workdir))
    words = [inference.tokenize(s) for s in sentences]
    sequences = [classifier.vocab.encode(w) for w in words]
    expected = np.mean(
        [inference.predict_proba(classifier.config, p, sequences) for p in classifier.members],
        axis=0,
    )
    (tmp_path / "words.json").write_text(json.dumps(words))
    np.save(tmp_path / "expected.npy", expected)
    # A serving process: the description's vocabulary, JAX and NumPy; no jaxrnn, no experiments.
    run_without_jaxrnn(
        """
        import json, jax, numpy as np
        description = json.load(open("classifier.jax.json"))
        ids = {word: n for n, word in enumerate(description["vocabulary"])}
        words = json.load(open("words.json"))
        lengths = np.array([len(w) for w in words], np.int32)
        batch = np.zeros((len(words), lengths.max() + 3), np.int32)  # extra padding is fine
        for row, sentence in enumerate(words):
            batch[row, : len(sentence)] = [ids.get(w, description["unknown_id"]) for w in sentence]
        served = jax.export.deserialize(bytearray(open("classifier.jax", "rb").read()))
        got = np.asarray(served.call(batch, lengths))
        np.testing.assert_allclose(got, np.load("expected.npy"), atol=1e-6)
        """,
        cwd=tmp_path,
    )
    # The same model as ONNX (a bidirectional LSTM: reversed scans) in onnxruntime.
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed ([export])")
    pytest.importorskip("jax2onnx", reason="jax2onnx is not installed ([export])")
    onnx_path = tmp_path / "classifier.onnx"
    predict.main(["--workdir", str(workdir), "--export", str(onnx_path)])
    lengths = np.array([len(s) for s in sequences], np.int32)
    ids = np.zeros((len(sequences), lengths.max()), np.int32)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options)
    got = session.run(None, {"ids": ids, "lengths": lengths})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--workdir", str(tmp_path), "--export", str(tmp_path / "m.jax"), "hi"])
    assert exit_info.value.code == 2
    assert "give no sentences or --file with it" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict.main(["--workdir", str(tmp_path), "--export", str(tmp_path / "m.jax")])
    assert "holds no trained model" in capsys.readouterr().err
