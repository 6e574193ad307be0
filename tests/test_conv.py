"""`jaxrnn.conv_lstm`: parity with Flax's ConvLSTMCell on converted weights, and the unroll
over image sequences against a Python loop over `step` in every mode that applies."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy

B, T, S, C, F = 2, 5, 4, 3, 4  # clips, frames, S x S pixels, channels in, features


def _problem(kernel=(3, 3)):
    cell = jaxrnn.conv_lstm(F, kernel)
    params = cell.init(jax.random.key(0), input_size=C)
    params = jax.tree.map(lambda p: p + 0.1 * jnp.cos(jnp.arange(p.size)).reshape(p.shape), params)
    xs = jax.random.normal(jax.random.key(1), (B, T, *(S,) * len(kernel), C))
    return cell, params, xs


def _loop(cell, params, xs, lengths=None, reverse=False, resets=None):
    """The reference: each clip alone, one `step` at a time, its valid frames only."""
    ys = np.zeros((*xs.shape[:-1], F), np.float32)
    finals = []
    for n in range(xs.shape[0]):
        length = xs.shape[1] if lengths is None else int(lengths[n])
        carry = cell.initial_carry(params, xs.shape[2:-1])
        for t in reversed(range(length)) if reverse else range(length):
            if resets is not None and bool(resets[n, t]) and not reverse:
                carry = cell.initial_carry(params, xs.shape[2:-1])
            carry, y = cell.step(params, carry, xs[n, t])
            ys[n, t] = y
            if resets is not None and reverse and bool(resets[n, t]):
                carry = cell.initial_carry(params, xs.shape[2:-1])
        finals.append(carry)
    return jax.tree.map(lambda *c: jnp.stack(c), *finals), ys


@pytest.mark.parametrize("kernel", [(3, 3), (2,)])
def test_conv_lstm_equals_flax_convlstmcell_on_converted_weights(kernel):
    flax_cell = nn.ConvLSTMCell(features=F, kernel_size=kernel)
    xs = jax.random.normal(jax.random.key(1), (B, T, *(S,) * len(kernel), C))
    carry0 = flax_cell.initialize_carry(jax.random.key(2), xs[:, 0].shape)
    variables = flax_cell.init(jax.random.key(3), carry0, xs[:, 0])
    variables = jax.tree.map(lambda v: v + 0.05, variables)  # non-zero biases on both convs
    cell = jaxrnn.conv_lstm(F, kernel)
    params = jaxrnn.interop.from_flax(cell, variables)

    def flax_run(variables, xs):
        carry, ys = carry0, []
        for t in range(T):
            carry, y = flax_cell.apply(variables, carry, xs[:, t])
            ys.append(y)
        return carry, jnp.stack(ys, axis=1)

    (c_ref, h_ref), ys_ref = flax_run(variables, xs)
    carry, ys = jax.jit(lambda p, x: jaxrnn.unroll(cell, p, x))(params, xs)
    np.testing.assert_allclose(ys, ys_ref, atol=1e-5)
    np.testing.assert_allclose(carry.c, c_ref, atol=1e-5)
    np.testing.assert_allclose(carry.h, h_ref, atol=1e-5)
    # Gradients with respect to the inputs agree too, and to_flax inverts from_flax.
    g = jax.grad(lambda x: jnp.sum(jnp.sin(jaxrnn.unroll(cell, params, x)[1])))(xs)
    g_ref = jax.grad(lambda x: jnp.sum(jnp.sin(flax_run(variables, x)[1])))(xs)
    np.testing.assert_allclose(g, g_ref, atol=1e-5)
    back = jaxrnn.interop.to_flax(cell, params)
    np.testing.assert_allclose(flax_run(back, xs)[1], ys_ref, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {"strategy": Strategy(unroll=2)},
        {"strategy": Strategy(remat=2)},
        {"reverse": True, "strategy": Strategy(remat=3)},
    ],
)
def test_conv_lstm_unroll_equals_a_loop_over_step_with_lengths(options):
    cell, params, xs = _problem()
    lengths = jnp.array([5, 2])
    reverse = options.get("reverse", False)
    poisoned = xs.at[1, 2:].set(jnp.nan)  # padding never reaches values or gradients

    def loss(fn):
        def value(params):
            carry, ys = fn(params)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(carry.c**2)

        return jax.value_and_grad(value)(params)

    run = lambda p: jaxrnn.unroll(cell, p, poisoned, seq_lengths=lengths, **options)
    reference = lambda p: _loop(cell, p, xs, lengths, reverse)
    (v, g) = loss(jax.jit(run))
    carry_ref, ys_ref = reference(params)
    np.testing.assert_allclose(run(params)[1], ys_ref, atol=1e-5)
    np.testing.assert_allclose(v, jnp.sum(jnp.sin(ys_ref)) + jnp.sum(carry_ref.c**2), rtol=1e-5)
    _, g_plain = loss(lambda p: jaxrnn.unroll(cell, p, xs, seq_lengths=lengths, reverse=reverse))
    chex.assert_trees_all_close(g, g_plain, rtol=1e-4, atol=1e-5)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))


def test_conv_lstm_masks_resets_layers_vmap_and_batch_axes():
    cell, params, xs = _problem()
    resets = jnp.zeros((B, T), bool).at[0, 3].set(True)
    _, ys = jaxrnn.unroll(cell, params, xs, resets=resets)
    np.testing.assert_allclose(ys, _loop(cell, params, xs, resets=resets)[1], atol=1e-5)
    mask = jnp.ones((B, T), bool).at[1, 1].set(False)
    _, ys_m = jaxrnn.unroll(cell, params, xs, mask=mask)
    _, clip = jaxrnn.unroll(cell, params, xs[1, jnp.array([0, 2, 3, 4])])
    np.testing.assert_allclose(ys_m[1, jnp.array([0, 2, 3, 4])], clip, atol=1e-5)
    assert float(jnp.abs(ys_m[1, 1]).max()) == 0.0
    # Layers: bidirectional concatenates features; stacked feeds f channels to the next.
    bi = jaxrnn.bidirectional(cell, cell)
    _, ys_bi = bi.apply({"forward": params, "backward": params}, xs)
    np.testing.assert_allclose(ys_bi[..., F:], _loop(cell, params, xs, reverse=True)[1], atol=1e-5)
    two = jaxrnn.stacked([cell, jaxrnn.conv_lstm(2, (1, 1))])
    two_params = two.init(jax.random.key(4), input_size=C)
    carries, ys2 = jax.jit(two.apply)(two_params, xs)
    assert ys2.shape == (B, T, S, S, 2) and carries[1].h.shape == (B, S, S, 2)
    # Time-major, vmap and two batch axes give the same numbers.
    _, ys_t = jaxrnn.unroll(cell, params, jnp.swapaxes(xs, 0, 1), time_major=True)
    np.testing.assert_allclose(
        jnp.swapaxes(ys_t, 0, 1), jaxrnn.unroll(cell, params, xs)[1], atol=1e-6
    )
    ys_v = jax.vmap(lambda x: jaxrnn.unroll(cell, params, x)[1])(jnp.stack([xs, xs[::-1]]))
    ys_g = jaxrnn.unroll(cell, params, jnp.stack([xs, xs[::-1]]), seq_lengths=jnp.full((2, B), T))[
        1
    ]
    np.testing.assert_allclose(ys_g, ys_v, atol=1e-5)
    lengths = jnp.array([5, 3])
    final, _ = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths)
    np.testing.assert_allclose(final.h, _loop(cell, params, xs, lengths)[0].h, atol=1e-5)


def test_conv_lstm_errors_name_what_was_expected():
    cell, params, xs = _problem()
    with pytest.raises(
        ValueError,
        match=r"xs must be an array of shape \(\*batch, time, \*spatial, 3\).*"
        r"got shape \(4, 4, 3\)",
    ):
        jaxrnn.unroll(cell, params, xs[0, 0])
    with pytest.raises(ValueError, match=r"seq_lengths must be of shape \(2,\)"):
        jaxrnn.unroll(cell, params, xs, seq_lengths=jnp.ones((2, S, S), jnp.int32))
    with pytest.raises(ValueError, match=r"mask must be a bool array of shape \(2, 5\)"):
        jaxrnn.unroll(cell, params, xs, mask=jnp.ones((2, 5, S, S), bool))
    with pytest.raises(ValueError, match=r"initial_carry must be a pytree of arrays matching"):
        jaxrnn.unroll(cell, params, xs, initial_carry=cell.initial_carry(params, (B, S, 3)))
    with pytest.raises(TypeError, match=r"kernel_size must be a tuple"):
        jaxrnn.conv_lstm(4, 3)
    with pytest.raises(ValueError, match=r"kernel_size must have 1 to 3 entries"):
        jaxrnn.conv_lstm(4, (1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"params\['w_hh'\] must have shape \(3, 3, 4, 16\)"):
        jaxrnn.unroll(cell, {**params, "w_hh": params["w_hh"][..., :2, :]}, xs)
    with pytest.raises(ValueError, match="must end with the 2 spatial axes"):
        cell.initial_carry(params, (B,))
