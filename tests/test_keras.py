"""Parity with Keras 3 (JAX backend) on converted weights: SimpleRNN, LSTM, GRU with both
``reset_after`` values, and Bidirectional; both directions of the conversion."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported: no TensorFlow

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

keras = pytest.importorskip("keras", reason="keras is not installed (the dev extra has it)")
if keras.backend.backend() != "jax":
    pytest.skip(f"keras runs on {keras.backend.backend()}, not jax", allow_module_level=True)

# Keras's own variables trip a NumPy 2 deprecation when converted; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
B, T, F, H = 3, 7, 4, 5


@pytest.fixture(autouse=True)
def _kerass_own_promotion_rules():
    # The suite runs JAX with implicit rank and dtype promotion refused (conftest); Keras's own
    # code relies on both, so it gets JAX's defaults here.
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


LAYERS = {
    "simple_rnn": (lambda **kw: keras.layers.SimpleRNN(H, **kw), lambda: jaxrnn.elman(H)),
    "lstm": (lambda **kw: keras.layers.LSTM(H, **kw), lambda: jaxrnn.lstm(H)),
    "gru": (lambda **kw: keras.layers.GRU(H, **kw), lambda: jaxrnn.gru(H)),
    "gru_reset_before": (
        lambda **kw: keras.layers.GRU(H, reset_after=False, **kw),
        lambda: jaxrnn.gru(H, reset_after=False),
    ),
}


def _keras_run(layer, xs):
    """Keras's outputs and final state(s) for every step; the layer is built by the call."""
    layer.return_sequences, layer.return_state = True, True
    out = layer(xs)
    return np.asarray(out[0]), [np.asarray(s) for s in out[1:]]


def _randomize(layer, seed):
    # Non-zero biases (Keras starts them at zero, the LSTM's forget bias at one).
    rng = np.random.default_rng(seed)
    layer.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in layer.get_weights()])


def _xs(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype(np.float32)


@pytest.mark.parametrize("name", LAYERS)
def test_from_keras_gives_kerass_outputs_and_states(name):
    make_layer, make_cell = LAYERS[name]
    layer, cell, xs = make_layer(), make_cell(), _xs()
    _keras_run(layer, xs)
    _randomize(layer, 1)
    ys_keras, states = _keras_run(layer, xs)
    params = jaxrnn.interop.from_keras(cell, layer)
    carry, ys = jaxrnn.unroll(cell, params, jnp.asarray(xs))
    np.testing.assert_allclose(ys, ys_keras, atol=1e-5)
    ours = [carry.h, carry.c] if name == "lstm" else [carry]  # Keras: [h, c] for the LSTM
    for got, want in zip(ours, states, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_to_keras_sets_a_keras_layer_to_jaxrnns_numbers(name):
    make_layer, make_cell = LAYERS[name]
    layer, cell, xs = make_layer(), make_cell(), _xs(2)
    _keras_run(layer, xs)  # builds it
    params = cell.init(jax.random.key(3), input_size=F)
    params = jax.tree.map(lambda p: p + 0.2 * jnp.cos(jnp.arange(p.size)).reshape(p.shape), params)
    layer.set_weights(jaxrnn.interop.to_keras(cell, params))
    ys_keras, _ = _keras_run(layer, xs)
    np.testing.assert_allclose(jaxrnn.unroll(cell, params, jnp.asarray(xs))[1], ys_keras, atol=1e-5)
    round_trip = jaxrnn.interop.from_keras(cell, jaxrnn.interop.to_keras(cell, params))
    if name != "gru_reset_before":  # there the two biases come back as their sum
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), round_trip, params)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bidirectional_both_ways(name):
    make_layer, make_cell = LAYERS[name]
    bidirectional = lambda: keras.layers.Bidirectional(make_layer(return_sequences=True))
    layer, cell, xs = bidirectional(), make_cell(), _xs(4)
    layer(xs)
    _randomize(layer, 5)
    ys_keras = np.asarray(layer(xs))
    params = jaxrnn.interop.from_keras(cell, layer)
    _, ys = jaxrnn.bidirectional(cell).apply(params, jnp.asarray(xs))
    np.testing.assert_allclose(ys, ys_keras, atol=1e-5)
    fresh = bidirectional()
    fresh(xs)
    fresh.set_weights(jaxrnn.interop.to_keras(cell, params))
    np.testing.assert_allclose(np.asarray(fresh(xs)), ys_keras, atol=1e-6)


def test_from_keras_refuses_what_would_silently_differ():
    xs = _xs()
    gru_before = keras.layers.GRU(H, reset_after=False)
    gru_before(xs)
    with pytest.raises(
        ValueError, match=r"reset_after=False: use jaxrnn.gru\(h, reset_after=False"
    ):
        jaxrnn.interop.from_keras(jaxrnn.gru(H), gru_before)
    with pytest.raises(ValueError, match=r"\(3h,\) bias is a GRU with reset_after=False"):
        jaxrnn.interop.from_keras(jaxrnn.gru(H), gru_before.get_weights())
    lstm = keras.layers.LSTM(H, recurrent_activation="hard_sigmoid")
    lstm(xs)
    with pytest.raises(ValueError, match="recurrent_activation=hard_sigmoid"):
        jaxrnn.interop.from_keras(jaxrnn.lstm(H), lstm)
    with pytest.raises(ValueError, match=r"takes a keras.layers.LSTM, got a GRU"):
        jaxrnn.interop.from_keras(jaxrnn.lstm(H), gru_before)
    with pytest.raises(ValueError, match=r"has hidden_size=4; the layer has units=5"):
        jaxrnn.interop.from_keras(jaxrnn.gru(4, reset_after=False), gru_before)
    with pytest.raises(
        ValueError, match=r"recurrent_kernel \(5, 20\), got \(4, 15\) and \(5, 15\)"
    ):
        jaxrnn.interop.from_keras(jaxrnn.lstm(H), gru_before.get_weights())
    with pytest.raises(TypeError, match="cell must be"):
        jaxrnn.interop.from_keras(jaxrnn.mingru(H), gru_before)
