"""The recall models, each at about the parameter count of a Transformer of a given width.

Every model is token embedding (``w``) -> a two-layer backbone -> output layer over the
vocabulary. The Transformer of width ``d_model`` sets the parameter budget; each other model
gets the width ``w`` whose parameter count comes closest to it (`matched`), so that the models
differ in how they mix the sequence, not in size.

Backbones: ``lstm``, ``gru``, ``mingru``: stacked recurrent layers (`jaxrnn.stacked`);
``mamba``, ``mlstm``: residual blocks (`jaxrnn.mamba_block`, `jaxrnn.xlstm_block`, or the
plain cells where the library has no blocks) and a final LayerNorm; ``transformer``:
`experiments.transformer` (causal, pre-LN, rotary positions).

Shapes: ``b`` sequences, ``t`` positions, ``v`` vocabulary, ``w`` width.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn
from experiments.charlm.model import block_layers
from experiments.transformer import count_params
from experiments.transformer import layer_norm
from experiments.transformer import transformer

MODELS = ("lstm", "gru", "mingru", "mamba", "mlstm", "transformer")


class RecallModel(NamedTuple):
    """One recall model as pure functions."""

    init: Callable[[Any], Any]
    """``init(key) -> params``."""
    apply: Callable[..., jax.Array]
    """``apply(params, ids (b, t) or (b, t, 2)) -> logits (b, t, v)``."""
    name: str
    width: int
    """``w``, the width of its embedding and layers."""


def make(
    name: str,
    width: int,
    vocab_size: int,
    *,
    seq_len: int,
    num_layers: int = 2,
    num_heads: int = 4,
    state_size: int = 16,
) -> RecallModel:
    """The model ``name`` of width ``width`` (see the module's docstring).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from experiments.recall.model import make
      >>> model = make("gru", 16, 20, seq_len=8)
      >>> params = model.init(jax.random.key(0))
      >>> model.apply(params, jnp.zeros((2, 8), jnp.int32)).shape
      (2, 8, 20)
    """
    check_name(name)
    if name == "transformer":
        net = transformer(width, num_layers, num_heads, context=seq_len)
        return RecallModel(
            lambda key: net.init(key, vocab_size),
            lambda params, ids: net.apply(params, ids),
            name,
            width,
        )
    if name in ("mamba", "mlstm"):
        layers = block_layers(name, width, num_layers, num_heads=num_heads, state_size=state_size)
        normed = True
    else:
        layers = [jaxrnn.cells.by_name(name, width) for _ in range(num_layers)]
        normed = False
    stack = jaxrnn.stacked(layers)

    def init(key):
        k_embed, k_stack, k_head = jax.random.split(key, 3)
        params = {
            "embed": jax.random.normal(k_embed, (vocab_size, width)),
            "layers": stack.init(k_stack, width),
            "head": jax.random.normal(k_head, (width, vocab_size)) / jnp.sqrt(width),
            "head_bias": jnp.zeros((vocab_size,)),
        }
        if normed:
            params["norm"] = {"scale": jnp.ones((width,)), "bias": jnp.zeros((width,))}
        return params

    def apply(params, ids):
        _, x = stack.apply(params["layers"], embed(params["embed"], ids))
        if normed:
            x = layer_norm(params["norm"], x)
        return x @ params["head"] + params["head_bias"]

    return RecallModel(init, apply, name, width)


def embed(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Rows of ``table`` for ids ``(b, t)``, or their sum over the ids ``(b, t, c)`` of one
    position (a paired task's key and value)."""
    x = table[ids]
    return x.sum(axis=-2) if ids.ndim == 3 else x


def check_name(name: Any) -> str:
    """``name`` if it is one of `MODELS`, else a `ValueError` listing them."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {name!r}")
    return name


def num_params(model: RecallModel) -> int:
    """Parameters of ``model`` (counted from shapes, nothing allocated)."""
    return count_params(jax.eval_shape(model.init, jax.random.key(0)))


def matched(
    name: str,
    d_model: int,
    vocab_size: int,
    *,
    seq_len: int,
    num_layers: int = 2,
    num_heads: int = 4,
) -> RecallModel:
    """The model ``name`` at about the parameter count of the Transformer of width
    ``d_model`` (the Transformer itself for ``name="transformer"``).

    The width is searched in steps of ``num_heads`` (heads must divide it), by bisection on
    the parameter count, which grows with the width.

    Example:
      >>> from experiments.recall.model import matched, num_params
      >>> reference = num_params(matched("transformer", 32, 20, seq_len=16))
      >>> lstm = matched("lstm", 32, 20, seq_len=16)
      >>> abs(num_params(lstm) - reference) / reference < 0.1
      True
    """
    check_name(name)
    if not isinstance(d_model, int) or d_model < 1 or d_model % (2 * num_heads):
        raise ValueError(
            f"d_model must be a positive multiple of 2 * num_heads = {2 * num_heads} (rotary "
            f"heads of even width), got {d_model!r}"
        )
    options = {"seq_len": seq_len, "num_layers": num_layers, "num_heads": num_heads}
    build = lambda name, width: make(name, width, vocab_size, **options)
    if name == "transformer":
        return build(name, d_model)
    budget = num_params(build("transformer", d_model))
    size = lambda units: num_params(build(name, units * num_heads))
    low, high = 1, 2
    while size(high) < budget:
        low, high = high, 2 * high
    while high - low > 1:  # size(low) < budget <= size(high), or low is the smallest
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) < budget else (low, middle)
    units = low if budget - size(low) < size(high) - budget else high
    return build(name, units * num_heads)
