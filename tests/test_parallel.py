"""Linear recurrences (minGRU, minLSTM, LRU): parallel scan equals sequential scan; remat
equals the plain scan; both in values and gradients."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy

B, T, F = 3, 11, 4
LINEAR = {
    "mingru": lambda: jaxrnn.mingru(6),
    "minlstm": lambda: jaxrnn.minlstm(6),
    "lru": lambda: jaxrnn.lru(5, state_size=7),
}


@functools.cache
def setup(name):
    cell = LINEAR[name]()
    params = cell.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    return cell, params, xs


def relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_parallel_equals_sequential_values_and_gradients(name, reverse, with_lengths):
    cell, params, xs = setup(name)
    lengths = jnp.array([T, 4, 0]) if with_lengths else None
    carry0 = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (B,)))

    def loss(params, xs, mode):
        carry, ys = jaxrnn.unroll(
            cell,
            params,
            xs,
            seq_lengths=lengths,
            reverse=reverse,
            initial_carry=carry0,
            strategy=Strategy(mode=mode),
        )
        return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.abs(carry) ** 2), (carry, ys)

    (v_s, (c_s, y_s)), g_s = jax.value_and_grad(loss, has_aux=True)(params, xs, "sequential")
    (v_p, (c_p, y_p)), g_p = jax.value_and_grad(loss, has_aux=True)(params, xs, "parallel")
    assert relative(y_p, y_s) < 1e-5 and relative(c_p, c_s) < 1e-5
    np.testing.assert_allclose(v_p, v_s, rtol=1e-5)
    for key in params:
        assert relative(g_p[key], g_s[key]) < 1e-5, key
    if with_lengths:  # padding: zero outputs, length 0 keeps the initial state
        assert not np.any(np.asarray(y_p)[1, 4:]) and not np.any(np.asarray(y_p)[2])
        np.testing.assert_allclose(c_p[2], carry0[2], rtol=1e-6)


@pytest.mark.parametrize("name", LINEAR)
def test_linear_cells_match_their_equations(name):
    cell, params, xs = setup(name)
    h = cell.initial_carry(params)
    _, ys = jaxrnn.unroll(cell, params, xs[0])
    for t in range(3):
        px = cell.project(params, xs[0, t])
        a, b = cell.linear.coefficients(params, px)
        h = a * h + b
        np.testing.assert_allclose(cell.linear.readout(params, h, px), ys[t], rtol=1e-5, atol=1e-6)
    if name == "mingru":  # (1 - z) h + z h~ written out
        z, cand = jnp.split(cell.project(params, xs[0, 0]), 2)
        expected = jax.nn.sigmoid(z) * cand
        np.testing.assert_allclose(ys[0], expected, rtol=1e-6)


def test_lru_eigenvalues_start_in_the_ring():
    cell = jaxrnn.lru(4, state_size=64, r_min=0.5, r_max=0.8)
    params = cell.init(jax.random.key(0), 3)
    magnitude = np.exp(-np.exp(np.asarray(params["nu_log"])))
    assert magnitude.min() >= 0.5 - 1e-6 and magnitude.max() <= 0.8 + 1e-6


def test_parallel_mode_needs_a_linear_cell():
    cell = jaxrnn.lstm(4)
    params = cell.init(jax.random.key(0), 2)
    parallel = jaxrnn.Strategy(mode="parallel")
    with pytest.raises(
        ValueError,
        match=r"strategy must be mode='sequential' for jaxrnn.lstm\(hidden_size=4\), whose "
        r"gates read h_\{t-1\} \(mode='parallel' needs a cell whose recurrence is linear",
    ):
        jaxrnn.unroll(cell, params, jnp.zeros((1, 3, 2)), strategy=parallel)
    with pytest.raises(ValueError, match="mode must be 'sequential', 'parallel' or 'chunkwise'"):
        jaxrnn.Strategy(mode="fast")


@pytest.mark.parametrize("segment", [1, 3, 4, T])
@pytest.mark.parametrize("reverse", [False, True])
def test_remat_equals_the_plain_scan(segment, reverse):
    cell = jaxrnn.lstm(5)
    params = cell.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    lengths = jnp.array([T, 7, 0])

    def loss(params, xs, remat):
        carry, ys = jaxrnn.unroll(
            cell, params, xs, seq_lengths=lengths, reverse=reverse, strategy=Strategy(remat=remat)
        )
        return jnp.sum(jnp.cos(ys)) + jnp.sum(carry.c), ys

    (v0, y0), g0 = jax.value_and_grad(loss, has_aux=True)(params, xs, None)
    (v1, y1), g1 = jax.value_and_grad(loss, has_aux=True)(params, xs, segment)
    np.testing.assert_allclose(y1, y0, atol=1e-6)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    chex.assert_trees_all_close(g1, g0, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="remat must be a positive int"):
        Strategy(remat=0)


def test_every_method_reads_the_same_recurrence_or_refuses():
    a, b = jnp.full((5, 1), 0.5), jnp.ones((5, 3))
    for method in ("loop", "associative", "pallas"):
        with pytest.raises(ValueError, match=r"b must be of the shape and dtype of a, \(5, 1\)"):
            jaxrnn.linear_scan(a, b, method=method)
        with pytest.raises(TypeError, match="a must be a floating-point or complex array"):
            jaxrnn.linear_scan(jnp.ones(3, int), jnp.ones(3, int), method=method)
        empty = jaxrnn.linear_scan(jnp.ones((0, 2)), jnp.ones((0, 2)), method=method)
        assert empty.shape == (0, 2)
