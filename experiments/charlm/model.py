"""The character-level language model: embedding -> stacked LSTM/GRU -> softmax over characters."""

from typing import Any

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn import text

CELLS = {"lstm": jaxrnn.lstm, "gru": jaxrnn.gru}


def cells(config) -> list[jaxrnn.Cell]:
    if config.cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {config.cell!r}")
    return [CELLS[config.cell](config.hidden_size) for _ in range(config.num_layers)]


def init_params(config, vocab_size: int, key) -> dict[str, Any]:
    keys = jax.random.split(key, config.num_layers + 2)
    layers, width = [], config.embed_size
    for cell, k in zip(cells(config), keys[2:], strict=True):
        layers.append(cell.init(k, width))
        width = cell.hidden_size
    return {
        "embed": jax.random.normal(keys[0], (vocab_size, config.embed_size)),
        "layers": tuple(layers),
        "head": {
            "w": jax.random.normal(keys[1], (width, vocab_size)) / jnp.sqrt(width),
            "b": jnp.zeros((vocab_size,)),
        },
    }


def initial_carry(config, params, batch_size: int):
    """The zero state of every layer, as a tuple."""
    return tuple(
        cell.initial_carry(p, (batch_size,))
        for cell, p in zip(cells(config), params["layers"], strict=True)
    )


def apply(config, params, ids, carry, key=None):
    """Reads ``ids`` ``(b, t)`` from ``carry``; returns ``(carry, logits (b, t, v))``.

    Dropout (on the embeddings, between layers and before the output) only with ``key``.
    """
    keys = [None] * (config.num_layers + 1)
    if key is not None:
        keys = list(jax.random.split(key, config.num_layers + 1))
    x = params["embed"][ids]
    new_carry = []
    for cell, p, c, k in zip(cells(config), params["layers"], carry, keys, strict=False):
        if k is not None:
            x = jaxrnn.dropout_apply(k, x, config.dropout)
        c, x = jaxrnn.unroll(cell, p, x, initial_carry=c)
        new_carry.append(c)
    if keys[-1] is not None:
        x = jaxrnn.dropout_apply(keys[-1], x, config.dropout)
    return tuple(new_carry), x @ params["head"]["w"] + params["head"]["b"]


def step_fn(config, params):
    """``step(carry, tokens (b,)) -> (carry, logits (b, v))`` for `jaxrnn.decode.generate`.

    The first layer's input projection of every character is computed once, so a step
    gathers one row instead of multiplying the embedding by ``W_ih``. The reserved ids
    (``<pad>``, ``<unk>``, ...) are never characters, so they are never generated.
    """
    layer_cells = cells(config)
    first = layer_cells[0].project(params["layers"][0], params["embed"])  # (v, g)

    def step(carry, tokens):
        new_carry = []
        c, x = layer_cells[0].step_projected(params["layers"][0], carry[0], first[tokens])
        new_carry.append(c)
        for cell, p, c in zip(layer_cells[1:], params["layers"][1:], carry[1:], strict=True):
            c, x = cell.step(p, c, x)
            new_carry.append(c)
        logits = x @ params["head"]["w"] + params["head"]["b"]
        return tuple(new_carry), logits.at[:, : len(text.SPECIALS)].set(-jnp.inf)

    return step
