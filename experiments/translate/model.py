"""Encoder-decoder with additive (Bahdanau) attention, built from jaxrnn cells and layers.

Encoder: embedding -> stacked bidirectional GRU over the padded source (``seq_lengths``).
Decoder: a GRU whose input is the previous target word and the attention context; the
attention reads the encoder outputs with the previous decoder state as query, masked so that
padding gets no weight; the output layer is tied to the target embeddings.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn import text


class Memory(NamedTuple):
    """What the decoder attends to: fixed for a sentence during decoding."""

    outputs: jax.Array  # (b, s, 2e) encoder outputs
    keys: jax.Array  # (b, s, a) their attention projection, computed once
    mask: jax.Array  # (b, s) True on real source tokens


# Ids a translation never contains: padding, the start symbol, and <unk>. Left in, <unk> is
# the likeliest word for about one test sentence in six (rare words were all <unk> in training)
# and can never match a reference; masked, the decoder picks its best real word instead
# (validation BLEU with beam 5: 42.1 -> 46.3).
NEVER_GENERATED = (text.Vocabulary.pad_id, text.Vocabulary.unk_id, text.Vocabulary.bos_id)


class Model(NamedTuple):
    """The translation model as pure functions of its params; `make` builds it once per config.

    Shapes: ``b`` sentences, ``s`` source tokens, ``t`` target tokens, ``v`` target vocabulary,
    ``d`` decoder size.
    """

    init: Callable[..., dict[str, Any]]
    """``init(key, source_vocab, target_vocab) -> params``."""
    encode: Callable
    """``encode(params, source_ids (b, s), source_lengths (b,), key=None) -> (state (b, d),
    Memory)``; ``key`` switches dropout on."""
    decode_step: Callable
    """``decode_step(params, state, memory, tokens (b,), key=None) -> (state, logits (b, v),
    attention (b, s))``."""
    teacher_forced: Callable
    """``teacher_forced(params, source_ids, source_lengths, decoder_inputs (b, t), key=None)
    -> (logits (b, t, v), attention (b, t, s))``."""
    step_fn: Callable
    """``step_fn(params) -> step(carry, tokens) -> (carry, logits)`` for `jaxrnn.decode`; the
    carry is ``(state, memory)`` so that beam search reorders both with the hypotheses, and the
    ids in `NEVER_GENERATED` get ``-inf``."""


def make(config) -> Model:
    """The encoder-decoder of ``config``: its layers are built here, once.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from experiments.translate import model
      >>> from experiments.translate.configs.default import Config
      >>> config = Config(embed_size=8, encoder_size=8, decoder_size=8, attention_size=8)
      >>> m = model.make(config)
      >>> params = m.init(jax.random.key(0), 20, 30)
      >>> logits, attention = m.teacher_forced(
      ...     params, jnp.ones((2, 5), jnp.int32), jnp.array([5, 3]), jnp.ones((2, 4), jnp.int32)
      ... )
      >>> logits.shape, attention.shape
      ((2, 4, 30), (2, 4, 5))
    """
    encoder = jaxrnn.stacked(
        [
            jaxrnn.bidirectional(jaxrnn.gru(config.encoder_size))
            for _ in range(config.encoder_layers)
        ],
        dropout=config.dropout,
    )
    decoder = jaxrnn.gru(config.decoder_size)
    never = jnp.array(NEVER_GENERATED)

    def init(key, source_vocab: int, target_vocab: int) -> dict[str, Any]:
        keys = jax.random.split(key, 8)
        e, a, d, m = (
            config.embed_size,
            config.attention_size,
            config.decoder_size,
            2 * config.encoder_size,
        )
        normal = lambda k, shape, fan_in: jax.random.normal(k, shape) / jnp.sqrt(fan_in)
        return {
            "source_embed": normal(keys[0], (source_vocab, e), e),
            "target_embed": normal(keys[1], (target_vocab, e), e),
            "encoder": encoder.init(keys[2], e),
            "bridge": {"w": normal(keys[3], (m, d), m), "b": jnp.zeros((d,))},
            "attention": {
                "keys": normal(keys[4], (m, a), m),
                "query": normal(keys[5], (d, a), d),
                "v": normal(keys[6], (a,), a),
            },
            "decoder": decoder.init(keys[7], e + m),
            "out": {
                "w": normal(jax.random.fold_in(key, 1), (d + m, e), d + m),
                "b": jnp.zeros((e,)),
            },
            "out_bias": jnp.zeros((target_vocab,)),
        }

    def encode(params, source_ids, source_lengths, key=None):
        keys = (None, None) if key is None else jax.random.split(key)
        x = params["source_embed"][source_ids]
        if key is not None:
            x = jaxrnn.dropout_apply(keys[0], x, config.dropout)
        carries, outputs = encoder.apply(
            params["encoder"], x, seq_lengths=source_lengths, dropout_key=keys[1]
        )
        last = carries[-1]  # the top layer's BidirectionalCarry
        summary = jnp.concatenate([last.forward, last.backward], axis=-1)
        state = jnp.tanh(summary @ params["bridge"]["w"] + params["bridge"]["b"])
        mask = jnp.arange(source_ids.shape[1])[None, :] < source_lengths[:, None]
        return state, Memory(outputs, outputs @ params["attention"]["keys"], mask)

    def decode_step(params, state, memory: Memory, tokens, key=None):
        weights, context = attend(params, state, memory)
        embedded = params["target_embed"][tokens]
        state, _ = decoder.step(
            params["decoder"], state, jnp.concatenate([embedded, context], axis=-1)
        )
        hidden = jnp.tanh(
            jnp.concatenate([state, context], axis=-1) @ params["out"]["w"] + params["out"]["b"]
        )
        if key is not None:
            hidden = jaxrnn.dropout_apply(key, hidden, config.dropout)
        logits = hidden @ params["target_embed"].T + params["out_bias"]  # tied output layer
        return state, logits, weights

    def teacher_forced(params, source_ids, source_lengths, decoder_inputs, key=None):
        k_encode, k_decode = (None, None) if key is None else jax.random.split(key)
        state, memory = encode(params, source_ids, source_lengths, k_encode)
        steps = decoder_inputs.shape[1]
        step_keys = None if k_decode is None else jax.random.split(k_decode, steps)

        def body(state, inputs):
            tokens, step_key = inputs
            state, logits, weights = decode_step(params, state, memory, tokens, step_key)
            return state, (logits, weights)

        _, (logits, weights) = jax.lax.scan(body, state, (decoder_inputs.T, step_keys))
        return jnp.swapaxes(logits, 0, 1), jnp.swapaxes(weights, 0, 1)

    def step_fn(params):
        def step(carry, tokens):
            state, memory = carry
            state, logits, _ = decode_step(params, state, memory, tokens)
            return (state, memory), logits.at[:, never].set(-jnp.inf)

        return step

    return Model(init, encode, decode_step, teacher_forced, step_fn)


def attend(params, state, memory: Memory):
    """Additive attention: weights ``(b, s)`` (zero on padding, summing to 1) and context."""
    query = state @ params["attention"]["query"]  # (b, a)
    scores = jnp.tanh(memory.keys + query[:, None, :]) @ params["attention"]["v"]  # (b, s)
    scores = jnp.where(memory.mask, scores, -jnp.inf)
    weights = jax.nn.softmax(scores, axis=-1)
    weights = jnp.where(memory.mask, weights, 0.0)  # exact zeros (and no NaN for empty rows)
    return weights, jnp.einsum("bs,bsm->bm", weights, memory.outputs)
