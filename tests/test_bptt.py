"""The hand-written Elman BPTT equals jax.grad; gradient-norm diagnostics behave as taught."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn


def relative_error(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.maximum(jnp.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("activation", [jnp.tanh, jax.nn.relu, jax.nn.sigmoid])
def test_hand_written_bptt_equals_jax_grad_float64(activation):
    with jax.enable_x64(True):
        # Given an Elman RNN, inputs, an initial state and a loss reading ys and the last carry
        cell = jaxrnn.elman(6, activation=activation)
        k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
        params = cell.init(k1, 3, dtype=jnp.float64)
        params["b"] = 0.1 * jax.random.normal(k4, (6,), jnp.float64)
        xs = jax.random.normal(k2, (4, 9, 3), jnp.float64)
        h0 = 0.5 * jax.random.normal(k3, (4, 6), jnp.float64)
        targets = jnp.cos(jnp.arange(4 * 9 * 6, dtype=jnp.float64)).reshape(4, 9, 6)

        def loss(params, xs, h0):
            h_last, ys = jaxrnn.unroll(cell, params, xs, initial_carry=h0)
            return jnp.sum((ys - targets) ** 2) + jnp.sum(jnp.sin(h_last))

        # When the gradient is computed by jax.grad and by the hand-written backward scan
        auto = jax.grad(loss, argnums=(0, 1, 2))(params, xs, h0)
        h_last, ys = jaxrnn.unroll(cell, params, xs, initial_carry=h0)
        grads, dxs, dh0 = jaxrnn.elman_bptt(
            params,
            xs,
            2 * (ys - targets),
            initial_carry=h0,
            dcarry=jnp.cos(h_last),
            activation=activation,
        )
        # Then they agree to 1e-6 relative error, for params, inputs and initial state
        for key in params:
            assert relative_error(grads[key], auto[0][key]) <= 1e-6, key
        assert relative_error(dxs, auto[1]) <= 1e-6
        assert relative_error(dh0, auto[2]) <= 1e-6


def test_gradient_norms_match_direct_derivatives():
    cell = jaxrnn.gru(5)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (3, 8, 2))
    loss = lambda carry, ys: jnp.sum(ys[:, -1] ** 2) + jnp.sum(ys[:, 3])
    norms = jaxrnn.gradient_norms(cell, params, xs, loss)
    # dL/dx_t directly from jax.grad with respect to the inputs
    d_xs = jax.grad(lambda xs: loss(*jaxrnn.unroll(cell, params, xs)))(xs)
    np.testing.assert_allclose(norms["input"], jnp.linalg.norm(d_xs, axis=(0, 2)), rtol=1e-5)
    # dL/dh_T: the loss reads ys[:, -1] only at the last step, so it is 2 * y_T there
    _, ys = jaxrnn.unroll(cell, params, xs)
    np.testing.assert_allclose(norms["hidden"][-1], jnp.linalg.norm(2 * ys[:, -1]), rtol=1e-5)
    assert norms["hidden"].shape == (8,)


def test_elman_gradients_vanish_lstm_gradients_do_not():
    # A loss on the last output only: how much signal reaches step 0 out of 100?
    T = 100
    xs = jax.random.normal(jax.random.key(1), (8, T, 4))
    loss = lambda carry, ys: jnp.sum(ys[:, -1])
    ratios = {}
    for name, cell in {"elman": jaxrnn.elman(32), "lstm": jaxrnn.lstm(32)}.items():
        params = cell.init(jax.random.key(0), 4)
        if name == "elman":  # a contracting recurrence: the textbook vanishing case
            params["w_hh"] = 0.5 * params["w_hh"]
        norms = jaxrnn.gradient_norms(cell, params, xs, loss)["hidden"]
        ratios[name] = float(norms[0] / norms[-1])
    assert ratios["elman"] < 1e-12
    assert ratios["lstm"] > 1e3 * ratios["elman"]


def test_gradient_norms_rejects_cells_whose_output_is_not_h():
    bad = jaxrnn.elman(3)._replace(initial_carry=lambda p, s=(): jnp.zeros((*s, 7)))
    params = jaxrnn.elman(3).init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="needs a cell whose output is its hidden state"):
        jaxrnn.gradient_norms(bad, params, jnp.zeros((1, 4, 2)), lambda c, y: jnp.sum(y))


def test_gradient_norms_carry_includes_the_lstm_memory_cell():
    xs = jax.random.normal(jax.random.key(1), (2, 12, 3))
    loss = lambda carry, ys: jnp.sum(ys[:, -1] ** 2)
    lstm = jaxrnn.lstm(4)
    norms = jaxrnn.gradient_norms(lstm, lstm.init(jax.random.key(0), 3), xs, loss)
    assert np.all(norms["carry"] >= norms["hidden"]) and np.any(norms["carry"] > norms["hidden"])
    # For a GRU the carry is the hidden state.
    gru = jaxrnn.gru(4)
    norms = jaxrnn.gradient_norms(gru, gru.init(jax.random.key(0), 3), xs, loss)
    np.testing.assert_array_equal(norms["carry"], norms["hidden"])
