"""Models out of Python: jax.export artifacts (reloaded in a fresh process without jaxrnn),
ONNX through jax2onnx and onnxruntime, and streaming a sequence in pieces."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn import export
from jaxrnn.portable import portable
from tests.serving import run_without_jaxrnn

F, H = 3, 8
SIZES = [(1, 1), (3, 7), (5, 20)]  # (batch, time) the artifacts are called with


def classifier(cell_name="lstm"):
    """A bidirectional classifier over padded batches: (b, t, i), (b,) -> (b, 2)."""
    layer = jaxrnn.bidirectional(getattr(jaxrnn, cell_name)(H))
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"rnn": layer.init(k1, F), "head": jax.random.normal(k2, (2 * H, 2))}

    def logits(xs, lengths):
        _, ys = layer.apply(params["rnn"], xs, seq_lengths=lengths)
        return jaxrnn.pool(ys, lengths, method="max") @ params["head"]

    return logits


def batch(b, t, seed=0):
    rng = np.random.default_rng(seed + 100 * b + t)
    xs = rng.standard_normal((b, t, F)).astype(np.float32)
    lengths = rng.integers(1, t + 1, b).astype(np.int32)
    lengths[0] = t
    return xs, lengths


def test_an_exported_classifier_gives_the_same_numbers_in_a_fresh_process(tmp_path):
    logits = classifier()
    path = tmp_path / "classifier.jax"
    export.save(logits, export.arguments(("b, t, 3", jnp.float32), ("b", jnp.int32)), path)
    expected = {}
    for b, t in SIZES:
        xs, lengths = batch(b, t)
        np.savez(tmp_path / f"in_{b}_{t}.npz", xs=xs, lengths=lengths)
        expected[(b, t)] = np.asarray(jax.jit(logits)(xs, lengths))
        np.save(tmp_path / f"out_{b}_{t}.npy", expected[(b, t)])
    # The serving process: JAX and NumPy only, run from another folder.
    run_without_jaxrnn(
        f"""
        import jax, numpy as np
        served = jax.export.deserialize(bytearray(open("classifier.jax", "rb").read()))
        for b, t in {SIZES!r}:
            data = np.load(f"in_{{b}}_{{t}}.npz")
            got = np.asarray(served.call(data["xs"], data["lengths"]))
            want = np.load(f"out_{{b}}_{{t}}.npy")
            assert got.shape == (b, 2) and np.array_equal(got, want), (b, t, got, want)
        """,
        cwd=tmp_path,
    )
    # And in this process, through `load`.
    served = export.load(path)
    for b, t in SIZES:
        np.testing.assert_array_equal(served.call(*batch(b, t)), expected[(b, t)])


def test_exporting_after_an_ordinary_trace_still_leaves_out_callbacks_and_reverse_scans():
    logits = classifier("gru")
    jitted = jax.jit(logits)
    jitted(*batch(3, 7))  # traced once outside `portable`, with its length check callback
    callback = re.compile(r"custom_call @\w*callback")
    assert callback.search(jitted.lower(*batch(3, 7)).as_text())
    exported = export._export(jitted, export.arguments(("b, t, 3", jnp.float32), ("b", jnp.int32)))
    text = exported.mlir_module()
    assert not callback.search(text) and "reverse = true" not in text


@pytest.mark.parametrize("name", ["lstm", "gru", "mingru", "elman"])
def test_portable_tracing_gives_the_same_numbers(name):
    layer = jaxrnn.bidirectional(getattr(jaxrnn, name)(H))
    params = layer.init(jax.random.key(0), F)
    xs, lengths = batch(3, 7)
    f = lambda xs, lengths: layer.apply(params, xs, seq_lengths=lengths)
    expected = jax.jit(lambda *a: f(*a))(xs, lengths)
    with portable():
        got = jax.jit(lambda *a: f(*a))(xs, lengths)
    jax.tree.map(np.testing.assert_array_equal, got, expected)


# --- streaming: a sequence in pieces, carry in and carry out ---------------------------------


PIECES = ((0, 4), (4, 5), (5, 11), (11, 16))


@pytest.mark.parametrize(
    "name, options",
    [
        ("lstm", {}),
        ("gru", {}),
        ("elman", {}),
        ("mingru", {"strategy": Strategy(mode="parallel")}),
        ("lru", {}),
    ],
)
def test_a_sequence_in_pieces_equals_one_call(name, options):
    cell = getattr(jaxrnn, name)(H)
    params = cell.init(jax.random.key(1), F)
    xs = jax.random.normal(jax.random.key(2), (2, 16, F))
    whole_carry, whole = jaxrnn.unroll(cell, params, xs, **options)
    carry, pieces = cell.initial_carry(params, (2,)), []
    for start, stop in PIECES:
        carry, ys = jaxrnn.unroll(cell, params, xs[:, start:stop], initial_carry=carry, **options)
        pieces.append(ys)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), carry, whole_carry)


def test_an_exported_chunk_function_streams_like_one_call(tmp_path):
    cell = jaxrnn.lstm(H)
    params = cell.init(jax.random.key(1), F)

    def chunk(xs, h, c):  # the carry as plain arrays: a serving process needs no jaxrnn types
        carry, ys = jaxrnn.unroll(cell, params, xs, initial_carry=jaxrnn.LSTMCarry(h, c))
        return ys, carry.h, carry.c

    path = tmp_path / "chunk.jax"
    args = export.arguments(
        ("b, t, 3", jnp.float32), (f"b, {H}", jnp.float32), (f"b, {H}", jnp.float32)
    )
    export.save(chunk, args, path)
    served = export.load(path)
    xs = np.asarray(jax.random.normal(jax.random.key(2), (2, 16, F)))
    zeros = np.zeros((2, H), np.float32)
    whole, h_whole, c_whole = jax.jit(chunk)(xs, zeros, zeros)
    h, c, pieces = zeros, zeros, []
    for start, stop in PIECES:
        ys, h, c = served.call(xs[:, start:stop], h, c)
        pieces.append(ys)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-6)
    np.testing.assert_allclose(h, h_whole, atol=1e-6)
    np.testing.assert_allclose(c, c_whole, atol=1e-6)


# --- ONNX ------------------------------------------------------------------------------------


def onnx_session(path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed ([export])")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about initializers jax2onnx leaves unused
    return ort.InferenceSession(os.fspath(path), options)


@pytest.fixture(autouse=False)
def jax2onnx():
    return pytest.importorskip("jax2onnx", reason="jax2onnx is not installed ([export])")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_onnx_many_to_one_classifier_matches(tmp_path, jax2onnx, name):
    cell = getattr(jaxrnn, name)(H)
    params = cell.init(jax.random.key(0), F)
    head = jax.random.normal(jax.random.key(1), (H, 2))
    logits = lambda xs: jaxrnn.many_to_one(cell, params, xs) @ head
    path = export.save_onnx(
        logits, export.arguments(("b, t, 3", jnp.float32)), tmp_path / "m.onnx", input_names=["xs"]
    )
    session = onnx_session(path)
    for b, t in SIZES:
        xs, _ = batch(b, t)
        np.testing.assert_allclose(session.run(None, {"xs": xs})[0], logits(xs), atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_onnx_bidirectional_classifier_with_lengths_matches(tmp_path, jax2onnx, name):
    logits = classifier(name)
    args = export.arguments(("b, t, 3", jnp.float32), ("b", jnp.int32))
    path = export.save_onnx(logits, args, tmp_path / "bi.onnx", input_names=["xs", "lengths"])
    session = onnx_session(path)
    for b, t in SIZES:
        xs, lengths = batch(b, t)
        got = session.run(None, {"xs": xs, "lengths": lengths})[0]
        np.testing.assert_allclose(got, logits(xs, lengths), atol=1e-5)


def test_onnx_masked_model_matches(tmp_path, jax2onnx):
    cell = jaxrnn.lstm(H)
    params = cell.init(jax.random.key(0), F)
    f = lambda xs, mask: jaxrnn.unroll(cell, params, xs, mask=mask, reverse=True)[1]
    args = export.arguments(("b, t, 3", jnp.float32), ("b, t", jnp.bool_))
    path = export.save_onnx(f, args, tmp_path / "masked.onnx", input_names=["xs", "mask"])
    session = onnx_session(path)
    xs, _ = batch(3, 7)
    mask = np.random.default_rng(0).random((3, 7)) < 0.7
    np.testing.assert_allclose(
        session.run(None, {"xs": xs, "mask": mask})[0], f(xs, mask), atol=1e-5
    )


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_onnx_step_function_streams_like_one_call(tmp_path, jax2onnx, name):
    cell = getattr(jaxrnn, name)(H)
    params = cell.init(jax.random.key(0), F)
    width = 2 if name == "lstm" else 1

    def step(x, *carry):
        carry = jaxrnn.LSTMCarry(*carry) if name == "lstm" else carry[0]
        carry, y = cell.step(params, carry, x)
        return (y, *jax.tree.leaves(carry))

    shapes = [("b, 3", jnp.float32)] + [(f"b, {H}", jnp.float32)] * width
    path = export.save_onnx(step, export.arguments(*shapes), tmp_path / "step.onnx")
    session = onnx_session(path)
    names = [i.name for i in session.get_inputs()]
    xs, _ = batch(2, 9)
    _, whole = jaxrnn.unroll(cell, params, jnp.asarray(xs))
    carry = [np.zeros((2, H), np.float32)] * width
    for t in range(9):
        y, *carry = session.run(None, dict(zip(names, [xs[:, t], *carry], strict=True)))
        np.testing.assert_allclose(y, whole[:, t], atol=1e-5)


# --- errors ----------------------------------------------------------------------------------


def test_export_errors_name_the_file_and_the_argument(tmp_path):
    f = lambda x: 2 * x
    args = export.arguments(("n", jnp.float32))
    with pytest.raises(FileNotFoundError, match=r"cannot write .*: the folder .*missing"):
        export.save(f, args, tmp_path / "missing" / "f.jax")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        export.save(f, args, tmp_path)
    with pytest.raises(OSError, match=r"cannot read the exported model .*none.jax"):
        export.load(tmp_path / "none.jax")
    export.save(f, args, tmp_path / "f.jax")
    data = (tmp_path / "f.jax").read_bytes()
    (tmp_path / "cut.jax").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.jax is not a jax.export artifact"):
        export.load(tmp_path / "cut.jax")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]  # no leftovers
    with pytest.raises(TypeError, match=r"argument 0 must be a \(shape, dtype\) pair"):
        export.arguments((3, jnp.float32))


@pytest.mark.parametrize(
    "name, strategy",
    [
        ("mingru", Strategy(mode="parallel")),
        ("mamba", Strategy(mode="parallel")),
        ("mlstm", Strategy(mode="parallel")),
        ("mlstm", Strategy(mode="chunkwise", chunk_size=2)),
        ("mlstm", Strategy(mode="chunkwise", chunk_size=64)),
    ],
)
def test_a_reversed_parallel_form_exports_with_a_symbolic_time_axis(name, strategy):
    # The linear scan folded the initial state into step t - 1, and the chunkwise form sized
    # its chunks with min(chunk_size, t): both failed when t is a symbol.
    cell = getattr(jaxrnn, name)(4)
    params = cell.init(jax.random.key(0), 4)

    def backwards(xs):
        return jaxrnn.unroll(cell, params, xs, reverse=True, strategy=strategy)[1]

    exported = jax.export.export(jax.jit(backwards))(*export.arguments(("b, t, 4", jnp.float32)))
    xs = jax.random.normal(jax.random.key(1), (2, 5, 4))
    np.testing.assert_allclose(exported.call(xs), backwards(xs), rtol=1e-6, atol=1e-6)
