"""The sentiment classifier: embedding -> (bi)LSTM/GRU -> pooling -> dense -> softmax.

Dropout on the embeddings, variational recurrent dropout (one mask per sequence for all time
steps, drawn outside the scan), dropout between layers and before the output layer.
"""

from typing import Any

import jax
import jax.numpy as jnp

import jaxrnn

CELLS = {"lstm": jaxrnn.lstm, "gru": jaxrnn.gru, "elman": jaxrnn.elman}


def _cell(config, recurrent_mask=None) -> jaxrnn.Cell:
    if config.cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {config.cell!r}")
    cell = CELLS[config.cell](config.hidden_size)
    return cell if recurrent_mask is None else jaxrnn.with_recurrent_dropout(cell, recurrent_mask)


def encoder(config, masks=None) -> jaxrnn.Layer:
    """The recurrent encoder; ``masks`` gives one recurrent-dropout mask per cell, in order."""
    masks = iter(masks or [])
    layers = []
    for _ in range(config.num_layers):
        if config.bidirectional:
            layers.append(
                jaxrnn.bidirectional(
                    _cell(config, next(masks, None)), _cell(config, next(masks, None))
                )
            )
        else:
            layers.append(_cell(config, next(masks, None)))
    return jaxrnn.stacked(layers, dropout=config.layer_dropout)


def num_cells(config) -> int:
    return config.num_layers * (2 if config.bidirectional else 1)


def init_params(config, vocab_size: int, key, embeddings=None) -> dict[str, Any]:
    """Params of the classifier; ``embeddings`` ``(v, e)`` (e.g. GloVe rows) replaces the random
    initial embedding table where given."""
    k_embed, k_encoder, k_head = jax.random.split(key, 3)
    table = 0.1 * jax.random.normal(k_embed, (vocab_size, config.embed_size))
    if embeddings is not None:
        table = jnp.asarray(embeddings, jnp.float32)
    layer = encoder(config)
    features = layer.output_size
    return {
        "embed": table,
        "encoder": layer.init(k_encoder, config.embed_size),
        "head": {
            "w": jax.random.normal(k_head, (features, 2)) / jnp.sqrt(features),
            "b": jnp.zeros((2,)),
        },
    }


def features(config, params, ids, lengths, key=None):
    """Pooled sentence features ``(b, f)``; dropout only when ``key`` is given."""
    embedded = params["embed"][ids]  # (b, t, e)
    masks = None
    layer_key = None
    if key is not None:
        k_embed, k_masks, layer_key, k_out = jax.random.split(key, 4)
        embedded = jaxrnn.dropout_apply(k_embed, embedded, config.embed_dropout)
        if config.recurrent_dropout > 0:
            keep = 1.0 - config.recurrent_dropout
            masks = [
                jax.random.bernoulli(k, keep, (ids.shape[0], config.hidden_size)) / keep
                for k in jax.random.split(k_masks, num_cells(config))
            ]
    _, ys = encoder(config, masks).apply(
        params["encoder"], embedded, seq_lengths=lengths, dropout_key=layer_key
    )
    pooled = jaxrnn.pool(ys, lengths, method=config.pooling)
    if key is not None:
        pooled = jaxrnn.dropout_apply(k_out, pooled, config.output_dropout)
    return pooled


def logits(config, params, ids, lengths, key=None):
    """Class scores ``(b, 2)``: negative, positive."""
    pooled = features(config, params, ids, lengths, key)
    return pooled @ params["head"]["w"] + params["head"]["b"]
