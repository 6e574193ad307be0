"""The hostile cases of the third round (issue 28), one test each: every one returned a wrong
number without a word, accepted nonsense, or failed deep inside JAX, NumPy or torch before the
checks became one vocabulary (`jaxrnn.checks`) and the sequence options one definition
(`jaxrnn.Strategy`, `jaxrnn.steps`). The fuzzer (`test_fuzz.py`) guards the classes; these
pin the cases that were reported."""

import errno
import os
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import decode
from jaxrnn import export
from jaxrnn import packing
from jaxrnn import text


def raised_by_jaxrnn(info) -> bool:
    return "/jaxrnn/" in traceback.extract_tb(info.value.__traceback__)[-1].filename


@pytest.fixture(scope="module")
def gru():
    cell = jaxrnn.gru(4)
    return cell, cell.init(jax.random.key(0), input_size=3)


# --- silent wrong answers --------------------------------------------------------------------


def test_many_to_one_over_a_layer_reads_the_last_step_the_mask_ran(gru):
    cell, params = gru
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    mask = jnp.array([[True, True, True, False, False], [True, False, True, True, True]])
    via_cell = jaxrnn.many_to_one(cell, params, xs, mask=mask)
    via_layer = jaxrnn.many_to_one(jaxrnn.rnn(cell), params, xs, mask=mask)
    _, ys = jaxrnn.unroll(cell, params, xs, mask=mask)
    np.testing.assert_allclose(via_layer, via_cell, rtol=1e-6)
    np.testing.assert_allclose(via_layer[0], ys[0, 2], rtol=1e-6)  # not the zeros of step 4
    assert jnp.all(via_layer[0] != 0)


def test_uint8_lengths_past_255_steps_do_not_wrap(gru):
    cell, params = gru
    xs = jax.random.normal(jax.random.key(2), (2, 300, 3))
    lengths = np.array([200, 3], np.uint8)
    carry, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths)
    want_carry, want_ys = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths.astype(np.int32))
    np.testing.assert_array_equal(ys, want_ys)
    np.testing.assert_array_equal(carry, want_carry)
    assert not jnp.any(ys[0, 200:])  # steps 256-299 stay padding
    run = jax.jit(lambda xs, n: jaxrnn.unroll(cell, params, xs, seq_lengths=n)[1])
    np.testing.assert_allclose(run(xs, lengths), want_ys, atol=1e-6)  # jit takes it too


def test_a_length_past_32_bits_is_refused_not_cut(gru):
    cell, params = gru
    with pytest.raises(
        ValueError, match=r"seq_lengths must lie in \[0, 5\].*to 4294967299"
    ) as info:
        jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)), seq_lengths=np.array([2**32 + 3, 5]))
    assert raised_by_jaxrnn(info)


def test_packing_reads_time_major_outputs_only_when_told(gru):
    cell, params = gru
    docs = [np.ones((3, 3), np.float32), np.ones((2, 3), np.float32) * 2]
    packed = packing.pack(docs, row_length=4)  # 2 rows of 4 steps
    xs = jnp.asarray(packed.values)
    _, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=packed.seq_lengths, resets=packed.resets)
    alone = [jaxrnn.unroll(cell, params, jnp.asarray(d))[1][-1] for d in docs]
    time_major = jnp.swapaxes(ys, 0, 1)
    with pytest.raises(
        ValueError, match=r"ys must be outputs of shape \(2, 4, \.\.\.\).*time_major=True"
    ):
        packing.last(time_major, packed)
    np.testing.assert_allclose(
        packing.last(time_major, packed, time_major=True), np.stack(alone), rtol=1e-6
    )


def test_unpack_never_cuts_a_document():
    packed = packing.pack([[1, 2, 3], [4]], row_length=4)
    with pytest.raises(ValueError, match=r"max_length must be an int >= 3, the longest document"):
        packing.unpack(jnp.asarray(packed.values), packed, max_length=2)
    assert packing.unpack(jnp.asarray(packed.values), packed).tolist() == [[1, 2, 3], [4, 0, 0]]


def test_vocabulary_build_refuses_texts_for_token_lists():
    with pytest.raises(
        TypeError, match=r"token_lists\[0\] must be a list of token strings, not one string"
    ) as info:
        text.Vocabulary.build(["a good film", "the plot"])
    assert raised_by_jaxrnn(info)


def test_encode_refuses_ids_and_decode_refuses_float_ids():
    vocab = text.Vocabulary.build([["a", "good", "film"]])
    with pytest.raises(TypeError, match=r"tokens\[0\] must be a token string, got 4"):
        vocab.encode([4, 5])
    with pytest.raises(
        TypeError, match=r"ids must be a 1-D sequence of integer token ids, got dtype float64"
    ):
        vocab.decode([4.7])
    assert vocab.decode(np.array([4, 5], np.uint8)) == ["a", "film"]


def test_nan_logits_are_refused_not_read_as_token_0():
    logits = jnp.array([[0.0, 1.0, 2.0], [jnp.nan, 0.0, 0.0]])
    with pytest.raises(
        ValueError,
        match=r"logits must be finite scores or -inf \(a masked token\), got NaN in row 1",
    ):
        decode.select(logits, None)
    jitted = jaxrnn.checked(jax.jit(lambda lg: decode.select(lg, jax.random.key(0))))
    with pytest.raises(ValueError, match="logits must be finite scores.*NaN in row 1"):
        jitted(logits)
    step = lambda carry, tokens: (carry, jnp.full((tokens.shape[0], 3), jnp.nan))
    with pytest.raises(ValueError, match="the logits of step_fn must be finite scores.*NaN"):
        decode.generate(step, (), jnp.array([0]), length=2)


def test_a_start_token_outside_the_vocabulary_is_refused():
    table = jnp.eye(4)
    step = lambda carry, tokens: (carry, table[tokens])  # an embedding lookup clamps silently
    with pytest.raises(
        ValueError, match=r"first_tokens must be token ids in \[0, 4\).*to 9"
    ) as info:
        decode.generate(step, (), jnp.array([1, 9]), length=2)
    assert raised_by_jaxrnn(info)
    run = jaxrnn.checked(jax.jit(lambda first: decode.generate(step, (), first, length=2)[1]))
    with pytest.raises(ValueError, match=r"first_tokens must be token ids in \[0, 4\)"):
        run(jnp.array([1, 9]))


def test_a_tiny_temperature_is_nearly_greedy():
    logits = jax.random.normal(jax.random.key(0), (64, 50))
    for temperature in (1e-40, 1e-30):
        picked = decode.select(logits, jax.random.key(1), temperature=temperature)
        np.testing.assert_array_equal(picked, jnp.argmax(logits, axis=-1))


def test_dropout_shared_axes_past_the_rank_are_refused():
    with pytest.raises(
        ValueError, match=r"shared_axes must be axes of an array of rank 3 .*got \(5,\)"
    ):
        jaxrnn.dropout_apply(jax.random.key(0), jnp.ones((2, 3, 4)), 0.5, shared_axes=(5,))


def test_nnx_deterministic_must_be_a_bool():
    nnx = pytest.importorskip("flax.nnx")
    model = jaxrnn.nnx.RNN(jaxrnn.gru(4), in_features=3, recurrent_dropout=0.5, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="deterministic must be True or False, got 'False'"):
        model(jnp.ones((2, 5, 3)), deterministic="False")
    with pytest.raises(TypeError, match="rngs must be a flax.nnx.Rngs.*wrap it, nnx.Rngs"):
        model(jnp.ones((2, 5, 3)), rngs=jax.random.key(1))


@pytest.mark.parametrize("factory", [jaxrnn.lstm, jaxrnn.mgu])
@pytest.mark.parametrize("bias", [float("nan"), float("inf"), "1"])
def test_forget_bias_must_be_a_finite_number(factory, bias):
    with pytest.raises((ValueError, TypeError), match="forget_bias must be a finite number"):
        factory(4, forget_bias=bias)


# --- errors from the wrong place -------------------------------------------------------------


def test_a_dropout_key_that_is_not_a_key_is_named(gru):
    cell, params = gru
    layer = jaxrnn.rnn(cell, recurrent_dropout=0.2)
    with pytest.raises(
        TypeError, match=r"dropout_key must be a PRNG key such as jax.random.key\(0\), got 42"
    ) as info:
        layer.apply(params, jnp.ones((2, 5, 3)), dropout_key=42)
    assert raised_by_jaxrnn(info)


def test_beam_search_names_a_carry_not_repeated_per_beam():
    step = lambda carry, tokens: (carry + 1, jnp.zeros((tokens.shape[0], 5)))
    with pytest.raises(
        ValueError,
        match=r"carry must be a pytree whose leaves have 6 rows "
        r".*repeat each sequence's carry per beam",
    ) as info:
        decode.beam_search(
            step, jnp.zeros(2), jnp.array([0, 1]), beam_size=3, max_length=4, eos_id=1
        )
    assert raised_by_jaxrnn(info)


@pytest.mark.parametrize(
    "spec, message",
    [
        (("b, -1", jnp.float32), r"the shape of argument 0 must be .*got '-1' in 'b, -1'"),
        (("b, 3.5", jnp.float32), r"the shape of argument 0 must be .*got '3.5' in 'b, 3.5'"),
        (("b, t", "flaot32"), r"the dtype of argument 0 must be a dtype .*got 'flaot32'"),
    ],
)
def test_export_arguments_parse_sizes_and_dtypes(spec, message):
    with pytest.raises((ValueError, TypeError), match=message) as info:
        export.arguments(spec)
    assert raised_by_jaxrnn(info)


def test_a_dtype_typo_is_named_by_init(gru):
    cell, _ = gru
    with pytest.raises(
        TypeError, match="dtype must be a real floating-point type .*got 'flaot32'"
    ) as info:
        cell.init(jax.random.key(0), 3, dtype="flaot32")
    assert raised_by_jaxrnn(info)


def test_onnx_export_of_a_mean_over_a_bidirectional_layer_without_lengths(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("jax2onnx")
    model = jaxrnn.bidirectional(jaxrnn.gru(4))
    params = model.init(jax.random.key(0), input_size=3)
    mean = lambda xs: jaxrnn.many_to_one(model, params, xs, method="mean")
    path = export.save_onnx(
        mean, export.arguments(("b, t, 3", jnp.float32)), tmp_path / "mean.onnx", input_names=["xs"]
    )
    xs = np.asarray(jax.random.normal(jax.random.key(1), (2, 6, 3)))
    served = onnxruntime.InferenceSession(str(path)).run(None, {"xs": xs})[0]
    np.testing.assert_allclose(served, mean(xs), atol=1e-5)


class _TorchLikeModule:
    def state_dict(self):
        return {}


def test_from_torch_names_a_module_given_for_its_state_dict():
    with pytest.raises(
        TypeError, match=r"state_dict must be a mapping .*call .state_dict\(\) on the torch module"
    ) as info:
        jaxrnn.interop.from_torch(jaxrnn.lstm(4), _TorchLikeModule())
    assert raised_by_jaxrnn(info)


def test_from_torch_reads_bfloat16_weights():
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(3, 4)
    state = {k: v.to(torch.bfloat16) for k, v in module.state_dict().items()}
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        jaxrnn.interop.from_torch(jaxrnn.lstm(4), module)
    params = jaxrnn.interop.from_torch(jaxrnn.lstm(4), state)
    want = state["weight_ih_l0"].float().numpy().T
    np.testing.assert_array_equal(params["w_ih"], want)  # bfloat16 widens exactly


def test_a_token_utf8_cannot_store_is_refused_when_the_vocabulary_is_made():
    with pytest.raises(ValueError, match=r"tokens\[4\] must be text that UTF-8 can store"):
        text.Vocabulary([*text.SPECIALS, "bad\ud800"])


def test_a_full_disk_leaves_no_half_written_vocabulary(tmp_path, monkeypatch):
    vocab = text.Vocabulary.build([["a", "b"]])
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*vocab.json: No space left on device"):
        vocab.save(tmp_path / "vocab.json")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert os.listdir(tmp_path) == []  # neither vocab.json nor a temporary file


def test_under_jit_a_bad_length_names_seq_lengths_in_the_first_line(gru):
    cell, params = gru
    run = jaxrnn.checked(jax.jit(lambda xs, n: jaxrnn.unroll(cell, params, xs, seq_lengths=n)[1]))
    with pytest.raises(ValueError) as info:
        run(jnp.ones((2, 5, 3)), jnp.array([9, 2]))
    first_line = str(info.value).splitlines()[0]
    assert first_line.startswith("seq_lengths must lie in [0, 5]"), first_line
    assert raised_by_jaxrnn(info)
