"""jaxrnn: recurrent neural networks for JAX as pure functions over plain pytrees.

>>> import jax, jax.numpy as jnp, jaxrnn
>>> cell = jaxrnn.lstm(hidden_size=16)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> carry, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)))
>>> ys.shape
(2, 5, 16)
"""

from jaxrnn import interop
from jaxrnn.bptt import elman_bptt
from jaxrnn.bptt import gradient_norms
from jaxrnn.cells import Cell
from jaxrnn.cells import LinearRecurrence
from jaxrnn.cells import LSTMCarry
from jaxrnn.cells import elman
from jaxrnn.cells import gru
from jaxrnn.cells import lru
from jaxrnn.cells import lstm
from jaxrnn.cells import mingru
from jaxrnn.cells import minlstm
from jaxrnn.layers import BidirectionalCarry
from jaxrnn.layers import Layer
from jaxrnn.layers import as_layer
from jaxrnn.layers import bidirectional
from jaxrnn.layers import dropout_apply
from jaxrnn.layers import many_to_many
from jaxrnn.layers import many_to_one
from jaxrnn.layers import pool
from jaxrnn.layers import rnn
from jaxrnn.layers import stacked
from jaxrnn.layers import with_recurrent_dropout
from jaxrnn.unroll import unroll

__version__ = "0.1.0"

__all__ = (
    "BidirectionalCarry",
    "Cell",
    "LSTMCarry",
    "Layer",
    "LinearRecurrence",
    "as_layer",
    "bidirectional",
    "dropout_apply",
    "elman",
    "elman_bptt",
    "gradient_norms",
    "gru",
    "interop",
    "lru",
    "lstm",
    "many_to_many",
    "many_to_one",
    "mingru",
    "minlstm",
    "pool",
    "rnn",
    "stacked",
    "unroll",
    "with_recurrent_dropout",
)
