"""Packed sequences: documents end to end in one row with ``resets``, against each document run
alone by a Python loop over `step` (values and gradients), in every mode, through the layers,
under jit and vmap; `jaxrnn.packing`'s layout and errors."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn import packing

# Two rows of 9 steps: documents of 3, 4, 1 steps (then one padding step) and 2, 5, 2.
DOCS = [[3, 4, 1], [2, 5, 2]]
T, F, H = 9, 3, 4


def _layout():
    resets = np.zeros((2, T), bool)
    spans = []
    for r, lengths in enumerate(DOCS):
        pos = 0
        for length in lengths:
            resets[r, pos] = True
            spans.append((r, pos, length))
            pos += length
    return jnp.asarray(resets), jnp.array([sum(d) for d in DOCS]), spans


RESETS, LENGTHS, SPANS = _layout()


def _alone(cell, params, xs, initial, reverse):
    """The reference: each document by itself, one `step` at a time from the row's initial
    carry. Returns (final carries of the rows, ys)."""
    ys = jnp.zeros(
        (*xs.shape[:2], cell.hidden_size),
        jax.eval_shape(
            lambda: cell.step(params, jax.tree.map(lambda c: c[0], initial), xs[0, 0])[1]
        ).dtype,
    )
    finals = [None, None]
    for r, start, length in SPANS:
        carry = jax.tree.map(lambda c, r=r: c[r], initial)
        steps = range(start, start + length)
        for t in reversed(steps) if reverse else steps:
            carry, y = cell.step(params, carry, xs[r, t])
            ys = ys.at[r, t].set(y)
        # The row's final carry: after its last document (its first, read backwards).
        if finals[r] is None or not reverse:
            finals[r] = carry
    return jax.tree.map(lambda *c: jnp.stack(c), *finals), ys


def _loss(carry, ys):
    leaves = jax.tree.leaves(carry)
    return jnp.sum(jnp.abs(jnp.sin(ys)) ** 2) + sum(jnp.sum(jnp.abs(c) ** 2) for c in leaves)


CASES = [
    ("lstm", {}),  # the fused backward pass, recomputing the gates
    ("lstm", {"store": True}),  # the fused pass with stored gates
    ("lstm", {"strategy": Strategy(fused=False)}),  # autodiff of the scan
    (
        "lstm",
        {"strategy": Strategy(remat=4)},
    ),  # checkpointed segments (9 steps: a remainder segment)
    ("gru", {}),
    ("gru", {"store": True}),
    ("gru", {"strategy": Strategy(fused=False, unroll=2)}),
    ("elman", {}),
    ("mgu", {"strategy": Strategy(remat=2)}),
    ("mingru", {"strategy": Strategy(mode="parallel")}),
    ("minlstm", {"strategy": Strategy(mode="parallel")}),
    ("lru", {"strategy": Strategy(mode="parallel")}),
    ("lru", {}),
]


def _problem(name, store=None):
    cell = getattr(jaxrnn, name)(H, store_gates=store) if store else getattr(jaxrnn, name)(H)
    params = cell.init(jax.random.key(0), input_size=F)
    xs = jax.random.normal(jax.random.key(1), (2, T, F))
    # A non-zero initial carry, different per row: each document must start from its row's.
    initial = jax.tree.map(
        lambda c: c + (jnp.arange(1, 3) / 4).astype(c.dtype).reshape(2, *(1,) * (c.ndim - 1)),
        cell.initial_carry(params, (2,)),
    )
    return cell, params, xs, initial


@functools.cache
def _reference(name, reverse):
    """Value and gradients of the documents run alone (one slow eager loop per cell)."""
    cell, params, xs, initial = _problem(name)

    def alone(params, xs, initial):
        return _loss(*_alone(cell, params, xs, initial, reverse))

    return jax.value_and_grad(alone, argnums=(0, 1, 2))(params, xs, initial)


@pytest.mark.parametrize("name, options", CASES)
@pytest.mark.parametrize("reverse", [False, True])
def test_packed_rows_equal_each_document_run_alone(name, options, reverse):
    options = dict(options)
    cell, params, xs, initial = _problem(name, options.pop("store", None))
    # The padding step holds NaN: it must reach neither values nor gradients.
    xs_padded = xs.at[0, 8].set(jnp.nan)

    def packed(params, xs, initial):
        return _loss(
            *jaxrnn.unroll(
                cell,
                params,
                xs,
                initial_carry=initial,
                seq_lengths=LENGTHS,
                resets=RESETS,
                reverse=reverse,
                **options,
            )
        )

    args = (params, xs_padded, initial)
    value, grads = jax.jit(jax.value_and_grad(packed, argnums=(0, 1, 2)))(*args)
    value_ref, grads_ref = _reference(name, reverse)
    np.testing.assert_allclose(value, value_ref, rtol=1e-5)
    chex.assert_trees_all_close(grads[0], grads_ref[0], rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(grads[2], grads_ref[2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[1][0, :8], grads_ref[1][0, :8], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[1][1], grads_ref[1][1], rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(grads[1][0, 8]).max()) == 0.0


def test_without_resets_the_documents_would_leak_into_each_other():
    # The reference check above can fail: the same rows unrolled without resets differ.
    cell = jaxrnn.lstm(H)
    params = cell.init(jax.random.key(0), input_size=F)
    xs = jax.random.normal(jax.random.key(1), (2, T, F))
    _, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=LENGTHS)
    _, ys_ref = _alone(cell, params, xs, cell.initial_carry(params, (2,)), False)
    assert float(jnp.abs(ys[0, 3:7] - ys_ref[0, 3:7]).max()) > 1e-3


def test_resets_through_layers_vmap_time_major_and_several_batch_axes():
    xs = jax.random.normal(jax.random.key(1), (2, T, F))
    cell = jaxrnn.gru(H)
    params = cell.init(jax.random.key(0), input_size=F)
    _, ys_f = _alone(cell, params, xs, cell.initial_carry(params, (2,)), False)
    _, ys_b = _alone(cell, params, xs, cell.initial_carry(params, (2,)), True)
    # bidirectional: each document read forwards and backwards within itself.
    bi = jaxrnn.bidirectional(cell, cell)
    bi_params = {"forward": params, "backward": params}
    _, ys = bi.apply(bi_params, xs, seq_lengths=LENGTHS, resets=RESETS)
    np.testing.assert_allclose(ys, jnp.concatenate([ys_f, ys_b], -1), rtol=1e-5, atol=1e-6)
    # stacked and rnn pass resets to every layer.
    two = jaxrnn.stacked([jaxrnn.lstm(H), jaxrnn.lstm(H)])
    two_params = two.init(jax.random.key(2), input_size=F)
    _, ys2 = two.apply(two_params, xs, seq_lengths=LENGTHS, resets=RESETS)
    for r, start, length in SPANS:
        _, alone = two.apply(two_params, xs[r : r + 1, start : start + length])
        np.testing.assert_allclose(ys2[r, start : start + length], alone[0], rtol=1e-5, atol=1e-6)
    layer = jaxrnn.rnn(cell, reverse=True)
    _, ys_r = layer.apply(params, xs, seq_lengths=LENGTHS, resets=RESETS)
    np.testing.assert_allclose(ys_r, ys_b, rtol=1e-5, atol=1e-6)
    # time-major, vmap over groups of rows, and (g, b, t) batch axes all agree.
    _, ys_t = jaxrnn.unroll(
        cell,
        params,
        jnp.swapaxes(xs, 0, 1),
        seq_lengths=LENGTHS,
        resets=RESETS.T,
        time_major=True,
    )
    np.testing.assert_allclose(jnp.swapaxes(ys_t, 0, 1), ys_f, rtol=1e-5, atol=1e-6)
    group = lambda a: jnp.stack([a, a[::-1]])
    run = lambda x, n, r: jaxrnn.unroll(cell, params, x, seq_lengths=n, resets=r)[1]
    ys_v = jax.vmap(run)(group(xs), group(LENGTHS), group(RESETS))
    ys_g = run(group(xs), group(LENGTHS), group(RESETS))
    np.testing.assert_allclose(ys_v[0], ys_f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ys_v[1], ys_f[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ys_g, ys_v, rtol=1e-5, atol=1e-6)


def test_resets_combine_with_a_mask_and_name_bad_shapes():
    cell = jaxrnn.lstm(H)
    params = cell.init(jax.random.key(0), input_size=F)
    xs = jax.random.normal(jax.random.key(1), (2, T, F))
    mask = jnp.ones((2, T), bool).at[1, 4].set(False)  # a hole in row 1's second document
    _, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=LENGTHS, resets=RESETS, mask=mask)
    _, doc = jaxrnn.unroll(cell, params, xs[1, 2:7], mask=mask[1, 2:7])
    np.testing.assert_allclose(ys[1, 2:7], doc, rtol=1e-5, atol=1e-6)
    with pytest.raises(
        ValueError, match=r"resets must be a bool array of shape \(2, 9\).*got shape \(9, 2\)"
    ):
        jaxrnn.unroll(cell, params, xs, resets=RESETS.T)
    with pytest.raises(TypeError, match="resets must be a bool array"):
        jaxrnn.unroll(cell, params, xs, resets=RESETS.astype(jnp.int32))
    with pytest.raises(
        ValueError, match=r"resets must be a bool array of shape \(1, 2, 9\).*got shape \(2, 9\)"
    ):
        jaxrnn.unroll(cell, params, xs[None], resets=RESETS)


def test_pack_lays_documents_out_and_reads_them_back():
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 50, size=n) for n in rng.integers(1, 13, size=40)]
    packed = packing.pack(docs, row_length=16)
    lengths = np.array([len(d) for d in docs])
    assert packed.values.shape == (len(packed.seq_lengths), 16)
    assert int(packed.seq_lengths.sum()) == int(lengths.sum())  # nothing dropped
    assert int(packed.resets.sum()) == len(docs)
    for n, d in enumerate(docs):  # every document, whole, where the plan says
        r, s = packed.row[n], packed.start[n]
        np.testing.assert_array_equal(packed.values[r, s : s + len(d)], d)
        assert packed.resets[r, s]
    # No two documents overlap, and best fit leaves at most one row less than half full.
    cover = np.zeros(packed.values.shape, int)
    for r, s, n in zip(packed.row, packed.start, packed.length, strict=True):
        cover[r, s : s + n] += 1
    assert cover.max() == 1
    assert (packed.seq_lengths <= 8).sum() <= 1
    before = packing.padding_fraction(lengths, (len(docs), lengths.max()))
    after = packing.padding_fraction(lengths, packed.values.shape)
    assert after < before / 2
    ys = jnp.asarray(packed.values)[..., None]
    unpacked = np.asarray(packing.unpack(ys, packed, max_length=12))
    for n, d in enumerate(docs):
        np.testing.assert_array_equal(unpacked[n, : len(d), 0], d)
        assert not unpacked[n, len(d) :].any()
    np.testing.assert_array_equal(packing.last(ys, packed)[:, 0], [d[-1] for d in docs])
    np.testing.assert_array_equal(packing.first(ys, packed)[:, 0], [d[0] for d in docs])
    segments = jnp.cumsum(jnp.asarray(packed.resets), axis=1)
    np.testing.assert_array_equal(
        packing.resets_from_segment_ids(segments)[:, : packed.seq_lengths.min()],
        packed.resets[:, : packed.seq_lengths.min()],
    )


def test_pack_errors_name_the_document_and_the_limit():
    with pytest.raises(ValueError, match=r"document 1 has length 5.*1 to row_length=4"):
        packing.pack([[1], [1, 2, 3, 4, 5]], row_length=4)
    with pytest.raises(ValueError, match=r"document 0 has length 0"):
        packing.pack([[], [1]], row_length=4)
    with pytest.raises(ValueError, match=r"need 2 rows of 4 steps, more than num_rows=1"):
        packing.pack([[1, 2, 3], [1, 2]], row_length=4, num_rows=1)
    with pytest.raises(ValueError, match=r"sequences\[1\] has shape \(2, 3\)"):
        packing.pack([np.ones((2, 2)), np.ones((2, 3))], row_length=4)
    with pytest.raises(ValueError, match="sequences is empty"):
        packing.pack([], row_length=4)
    with pytest.raises(TypeError, match="row_length must be a positive int"):
        packing.pack([[1]], row_length=4.0)
    with pytest.raises(ValueError, match="segment_ids must be an int array"):
        packing.resets_from_segment_ids(jnp.zeros((2, 3)))
