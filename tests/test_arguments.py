"""Hostile arguments across the public API: each ends in a ValueError or TypeError raised by
jaxrnn itself (not deep inside JAX or NumPy) that names the argument and what it got."""

import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import decode
from jaxrnn import text
from jaxrnn import train

CELL = jaxrnn.lstm(4)
PARAMS = CELL.init(jax.random.key(0), 3)
XS = jnp.ones((2, 5, 3))
VOCAB = text.Vocabulary.build([["a"]])

CASES = {
    "Strategy(unroll=0)": (
        lambda: jaxrnn.Strategy(unroll=0),
        r"unroll must be a positive int, got 0",
    ),
    "Strategy(mode='fast')": (
        lambda: jaxrnn.Strategy(mode="fast"),
        "mode must be 'sequential', 'parallel' or 'chunkwise', got 'fast'",
    ),
    "rnn(recurrent_dropout=1)": (
        lambda: jaxrnn.rnn(CELL, recurrent_dropout=1.0),
        r"recurrent_dropout must be a number in \[0, 1\), got 1.0",
    ),
    "elman(activation=None)": (
        lambda: jaxrnn.elman(4, activation=None),
        "activation must be a function",
    ),
    "unroll(reverse='yes')": (
        lambda: jaxrnn.unroll(CELL, PARAMS, XS, reverse="yes"),
        "reverse must be True or False, got 'yes'",
    ),
    "init(key=0)": (lambda: CELL.init(0, 3), r"key must be a PRNG key such as jax.random.key\(0\)"),
    "initial_carry(batch_shape=2)": (
        lambda: CELL.initial_carry(PARAMS, 2),
        r"batch_shape must be a tuple of sizes such as \(b,\) or \(\), got 2",
    ),
    "with_recurrent_dropout(None)": (
        lambda: jaxrnn.with_recurrent_dropout(None, jnp.ones((2, 4))),
        r"cell must be a jaxrnn.Cell such as jaxrnn.lstm\(128\), got None",
    ),
    "gradient_norms(non-scalar loss)": (
        lambda: jaxrnn.gradient_norms(CELL, PARAMS, XS, lambda carry, ys: ys),
        r"loss_fn\(final_carry, ys\) must return a scalar, got shape \(2, 5, 4\)",
    ),
    "from_flax(params=3)": (
        lambda: jaxrnn.interop.from_flax(CELL, {"params": 3}),
        r"variables\['params'\] must be a dict",
    ),
    "Vocabulary.encode(str)": (
        lambda: VOCAB.encode("abc"),
        "tokens must be a list of token strings, got 'abc'; split each text into tokens first",
    ),
    "Vocabulary.encode(None)": (
        lambda: VOCAB.encode(None),
        "tokens must be a list of token strings, got None",
    ),
    "Vocabulary.build(min_freq=0)": (
        lambda: text.Vocabulary.build([["a"]], min_freq=0),
        "min_freq must be a positive int, got 0",
    ),
    "pad_batch(floats)": (
        lambda: text.pad_batch([[1.5]]),
        r"sequences\[0\] must be a 1-D sequence of integer token ids, got dtype float64",
    ),
    "pad_batch(length=-1)": (
        lambda: text.pad_batch([[1]], -1),
        "length must be an int >= 0, got -1",
    ),
    "StreamBatches(chunk_length=1.5)": (
        lambda: train.StreamBatches(np.arange(10), 2, 1.5),
        "chunk_length must be a positive int, got 1.5",
    ),
    "EpochBatches(no examples)": (
        lambda: train.EpochBatches(np.zeros((0, 3)), 1),
        "data holds no examples",
    ),
    "eval_batches(batch_size=0)": (
        lambda: train.eval_batches(np.arange(4), 0),
        "batch_size must be a positive int, got 0",
    ),
    "default_optimizer(nan)": (
        lambda: train.default_optimizer(float("nan")),
        "learning_rate must be a finite number > 0, got nan",
    ),
    "beam_search(length_penalty=nan)": (
        lambda: decode.beam_search(
            lambda c, t: (c, jnp.zeros((2, 5))),
            (),
            jnp.array([0]),
            beam_size=2,
            max_length=3,
            eos_id=1,
            length_penalty=float("nan"),
        ),
        "length_penalty must be a finite number, got nan",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_arguments_get_a_clear_error_from_jaxrnn(case):
    call, message = CASES[case]
    with pytest.raises((ValueError, TypeError), match=message) as info:
        call()
    # Raised by jaxrnn's own check, not by JAX or NumPy failing somewhere below it.
    origin = traceback.extract_tb(info.value.__traceback__)[-1].filename
    assert "/jaxrnn/" in origin, origin
