"""The character-level language models: embedding -> LSTM/GRU, xLSTM, Mamba or Transformer
-> softmax over characters, all behind one interface (`Model`)."""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn
from experiments.transformer import layer_norm
from experiments.transformer import transformer
from jaxrnn import text

CELLS = ("lstm", "gru")  # names of `jaxrnn.cells.FAMILIES` this model is offered with
MODELS = ("lstm", "slstm", "mlstm", "mamba", "transformer")


class Model(NamedTuple):
    """A character model as pure functions of its params; `make` builds it once per config.

    Shapes: ``b`` streams, ``t`` characters, ``v`` vocabulary, ``p`` prompt characters.
    """

    init: Callable[..., dict[str, Any]]
    """``init(key, vocab_size) -> params``."""
    initial_carry: Callable
    """``initial_carry(params, batch_size) -> carry``: the zero state of every layer (the
    Transformer has none: ``()``)."""
    apply: Callable
    """``apply(params, ids (b, t), carry, key=None) -> (carry, logits (b, t, v))``; dropout (on
    the embeddings, between layers and before the output) only with ``key``. The Transformer
    reads each ``ids`` on its own and returns the carry ``()`` it was given."""
    step_fn: Callable
    """``step_fn(params) -> step(state, tokens (b,)) -> (state, logits (b, v))`` for
    `jaxrnn.decode.generate`; the reserved ids (``<pad>``, ``<unk>``, ...) are never
    generated. The state is the carry (RNNs) or a key/value cache (Transformer)."""
    read_prompt: Callable
    """``read_prompt(params, ids (b, p), room) -> state``: the generation state after reading
    ``ids`` (``p`` may be 0), with room for ``room`` more steps."""
    generation_state: Callable
    """``generation_state(params, batch_size, position) -> state``: an (empty) state of the
    size generation holds at ``position`` without a window: constant for the RNNs, a
    key/value cache of ``position`` entries for the Transformer (for its bytes)."""
    stateful: bool
    """Whether the carry runs on from one chunk to the next (RNNs), or each chunk is read on
    its own (Transformer)."""


def make(config) -> Model:
    """The language model of ``config`` (``config.model``); its layers are built here, once.

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
    if config.model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {config.model!r}")
    if config.model == "lstm":
        return _recurrent(config)
    if config.model == "transformer":
        return _transformer(config.resolved())
    return _blocks(config.resolved())


def count_params(params) -> int:
    """Number of scalars in ``params``."""
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def _never_special(logits):
    return logits.at[:, : len(text.SPECIALS)].set(-jnp.inf)


def _recurrent(config) -> Model:
    """Embedding -> stacked LSTM/GRU cells -> output layer (the original model)."""
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
            return tuple(new_carry), _never_special(logits)

        return step

    return Model(init, initial_carry, apply, step_fn, *_rnn_generation(initial_carry, apply))


def _rnn_generation(initial_carry, apply):
    """``read_prompt`` and ``generation_state`` of a model whose state is its carry."""

    def read_prompt(params, ids, room):
        del room  # a carry has the same size at every position
        carry = initial_carry(params, ids.shape[0])
        if ids.shape[1] == 0:
            return carry
        return apply(params, ids, carry)[0]

    def generation_state(params, batch_size, position):
        del position
        return initial_carry(params, batch_size)

    return read_prompt, generation_state, True


# How each family's blocks run the training sequences (windows of about 100 steps): the
# mLSTM's parallel form and the sequential Mamba scan are the fastest on a CPU
# (benchmarks/README.md, "The newer families"); decoding steps one token at a time anyway.
STRATEGIES = {"mlstm": jaxrnn.Strategy(mode="parallel")}


def block_layers(name: str, d_model: int, num_blocks: int, *, num_heads: int, state_size: int):
    """``num_blocks`` residual blocks of ``name`` ('slstm', 'mlstm' or 'mamba') of width
    ``d_model``: `jaxrnn.xlstm_block` or `jaxrnn.mamba_block`, run by `STRATEGIES`."""
    strategy = STRATEGIES.get(name)
    if name == "mamba":
        block = lambda: jaxrnn.mamba_block(d_model, state_size=state_size, strategy=strategy)
    else:
        block = lambda: jaxrnn.xlstm_block(
            d_model, cell=name, num_heads=num_heads, strategy=strategy
        )
    return [block() for _ in range(num_blocks)]


def _blocks(config) -> Model:
    """Embedding (d) -> ``num_blocks`` sLSTM, mLSTM or Mamba blocks -> LayerNorm -> output."""
    d = config.d_model
    stack = jaxrnn.stacked(
        block_layers(
            config.model,
            d,
            config.num_blocks,
            num_heads=config.num_heads,
            state_size=config.state_size,
        ),
        dropout=config.dropout,
    )

    def init(key, vocab_size: int) -> dict[str, Any]:
        k_embed, k_stack, k_head = jax.random.split(key, 3)
        return {
            "embed": jax.random.normal(k_embed, (vocab_size, d)),
            "layers": stack.init(k_stack, d),
            "norm": {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))},
            "head": {
                "w": jax.random.normal(k_head, (d, vocab_size)) / jnp.sqrt(d),
                "b": jnp.zeros((vocab_size,)),
            },
        }

    def initial_carry(params, batch_size: int):
        return stack.initial_carry(params["layers"], (batch_size,))

    def apply(params, ids, carry, key=None):
        keys = [None] * 3
        if key is not None:
            keys = list(jax.random.split(key, 3))
        x = params["embed"][ids]
        if keys[0] is not None:
            x = jaxrnn.dropout_apply(keys[0], x, config.dropout)
        carry, x = stack.apply(params["layers"], x, initial_carry=carry, dropout_key=keys[1])
        x = layer_norm(params["norm"], x)
        if keys[2] is not None:
            x = jaxrnn.dropout_apply(keys[2], x, config.dropout)
        return carry, x @ params["head"]["w"] + params["head"]["b"]

    def step_fn(params):
        def step(carry, tokens):  # one character: the layers read a sequence of length 1
            carry, logits = apply(params, tokens[:, None], carry)
            return carry, _never_special(logits[:, 0])

        return step

    return Model(init, initial_carry, apply, step_fn, *_rnn_generation(initial_carry, apply))


def _transformer(config) -> Model:
    """The causal Transformer of `experiments.transformer`, trained on windows of
    ``chunk_length`` characters; it generates through its key/value cache, attending to the
    last ``chunk_length`` characters (a sliding window, with rotary positions)."""
    net = transformer(
        config.d_model,
        config.num_blocks,
        config.num_heads,
        context=config.chunk_length,
        positions=config.positions,
        dropout=config.dropout,
    )

    def init(key, vocab_size: int) -> dict[str, Any]:
        return net.init(key, vocab_size)

    def initial_carry(params, batch_size: int):
        del params, batch_size
        return ()

    def apply(params, ids, carry, key=None):
        return carry, net.apply(params, ids, key=key)

    def step_fn(params):
        def step(cache, tokens):
            cache, logits = net.step(params, cache, tokens)
            return cache, _never_special(logits)

        return step

    def read_prompt(params, ids, room):
        total = ids.shape[1] + room
        if config.positions == "learned" and total > net.context:
            raise ValueError(
                f"a Transformer with learned positions reads at most {net.context} characters "
                f"(--chunk-length); the prompt and the sample need {total}. Sample fewer "
                "characters, or train with --positions rotary"
            )
        cache = net.init_cache(params, ids.shape[0], min(total, net.context))
        if ids.shape[1] == 0:
            return cache
        cache, _ = jax.lax.scan(lambda c, tok: (net.step(params, c, tok)[0], None), cache, ids.T)
        return cache

    def generation_state(params, batch_size, position):
        return net.init_cache(params, batch_size, position)

    return Model(init, initial_carry, apply, step_fn, read_prompt, generation_state, False)
