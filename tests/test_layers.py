"""Stacked and bidirectional layers, dropout, heads; their composition under jit, grad, vmap."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

B, T, F = 3, 6, 4
LENGTHS = jnp.array([6, 2, 0])


@functools.cache
def inputs():
    return jax.random.normal(jax.random.key(1), (B, T, F))


def test_stacked_equals_manual_composition():
    deep = jaxrnn.stacked([jaxrnn.lstm(5), jaxrnn.gru(3)])
    params = deep.init(jax.random.key(0), F)
    carries, ys = deep.apply(params, inputs(), seq_lengths=LENGTHS)
    c1, h1 = jaxrnn.unroll(jaxrnn.lstm(5), params[0], inputs(), seq_lengths=LENGTHS)
    c2, h2 = jaxrnn.unroll(jaxrnn.gru(3), params[1], h1, seq_lengths=LENGTHS)
    chex.assert_trees_all_close((c1, c2), carries, atol=1e-6)
    np.testing.assert_allclose(ys, h2, atol=1e-6)
    assert deep.output_size == 3


def test_bidirectional_equals_forward_and_reversed_unrolls():
    bi = jaxrnn.bidirectional(jaxrnn.lstm(5), jaxrnn.elman(2))
    params = bi.init(jax.random.key(0), F)
    carry, ys = bi.apply(params, inputs(), seq_lengths=LENGTHS)
    cf, yf = jaxrnn.unroll(jaxrnn.lstm(5), params["forward"], inputs(), seq_lengths=LENGTHS)
    cb, yb = jaxrnn.unroll(
        jaxrnn.elman(2), params["backward"], inputs(), seq_lengths=LENGTHS, reverse=True
    )
    np.testing.assert_allclose(ys, jnp.concatenate([yf, yb], -1), atol=1e-6)
    chex.assert_trees_all_close(carry, jaxrnn.BidirectionalCarry(cf, cb), atol=1e-6)
    assert bi.output_size == 7


def test_bidirectional_user_merge_and_sum():
    bi = jaxrnn.bidirectional(jaxrnn.gru(4), merge=lambda a, b: a * b)
    params = bi.init(jax.random.key(0), F)
    _, ys = bi.apply(params, inputs())
    _, yf = jaxrnn.unroll(jaxrnn.gru(4), params["forward"], inputs())
    _, yb = jaxrnn.unroll(jaxrnn.gru(4), params["backward"], inputs(), reverse=True)
    np.testing.assert_allclose(ys, yf * yb, atol=1e-6)
    assert bi.output_size == 4
    assert jaxrnn.bidirectional(jaxrnn.gru(4), merge="sum").output_size == 4


def test_compositions_nest_and_reverse_consistently():
    # A stack of bidirectional layers, and a bidirectional pair of stacks.
    nested = jaxrnn.stacked(
        [
            jaxrnn.bidirectional(jaxrnn.gru(3)),
            jaxrnn.bidirectional(jaxrnn.stacked([jaxrnn.lstm(2), jaxrnn.lstm(2)])),
        ]
    )
    params = nested.init(jax.random.key(0), F)
    _, ys = nested.apply(params, inputs(), seq_lengths=LENGTHS)
    assert ys.shape == (B, T, 4)
    # Reversing a layer equals flipping the valid prefix of the inputs and of the outputs.
    flip = np.array([[(L - 1 - t) if t < L else t for t in range(T)] for L in [6, 2, 0]])
    xs_flipped = jnp.take_along_axis(inputs(), jnp.asarray(flip)[..., None], axis=1)
    _, ys_rev = nested.apply(params, inputs(), seq_lengths=LENGTHS, reverse=True)
    _, ys_of_flipped = nested.apply(params, xs_flipped, seq_lengths=LENGTHS)
    unflipped = jnp.take_along_axis(ys_of_flipped, jnp.asarray(flip)[..., None], axis=1)
    np.testing.assert_allclose(ys_rev, unflipped, atol=1e-6)


def test_layers_under_jit_grad_and_vmap():
    model = jaxrnn.stacked([jaxrnn.bidirectional(jaxrnn.lstm(4)), jaxrnn.gru(3)], dropout=0.3)
    params = model.init(jax.random.key(0), F)

    def loss(params, xs, lengths, key):
        return jnp.sum(
            jaxrnn.many_to_one(model, params, xs, seq_lengths=lengths, dropout_key=key) ** 2
        )

    key = jax.random.key(7)
    value, grads = jax.jit(jax.value_and_grad(loss))(params, inputs(), LENGTHS, key)
    np.testing.assert_allclose(value, loss(params, inputs(), LENGTHS, key), rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # vmap over single sequences (t, i) with scalar lengths equals the batched call.
    _, batched = model.apply(params, inputs(), seq_lengths=LENGTHS)
    _, mapped = jax.vmap(lambda x, n: model.apply(params, x, seq_lengths=n))(inputs(), LENGTHS)
    np.testing.assert_allclose(mapped, batched, atol=1e-6)


def test_dropout_only_with_a_key_and_padding_stays_zero():
    model = jaxrnn.stacked([jaxrnn.lstm(8), jaxrnn.lstm(8), jaxrnn.lstm(8)], dropout=0.5)
    params = model.init(jax.random.key(0), F)
    _, plain = model.apply(params, inputs(), seq_lengths=LENGTHS)
    _, again = model.apply(params, inputs(), seq_lengths=LENGTHS)
    _, drop1 = model.apply(params, inputs(), seq_lengths=LENGTHS, dropout_key=jax.random.key(1))
    _, drop1b = model.apply(params, inputs(), seq_lengths=LENGTHS, dropout_key=jax.random.key(1))
    _, drop2 = model.apply(params, inputs(), seq_lengths=LENGTHS, dropout_key=jax.random.key(2))
    chex.assert_trees_all_equal(plain, again)
    chex.assert_trees_all_equal(drop1, drop1b)
    assert not np.allclose(plain, drop1) and not np.allclose(drop1, drop2)
    assert not np.any(np.asarray(drop1)[1, 2:]) and not np.any(np.asarray(drop1)[2])


def test_dropout_apply_keeps_expectation():
    xs = jnp.ones((200_000,))
    dropped = jaxrnn.dropout_apply(jax.random.key(0), xs, 0.3)
    assert abs(float(jnp.mean(dropped)) - 1.0) < 0.01
    assert abs(float(jnp.mean(dropped == 0)) - 0.3) < 0.01


@pytest.mark.parametrize("method", ["last", "mean", "max"])
def test_pool_ignores_padding(method):
    ys = jax.random.normal(jax.random.key(0), (B, T, 2))
    out = jaxrnn.pool(ys, LENGTHS, method=method)
    reference = {"last": lambda s: s[-1], "mean": lambda s: s.mean(0), "max": lambda s: s.max(0)}
    for n, length in enumerate([6, 2, 0]):
        expected = reference[method](ys[n, :length]) if length else jnp.zeros(2)
        np.testing.assert_allclose(out[n], expected, rtol=1e-6)
    np.testing.assert_allclose(
        jaxrnn.pool(jnp.swapaxes(ys, 0, 1), LENGTHS, method=method, time_major=True), out, rtol=1e-6
    )


def test_many_to_one_and_many_to_many_heads():
    cell = jaxrnn.gru(3)
    params = cell.init(jax.random.key(0), F)
    _, ys = jaxrnn.unroll(cell, params, inputs(), seq_lengths=LENGTHS)
    np.testing.assert_array_equal(
        jaxrnn.many_to_many(cell, params, inputs(), seq_lengths=LENGTHS), ys
    )
    last = jaxrnn.many_to_one(cell, params, inputs(), seq_lengths=LENGTHS)
    np.testing.assert_array_equal(last[1], ys[1, 1])
    np.testing.assert_array_equal(last[2], jnp.zeros(3))


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "mingru", "lru"])
@pytest.mark.parametrize("time_major", [False, True])
def test_many_to_one_reads_the_final_carry_with_the_same_values_and_gradients(name, time_major):
    cell = getattr(jaxrnn, name)(3)
    params = cell.init(jax.random.key(0), F)
    xs = inputs() if not time_major else jnp.swapaxes(inputs(), 0, 1)
    carry0 = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (B,)))

    def by_pool(params):
        _, ys = jaxrnn.unroll(cell, params, xs, initial_carry=carry0, time_major=time_major)
        return jaxrnn.pool(ys, time_major=time_major)

    def head(params):
        return jaxrnn.many_to_one(cell, params, xs, initial_carry=carry0, time_major=time_major)

    np.testing.assert_allclose(head(params), by_pool(params), rtol=1e-6, atol=1e-7)
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
    chex.assert_trees_all_close(
        jax.grad(loss(head))(params), jax.grad(loss(by_pool))(params), rtol=1e-5, atol=1e-7
    )


def test_layer_errors():
    with pytest.raises(
        ValueError, match="layers must be a list of at least one cell or layer, got an empty list"
    ):
        jaxrnn.stacked([])
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.0"):
        jaxrnn.stacked([jaxrnn.lstm(2)], dropout=1.0)
    with pytest.raises(ValueError, match="merge must be 'concat', 'sum', a function or None"):
        jaxrnn.bidirectional(jaxrnn.lstm(2), merge="avg")
    deep = jaxrnn.stacked([jaxrnn.lstm(2), jaxrnn.lstm(2)])
    params = deep.init(jax.random.key(0), F)
    with pytest.raises(
        ValueError,
        match="params must be a tuple of 2 entries, one per layer of the stack, got a tuple "
        "of length 1",
    ):
        deep.apply(params[:1], inputs())
    with pytest.raises(
        TypeError, match=r"layers\[0\] must be a jaxrnn.Cell or jaxrnn.Layer .*got 3"
    ):
        jaxrnn.stacked([3])
    with pytest.raises(ValueError, match="method must be 'last', 'mean' or 'max'"):
        jaxrnn.pool(jnp.zeros((1, 2, 3)), method="sum")


def test_recurrent_dropout_masks_the_recurrent_input_exactly():
    # Given a mask, the unrolled cell equals a loop that multiplies h_{t-1} by it.
    for name in ("lstm", "gru", "elman"):
        cell = getattr(jaxrnn, name)(4)
        params = cell.init(jax.random.key(0), F)
        mask = jax.random.bernoulli(jax.random.key(1), 0.5, (B, 4)).astype(jnp.float32) * 2.0
        dropped = jaxrnn.with_recurrent_dropout(cell, mask)
        _, ys = jaxrnn.unroll(dropped, params, inputs())
        carry = cell.initial_carry(params, (B,))
        for t in range(T):
            masked = carry._replace(h=carry.h * mask) if name == "lstm" else carry * mask
            carry, y = cell.step(params, masked, inputs()[:, t])
            np.testing.assert_allclose(ys[:, t], y, atol=1e-6)
        _, plain = jaxrnn.unroll(cell, params, inputs())
        assert not np.allclose(plain, ys)


def test_bidirectional_errors_name_both_widths():
    with pytest.raises(ValueError, match="merge='sum' needs .*forward width 4, backward width 6"):
        jaxrnn.bidirectional(jaxrnn.lstm(4), jaxrnn.gru(6), merge="sum")
    with pytest.raises(ValueError, match=r"merge must map .*\(b, t, 4\).*returned \(2, 4\)"):
        jaxrnn.bidirectional(jaxrnn.lstm(4), merge=lambda a, b: (a + b).mean(axis=1))
    with pytest.raises(ValueError, match="merge failed on outputs of .*forward width 4, backward"):
        jaxrnn.bidirectional(jaxrnn.lstm(4), jaxrnn.gru(6), merge=lambda a, b: a * b)
    bi = jaxrnn.bidirectional(jaxrnn.lstm(4))
    params = bi.init(jax.random.key(0), F)
    with pytest.raises(ValueError, match="must be a BidirectionalCarry.*got a tuple of length 3"):
        bi.apply(params, inputs(), initial_carry=(None, None, None))


def test_recurrent_dropout_mask_of_the_wrong_shape_is_named():
    cell = jaxrnn.gru(4)
    params = cell.init(jax.random.key(0), F)
    with pytest.raises(ValueError, match=r"mask must have shape \(b, 4\).*got \(2, 3\)"):
        jaxrnn.with_recurrent_dropout(cell, jnp.ones((2, 3)))
    dropped = jaxrnn.with_recurrent_dropout(cell, jnp.ones((B + 1, 4)))
    with pytest.raises(
        ValueError,
        match=rf"mask must have the shape of the hidden state \({B}, 4\).*\({B + 1}, 4\)",
    ):
        jaxrnn.unroll(dropped, params, inputs())


def test_bidirectional_can_return_both_directions_unmerged():
    # Keras merge_mode=None: (ys_forward, ys_backward); it used to fail inside layers.py.
    xs = jax.random.normal(jax.random.key(1), (3, 6, 2))
    lengths = jnp.array([6, 4, 0])
    pair = jaxrnn.bidirectional(jaxrnn.gru(4), jaxrnn.lstm(5), merge=None)
    joined = jaxrnn.bidirectional(jaxrnn.gru(4), jaxrnn.lstm(5))
    params = pair.init(jax.random.key(0), input_size=2)
    assert pair.output_size == (4, 5)

    def both(params, xs):
        return pair.apply(params, xs, seq_lengths=lengths)

    carry, (ys_f, ys_b) = jax.jit(both)(params, xs)
    carry_joined, ys = joined.apply(params, xs, seq_lengths=lengths)
    np.testing.assert_allclose(jnp.concatenate([ys_f, ys_b], axis=-1), ys, rtol=1e-6)
    chex.assert_trees_all_close(carry, carry_joined)
    # Gradients through each direction, and vmap over an extra batch axis.
    loss = lambda p: jnp.sum(both(p, xs)[1][0] ** 2) + jnp.sum(jnp.sin(both(p, xs)[1][1]))
    grads = jax.grad(loss)(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["backward"]["w_hh"]).sum()) > 0
    batched = jax.vmap(lambda x: pair.apply(params, x)[1])(jnp.stack([xs, xs]))
    assert batched[0].shape == (2, 3, 6, 4) and batched[1].shape == (2, 3, 6, 5)
    # On top of a stack it is fine; below another layer it is refused.
    top = jaxrnn.stacked([jaxrnn.gru(3), pair])
    assert top.output_size == (4, 5)
    _, (f, b) = top.apply(top.init(jax.random.key(2), input_size=2), xs, seq_lengths=lengths)
    assert f.shape == (3, 6, 4) and b.shape == (3, 6, 5)
    with pytest.raises(ValueError, match=r"layers\[0\] .* returns two unmerged outputs"):
        jaxrnn.stacked([pair, jaxrnn.gru(3)])


@pytest.mark.parametrize("time_major", [False, True])
def test_variational_dropout_between_layers_drops_the_same_features_at_every_step(time_major):
    seen = []
    probe = jaxrnn.Layer(  # records what the top layer reads
        init=lambda key, input_size, dtype=jnp.float32: {},
        initial_carry=lambda params, batch_shape=(): (),
        apply=lambda params, xs, **kwargs: (seen.append(xs), ((), xs))[1],
        output_size=8,
        name="probe",
    )
    xs = jnp.ones((6, 4, 3)) if time_major else jnp.ones((4, 6, 3))
    for variational in (True, False):
        seen.clear()
        deep = jaxrnn.stacked([jaxrnn.gru(8), probe], dropout=0.5, variational=variational)
        params = deep.init(jax.random.key(0), input_size=3)
        deep.apply(params, xs, time_major=time_major, dropout_key=jax.random.key(1))
        dropped = np.asarray(seen[0] == 0)
        per_step = dropped.swapaxes(0, 1) if time_major else dropped  # (b, t, h)
        same_every_step = bool(np.all(per_step == per_step[:, :1]))
        assert same_every_step == variational and 0.2 < dropped.mean() < 0.8
    with pytest.raises(TypeError, match="variational must be True or False"):
        jaxrnn.stacked([jaxrnn.gru(8)], variational="yes")


@pytest.mark.parametrize("time_major", [False, True])
def test_rnn_recurrent_dropout_draws_one_mask_per_sequence_from_the_key(time_major):
    cell = jaxrnn.lstm(5)
    layer = jaxrnn.rnn(cell, recurrent_dropout=0.4)
    params = layer.init(jax.random.key(0), F)
    xs = jnp.swapaxes(inputs(), 0, 1) if time_major else inputs()
    key = jax.random.key(7)
    _, ys = layer.apply(params, xs, seq_lengths=LENGTHS, time_major=time_major, dropout_key=key)
    mask = jax.random.bernoulli(key, 0.6, (B, 5)).astype(jnp.float32) / 0.6
    _, expected = jaxrnn.unroll(
        jaxrnn.with_recurrent_dropout(cell, mask),
        params,
        xs,
        seq_lengths=LENGTHS,
        time_major=time_major,
    )
    np.testing.assert_allclose(ys, expected, atol=1e-6)
    # Without a key the layer is the plain (fused) unroll; with one, it drops.
    _, plain = layer.apply(params, xs, seq_lengths=LENGTHS, time_major=time_major)
    _, reference = jaxrnn.unroll(cell, params, xs, seq_lengths=LENGTHS, time_major=time_major)
    np.testing.assert_array_equal(plain, reference)
    assert not np.allclose(ys, plain)


def test_layers_say_whether_they_use_a_dropout_key():
    lstm = jaxrnn.lstm(4)
    assert not jaxrnn.rnn(lstm).uses_dropout
    assert jaxrnn.rnn(lstm, recurrent_dropout=0.1).uses_dropout
    assert not jaxrnn.stacked([lstm], dropout=0.5).uses_dropout  # nothing between one layer
    assert jaxrnn.stacked([lstm, lstm], dropout=0.5).uses_dropout
    assert jaxrnn.stacked([lstm, jaxrnn.rnn(lstm, recurrent_dropout=0.1)]).uses_dropout
    assert jaxrnn.bidirectional(lstm, jaxrnn.rnn(lstm, recurrent_dropout=0.1)).uses_dropout
    assert not jaxrnn.bidirectional(lstm).uses_dropout


def test_rnn_passes_its_unroll_options():
    layer = jaxrnn.rnn(jaxrnn.mingru(4), strategy=jaxrnn.Strategy(mode="parallel"))
    params = layer.init(jax.random.key(0), F)
    text = jax.jit(lambda p, xs: layer.apply(p, xs)[1]).lower(params, inputs()).as_text()
    sequential = jaxrnn.rnn(jaxrnn.mingru(4))
    text_seq = jax.jit(lambda p, xs: sequential.apply(p, xs)[1]).lower(params, inputs()).as_text()
    assert text != text_seq
    with pytest.raises(ValueError, match="remat must be None with mode='parallel'"):
        jaxrnn.Strategy(mode="parallel", remat=2)
    with pytest.raises(ValueError, match="mode must be 'sequential', 'parallel' or 'chunkwise'"):
        jaxrnn.Strategy(mode="fast")


@pytest.mark.parametrize(
    "cell, said",
    [
        (jaxrnn.mlstm(8, num_heads=2), "its gates read only x_t and it has"),
        (jaxrnn.mamba(8, state_size=4), r"its carry \(2, 8, 4\) has"),
    ],
)
def test_recurrent_dropout_is_refused_by_name_for_a_cell_without_h_to_drop(cell, said):
    # It was an AttributeError from inside the mask (mLSTM), or a complaint about a mask the
    # library drew itself (Mamba).
    xs, key = jnp.ones((2, 5, 8)), jax.random.key(1)
    layer = jaxrnn.rnn(jaxrnn.mingru(8), recurrent_dropout=0.5)  # a cell with h: it runs
    layer.apply(layer.init(jax.random.key(0), 8), xs, dropout_key=key)
    with pytest.raises(ValueError, match=rf"recurrent_dropout must be 0 for .*: {said} no hidden"):
        layer = jaxrnn.rnn(cell, recurrent_dropout=0.5)
        layer.apply(layer.init(jax.random.key(0), 8), xs, dropout_key=key)
