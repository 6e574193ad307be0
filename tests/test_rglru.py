"""`jaxrnn.rg_lru`: the parallel and sequential modes against a Python loop over `step`
(values and gradients, lengths, resets, reverse, remat, layers, jit, vmap), and parity with
RecurrentGemma's own JAX RG-LRU where the package is installed (optional)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy

PARALLEL = jaxrnn.Strategy(mode="parallel")

B, T, H = 3, 12, 8


def _problem(seed=0):
    cell = jaxrnn.rg_lru(H, num_heads=2)
    params = cell.init(jax.random.key(seed), input_size=H)
    params = {**params, "b_a": params["b_a"] + 0.3, "b_x": params["b_x"] - 0.2}
    xs = jax.random.normal(jax.random.key(seed + 1), (B, T, H))
    return cell, params, xs


def _loop(cell, params, xs, lengths, reverse):
    """The reference: each sequence alone, one `step` at a time over its valid steps."""
    ys, finals = jnp.zeros(xs.shape), []
    for n in range(xs.shape[0]):
        h = cell.initial_carry(params)
        steps = range(int(lengths[n]))
        for t in reversed(steps) if reverse else steps:
            h, y = cell.step(params, h, xs[n, t])
            ys = ys.at[n, t].set(y)
        finals.append(h)
    return jnp.stack(finals), ys


def _loss(carry, ys):
    return jnp.sum(jnp.sin(3 * ys)) + jnp.sum(carry**2)


@pytest.mark.parametrize(
    "options",
    [
        {"strategy": PARALLEL},
        {},
        {"strategy": Strategy(remat=5)},
        {"strategy": PARALLEL, "reverse": True},
    ],
)
def test_rg_lru_equals_a_loop_over_step(options):
    cell, params, xs = _problem()
    lengths = jnp.array([12, 7, 0])
    reverse = options.get("reverse", False)
    poisoned = xs.at[1, 7:].set(jnp.nan)
    run = lambda p, x: _loss(*jaxrnn.unroll(cell, p, x, seq_lengths=lengths, **options))
    value, grads = jax.jit(jax.value_and_grad(run, argnums=(0, 1)))(params, poisoned)
    ref_value, ref_grads = jax.value_and_grad(
        lambda p, x: _loss(*_loop(cell, p, x, lengths, reverse)), argnums=(0, 1)
    )(params, xs)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    chex.assert_trees_all_close(grads[0], ref_grads[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[1][1, :7], ref_grads[1][1, :7], rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(grads[1][1, 7:]).max()) == 0.0


def test_rg_lru_packed_layers_vmap_and_its_gradient_stays_finite_as_a_approaches_one():
    cell, params, xs = _problem(3)
    resets = jnp.zeros((B, T), bool).at[:, 5].set(True)
    _, packed = jaxrnn.unroll(cell, params, xs, resets=resets, strategy=PARALLEL)
    _, second = jaxrnn.unroll(cell, params, xs[:, 5:])
    np.testing.assert_allclose(packed[:, 5:], second, atol=1e-5)
    bi = jaxrnn.bidirectional(cell, cell)
    _, ys = bi.apply({"forward": params, "backward": params}, xs)
    _, back = jaxrnn.unroll(cell, params, xs, reverse=True, strategy=PARALLEL)
    np.testing.assert_allclose(ys[..., H:], back, atol=1e-5)
    two = jaxrnn.stacked([cell, jaxrnn.rg_lru(H)])
    two_params = two.init(jax.random.key(5), input_size=H)
    _, ys2 = jax.jit(two.apply)(two_params, xs)
    ys_v = jax.vmap(lambda x: two.apply(two_params, x)[1])(xs[:, None])
    np.testing.assert_allclose(ys_v[:, 0], ys2, atol=1e-5)
    # With the decay gate shut (a = 1 exactly) d sqrt(1 - a^2) is infinite; it is bounded.
    shut = {**params, "b_a": jnp.full_like(params["b_a"], -100.0)}
    grads = jax.grad(lambda p: jnp.sum(jaxrnn.unroll(cell, p, xs, strategy=PARALLEL)[1]))(shut)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_rg_lru_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="num_heads must be a divisor of hidden_size"):
        jaxrnn.rg_lru(6, num_heads=4)
    with pytest.raises(ValueError, match=r"input_size must equal hidden_size=8, got 3"):
        jaxrnn.rg_lru(8).init(jax.random.key(0), input_size=3)
    with pytest.raises(ValueError, match=r"max_rad must be a number in \(0.99, 1\), got 0.9"):
        jaxrnn.rg_lru(8, min_rad=0.99, max_rad=0.9)
    cell, params, xs = _problem()
    with pytest.raises(ValueError, match=r"params\['w_a'\] must have shape \(2, 4, 4\)"):
        jaxrnn.unroll(cell, {**params, "w_a": params["w_a"][:1]}, xs)


def test_rg_lru_equals_recurrentgemmas_layer():
    layers = pytest.importorskip(
        "recurrentgemma.jax.layers", reason="recurrentgemma is not installed (optional)"
    )
    module = layers.RGLRU(width=H, num_heads=2)
    xs = jax.random.normal(jax.random.key(1), (B, T, H))
    h0 = jax.random.normal(jax.random.key(2), (B, H))
    # segment_pos > 0 everywhere: a continued segment, where both apply sqrt(1 - a^2) at
    # every step (RecurrentGemma leaves it out at segment_pos == 0; see jaxrnn.rg_lru).
    segment_pos = jnp.broadcast_to(jnp.arange(1, T + 1), (B, T))
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        variables = module.init(jax.random.key(0), xs, segment_pos, h0)
        variables = jax.tree.map(lambda v: v + 0.05, variables)
        ys_ref, last_ref = module.apply(variables, xs, segment_pos, h0)
    cell = jaxrnn.rg_lru(H, num_heads=2)
    params = jaxrnn.interop.from_flax(cell, variables)
    for mode in ("parallel", "sequential"):
        last, ys = jaxrnn.unroll(cell, params, xs, initial_carry=h0, mode=mode)
        np.testing.assert_allclose(ys, ys_ref, atol=1e-5)
        np.testing.assert_allclose(last, last_ref, atol=1e-5)
    chex.assert_trees_all_close(jaxrnn.interop.to_flax(cell, params), dict(variables))
