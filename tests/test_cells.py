"""Cell init conventions and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

GATES = {"elman": 1, "lstm": 4, "gru": 3}


@pytest.mark.parametrize("name", GATES)
def test_init_shapes_orthogonal_blocks_and_dtype(name):
    cell = getattr(jaxrnn, name)(6)
    params = cell.init(jax.random.key(0), input_size=3, dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(params))
    params = cell.init(jax.random.key(0), input_size=3)
    g = GATES[name]
    assert params["w_ih"].shape == (3, g * 6)
    assert params["w_hh"].shape == (6, g * 6)
    for block in jnp.split(params["w_hh"], g, axis=-1):
        np.testing.assert_allclose(block.T @ block, np.eye(6), atol=1e-5)
    # LeCun-normal input weights: variance about 1 / input_size.
    wide = cell.init(jax.random.key(1), input_size=200)["w_ih"]
    assert 0.7 / 200 < float(jnp.var(wide)) < 1.3 / 200


def test_lstm_forget_bias_and_carry_names():
    cell = jaxrnn.lstm(4, forget_bias=1.0)
    params = cell.init(jax.random.key(0), input_size=2)
    np.testing.assert_array_equal(
        params["b"].reshape(4, 4), np.array([[0.0] * 4, [1.0] * 4, [0.0] * 4, [0.0] * 4])
    )
    carry = cell.initial_carry(params, (3,))
    assert carry._fields == ("h", "c") and carry.h.shape == (3, 4)


def test_lstm_step_maths():
    # Given hand-set weights, the step equals the textbook equations.
    cell = jaxrnn.lstm(1)
    params = {
        "w_ih": jnp.array([[1.0, 2.0, 3.0, 4.0]]),
        "w_hh": jnp.array([[0.5, 0.5, 0.5, 0.5]]),
        "b": jnp.array([0.1, 0.2, 0.3, 0.4]),
    }
    carry = jaxrnn.LSTMCarry(h=jnp.array([0.2]), c=jnp.array([0.7]))
    (new, y) = cell.step(params, carry, jnp.array([1.0]))
    s = lambda v: 1 / (1 + np.exp(-v))
    i, f, g, o = (1 + 0.1 + 0.1), (2 + 0.1 + 0.2), (3 + 0.1 + 0.3), (4 + 0.1 + 0.4)
    c = s(f) * 0.7 + s(i) * np.tanh(g)
    np.testing.assert_allclose(new.c, [c], rtol=1e-6)
    np.testing.assert_allclose(y, [s(o) * np.tanh(c)], rtol=1e-6)


def test_gru_reset_gate_multiplies_hidden_bias():
    # Given only a hidden bias on the n gate, a closed reset gate removes it.
    cell = jaxrnn.gru(1)
    params = {
        "w_ih": jnp.zeros((1, 3)),
        "b_ih": jnp.array([-1e4, 0.0, 0.0]),
        "w_hh": jnp.zeros((1, 3)),
        "b_hh": jnp.array([0.0, 0.0, 2.0]),
    }
    h, _ = cell.step(params, jnp.zeros(1), jnp.zeros(1))
    np.testing.assert_allclose(h, [0.0], atol=1e-6)  # r = 0: n = tanh(0), z = 0.5, h = 0
    params["b_ih"] = jnp.array([1e4, 0.0, 0.0])
    h, _ = cell.step(params, jnp.zeros(1), jnp.zeros(1))
    np.testing.assert_allclose(h, [0.5 * np.tanh(2.0)], rtol=1e-6)


def test_elman_activation_is_used():
    cell = jaxrnn.elman(2, activation=jax.nn.relu)
    params = {"w_ih": -jnp.eye(2), "w_hh": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
    h, _ = cell.step(params, jnp.zeros(2), jnp.array([1.0, -1.0]))
    np.testing.assert_array_equal(h, [0.0, 1.0])


@pytest.mark.parametrize(
    "bad, kind",
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("8", TypeError)],
)
def test_error_hidden_size(bad, kind):
    # A wrong value is a ValueError, a wrong kind of thing (float, bool, str) a TypeError.
    with pytest.raises(kind, match=f"hidden_size must be a positive int, got {bad!r}"):
        jaxrnn.lstm(bad)


def test_error_input_size():
    with pytest.raises(ValueError, match="input_size must be a positive int, got 0"):
        jaxrnn.gru(4).init(jax.random.key(0), 0)


def test_error_params_not_a_dict_or_wrong_dtype():
    cell = jaxrnn.elman(2)
    with pytest.raises(
        TypeError,
        match=r"params must be the dict returned by elman\(hidden_size="
        r"2\).init, got list",
    ):
        cell.check_params([1, 2])
    params = cell.init(jax.random.key(0), 3)
    params["b"] = params["b"].astype(jnp.int32)
    with pytest.raises(TypeError, match=r"params\['b'\] must be a real floating-point array"):
        cell.check_params(params)


@pytest.mark.parametrize("make", [jaxrnn.lstm, jaxrnn.gru, jaxrnn.mingru])
def test_a_replaced_step_is_what_unroll_runs(make):
    # Any wrapper goes through replace_step, which drops the fast paths derived from the old
    # step (the fused LSTM/GRU passes, the parallel scan), so the new step is never bypassed.
    from jaxrnn.cells.base import hidden_state
    from jaxrnn.cells.base import replace_step
    from jaxrnn.cells.base import with_hidden_state

    cell = make(8)
    params = cell.init(jax.random.key(0), input_size=3)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))

    def doubled(params, carry, px):
        carry, _ = cell.step_projected(params, carry, px)
        h = 2 * hidden_state(carry)
        return with_hidden_state(carry, h), h

    wrapped = replace_step(cell, doubled, name=f"doubled_{cell.name}")
    assert wrapped.fused is None and wrapped.linear is None and wrapped.output is cell.output
    _, ys = jaxrnn.unroll(wrapped, params, xs)
    carry = cell.initial_carry(params, (2,))
    expected = []
    for t in range(5):
        carry, y = doubled(params, carry, cell.project(params, xs[:, t]))
        expected.append(y)
    np.testing.assert_allclose(ys, jnp.stack(expected, axis=1), rtol=1e-5, atol=1e-6)


def test_every_family_is_listed_with_its_factory_and_built_by_name():
    from jaxrnn.cells import FAMILIES
    from jaxrnn.cells import by_name

    assert set(FAMILIES) == {
        "elman",
        "lstm",
        "gru",
        "gru_reset_before",
        "conv_lstm",
        "rg_lru",
        "mgu",
        "mingru",
        "minlstm",
        "lru",
        "slstm",
        "mlstm",
        "mamba",
    }
    for name, family in FAMILIES.items():
        if name == "gru_reset_before":  # jaxrnn.gru(h, reset_after=False)
            assert family.make.func is jaxrnn.gru and family.make.keywords == {"reset_after": False}
        else:
            assert family.make is getattr(jaxrnn, name)
        assert by_name(name, 4).name == name
    # The gate count is the width of w_hh over h for the classic cells.
    for name in ("elman", "lstm", "gru", "mgu"):
        params = by_name(name, 5).init(jax.random.key(0), input_size=2)
        assert params["w_hh"].shape == (5, FAMILIES[name].gates * 5)
    with pytest.raises(ValueError, match=r"cell must be one of \['gru', 'lstm'\], got 'elman'"):
        by_name("elman", 4, allowed=("lstm", "gru"))


@pytest.mark.parametrize("make", [jaxrnn.lstm, jaxrnn.gru])
def test_store_gates_is_an_option_checked_like_the_others(make):
    # It replaces a module global that tests had to monkeypatch.
    assert make(8, store_gates=True).fused is not None
    with pytest.raises(TypeError, match="store_gates must be None, True or False, got 'yes'"):
        make(8, store_gates="yes")


def test_store_gates_and_by_name_refuse_lookalikes():
    from jaxrnn.cells import by_name

    for bad in (0, 1, 1.0, np.True_):
        with pytest.raises(TypeError, match="store_gates must be None, True or False"):
            jaxrnn.lstm(4, store_gates=bad)
    with pytest.raises(ValueError, match="allowed must name families"):
        by_name("lstm", 4, allowed="lstm")
    with pytest.raises(ValueError, match="allowed must name families"):
        by_name("foo", 4, allowed=("lstm", "foo"))


def _keras_gru_reset_before(params, xs, h0):
    """Keras GRU(reset_after=False) in numpy: the reset gate multiplies h before W_hn."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    sig = lambda v: 1 / (1 + np.exp(-v))
    h, n_h, ys = np.asarray(h0, np.float64), h0.shape[-1], []
    for t in range(xs.shape[1]):
        a = np.asarray(xs[:, t], np.float64) @ p["w_ih"] + p["b_ih"]
        u = h @ p["w_hh"][:, : 2 * n_h] + p["b_hh"][: 2 * n_h]
        r = sig(a[:, :n_h] + u[:, :n_h])
        z = sig(a[:, n_h : 2 * n_h] + u[:, n_h:])
        n = np.tanh(a[:, 2 * n_h :] + (r * h) @ p["w_hh"][:, 2 * n_h :] + p["b_hh"][2 * n_h :])
        h = (1 - z) * n + z * h
        ys.append(h)
    return h, np.stack(ys, axis=1)


def test_gru_with_the_reset_gate_before_the_product_matches_keras_convention():
    cell = jaxrnn.gru(5, reset_after=False)
    params = cell.init(jax.random.key(0), input_size=3)
    params = jax.tree.map(lambda p: p + 0.3 * jnp.cos(jnp.arange(p.size)).reshape(p.shape), params)
    xs = jax.random.normal(jax.random.key(1), (4, 7, 3))
    h0 = jax.random.normal(jax.random.key(2), (4, 5))
    h, ys = jax.jit(lambda p, x, c: jaxrnn.unroll(cell, p, x, initial_carry=c))(params, xs, h0)
    h_ref, ys_ref = _keras_gru_reset_before(params, xs, h0)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
    # It differs from the default convention, has no fused pass, and the converters refuse it.
    _, ys_after = jaxrnn.unroll(jaxrnn.gru(5), params, xs, initial_carry=h0)
    assert float(jnp.abs(ys_after - ys).max()) > 1e-3
    assert cell.fused is None and cell.name == "gru_reset_before"
    with pytest.raises(TypeError, match="cell must be"):
        jaxrnn.interop.to_flax(cell, params)
    # Padding, layers, gradients and vmap work as for every cell.
    lengths = jnp.array([7, 3, 1, 0])
    bi = jaxrnn.bidirectional(cell)
    bi_params = bi.init(jax.random.key(3), input_size=3)
    grads = jax.grad(lambda p: jnp.sum(bi.apply(p, xs, seq_lengths=lengths)[1] ** 2))(bi_params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    _, short = jaxrnn.unroll(cell, params, xs[1:2, :3], initial_carry=h0[1:2])
    _, padded = jaxrnn.unroll(cell, params, xs, initial_carry=h0, seq_lengths=lengths)
    np.testing.assert_allclose(padded[1, :3], short[0], rtol=1e-5, atol=1e-7)
    stacked = jax.vmap(lambda x: jaxrnn.unroll(cell, params, x)[1])(jnp.stack([xs, xs]))
    assert stacked.shape == (2, 4, 7, 5)
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        jaxrnn.gru(5, reset_after=0)
