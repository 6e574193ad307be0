"""jaxrnn: recurrent neural networks for JAX as pure functions over plain pytrees.

>>> import jax, jax.numpy as jnp, jaxrnn
>>> cell = jaxrnn.lstm(hidden_size=16)
>>> params = cell.init(jax.random.key(0), input_size=3)
>>> carry, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)))
>>> ys.shape
(2, 5, 16)

The submodules `train`, `text`, `decode`, `distributed` and `export`, and the Flax modules
`nnx` and `linen`, are attributes of the package (``jaxrnn.train.fit``), imported on first use
so that ``import jaxrnn`` stays light (and needs no Flax); `interop` and `packing` are imported
with the package.
"""

import importlib

from jaxrnn import interop
from jaxrnn import packing
from jaxrnn.blocks import mamba_block
from jaxrnn.blocks import xlstm_block
from jaxrnn.bptt import elman_bptt
from jaxrnn.bptt import gradient_norms
from jaxrnn.cells import Cell
from jaxrnn.cells import LinearRecurrence
from jaxrnn.cells import LSTMCarry
from jaxrnn.cells import conv_lstm
from jaxrnn.cells import elman
from jaxrnn.cells import gru
from jaxrnn.cells import lru
from jaxrnn.cells import lstm
from jaxrnn.cells import mamba
from jaxrnn.cells import mgu
from jaxrnn.cells import mingru
from jaxrnn.cells import minlstm
from jaxrnn.cells import mlstm
from jaxrnn.cells import rg_lru
from jaxrnn.cells import slstm
from jaxrnn.checks import checked
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
from jaxrnn.parallel import linear_scan
from jaxrnn.scan import unroll
from jaxrnn.strategy import Strategy

__version__ = "0.1.4"

# Loaded on first attribute access: `train` pulls in orbax, which `unroll` users don't need,
# and `nnx`/`linen` need Flax, an optional dependency.
_SUBMODULES = (
    "cudnn",
    "decode",
    "distributed",
    "export",
    "linen",
    "nnx",
    "pallas",
    "text",
    "train",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxrnn.{name}")
    raise AttributeError(f"module 'jaxrnn' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBMODULES})


__all__ = (
    "BidirectionalCarry",
    "Cell",
    "LSTMCarry",
    "Layer",
    "LinearRecurrence",
    "Strategy",
    "as_layer",
    "bidirectional",
    "checked",
    "conv_lstm",
    "decode",
    "distributed",
    "dropout_apply",
    "elman",
    "elman_bptt",
    "export",
    "gradient_norms",
    "gru",
    "interop",
    "linear_scan",
    "linen",
    "lru",
    "lstm",
    "mamba",
    "mamba_block",
    "many_to_many",
    "many_to_one",
    "mgu",
    "mingru",
    "minlstm",
    "mlstm",
    "nnx",
    "packing",
    "pool",
    "rg_lru",
    "rnn",
    "slstm",
    "stacked",
    "text",
    "train",
    "unroll",
    "with_recurrent_dropout",
    "xlstm_block",
)
