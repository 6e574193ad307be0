"""The Transformer baseline: cached generation equals the full forward, causality, padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.transformer import count_params
from experiments.transformer import transformer
from experiments.transformer import tree_bytes

VOCAB = 13


def built(positions="rotary", tied=True, context=16):
    model = transformer(32, 2, 4, context=context, positions=positions, tied=tied)
    return model, model.init(jax.random.key(0), VOCAB)


def ids_of(shape, seed=1):
    return jax.random.randint(jax.random.key(seed), shape, 0, VOCAB)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
@pytest.mark.parametrize("tied", [True, False])
def test_cached_steps_equal_the_full_forward(positions, tied):
    # Given a sequence read whole, When it is read a token at a time through the KV cache,
    # Then every position's logits agree.
    model, params = built(positions, tied)
    ids = ids_of((3, 11))
    full = model.apply(params, ids)
    cache = model.init_cache(params, 3, 16)
    step = jax.jit(model.step)
    stepped = []
    for t in range(ids.shape[1]):
        cache, logits = step(params, cache, ids[:, t])
        stepped.append(logits)
    np.testing.assert_allclose(np.stack(stepped, axis=1), full, atol=1e-5)
    assert int(cache.position) == 11


def test_untied_output_has_its_own_matrix():
    _, tied = built(tied=True)
    _, untied = built(tied=False)
    assert "head" not in tied and untied["head"].shape == (32, VOCAB)
    assert count_params(untied) - count_params(tied) == 32 * VOCAB


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_a_later_token_never_changes_earlier_logits(positions):
    model, params = built(positions)
    ids = ids_of((2, 10))
    changed = ids.at[:, 6].set((ids[:, 6] + 1) % VOCAB)
    a, b = model.apply(params, ids), model.apply(params, changed)
    np.testing.assert_array_equal(a[:, :6], b[:, :6])
    assert not np.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_padding_is_neither_attended_to_nor_a_position(positions):
    # The same sentence right-padded or left-padded (with a mask) gives the logits of
    # reading it alone at its real tokens.
    model, params = built(positions)
    ids = ids_of((1, 7))
    alone = model.apply(params, ids)
    pad = jnp.zeros((1, 4), ids.dtype)
    right = model.apply(params, jnp.concatenate([ids, pad], 1), mask=jnp.arange(11)[None] < 7)
    left = model.apply(params, jnp.concatenate([pad, ids], 1), mask=jnp.arange(11)[None] >= 4)
    np.testing.assert_allclose(right[:, :7], alone, atol=1e-5)
    np.testing.assert_allclose(left[:, 4:], alone, atol=1e-5)
    # Without the mask, left padding would be read as tokens: different logits.
    assert not np.allclose(model.apply(params, jnp.concatenate([pad, ids], 1))[:, 4:], alone)


def test_a_full_cache_slides_its_window_with_rotary_positions():
    # A cache of 5 positions reading 12 tokens: each token attends to the last 5. With one
    # block that is the full forward on the last 5 tokens (rotary positions depend on
    # distances only); deeper, the cached keys of the first block's outputs remember more.
    model = transformer(32, 1, 4, context=16)
    params = model.init(jax.random.key(0), VOCAB)
    ids = ids_of((2, 12))
    cache = model.init_cache(params, 2, 5)
    for t in range(12):
        cache, logits = model.step(params, cache, ids[:, t])
        window = ids[:, max(0, t - 4) : t + 1]
        np.testing.assert_allclose(logits, model.apply(params, window)[:, -1], atol=1e-5)


def test_cache_bytes_grow_with_positions():
    model, params = built()
    sizes = [tree_bytes(jax.eval_shape(lambda p, n=n: model.init_cache(p, 1, n), params))
             for n in (128, 512)]  # fmt: skip
    # keys and values: 2 blocks x 2 x (1, 4 heads, n, 8) float32, and the position
    assert sizes == [2 * 2 * 4 * 128 * 8 * 4 + 4, 2 * 2 * 4 * 512 * 8 * 4 + 4]


def test_dropout_only_with_a_key():
    model = transformer(32, 2, 4, context=16, dropout=0.5)
    params = model.init(jax.random.key(0), VOCAB)
    ids = ids_of((2, 6))
    np.testing.assert_array_equal(model.apply(params, ids), model.apply(params, ids))
    assert not np.allclose(
        model.apply(params, ids, key=jax.random.key(3)), model.apply(params, ids)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 5}, "num_heads=5 must divide d_model=32"),
        ({"num_heads": 32}, "rotary positions need an even width per head"),
        ({"positions": "sinusoidal"}, "positions must be one of rotary, learned"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"num_layers": 0}, "num_layers must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    options = {"d_model": 32, "num_layers": 2, "num_heads": 4, "context": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        transformer(**options)


def test_learned_positions_refuse_a_sequence_beyond_the_context():
    model, params = built("learned", context=8)
    with pytest.raises(ValueError, match="exceed the learned positions' context of 8"):
        model.apply(params, ids_of((1, 9)))
