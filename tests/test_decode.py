"""Decoding: temperature, top-k, greedy, seeded sampling, and beam search against brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import decode

V = 5
EOS, PAD = 1, 0


def markov_step(table):
    """A step function whose next-token scores depend only on the last token."""
    return lambda carry, tokens: (carry, table[tokens])


@pytest.fixture(scope="module")
def table():
    return jax.random.normal(jax.random.key(3), (V, V)) * 2.0


def test_select_greedy_top1_and_distribution():
    logits = jnp.log(jnp.array([[0.1, 0.6, 0.3]]))
    assert decode.select(logits, None).tolist() == [1]
    assert decode.select(logits, jax.random.key(0), temperature=0.0).tolist() == [1]
    assert decode.select(logits, jax.random.key(0), top_k=1).tolist() == [1]
    many = jnp.tile(logits, (20000, 1))
    counts = np.bincount(np.asarray(decode.select(many, jax.random.key(1))), minlength=3)
    np.testing.assert_allclose(counts / 20000, [0.1, 0.6, 0.3], atol=0.015)
    top2 = np.bincount(np.asarray(decode.select(many, jax.random.key(2), top_k=2)), minlength=3)
    assert top2[0] == 0 and abs(top2[1] / 20000 - 2 / 3) < 0.015
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        decode.select(logits, None, temperature=-1.0)
    with pytest.raises(ValueError, match=r"top_k must be an int in \[1, 3\]"):
        decode.select(logits, None, top_k=4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_generate_refuses_a_temperature_that_is_not_a_finite_number_at_least_0(table, bad):
    # NaN used to give all-zero tokens (every logit NaN, so categorical picked id 0).
    with pytest.raises(ValueError, match=rf"temperature must be a finite number >= 0.*got {bad}"):
        decode.generate(
            markov_step(table), (), jnp.array([0]), length=3, key=jax.random.key(0), temperature=bad
        )


def test_a_traced_temperature_works_under_jit_and_zero_is_greedy(table):
    # Given a sampler jitted with the temperature as an argument
    @jax.jit
    def sample(temperature):
        return decode.generate(
            markov_step(table),
            (),
            jnp.array([0, 2]),
            length=8,
            key=jax.random.key(4),
            temperature=temperature,
        )[1]

    # Then temperature 0 decodes greedily and 1.0 equals the eager sampler, with one compilation
    _, greedy = decode.generate(markov_step(table), (), jnp.array([0, 2]), length=8)
    np.testing.assert_array_equal(sample(0.0), greedy)
    _, eager = decode.generate(
        markov_step(table), (), jnp.array([0, 2]), length=8, key=jax.random.key(4)
    )
    np.testing.assert_array_equal(sample(1.0), eager)
    assert sample._cache_size() == 1


def test_a_bad_traced_temperature_is_reported_first(table, capfd):
    sample = jax.jit(
        lambda t: decode.generate(
            markov_step(table), (), jnp.array([0]), length=2, key=jax.random.key(0), temperature=t
        )[1]
    )
    with pytest.raises(Exception, match="temperature must be a finite number >= 0"):
        sample(jnp.float32(np.nan)).block_until_ready()
    first = capfd.readouterr().err.lstrip().splitlines()[0]
    assert first.startswith("jaxrnn: ValueError: temperature must be a finite number >= 0")


def test_generate_refuses_float_first_tokens_and_bad_lengths(table):
    with pytest.raises(
        TypeError, match="first_tokens must be integer token ids, got dtype float32"
    ):
        decode.generate(markov_step(table), (), jnp.array([1.7]), length=3)
    with pytest.raises(
        ValueError, match=r"first_tokens must be of shape \(b,\).*got shape \(1, 1\)"
    ):
        decode.generate(markov_step(table), (), jnp.array([[1]]), length=3)
    with pytest.raises(ValueError, match="length must be an int >= 0, got -1"):
        decode.generate(markov_step(table), (), jnp.array([1]), length=-1)
    with pytest.raises(TypeError, match="length must be an int >= 0, got 2.5"):
        decode.generate(markov_step(table), (), jnp.array([1]), length=2.5)
    with pytest.raises(ValueError, match=r"the logits of step_fn must be of shape \(1, v\)"):
        decode.generate(lambda c, t: (c, jnp.zeros((2, V))), (), jnp.array([1]), length=2)


@pytest.mark.parametrize(("name", "value"), [("pad_id", 99), ("eos_id", 99), ("eos_id", -1)])
def test_beam_search_refuses_ids_outside_the_vocabulary(table, name, value):
    # pad_id=99 with V=5 used to make every finished hypothesis -inf, dropping the best one.
    ids = {"eos_id": EOS, "pad_id": PAD, name: value}
    with pytest.raises(ValueError, match=rf"{name} must be a token id in \[0, {V}\).*got {value}"):
        decode.beam_search(markov_step(table), (), jnp.array([0]), beam_size=2, max_length=4, **ids)


def test_beam_search_refuses_bad_sizes_and_float_tokens(table):
    step = markov_step(table)
    with pytest.raises(ValueError, match="beam_size must be a positive int, got 0"):
        decode.beam_search(step, (), jnp.array([0]), beam_size=0, max_length=4, eos_id=EOS)
    with pytest.raises(ValueError, match="max_length must be a positive int, got 0"):
        decode.beam_search(step, (), jnp.array([0]), beam_size=2, max_length=0, eos_id=EOS)
    with pytest.raises(TypeError, match="first_tokens must be integer token ids"):
        decode.beam_search(step, (), jnp.array([0.0]), beam_size=2, max_length=4, eos_id=EOS)


def test_temperature_to_zero_equals_greedy(table):
    start = jnp.array([0, 2, 3])
    _, greedy = decode.generate(markov_step(table), (), start, length=12)
    _, cold = decode.generate(
        markov_step(table), (), start, length=12, key=jax.random.key(0), temperature=1e-4
    )
    np.testing.assert_array_equal(cold, greedy)


def test_sampling_is_seeded(table):
    start = jnp.array([0, 2])
    run = lambda seed: decode.generate(
        markov_step(table), (), start, length=30, key=jax.random.key(seed)
    )[1]
    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def brute_force(table, start, max_length, alpha):
    """Best normalised score over every token sequence (ending at EOS or at max_length)."""
    log_p = jax.nn.log_softmax(table, axis=-1)
    best = (-np.inf, None)
    for seq in itertools.product(range(V), repeat=max_length):
        score, last, length = 0.0, start, 0
        for token in seq:
            score += float(log_p[last, token])
            last, length = token, length + 1
            if token == EOS:
                break
        if EOS in seq and any(t != PAD for t in seq[seq.index(EOS) + 1 :]):
            continue  # after EOS only padding: count each hypothesis once
        normalised = score / ((5 + length) / 6) ** alpha
        best = max(best, (normalised, seq[:length]))
    return best


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_with_a_wide_beam_finds_the_best_sequence(table, alpha):
    max_length = 4
    tokens, scores, lengths = decode.beam_search(
        markov_step(table),
        (),
        jnp.array([2]),
        beam_size=V**3,
        max_length=max_length,
        eos_id=EOS,
        length_penalty=alpha,
    )
    expected_score, expected = brute_force(table, 2, max_length, alpha)
    best = tuple(int(t) for t in tokens[0, 0, : int(lengths[0, 0])])
    assert best == expected
    np.testing.assert_allclose(float(scores[0, 0]), expected_score, rtol=1e-5)
    assert np.all(np.diff(np.asarray(scores[0])) <= 1e-6)  # sorted, best first


def test_beam_size_one_equals_greedy_up_to_eos(table):
    start = jnp.array([0, 2, 3, 4])
    _, greedy = decode.generate(markov_step(table), (), start, length=8)
    beam, _, lengths = decode.beam_search(
        markov_step(table), (), start, beam_size=1, max_length=8, eos_id=EOS
    )
    for n in range(4):
        length = int(lengths[n, 0])
        np.testing.assert_array_equal(beam[n, 0, :length], greedy[n, :length])
        assert np.all(np.asarray(beam[n, 0, length:]) == PAD)


def test_beam_search_of_a_sequence_does_not_depend_on_its_batch(table):
    alone = decode.beam_search(
        markov_step(table), (), jnp.array([3]), beam_size=3, max_length=6, eos_id=EOS
    )
    batch = decode.beam_search(
        markov_step(table), (), jnp.array([0, 3, 4]), beam_size=3, max_length=6, eos_id=EOS
    )
    for a, b in zip(alone, batch, strict=True):
        np.testing.assert_allclose(a[0], b[1], rtol=1e-6)


def test_beam_search_threads_the_carry_of_each_hypothesis():
    # The carry counts steps per hypothesis; the logits read it, so a wrong gather shows.
    def step(carry, tokens):
        logits = jax.nn.one_hot((tokens + carry) % V, V) * 3.0
        return carry + 1, logits

    tokens, _, _ = decode.beam_search(
        step, jnp.zeros(2, jnp.int32), jnp.array([2]), beam_size=2, max_length=3, eos_id=EOS
    )
    _, greedy = decode.generate(step, jnp.zeros(1, jnp.int32), jnp.array([2]), length=3)
    np.testing.assert_array_equal(tokens[0, 0], greedy[0])


def test_generate_returns_the_carry_first_as_unroll_does():
    def step(carry, tokens):  # the carry counts the steps
        return carry + 1, jax.nn.one_hot((tokens + 1) % V, V) * 3.0

    carry, tokens = decode.generate(step, jnp.zeros(1, jnp.int32), jnp.array([0]), length=4)
    assert int(carry[0]) == 4 and tokens.shape == (1, 4)
