"""The hand-written LSTM/GRU sequence backward passes equal JAX autodiff of the scan."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

B, T, F, H = 4, 9, 3, 6


@functools.cache
def setup(name, dtype=jnp.float32, store_gates=None):
    cell = getattr(jaxrnn, name)(H, store_gates=store_gates)
    params = cell.init(jax.random.key(0), F, dtype=dtype)
    params = jax.tree.map(
        lambda p: p + 0.1 * jnp.sin(jnp.arange(p.size, dtype=dtype)).reshape(p.shape), params
    )
    xs = jax.random.normal(jax.random.key(1), (B, T, F), dtype)
    carry0 = jax.tree.map(lambda c: c + 0.2, cell.initial_carry(params, (B,)))
    return cell, params, xs, carry0


def relative(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.maximum(jnp.linalg.norm(b), 1e-30))


@pytest.fixture(params=["recompute, chunks of 3", "store, chunks of 3", "store, one chunk"])
def gate_policy(request, monkeypatch):
    """Both backward strategies at test sizes (recompute the gates, or store them), with the
    backward loop in chunks of 3 steps (t = 9) or in one chunk (what `chunk_length` picks
    for so short a sequence)."""
    if "chunks of 3" in request.param:
        monkeypatch.setattr(jaxrnn.cells.fused, "chunk_length", lambda t, step_bytes: 3)
    else:
        assert jaxrnn.cells.fused.chunk_length(T, 4 * B * H * 4) == T
    return request.param.startswith("store")  # the cells' store_gates option


# Direction x padding x which results the loss reads (an unread one has a symbolic-zero
# cotangent): every pair of the three covered, in six cases rather than twelve.
CASES = [
    (False, False, "ys+h+c"),
    (True, True, "ys+h+c"),
    (False, True, "ys"),
    (True, False, "ys"),
    (False, True, "h+c"),
    (True, False, "h+c"),
]


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize(("reverse", "with_lengths", "uses"), CASES)
def test_fused_equals_autodiff(name, reverse, with_lengths, uses, gate_policy):
    cell, params, xs, carry0 = setup(name, store_gates=gate_policy)
    lengths = jnp.array([T, 5, 0, 1]) if with_lengths else None

    def loss(params, xs, carry0, fused):
        carry, ys = jaxrnn.unroll(
            cell,
            params,
            xs,
            seq_lengths=lengths,
            reverse=reverse,
            initial_carry=carry0,
            strategy=jaxrnn.Strategy(fused=fused),
        )
        carry_leaves = jax.tree.leaves(carry) if "h" in uses else []
        value = sum(jnp.sum(c * c) for c in carry_leaves)
        if "ys" in uses:  # without them the outputs' cotangent is a symbolic zero
            value = value + jnp.sum(jnp.sin(ys) * jnp.cos(xs[..., :1]))
        return value, (carry, ys)

    grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    (v_f, (c_f, y_f)), g_f = jax.jit(grad, static_argnums=3)(params, xs, carry0, True)
    (v_a, (c_a, y_a)), g_a = jax.jit(grad, static_argnums=3)(params, xs, carry0, False)
    np.testing.assert_allclose(v_f, v_a, rtol=1e-6)
    chex.assert_trees_all_close((c_f, y_f), (c_a, y_a), atol=1e-6)
    for fused_leaf, auto_leaf in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_a), strict=True):
        assert relative(fused_leaf, auto_leaf) < 1e-5


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_fused_gradients_float64(name, gate_policy):
    with jax.enable_x64(True):
        cell, params, xs, carry0 = setup(name, jnp.float64, store_gates=gate_policy)
        lengths = jnp.array([T, 3, 0, 7])

        def loss(params, xs, fused):
            carry, ys = jaxrnn.unroll(
                cell,
                params,
                xs,
                seq_lengths=lengths,
                strategy=jaxrnn.Strategy(fused=fused),
                initial_carry=carry0,
            )
            return jnp.sum(ys**3) + jnp.sum(jax.tree.leaves(carry)[0])

        g_f = jax.grad(loss, argnums=(0, 1))(params, xs, True)
        g_a = jax.grad(loss, argnums=(0, 1))(params, xs, False)
        for fused_leaf, auto_leaf in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_a), strict=True):
            assert relative(fused_leaf, auto_leaf) < 1e-12


def test_large_lstm_stores_its_gates_and_still_equals_autodiff():
    cell = jaxrnn.lstm(256)  # stores the gates instead of recomputing them
    params = cell.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (2, 5, F))
    lengths = jnp.array([5, 2])
    loss = lambda p, fused: jnp.sum(
        jnp.sin(
            jaxrnn.unroll(
                cell,
                p,
                xs,
                seq_lengths=lengths,
                reverse=True,
                strategy=jaxrnn.Strategy(fused=fused),
            )[1]
        )
    )
    g_f, g_a = jax.grad(loss)(params, True), jax.grad(loss)(params, False)
    for key in params:
        assert relative(g_f[key], g_a[key]) < 1e-5, key


def test_fused_unbatched_and_under_vmap():
    cell, params, xs, _ = setup("lstm")
    loss = lambda p, x, fused: jnp.sum(
        jaxrnn.unroll(cell, p, x, strategy=jaxrnn.Strategy(fused=fused))[1] ** 2
    )
    single = jax.grad(loss)(params, xs[0], True)
    np.testing.assert_allclose(
        single["w_hh"], jax.grad(loss)(params, xs[0], False)["w_hh"], rtol=1e-5, atol=1e-7
    )
    mapped = jax.vmap(jax.grad(loss), in_axes=(None, 0, None))(params, xs, True)
    np.testing.assert_allclose(mapped["w_hh"][0], single["w_hh"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reverse", [False, True])
def test_a_wide_lstm_forward_with_split_products_equals_the_scan(reverse):
    # From SPLIT_PRODUCTS_FROM units the forward-only pass runs x W_ih and h W_hh apart, two
    # steps per loop iteration; values must not change, with lengths, resets and odd lengths.
    from jaxrnn.cells.fused import SPLIT_PRODUCTS_FROM

    cell = jaxrnn.lstm(SPLIT_PRODUCTS_FROM)
    params = cell.init(jax.random.key(0), 5)
    xs = jax.random.normal(jax.random.key(1), (3, 7, 5))
    options = dict(
        seq_lengths=jnp.array([7, 3, 0]),
        resets=jnp.zeros((3, 7), bool).at[0, 4].set(True),
        reverse=reverse,
    )
    fused = jaxrnn.unroll(cell, params, xs, **options)
    plain = jaxrnn.unroll(cell, params, xs, strategy=jaxrnn.Strategy(fused=False), **options)
    chex.assert_trees_all_close(fused, plain, atol=2e-6)
