"""An RNN with a linear head for numeric prediction, shared by the ball and stock experiments.

Many-to-one: the head reads the last valid output. Many-to-many: it reads every output.
"""

from typing import Any

import jax
import jax.numpy as jnp

import jaxrnn

# The cell families these models are offered with (names of `jaxrnn.cells.FAMILIES`).
CELLS = ("elman", "lstm", "gru")


def make_cell(name: str, hidden_size: int) -> jaxrnn.Cell:
    """``jaxrnn.<name>(hidden_size)`` with a clear error for an unknown name."""
    return jaxrnn.cells.by_name(name, hidden_size, allowed=CELLS)


def init_params(cell: jaxrnn.Cell, key, input_size: int, output_size: int) -> dict[str, Any]:
    """``{"rnn": cell params, "head": {"w": (h, o), "b": (o,)}}``; the head starts small."""
    k_rnn, k_head = jax.random.split(key)
    scale = 0.1 / jnp.sqrt(cell.hidden_size)
    return {
        "rnn": cell.init(k_rnn, input_size),
        "head": {
            "w": scale * jax.random.normal(k_head, (cell.hidden_size, output_size)),
            "b": jnp.zeros((output_size,)),
        },
    }


def predict_last(cell: jaxrnn.Cell, params, xs, seq_lengths=None):
    """Many-to-one: ``(b, t, i) -> (b, o)`` from the last valid output."""
    last = jaxrnn.many_to_one(cell, params["rnn"], xs, seq_lengths=seq_lengths)
    return last @ params["head"]["w"] + params["head"]["b"]


def predict_every(cell: jaxrnn.Cell, params, xs, seq_lengths=None):
    """Many-to-many: ``(b, t, i) -> (b, t, o)``, one prediction per step."""
    ys = jaxrnn.many_to_many(cell, params["rnn"], xs, seq_lengths=seq_lengths)
    return ys @ params["head"]["w"] + params["head"]["b"]
