"""`jaxrnn.unroll` against a plain Python loop over `step`, masking, gradients, jit, errors."""

import functools

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxrnn
from jaxrnn import Strategy

CELLS = {"elman": jaxrnn.elman, "lstm": jaxrnn.lstm, "gru": jaxrnn.gru, "mgu": jaxrnn.mgu}
B, T, F, H = 4, 7, 3, 5


@functools.cache
def make(name, dtype=jnp.float32, seed=0):
    """A cell (the same object on every call, so jit caches hit), params and inputs."""
    cell = CELLS[name](H)
    k_params, k_xs = jax.random.split(jax.random.key(seed))
    params = cell.init(k_params, F, dtype=dtype)
    # Non-zero biases so that every term of every cell is exercised.
    params = jax.tree.map(
        lambda p: p + 0.1 * jnp.cos(jnp.arange(p.size, dtype=dtype)).reshape(p.shape), params
    )
    xs = jax.random.normal(k_xs, (B, T, F), dtype)
    return cell, params, xs


def python_loop(cell, params, xs, lengths=None, reverse=False, carries=None):
    """The reference: one sequence at a time, one `step` at a time, valid steps only."""
    finals, ys = [], np.zeros((*xs.shape[:2], cell.hidden_size), np.float64)
    for n in range(xs.shape[0]):
        length = xs.shape[1] if lengths is None else int(lengths[n])
        carry = (
            cell.initial_carry(params)
            if carries is None
            else jax.tree.map(lambda c, n=n: c[n], carries)
        )
        for t in reversed(range(length)) if reverse else range(length):
            carry, y = cell.step(params, carry, xs[n, t])
            ys[n, t] = y
        finals.append(carry)
    return jax.tree.map(lambda *c: jnp.stack(c), *finals), ys


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_unroll_equals_python_loop(name, reverse, with_lengths):
    # Given a cell, a batch and (optionally) ragged lengths including 0 and the full length
    cell, params, xs = make(name)
    lengths = jnp.array([T, 3, 0, 1]) if with_lengths else None
    # When unrolled with lax.scan and with a Python loop over step
    carry, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths, reverse=reverse)
    ref_carry, ref_ys = python_loop(cell, params, xs, lengths, reverse)
    # Then outputs (zeros in the padding) and final carries agree
    np.testing.assert_allclose(ys, ref_ys, atol=1e-6, rtol=0)
    chex.assert_trees_all_close(carry, ref_carry, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", CELLS)
def test_time_major_and_initial_carry(name):
    cell, params, xs = make(name)
    carry0 = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (B,)))
    lengths = jnp.array([2, T, 0, 5])
    carry, ys = jaxrnn.unroll(
        cell,
        params,
        jnp.swapaxes(xs, 0, 1),
        time_major=True,
        initial_carry=carry0,
        seq_lengths=lengths,
    )
    ref_carry, ref_ys = python_loop(cell, params, xs, lengths, carries=carry0)
    np.testing.assert_allclose(jnp.swapaxes(ys, 0, 1), ref_ys, atol=1e-6, rtol=0)
    chex.assert_trees_all_close(carry, ref_carry, atol=1e-6, rtol=0)
    # Length 0 keeps the initial carry exactly.
    chex.assert_trees_all_equal(
        jax.tree.map(lambda c: c[2], carry), jax.tree.map(lambda c: c[2], carry0)
    )


@pytest.mark.parametrize("name", CELLS)
def test_unbatched_and_step_on_any_batch_shape(name):
    cell, params, xs = make(name)
    carry, ys = jaxrnn.unroll(cell, params, xs[1])  # (t, i)
    ref_carry, ref_ys = python_loop(cell, params, xs[1:2])
    np.testing.assert_allclose(ys, ref_ys[0], atol=1e-6, rtol=0)
    chex.assert_trees_all_close(carry, jax.tree.map(lambda c: c[0], ref_carry), atol=1e-6)
    # step works for leading shape (2, 2) as well as () and (b,)
    x = xs[:, 0].reshape(2, 2, F)
    _, y = cell.step(params, cell.initial_carry(params, (2, 2)), x)
    _, y_flat = cell.step(params, cell.initial_carry(params, (4,)), xs[:, 0])
    np.testing.assert_allclose(y.reshape(4, H), y_flat, atol=1e-7)


@pytest.mark.parametrize("name", CELLS)
def test_step_equals_project_then_step_projected(name):
    cell, params, xs = make(name)
    carry = cell.initial_carry(params, (B,))
    chex.assert_trees_all_equal(
        cell.step(params, carry, xs[:, 0]),
        cell.step_projected(params, carry, cell.project(params, xs[:, 0])),
    )


# The masking property: padding never matters, and a batch is the sum of its sequences.
_unroll_jit = jax.jit(jaxrnn.unroll, static_argnums=0, static_argnames=("reverse",))


@pytest.mark.parametrize("name", CELLS)
@given(
    lengths=hnp.arrays(np.int32, (B,), elements=st.integers(0, T)),
    noise_seed=st.integers(0, 2**16),
    reverse=st.booleans(),
)
def test_padding_content_has_no_effect(name, lengths, noise_seed, reverse):
    cell, params, xs = make(name)
    valid = (np.arange(T)[None, :] < lengths[:, None])[..., None]
    noise = 100.0 * jax.random.normal(jax.random.key(noise_seed), xs.shape)
    xs_other = jnp.where(valid, xs, noise)
    lengths = jnp.asarray(lengths)
    carry_a, ys_a = _unroll_jit(cell, params, xs, seq_lengths=lengths, reverse=reverse)
    carry_b, ys_b = _unroll_jit(cell, params, xs_other, seq_lengths=lengths, reverse=reverse)
    chex.assert_trees_all_equal(carry_a, carry_b)
    chex.assert_trees_all_equal(ys_a, ys_b)
    assert not np.any(np.asarray(ys_a)[~np.broadcast_to(valid, ys_a.shape)])
    # Each sequence run alone, unpadded, gives the same outputs and final carry.
    for n, length in enumerate(np.asarray(lengths)):
        alone_carry, alone_ys = _unroll_jit(cell, params, xs[n, :length], reverse=reverse)
        np.testing.assert_allclose(ys_a[n, :length], alone_ys, atol=1e-6, rtol=0)
        chex.assert_trees_all_close(
            jax.tree.map(lambda c, n=n: c[n], carry_a), alone_carry, atol=1e-6, rtol=0
        )


MODES = {
    "fused": {},
    "autodiff": {"strategy": Strategy(fused=False)},
    "remat": {"strategy": Strategy(remat=3)},
    "parallel": {"strategy": Strategy(mode="parallel")},
}
ALL_CELLS = {**CELLS, "mingru": jaxrnn.mingru, "lru": jaxrnn.lru}


@functools.cache
def padded_value_and_grad(name, mode, head):
    """jit(value_and_grad) of a loss over every output and the final carry (``head="all"``) or
    of `jaxrnn.many_to_one` (``head="last"``), with respect to params and xs."""
    cell = ALL_CELLS[name](H)
    kwargs = MODES[mode]

    def loss(params, xs, lengths):
        if head == "last":
            return jnp.sum(jnp.sin(jaxrnn.many_to_one(cell, params, xs, seq_lengths=lengths)))
        carry, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths, **kwargs)
        leaves = [jnp.real(c) for c in jax.tree.leaves(carry)]
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in leaves)

    return cell, jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


PADDING_CASES = [
    (name, mode, head)
    for name in ALL_CELLS
    for mode in MODES
    for head in ("all", "last")
    if (mode == "parallel") == (name in ("mingru", "lru")) or mode in ("autodiff", "remat")
    if head == "all" or mode == "fused"
]


@pytest.mark.parametrize(("name", "mode", "head"), PADDING_CASES)
@given(
    lengths=hnp.arrays(np.int32, (B,), elements=st.integers(0, T)),
    fill=st.sampled_from([np.nan, np.inf, -np.inf, 1e30, 0.0]),
    where_seed=st.integers(0, 2**16),
)
def test_padding_never_changes_values_or_gradients(name, mode, head, lengths, fill, where_seed):
    # Given ragged lengths, and a copy of xs with NaN, inf or huge values in some of the padding
    cell, fn = padded_value_and_grad(name, mode, head)
    params = cell.init(jax.random.key(1), F)
    xs = jax.random.normal(jax.random.key(2), (B, T, F))
    padding = np.arange(T)[None, :, None] >= lengths[:, None, None]
    hit = np.asarray(jax.random.bernoulli(jax.random.key(where_seed), 0.5, xs.shape))
    poisoned = jnp.where(jnp.asarray(padding & hit), jnp.float32(fill), xs)
    lengths = jnp.asarray(lengths)
    # When the loss and its gradients are computed on both
    clean_loss, (clean_dp, clean_dx) = fn(params, xs, lengths)
    loss, (dp, dx) = fn(params, poisoned, lengths)
    # Then the padding changed nothing: not the loss, not one gradient, and dx is 0 there
    np.testing.assert_array_equal(loss, clean_loss)
    chex.assert_trees_all_equal(dp, clean_dp)
    np.testing.assert_array_equal(dx, clean_dx)
    assert not np.any(np.asarray(dx)[np.broadcast_to(padding, dx.shape)])


@pytest.mark.parametrize("name", ALL_CELLS)
@pytest.mark.parametrize("mode", MODES)
def test_zero_steps_give_the_initial_carry_and_zero_gradients(name, mode):
    # Given inputs with no time steps
    cell = ALL_CELLS[name](H)
    if mode == "parallel" and cell.linear is None:
        pytest.skip("mode='parallel' is for linear cells")
    params = cell.init(jax.random.key(0), F)
    xs = jnp.ones((2, 0, F))

    def loss(params, xs):
        carry, ys = jaxrnn.unroll(cell, params, xs, **MODES[mode])
        return jnp.sum(ys) + sum(jnp.sum(jnp.real(c)) for c in jax.tree.leaves(carry))

    # When unrolled and differentiated
    carry, ys = jaxrnn.unroll(cell, params, xs, **MODES[mode])
    dp, dx = jax.grad(loss, argnums=(0, 1))(params, xs)
    # Then the carry is the initial one, there are no outputs, and every gradient is zero
    chex.assert_trees_all_equal(carry, cell.initial_carry(params, (2,)))
    assert ys.shape == (2, 0, H)
    assert dx.shape == (2, 0, F)
    chex.assert_trees_all_equal(dp, jax.tree.map(jnp.zeros_like, params))


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_float64_with_masking(name, reverse):
    with jax.enable_x64(True):
        cell, params, xs = make(name, dtype=jnp.float64)
        lengths = jnp.array([T, 4, 0, 2])
        carry0 = jax.tree.map(lambda c: c + 0.1, cell.initial_carry(params, (B,)))

        def loss(params, xs, carry0, fused=True):
            carry, ys = jaxrnn.unroll(
                cell,
                params,
                xs,
                seq_lengths=lengths,
                reverse=reverse,
                initial_carry=carry0,
                strategy=Strategy(fused=fused),
            )
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

        # Reverse mode through the default path (the hand-written LSTM/GRU backward passes);
        # forward mode cannot enter a custom_vjp, so it differentiates the plain scan.
        check_grads(jax.jit(loss), (params, xs, carry0), order=1, modes=("rev",), eps=1e-6)
        plain = jax.jit(lambda p, x, c: loss(p, x, c, fused=False))
        check_grads(plain, (params, xs, carry0), order=1, modes=("fwd", "rev"), eps=1e-6)


class TestJit(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_no_jit_agree(self):
        for name in CELLS:
            cell, params, xs = make(name)
            lengths = jnp.array([T, 3, 0, 6])
            fn = self.variant(
                lambda p, x, lens, cell=cell: jaxrnn.unroll(cell, p, x, seq_lengths=lens)
            )
            carry, ys = fn(params, xs, lengths)
            ref_carry, ref_ys = python_loop(cell, params, xs, lengths)
            np.testing.assert_allclose(ys, ref_ys, atol=1e-6, rtol=0)
            chex.assert_trees_all_close(carry, ref_carry, atol=1e-6, rtol=0)

    def test_same_shapes_do_not_recompile(self):
        cell, params, xs = make("lstm")
        fn = jax.jit(lambda p, x, lens: jaxrnn.unroll(cell, p, x, seq_lengths=lens)[1])
        fn(params, xs, jnp.array([1, 2, 3, 4])).block_until_ready()
        fn(params, xs + 1.0, jnp.array([4, 3, 0, 1])).block_until_ready()
        assert fn._cache_size() == 1


# Errors: each names the argument and says what was expected and what was got.


def test_error_xs_rank():
    cell, params, xs = make("lstm")
    with pytest.raises(
        ValueError, match=r"xs must be an array of shape \(\*batch, time, 3\).*got shape \(3,\)"
    ):
        jaxrnn.unroll(cell, params, xs[0, 0])


def test_error_xs_features():
    cell, params, xs = make("lstm")
    with pytest.raises(
        ValueError,
        match=r"xs must be an array of shape \(\*batch, time, 3\).*input_size=3"
        r".*got shape \(4, 7, 2\)",
    ):
        jaxrnn.unroll(cell, params, xs[..., :2])


def test_error_xs_dtype():
    cell, params, xs = make("gru")
    with pytest.raises(TypeError, match="xs must be a floating-point array.*got dtype int32"):
        jaxrnn.unroll(cell, params, xs.astype(jnp.int32))
    low = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    with pytest.raises(
        TypeError,
        match="xs must be of a dtype that fits the params' dtype bfloat16 without loss, got "
        r"dtype float32; cast it \(xs.astype\(jnp.bfloat16\)\); for mixed precision",
    ):
        jaxrnn.unroll(cell, params=low, xs=xs)


def test_narrower_inputs_are_widened_to_the_params_dtype():
    cell, params, xs = make("gru")
    narrow = xs.astype(jnp.bfloat16)
    _, ys = jaxrnn.unroll(cell, params, narrow)
    _, expected = jaxrnn.unroll(cell, params, narrow.astype(jnp.float32))
    assert ys.dtype == jnp.float32
    np.testing.assert_array_equal(ys, expected)


def test_error_seq_lengths_shape():
    cell, params, xs = make("elman")
    with pytest.raises(ValueError, match=r"seq_lengths must be of shape \(4,\).*got shape \(3,\)"):
        jaxrnn.unroll(cell, params, xs, seq_lengths=jnp.array([1, 2, 3]))


def test_error_seq_lengths_dtype():
    cell, params, xs = make("elman")
    with pytest.raises(TypeError, match="seq_lengths must be an integer array .*got dtype float32"):
        jaxrnn.unroll(cell, params, xs, seq_lengths=jnp.array([1.0, 2, 3, 4]))


@pytest.mark.parametrize("bad", [[1, 2, -1, 4], [1, 2, 3, T + 1]])
def test_error_seq_lengths_values(bad):
    cell, params, xs = make("elman")
    with pytest.raises(ValueError, match=rf"seq_lengths must lie in \[0, {T}\]"):
        jaxrnn.unroll(cell, params, xs, seq_lengths=jnp.array(bad))


def test_error_seq_lengths_values_under_jit(capfd):
    cell, params, xs = make("elman")
    fn = jax.jit(lambda lens: jaxrnn.unroll(cell, params, xs, seq_lengths=lens)[1])
    with pytest.raises(
        Exception,
        match=rf"seq_lengths must lie in \[0, {T}\].*got values from "
        rf"1 to {T + 3}",
    ):
        fn(jnp.array([1, 2, 3, T + 3])).block_until_ready()
    # The first line the user reads is the message, not JAX's callback traceback.
    first = capfd.readouterr().err.lstrip().splitlines()[0]
    assert first == (
        f"jaxrnn: ValueError: seq_lengths must lie in [0, {T}] (the time axis of xs), "
        f"got values from 1 to {T + 3}"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unroll": 0}, r"unroll must be a positive int, got 0"),
        ({"unroll": 1.5}, r"unroll must be a positive int, got 1.5"),
        ({"remat": 0}, r"remat must be a positive int, got 0"),
        ({"mode": "fast"}, r"mode must be 'sequential', 'parallel' or 'chunkwise', got 'fast'"),
    ],
)
def test_error_options(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Strategy(**kwargs)


@pytest.mark.parametrize(
    "factory", [jaxrnn.elman, jaxrnn.lstm, jaxrnn.gru, jaxrnn.mingru, jaxrnn.lru]
)
def test_error_complex_dtype_is_refused_at_init(factory):
    # The cells are real-valued (the LRU keeps its complex state internally from real params).
    with pytest.raises(TypeError, match="dtype must be a real floating-point type.*got complex64"):
        factory(4).init(jax.random.key(0), 3, dtype=jnp.complex64)
    cell = factory(4)
    params = cell.init(jax.random.key(0), 3)
    complex_params = jax.tree.map(lambda p: p.astype(jnp.complex64), params)
    with pytest.raises(TypeError, match=r"params\['.*'\] must be a real floating-point array"):
        jaxrnn.unroll(cell, complex_params, jnp.ones((1, 2, 3), jnp.complex64))


def test_error_initial_carry_structure_and_shape():
    cell, params, xs = make("lstm")
    good = cell.initial_carry(params, (B,))
    with pytest.raises(
        ValueError,
        match=r"initial_carry must be a pytree of arrays matching .*LSTMCarry\(h=\(4, 5\)"
        r" float32.*got \(4, 5\) float32",
    ):
        jaxrnn.unroll(cell, params, xs, initial_carry=good.h)
    with pytest.raises(
        ValueError,
        match=r"initial_carry must be a pytree of arrays matching.*got LSTMCarry\(h=\(5,\)",
    ):
        jaxrnn.unroll(cell, params, xs, initial_carry=cell.initial_carry(params))


def test_error_params_from_other_cell():
    _, gru_params, xs = make("gru")
    with pytest.raises(
        ValueError,
        match=r"params must have keys \['b', 'w_hh', 'w_ih'\] for "
        r"lstm\(hidden_size=5\).*different cell",
    ):
        jaxrnn.unroll(jaxrnn.lstm(H), gru_params, xs)
    _, elman_params, _ = make("elman")
    with pytest.raises(
        ValueError,
        match=r"params\['w_ih'\] must have shape \(3, 20\).*got "
        r"\(3, 5\); these params look like they come from an "
        r"elman cell",
    ):
        jaxrnn.unroll(jaxrnn.lstm(H), elman_params, xs)


def test_error_cell_not_a_cell():
    layer = jaxrnn.stacked([jaxrnn.lstm(H)])
    with pytest.raises(TypeError, match="cell must be a jaxrnn.Cell.*layer.apply"):
        jaxrnn.unroll(layer, None, jnp.zeros((1, 2, 3)))


@pytest.mark.parametrize(
    "name, options",
    [
        ("lstm", {}),
        ("lstm", {"strategy": Strategy(fused=False)}),
        ("gru", {"strategy": Strategy(remat=2)}),
        ("elman", {"reverse": True}),
        ("mingru", {"strategy": Strategy(mode="parallel")}),
    ],
)
def test_several_leading_batch_axes_equal_the_flattened_batch(name, options):
    # Flax-style (b1, b2, t, i) inputs with (b1, b2) lengths, without a vmap.
    cell = getattr(jaxrnn, name)(5)
    params = cell.init(jax.random.key(0), input_size=3)
    xs = jax.random.normal(jax.random.key(1), (2, 3, 6, 3))
    lengths = jnp.array([[6, 4, 0], [1, 2, 5]])
    carry0 = jax.tree.map(lambda c: c + 0.1, cell.initial_carry(params, (2, 3)))

    def run(params, xs, lengths, carry0):
        carry, ys = jaxrnn.unroll(
            cell, params, xs, seq_lengths=lengths, initial_carry=carry0, **options
        )
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry)), (carry, ys)

    flat = lambda a: a.reshape((6, *a.shape[2:]))
    (v, (carry, ys)), g = jax.jit(jax.value_and_grad(run, has_aux=True))(
        params, xs, lengths, carry0
    )
    (v_f, (carry_f, ys_f)), g_f = jax.value_and_grad(run, has_aux=True)(
        params, flat(xs), lengths.reshape(6), jax.tree.map(flat, carry0)
    )
    assert ys.shape == (2, 3, 6, 5)
    np.testing.assert_allclose(ys.reshape(6, 6, 5), ys_f, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(flat, carry), carry_f, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(v, v_f, rtol=1e-6)
    chex.assert_trees_all_close(g, g_f, rtol=1e-5, atol=1e-6)


def test_several_batch_axes_through_layers_heads_and_time_major():
    xs = jax.random.normal(jax.random.key(1), (2, 3, 6, 3))
    lengths = jnp.array([[6, 4, 0], [1, 2, 5]])
    layer = jaxrnn.stacked([jaxrnn.bidirectional(jaxrnn.gru(4)), jaxrnn.lstm(5)])
    params = layer.init(jax.random.key(0), input_size=3)
    _, ys = layer.apply(params, xs, seq_lengths=lengths)
    _, ys_flat = layer.apply(params, xs.reshape(6, 6, 3), seq_lengths=lengths.reshape(6))
    np.testing.assert_allclose(ys.reshape(6, 6, 5), ys_flat, rtol=1e-6, atol=1e-6)
    last = jaxrnn.many_to_one(layer, params, xs, seq_lengths=lengths)
    np.testing.assert_allclose(
        last.reshape(6, 5),
        jaxrnn.many_to_one(layer, params, xs.reshape(6, 6, 3), seq_lengths=lengths.reshape(6)),
        rtol=1e-6,
        atol=1e-6,
    )
    cell = jaxrnn.lstm(5)
    p = cell.init(jax.random.key(2), input_size=3)
    _, batch_major = jaxrnn.unroll(cell, p, xs, seq_lengths=lengths)
    _, time_major = jaxrnn.unroll(
        cell, p, jnp.moveaxis(xs, 2, 0), seq_lengths=lengths, time_major=True
    )
    np.testing.assert_allclose(jnp.moveaxis(time_major, 0, 2), batch_major, rtol=1e-6)
    with pytest.raises(
        ValueError, match=r"seq_lengths must be of shape \(2, 3\).*got shape \(6,\)"
    ):
        jaxrnn.unroll(cell, p, xs, seq_lengths=lengths.reshape(6))


MASK = np.array([[1, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], bool)


def _masked_loop(cell, params, xs, mask, reverse):
    """The reference: a Python loop that runs step t only where mask[:, t] is True."""
    carry = cell.initial_carry(params, (xs.shape[0],))
    ys = [None] * xs.shape[1]
    for t in reversed(range(xs.shape[1])) if reverse else range(xs.shape[1]):
        new, y = cell.step(params, carry, xs[:, t])
        ok = mask[:, t][:, None]
        carry = jax.tree.map(lambda n, o, ok=ok: jnp.where(ok, n, o), new, carry)
        ys[t] = jnp.where(ok, y, 0.0)
    return carry, jnp.stack(ys, axis=1)


@pytest.mark.parametrize(
    "name, options",
    [
        ("lstm", {}),
        ("gru", {"strategy": Strategy(fused=False)}),
        ("gru", {"strategy": Strategy(remat=4)}),
        ("mingru", {"strategy": Strategy(mode="parallel")}),
        ("elman", {}),
    ],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_a_mask_with_holes_skips_exactly_its_false_steps(name, options, reverse):
    cell = getattr(jaxrnn, name)(4)
    params = cell.init(jax.random.key(0), input_size=3)
    xs = jax.random.normal(jax.random.key(1), (3, 6, 3))
    # Anything at a masked step, NaN included, changes neither values nor gradients.
    poisoned = jnp.where(jnp.asarray(MASK)[..., None], xs, jnp.nan)

    def loss(fn):
        def value(params):
            carry, ys = fn(params)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

        return jax.value_and_grad(value)(params)

    masked = lambda p: jaxrnn.unroll(
        cell, p, poisoned, mask=jnp.asarray(MASK), reverse=reverse, **options
    )
    reference = lambda p: _masked_loop(cell, p, xs, jnp.asarray(MASK), reverse)
    (v, g), (v_ref, g_ref) = loss(jax.jit(masked)), loss(reference)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(g, g_ref, rtol=1e-4, atol=1e-6)
    _, ys = masked(params)
    assert float(jnp.abs(ys[~jnp.asarray(MASK)]).max()) == 0.0


def test_mask_combines_with_lengths_passes_through_layers_and_names_bad_shapes():
    cell = jaxrnn.lstm(4)
    params = cell.init(jax.random.key(0), input_size=3)
    xs = jax.random.normal(jax.random.key(1), (3, 6, 3))
    lengths = jnp.array([4, 6, 2])
    both = jaxrnn.unroll(cell, params, xs, mask=jnp.asarray(MASK), seq_lengths=lengths)
    steps = jnp.asarray(MASK) & (jnp.arange(6)[None] < lengths[:, None])
    chex.assert_trees_all_close(both, jaxrnn.unroll(cell, params, xs, mask=steps))
    bi = jaxrnn.bidirectional(jaxrnn.gru(4))
    bi_params = bi.init(jax.random.key(2), input_size=3)
    _, ys = bi.apply(bi_params, xs, mask=jnp.asarray(MASK))
    fwd = jaxrnn.unroll(jaxrnn.gru(4), bi_params["forward"], xs, mask=jnp.asarray(MASK))
    np.testing.assert_allclose(ys[..., :4], fwd[1], rtol=1e-6)
    with pytest.raises(
        ValueError, match=r"mask must be a bool array of shape \(3, 6\).*got shape \(6, 3\)"
    ):
        jaxrnn.unroll(cell, params, xs, mask=jnp.asarray(MASK.T))
    with pytest.raises(TypeError, match="mask must be a bool array"):
        jaxrnn.unroll(cell, params, xs, mask=jnp.asarray(MASK, jnp.int32))
