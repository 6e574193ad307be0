"""The character-level language model: embedding -> stacked LSTM/GRU -> softmax over characters."""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn import text

CELLS = ("lstm", "gru")  # names of `jaxrnn.cells.FAMILIES` this model is offered with


class Model(NamedTuple):
    """The character model as pure functions of its params; `make` builds it once per config.

    Shapes: ``b`` streams, ``t`` characters, ``v`` vocabulary.
    """

    init: Callable[..., dict[str, Any]]
    """``init(key, vocab_size) -> params``."""
    initial_carry: Callable
    """``initial_carry(params, batch_size) -> carry``: the zero state of every layer."""
    apply: Callable
    """``apply(params, ids (b, t), carry, key=None) -> (carry, logits (b, t, v))``; dropout (on
    the embeddings, between layers and before the output) only with ``key``."""
    step_fn: Callable
    """``step_fn(params) -> step(carry, tokens (b,)) -> (carry, logits (b, v))`` for
    `jaxrnn.decode.generate`; the reserved ids (``<pad>``, ``<unk>``, ...) are never
    generated."""


def make(config) -> Model:
    """The stacked LSTM/GRU language model of ``config``; its cells are built here, once.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from experiments.charlm import model
      >>> from experiments.charlm.configs.default import Config
      >>> m = model.make(Config(hidden_size=16, embed_size=8, num_layers=2))
      >>> params = m.init(jax.random.key(0), 40)
      >>> carry, logits = m.apply(params, jnp.ones((3, 7), jnp.int32), m.initial_carry(params, 3))
      >>> logits.shape
      (3, 7, 40)
    """
    cells = [
        jaxrnn.cells.by_name(config.cell, config.hidden_size, allowed=CELLS)
        for _ in range(config.num_layers)
    ]

    def init(key, vocab_size: int) -> dict[str, Any]:
        keys = jax.random.split(key, config.num_layers + 2)
        layers, width = [], config.embed_size
        for cell, k in zip(cells, keys[2:], strict=True):
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

    def initial_carry(params, batch_size: int):
        return tuple(
            cell.initial_carry(p, (batch_size,))
            for cell, p in zip(cells, params["layers"], strict=True)
        )

    def apply(params, ids, carry, key=None):
        keys = [None] * (config.num_layers + 1)
        if key is not None:
            keys = list(jax.random.split(key, config.num_layers + 1))
        x = params["embed"][ids]
        new_carry = []
        for cell, p, c, k in zip(cells, params["layers"], carry, keys, strict=False):
            if k is not None:
                x = jaxrnn.dropout_apply(k, x, config.dropout)
            c, x = jaxrnn.unroll(cell, p, x, initial_carry=c)
            new_carry.append(c)
        if keys[-1] is not None:
            x = jaxrnn.dropout_apply(keys[-1], x, config.dropout)
        return tuple(new_carry), x @ params["head"]["w"] + params["head"]["b"]

    def step_fn(params):
        # The first layer's input projection of every character is computed once, so a step
        # gathers one row instead of multiplying the embedding by W_ih.
        first = cells[0].project(params["layers"][0], params["embed"])  # (v, g)

        def step(carry, tokens):
            new_carry = []
            c, x = cells[0].step_projected(params["layers"][0], carry[0], first[tokens])
            new_carry.append(c)
            for cell, p, c in zip(cells[1:], params["layers"][1:], carry[1:], strict=True):
                c, x = cell.step(p, c, x)
                new_carry.append(c)
            logits = x @ params["head"]["w"] + params["head"]["b"]
            return tuple(new_carry), logits.at[:, : len(text.SPECIALS)].set(-jnp.inf)

        return step

    return Model(init, initial_carry, apply, step_fn)
