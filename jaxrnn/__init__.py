"""jaxrnn: recurrent neural networks for JAX as pure functions over plain pytrees.

>>> import jax, jax.numpy as jnp, jaxrnn
>>> cell = jaxrnn.lstm(hidden_size=16)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> carry, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)))
>>> ys.shape
(2, 5, 16)
"""

from jaxrnn import interop
from jaxrnn.bptt import elman_bptt, gradient_norms
from jaxrnn.cells import Cell, LSTMCarry, elman, gru, lstm
from jaxrnn.layers import (
    BidirectionalCarry,
    Layer,
    as_layer,
    bidirectional,
    dropout_apply,
    many_to_many,
    many_to_one,
    pool,
    rnn,
    stacked,
)
from jaxrnn.unroll import unroll

__version__ = "0.1.0"

__all__ = (
    "BidirectionalCarry",
    "Cell",
    "LSTMCarry",
    "Layer",
    "as_layer",
    "bidirectional",
    "dropout_apply",
    "elman",
    "elman_bptt",
    "gradient_norms",
    "gru",
    "interop",
    "lstm",
    "many_to_many",
    "many_to_one",
    "pool",
    "rnn",
    "stacked",
    "unroll",
)
