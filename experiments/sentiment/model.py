"""The sentiment classifier: embedding -> (bi)LSTM/GRU -> pooling -> dense -> softmax.

Dropout on the embeddings, variational recurrent dropout (one mask per sequence for all time
steps, drawn outside the scan), dropout between layers and before the output layer.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn

CELLS = ("lstm", "gru", "elman")  # names of `jaxrnn.cells.FAMILIES` this model is offered with


class Model(NamedTuple):
    """The classifier as pure functions of its params; `make` builds it once per config.

    Shapes: ``b`` sentences, ``t`` tokens, ``f`` pooled features.
    """

    init: Callable[..., dict[str, Any]]
    """``init(key, vocab_size, embeddings=None) -> params``; ``embeddings`` ``(v, e)`` (e.g.
    GloVe rows) replaces the random initial embedding table."""
    features: Callable
    """``features(params, ids (b, t), lengths (b,), key=None, packed=None) -> (b, f)`` pooled
    features; dropout only when ``key`` is given. With ``packed = (resets, doc_row, doc_start,
    doc_length)`` (a batch of `jaxrnn.text.PackedBatches`) the rows of ``ids`` hold several
    sentences each, and the result has one row per sentence."""
    logits: Callable
    """``logits(params, ids, lengths, key=None, packed=None) -> (b, 2)`` class scores:
    negative, positive."""


def make(config) -> Model:
    """The (bi)LSTM/GRU classifier of ``config``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from experiments.sentiment import model
      >>> from experiments.sentiment.configs.default import Config
      >>> m = model.make(Config(embed_size=8, hidden_size=8))
      >>> params = m.init(jax.random.key(0), 50)
      >>> m.logits(params, jnp.ones((3, 6), jnp.int32), jnp.array([6, 2, 4])).shape
      (3, 2)
    """
    jaxrnn.cells.by_name(config.cell, config.hidden_size, allowed=CELLS)  # checks the name
    num_cells = config.num_layers * (2 if config.bidirectional else 1)

    def encoder(masks=None) -> jaxrnn.Layer:
        # Recurrent dropout wraps each cell with its own mask, drawn per batch: with masks the
        # layers are rebuilt (at trace time only); without, `plain` is reused.
        masks = iter(masks or [])

        def cell():
            c = jaxrnn.cells.by_name(config.cell, config.hidden_size, allowed=CELLS)
            mask = next(masks, None)
            return c if mask is None else jaxrnn.with_recurrent_dropout(c, mask)

        layers = [
            jaxrnn.bidirectional(cell(), cell()) if config.bidirectional else cell()
            for _ in range(config.num_layers)
        ]
        return jaxrnn.stacked(layers, dropout=config.layer_dropout)

    plain = encoder()

    def init(key, vocab_size: int, embeddings=None) -> dict[str, Any]:
        k_embed, k_encoder, k_head = jax.random.split(key, 3)
        table = 0.1 * jax.random.normal(k_embed, (vocab_size, config.embed_size))
        if embeddings is not None:
            table = jnp.asarray(embeddings, jnp.float32)
        width = plain.output_size
        return {
            "embed": table,
            "encoder": plain.init(k_encoder, config.embed_size),
            "head": {
                "w": jax.random.normal(k_head, (width, 2)) / jnp.sqrt(width),
                "b": jnp.zeros((2,)),
            },
        }

    def features(params, ids, lengths, key=None, packed=None):
        embedded = params["embed"][ids]  # (b, t, e)
        layer, layer_key = plain, None
        if key is not None:
            k_embed, k_masks, layer_key, k_out = jax.random.split(key, 4)
            embedded = jaxrnn.dropout_apply(k_embed, embedded, config.embed_dropout)
            if config.recurrent_dropout > 0:
                keep = 1.0 - config.recurrent_dropout
                layer = encoder(
                    [
                        jax.random.bernoulli(k, keep, (ids.shape[0], config.hidden_size)) / keep
                        for k in jax.random.split(k_masks, num_cells)
                    ]
                )
        resets = None if packed is None else packed[0]
        _, ys = layer.apply(
            params["encoder"], embedded, seq_lengths=lengths, resets=resets, dropout_key=layer_key
        )
        if packed is not None:  # one row per sentence again, then the same pooling
            lengths = packed[3]
            ys = jaxrnn.packing.unpack(ys, *packed[1:], max_length=ids.shape[1])
        pooled = jaxrnn.pool(ys, lengths, method=config.pooling)
        if key is not None:
            pooled = jaxrnn.dropout_apply(k_out, pooled, config.output_dropout)
        return pooled

    def logits(params, ids, lengths, key=None, packed=None):
        pooled = features(params, ids, lengths, key, packed)
        return pooled @ params["head"]["w"] + params["head"]["b"]

    return Model(init, features, logits)
