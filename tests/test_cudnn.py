"""``jaxrnn.Strategy(cudnn=True)``: jaxrnn's LSTM through `jax.experimental.rnn.lstm`.

cuDNN runs only on an NVIDIA GPU, so on CPU the plumbing is checked against stand-ins: the
backend check is told it runs on an NVIDIA GPU, and either the call of
`jax.experimental.rnn.lstm` is replaced by `lstm_stand_in` (its reference, `lstm_ref`, with
cuDNN's reading of the lengths), or, one level lower, cuDNN's two kernels are replaced by the
same reference so that the real `jax.experimental.rnn.lstm` with its custom VJP runs. Every
call cuDNN cannot take falls back to the default path with a `CudnnFallbackWarning` that names
the reason, and then gives exactly the default path's numbers. Lowering the cuDNN call for
CUDA needs the jax CUDA plugin and a GPU (its abstract evaluation opens cuDNN), so that test
runs only there.
"""

import contextlib
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import cudnn
from jaxrnn.cells.lstm import to_cudnn
from jaxrnn.cudnn import CudnnFallbackWarning
from jaxrnn.portable import portable

rnn = pytest.importorskip("jax.experimental.rnn")

B, T, IN, H = 4, 6, 3, 5
LENGTHS = jnp.array([T, 3, 0, 1], jnp.int32)  # full, partial, empty, one step
CUDNN = jaxrnn.Strategy(cudnn=True)
DEFAULT = jaxrnn.Strategy()


def lstm_stand_in(
    x,
    h_0,
    c_0,
    weights,
    seq_lengths,
    input_size,
    hidden_size,
    num_layers,
    dropout,
    bidirectional,
    precision=None,
):
    """`jax.experimental.rnn.lstm`'s signature and semantics, computed by its `lstm_ref`.

    `lstm_ref` reads the final carry at index ``seq_lengths - 1``: right for every length but
    0, where it takes the carry after the last (padded) step. Here a length of 0 gives the
    initial carry, as cuDNN's padded-IO semantics would (cuDNN itself fails on it, jax#17966,
    which `jaxrnn.cudnn` avoids; `test_no_length_0_reaches_cudnn` checks that).
    """
    del precision
    unpacked = rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
    y, h_n, c_n = rnn.lstm_ref(
        x, h_0, c_0, *unpacked, seq_lengths, input_size, hidden_size, num_layers, dropout,
        bidirectional,
    )  # fmt: skip
    empty = (seq_lengths == 0)[None, :, None]
    return y, jnp.where(empty, h_0, h_n), jnp.where(empty, c_0, c_n)


@pytest.fixture
def on_gpu(monkeypatch):
    """`jaxrnn.cudnn` told it runs on an NVIDIA GPU, its call of `jax.experimental.rnn.lstm`
    replaced by `lstm_stand_in`; yields the ``seq_lengths`` of every call."""
    calls = []

    def stand_in(x, h_0, c_0, weights, seq_lengths, **options):
        calls.append(seq_lengths)
        return lstm_stand_in(x, h_0, c_0, weights, seq_lengths, **options)

    monkeypatch.setattr(cudnn, "_backend", lambda: cudnn.NVIDIA_GPU)
    monkeypatch.setattr(cudnn.rnn, "lstm", stand_in)
    return calls


@contextlib.contextmanager
def no_fallback():
    """A context in which a `CudnnFallbackWarning` is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CudnnFallbackWarning)
        yield


def init(cell, input_size=IN, dtype=jnp.float32, key=0):
    params = cell.init(jax.random.key(key), input_size=input_size, dtype=dtype)
    return jax.tree.map(lambda p: p + jnp.asarray(0.1, p.dtype), params)  # a bias everywhere


def normal(key, shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(key), shape, dtype)


def assert_trees_close(got, want, rtol=1e-5, atol=1e-6):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def assert_trees_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


# --- The reference the stand-in is built on ----------------------------------------------


def test_lstm_ref_reads_seq_lengths_as_cudnn_does_except_a_length_of_0():
    # Given lstm_ref on jaxrnn params, with a random initial carry and lengths T, 3, 0, 1
    cell = jaxrnn.lstm(H)
    params, xs = init(cell), normal(1, (B, T, IN))
    carry = jaxrnn.LSTMCarry(normal(2, (B, H)), normal(3, (B, H)))
    unpacked = rnn.unpack_lstm_weights(to_cudnn([params]), IN, H, 1, False)
    args = (xs, carry.h[None], carry.c[None], *unpacked, LENGTHS, IN, H, 1, 0.0, False)
    ys, h_n, c_n = rnn.lstm_ref(*args)
    want, want_ys = jaxrnn.unroll(cell, params, xs, initial_carry=carry, seq_lengths=LENGTHS)

    # Then the outputs are zero after each length (all of them for the empty row) ...
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-6)
    assert not np.any(ys[2]) and not np.any(ys[1, 3:])
    # ... and the final carry is the one after each row's last valid step, as cuDNN gives
    ran = np.asarray(LENGTHS > 0)
    np.testing.assert_allclose(h_n[0][ran], want.h[ran], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n[0][ran], want.c[ran], rtol=1e-5, atol=1e-6)
    # But for a length of 0 it reads index -1: the carry after all T (padded) steps
    whole, _ = jaxrnn.unroll(cell, params, xs[2], initial_carry=jax.tree.map(lambda c: c[2], carry))
    np.testing.assert_allclose(h_n[0, 2], whole.h, rtol=1e-5, atol=1e-6)
    assert not np.allclose(h_n[0, 2], carry.h[2])
    # which the stand-in corrects to the initial carry
    _, h_fixed, c_fixed = lstm_stand_in(
        xs, carry.h[None], carry.c[None], to_cudnn([params]), LENGTHS, IN, H, 1, 0.0, False
    )
    np.testing.assert_array_equal(h_fixed[0, 2], carry.h[2])
    np.testing.assert_array_equal(c_fixed[0, 2], carry.c[2])
    np.testing.assert_array_equal(h_fixed[0][ran], h_n[0][ran])


# --- Falling back ------------------------------------------------------------------------


def mixed(hidden_size, compute_dtype, **options):
    """``jaxrnn.lstm(hidden_size, compute_dtype=...)``; where the factory does not take it yet,
    a `Cell` that only carries the field (`jaxrnn.cudnn` reads it with getattr)."""
    try:
        return jaxrnn.lstm(hidden_size, compute_dtype=compute_dtype, **options)
    except TypeError:

        class Mixed(jaxrnn.Cell):
            pass

        Mixed.compute_dtype = compute_dtype
        return Mixed(*jaxrnn.lstm(hidden_size, **options))


def lstm_call(**kwargs):
    cell = jaxrnn.lstm(H)
    return cell, init(cell), normal(1, (B, T, IN)), kwargs


def gru_call():
    cell = jaxrnn.gru(H)
    return cell, init(cell), normal(1, (B, T, IN)), {"seq_lengths": LENGTHS}


def projected_call():
    cell = jaxrnn.lstm(H, proj_size=2)
    return cell, init(cell), normal(1, (B, T, IN)), {}


def image_call():
    cell = jaxrnn.conv_lstm(2, (1, 1))
    shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size=IN))
    params = jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), shapes)  # no QR to compile
    return cell, params, normal(1, (2, T, 2, 2, IN)), {"seq_lengths": jnp.array([T, 2])}


def wrapped_call():
    cell = jaxrnn.lstm(H)
    keep = jax.random.bernoulli(jax.random.key(5), 0.75, (B, H)).astype(jnp.float32) / 0.75
    return jaxrnn.with_recurrent_dropout(cell, keep), init(cell), normal(1, (B, T, IN)), {}


def bfloat16_call():
    cell = jaxrnn.lstm(H)
    params = init(cell, dtype=jnp.bfloat16)
    return cell, params, normal(1, (B, T, IN), jnp.bfloat16), {}


def bfloat16_compute_call():
    cell = mixed(H, jnp.dtype(jnp.bfloat16))
    return cell, init(cell), normal(1, (B, T, IN)), {"seq_lengths": LENGTHS}


MASK = jnp.array([[True, False, True, True, True, True]] * B)
RESETS = jnp.zeros((B, T), bool).at[:, 3].set(True)

# name: (the call, the phrase of its reason); each runs with the backend check told "GPU"
FALLBACKS = {
    "another family": (gru_call, "is not an LSTM"),
    "proj_size": (projected_call, "has a projection (proj_size)"),
    "wrapped step": (wrapped_call, "is a wrapped LSTM"),
    "mask": (lambda: lstm_call(mask=MASK), "a mask"),
    "prefix mask": (lambda: lstm_call(mask=jnp.arange(T)[None, :] < LENGTHS[:, None]), "a mask"),
    "mask and lengths": (lambda: lstm_call(mask=MASK, seq_lengths=LENGTHS), "a mask"),
    "resets": (lambda: lstm_call(resets=RESETS), "resets (packed sequences)"),
    "bfloat16 params": (bfloat16_call, "computes in bfloat16"),
    "bfloat16 compute": (bfloat16_compute_call, "computes in bfloat16"),
}


def run_both(cell, params, xs, kwargs):
    """``(cudnn=True result, its warnings, default result)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jaxrnn.unroll(cell, params, xs, strategy=CUDNN, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CudnnFallbackWarning)
        want = jaxrnn.unroll(cell, params, xs, strategy=DEFAULT, **kwargs)
    return got, [w for w in caught if w.category is CudnnFallbackWarning], want


def assert_fell_back(cell, params, xs, kwargs, phrase):
    got, caught, want = run_both(cell, params, xs, kwargs)
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert repr(cell) in message and phrase in message, message
    assert "runs on the default path, not cuDNN" in message
    assert caught[0].filename == __file__  # the warning points at the call
    assert_trees_equal(got, want)


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_a_call_cudnn_cannot_run_warns_why_and_runs_the_default_path(on_gpu, name):
    make, phrase = FALLBACKS[name]
    cell, params, xs, kwargs = make()
    assert_fell_back(cell, params, xs, kwargs, phrase)
    assert not on_gpu  # cuDNN was never called


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the backend reason of a CPU")
def test_on_cpu_the_backend_is_the_reason():
    cell, params, xs, kwargs = lstm_call(seq_lengths=LENGTHS)
    assert cudnn._backend() == "cpu"
    assert_fell_back(cell, params, xs, kwargs, "the backend is cpu, not an NVIDIA GPU")
    assert cudnn.why_not(cell, params, xs) == "the backend is cpu, not an NVIDIA GPU"


def test_inside_portable_the_artifact_is_the_reason(on_gpu):
    cell, params, xs, kwargs = lstm_call(seq_lengths=LENGTHS)
    with portable():
        assert_fell_back(cell, params, xs, kwargs, "inside jaxrnn.portable")
    assert not on_gpu


def test_a_matmul_precision_cudnn_refuses_is_the_reason(on_gpu):
    cell, params, xs, kwargs = lstm_call()
    with jax.default_matmul_precision("bfloat16"):
        assert_fell_back(cell, params, xs, kwargs, "jax_default_matmul_precision='bfloat16'")
    assert not on_gpu


def test_an_empty_batch_is_the_reason(on_gpu):
    cell, params, _, kwargs = lstm_call()
    assert_fell_back(cell, params, jnp.zeros((0, T, IN)), kwargs, "the batch is empty")
    assert not on_gpu


def test_symbolic_shapes_are_the_reason(on_gpu):
    cell, params, xs, _ = lstm_call()
    batch, steps = jax.export.symbolic_shape("b, t")
    spec = jax.ShapeDtypeStruct((batch, steps, IN), jnp.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = jax.jit(lambda xs: jaxrnn.unroll(cell, params, xs, strategy=CUDNN)[1])
        exported = jax.export.export(f, platforms=("cpu",))(spec)
    (warning,) = [w for w in caught if w.category is CudnnFallbackWarning]
    assert "is symbolic (jax.export)" in str(warning.message)
    want = jaxrnn.unroll(cell, params, xs)[1]
    np.testing.assert_allclose(exported.call(xs), want, rtol=1e-6, atol=1e-7)
    assert not on_gpu


def test_why_not_names_the_reason_before_the_call(on_gpu):
    image, image_params, frames, kwargs = image_call()
    reason = cudnn.why_not(image, image_params, frames, **kwargs)
    assert reason == (
        "jaxrnn.conv_lstm(hidden_size=2) reads images (input_axes=3); cuDNN's LSTM reads vectors"
    )
    cell, params, xs, _ = lstm_call()
    assert cudnn.why_not(cell, params, xs, seq_lengths=LENGTHS, reverse=True) is None
    assert cudnn.why_not(cell, params, xs, mask=MASK).startswith("a mask")
    assert cudnn.why_not(jaxrnn.gru(H), init(jaxrnn.gru(H)), xs) == (
        "jaxrnn.gru(hidden_size=5) is not an LSTM (cuDNN runs jaxrnn.lstm only)"
    )
    assert not on_gpu


# --- The plumbing, on a stand-in for cuDNN -----------------------------------------------

CARRY = jaxrnn.LSTMCarry(normal(2, (B, H)), normal(3, (B, H)))

# name: (xs, seq_lengths, unroll's other keywords)
CALLS = {
    "lengths": (normal(1, (B, T, IN)), LENGTHS, ()),
    "lengths, reversed": (normal(1, (B, T, IN)), LENGTHS, (("reverse", True),)),
    "no lengths, reversed": (normal(1, (B, T, IN)), None, (("reverse", True),)),
    "time-major, two batch axes, reversed": (
        normal(1, (T, 2, 2, IN)),
        LENGTHS.reshape(2, 2),
        (("reverse", True), ("time_major", True)),
    ),
}


@functools.cache  # one compilation per kind of call and strategy, shared by the tests
def results(options, strategy):
    """``((loss, (final carry, ys)), gradients)`` of ``(params, xs, initial carry)`` for
    ``(params, xs, initial carry, seq_lengths)``, jitted (the lengths traced), for a
    ``jaxrnn.lstm(H)``; the loss reads the outputs and both parts of the final carry."""
    cell = jaxrnn.lstm(H)

    def loss(params, xs, carry, lengths):
        final, ys = jaxrnn.unroll(
            cell, params, xs, initial_carry=carry, seq_lengths=lengths, strategy=strategy,
            **dict(options),
        )  # fmt: skip
        value = jnp.sum(jnp.sin(ys)) + jnp.sum(final.h * final.c) + jnp.sum(jnp.cos(final.c))
        return value, (final, ys)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))


@pytest.mark.parametrize("name", list(CALLS))
def test_cudnn_gives_the_default_paths_values_and_gradients(on_gpu, name):
    # Given a plain LSTM, a call cuDNN can take and a random initial carry
    xs, lengths, options = CALLS[name]
    params = init(jaxrnn.lstm(H))
    batch = xs.shape[1:-1] if dict(options).get("time_major") else xs.shape[:-2]
    carry = jax.tree.map(lambda c: c.reshape((*batch, H)), CARRY)

    # When it runs with cudnn=True and with the default strategy
    with no_fallback():
        got = results(options, CUDNN)(params, xs, carry, lengths)
    want = results(options, DEFAULT)(params, xs, carry, lengths)

    # Then cuDNN ran, and the values and the gradients (params, xs, carry) are the same
    assert len(on_gpu) == 1
    assert_trees_close(got[0], want[0])
    assert_trees_close(got[1], want[1], rtol=1e-4, atol=1e-5)


def test_no_length_0_reaches_cudnn(on_gpu):
    # cuDNN fails on a sequence of length 0 (jax#17966): such a row runs one step instead,
    # and its final carry is still the initial one (zeros here), its outputs zero
    cell = jaxrnn.lstm(H)
    params, xs = init(cell), normal(1, (B, T, IN))
    with no_fallback():
        got = jaxrnn.unroll(cell, params, xs, seq_lengths=LENGTHS, strategy=CUDNN)
    (lengths,) = on_gpu
    np.testing.assert_array_equal(lengths, [T, 3, 1, 1])
    assert lengths.dtype == jnp.int32
    assert_trees_close(got, jaxrnn.unroll(cell, params, xs, seq_lengths=LENGTHS))
    assert not np.any(got[0].h[2]) and not np.any(got[1][2])


def test_stacked_and_bidirectional_layers_run_each_direction_through_cudnn(on_gpu):
    # Given an LSTM under a bidirectional LSTM, both made with cudnn=True, and the same with
    # the default strategy
    def make(strategy):
        bidirectional = jaxrnn.bidirectional(jaxrnn.lstm(H), strategy=strategy)
        return jaxrnn.stacked([jaxrnn.lstm(H), bidirectional], strategy=strategy)

    layer, reference = make(CUDNN), make(DEFAULT)
    params = jax.tree.map(lambda p: p + 0.1, layer.init(jax.random.key(0), input_size=IN))
    xs = normal(1, (B, T, IN))

    def run(layer):
        def loss(params, xs):
            carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
            value = jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))
            return value, (carry, ys)

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, xs)

    # When both run
    with no_fallback():
        got = run(layer)
    want = run(reference)

    # Then cuDNN ran three times (the LSTM, then each direction) and gave the same
    assert len(on_gpu) == 3
    assert_trees_close(got[0], want[0])
    assert_trees_close(got[1], want[1], rtol=1e-4, atol=1e-5)


def test_a_float32_compute_dtype_runs_bfloat16_params_in_float32(on_gpu):
    # Given bfloat16 params and a cell that computes in float32
    cell = mixed(H, jnp.dtype(jnp.float32))
    params = init(cell, dtype=jnp.bfloat16)
    xs = normal(1, (B, T, IN), jnp.bfloat16)
    with no_fallback():
        carry, ys = jaxrnn.unroll(
            cell, params, xs, seq_lengths=LENGTHS, reverse=True, strategy=CUDNN
        )

    # Then cuDNN computed in float32: the outputs are float32, the carry keeps its own dtype
    assert on_gpu
    given = cell.initial_carry(params, (B,))
    assert ys.dtype == jnp.float32
    assert carry.h.dtype == given.h.dtype and carry.c.dtype == given.c.dtype
    wide = jaxrnn.lstm(H)
    want_carry, want_ys = jaxrnn.unroll(
        wide,
        jax.tree.map(lambda p: p.astype(jnp.float32), params),
        xs.astype(jnp.float32),
        seq_lengths=LENGTHS,
        reverse=True,
    )
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-6)
    tolerance = 1e-6 if given.h.dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(carry.h.astype(jnp.float32), want_carry.h, atol=tolerance)
    np.testing.assert_allclose(carry.c.astype(jnp.float32), want_carry.c, atol=tolerance)


# --- The real jax.experimental.rnn.lstm, on stand-ins for cuDNN's kernels ----------------

RESERVE = 8  # floats of the fake reserve space


def kernel_reference(x, h_0, c_0, w, seq_lengths, *, input_size, hidden_size, num_layers,
                     bidirectional, **unused):  # fmt: skip
    """cuDNN's forward kernel, including its failure on a length of 0 (as NaNs, jax#17966)."""
    del unused
    y, h_n, c_n = lstm_stand_in(
        x, h_0, c_0, w, seq_lengths, input_size, hidden_size, num_layers, 0.0, bidirectional
    )
    broken = jnp.any(seq_lengths == 0)
    return tuple(jnp.where(broken, jnp.full_like(a, jnp.nan), a) for a in (y, h_n, c_n))


def fake_forward(x, h_0, c_0, w, seq_lengths, **options):
    y, h_n, c_n = kernel_reference(x, h_0, c_0, w, seq_lengths, **options)
    return y, h_n, c_n, jnp.zeros((RESERVE,), jnp.float32)


def fake_backward(dy, dh_n, dc_n, x, h_0, c_0, w, y, reserve_space, seq_lengths, **options):
    del y, reserve_space
    run = lambda x, h_0, c_0, w: kernel_reference(x, h_0, c_0, w, seq_lengths, **options)
    _, pull_back = jax.vjp(run, x, h_0, c_0, w)
    return pull_back((dy, dh_n, dc_n))


@pytest.fixture
def fake_kernels(monkeypatch):
    """cuDNN's forward and backward kernels as CPU lowerings of `kernel_reference`."""
    from jax._src.interpreters import mlir as mlir_internal
    from jax.interpreters import mlir

    lowerings = getattr(mlir_internal, "_platform_specific_lowerings", None)
    primitives = (getattr(rnn, "rnn_fwd_p", None), getattr(rnn, "rnn_bwd_p", None))
    if lowerings is None or None in primitives:
        pytest.skip("this JAX keeps its lowerings or the RNN primitives elsewhere")
    sizes = lambda *args: (0, RESERVE)  # workspace, reserve space
    monkeypatch.setattr(rnn.gpu_rnn, "compute_rnn_workspace_reserve_space_sizes", sizes, False)
    monkeypatch.setattr(cudnn, "_backend", lambda: cudnn.NVIDIA_GPU)
    before = {p: lowerings["cpu"].get(p) for p in primitives}
    for primitive, fake in zip(primitives, (fake_forward, fake_backward), strict=True):
        mlir.register_lowering(primitive, mlir.lower_fun(fake, multiple_results=True), "cpu")
    yield
    for primitive, rule in before.items():
        if rule is None:
            lowerings["cpu"].pop(primitive, None)
        else:
            lowerings["cpu"][primitive] = rule


def test_the_kernels_stand_in_fails_on_a_length_of_0_as_cudnn_does(fake_kernels):
    x, h = jnp.ones((2, T, IN)), jnp.zeros((1, 2, H))
    w = jnp.zeros((rnn.get_num_params_in_lstm(IN, H, 1, False),))
    options = dict(input_size=IN, hidden_size=H, num_layers=1, dropout=0.0, bidirectional=False)
    _, h_n, _ = rnn.lstm(x, h, h, w, jnp.array([T, 0], jnp.int32), **options)
    assert np.all(np.isnan(h_n))


def test_the_real_custom_vjp_gives_the_default_paths_gradients(fake_kernels):
    # Given the real jax.experimental.rnn.lstm (its custom VJP returns dx, dh_0, dc_0, dw and
    # an int32 cotangent for the lengths), under jit, reversed, with lengths T, 3, 0, 1
    xs, lengths, options = CALLS["lengths, reversed"]
    params = init(jaxrnn.lstm(H))
    with no_fallback():
        got = results.__wrapped__(options, CUDNN)(params, xs, CARRY, lengths)  # traced anew
    want = results(options, DEFAULT)(params, xs, CARRY, lengths)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(got))  # no length 0 reached it
    assert_trees_close(got[0], want[0])
    assert_trees_close(got[1], want[1], rtol=1e-4, atol=1e-5)


def test_under_vmap_the_missing_batching_rule_is_the_reason(fake_kernels):
    # cuDNN's primitives have no batching rule: tracing finds that out and the default runs
    cell, params, _, _ = lstm_call()
    xs = normal(1, (2, B, T, IN))

    def mapped(strategy):
        unroll = lambda x: jaxrnn.unroll(cell, params, x, seq_lengths=LENGTHS, strategy=strategy)
        return jax.vmap(unroll)(xs)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = mapped(CUDNN)
    (warning,) = [w for w in caught if w.category is CudnnFallbackWarning]
    assert "it runs under jax.vmap" in str(warning.message)
    assert_trees_equal(got, mapped(DEFAULT))


# --- Lowering for CUDA -------------------------------------------------------------------


def cuda_lowering_skip_reason():
    if getattr(rnn.gpu_rnn, "compute_rnn_workspace_reserve_space_sizes", None) is None:
        return (
            "the jax CUDA plugin (its _rnn module) is not installed: without it "
            "jax.experimental.rnn cannot even trace the cuDNN call (its abstract evaluation asks "
            "cuDNN for the workspace size) nor lower the custom call"
        )
    if cudnn._backend() != cudnn.NVIDIA_GPU:
        return (
            f"the backend is {cudnn._backend()}: sizing cuDNN's workspace opens a cuDNN handle, "
            "which needs an NVIDIA GPU, and jaxrnn sends only NVIDIA GPU calls to cuDNN"
        )
    return None


@pytest.mark.skipif(
    cuda_lowering_skip_reason() is not None, reason=str(cuda_lowering_skip_reason())
)
def test_the_cudnn_path_and_its_gradient_lower_for_cuda():
    xs, lengths, options = CALLS["lengths, reversed"]
    params = init(jaxrnn.lstm(H))
    with no_fallback():
        exported = jax.export.export(results.__wrapped__(options, CUDNN), platforms=("cuda",))(
            params, xs, CARRY, lengths
        )
    text = exported.mlir_module()
    assert "cudnn_rnn_ffi" in text and "cudnn_rnn_bwd_ffi" in text


def test_the_fallback_warning_points_at_the_users_line_through_a_layer():
    layer = jaxrnn.rnn(jaxrnn.lstm(4), strategy=jaxrnn.Strategy(cudnn=True))
    params = layer.init(jax.random.key(0), 3)
    with pytest.warns(CudnnFallbackWarning) as caught:
        layer.apply(params, jnp.ones((2, 5, 3)))
    assert caught[0].filename == __file__
