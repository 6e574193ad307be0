"""A small causal pre-LN Transformer language model: the baseline the recurrent models meet.

Pure functions of a params pytree, as the experiments' recurrent models are: `transformer`
builds a `Transformer` (``init``, ``apply``, ``init_cache``, ``step``) from its sizes. Each block
is ``x + attention(LN(x))`` then ``x + MLP(LN(x))`` (pre-LN, GELU MLP); a final LayerNorm, then
the output layer, tied to the token embedding or its own. Positions are rotary (relative: a
query at position ``i`` sees a key at ``j`` through ``i - j`` only) or learned (an absolute
table of ``context`` rows).

Generation reads one token at a time from a key/value cache (`Transformer.init_cache`,
`Transformer.step`) and gives the logits of `Transformer.apply` on the whole sequence. A
cache of ``n`` positions is a ring: once it is full, each new token overwrites the oldest, so
generation past ``n`` tokens attends to the last ``n`` in every block (sliding-window
attention, for rotary positions, which see no distance beyond ``n - 1``). With one block that
is reading the last ``n`` tokens afresh; with more, the cached keys of older positions still
carry what those positions saw, so the reach grows with depth, as in Mistral's sliding window.

Shapes: ``b`` batch, ``t`` time, ``v`` vocabulary, ``d`` model width, ``n`` cache positions,
``H`` heads, ``k`` width per head (``d / H``).
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

POSITIONS = ("rotary", "learned")
_NEG = -1e30  # a masked score: finite, so a row with every key masked (padding) is not NaN


class KVCache(NamedTuple):
    """What generation keeps of the tokens read so far."""

    keys: tuple[jax.Array, ...]  # per block (b, H, n, k): rotated keys, slot = position % n
    values: tuple[jax.Array, ...]  # per block (b, H, n, k)
    position: jax.Array  # () int32: the position of the next token (= tokens read so far)


class Transformer(NamedTuple):
    """A causal Transformer language model as pure functions; `transformer` builds one."""

    init: Callable[..., dict[str, Any]]
    """``init(key, vocab_size) -> params``."""
    apply: Callable[..., jax.Array]
    """``apply(params, ids (b, t), *, mask=None, key=None) -> logits (b, t, v)``; ids ``(b, t, c)``
    add the embeddings of a position's ``c`` ids. ``mask``
    ``(b, t)`` marks the real tokens; padding (left or right) is never attended to and does
    not count as a position. Dropout only with ``key``."""
    init_cache: Callable[..., KVCache]
    """``init_cache(params, batch, max_len) -> KVCache``: empty, holding ``max_len``
    positions."""
    step: Callable[..., tuple[KVCache, jax.Array]]
    """``step(params, cache, tokens (b,)) -> (cache, logits (b, v))``: reads one token per
    sequence at ``cache.position``."""
    context: int
    """The longest sequence ``apply`` takes with learned positions (rotary: a soft limit,
    the window the model was meant to be trained on)."""


def transformer(
    d_model: int,
    num_layers: int,
    num_heads: int,
    *,
    context: int,
    positions: str = "rotary",
    tied: bool = True,
    mlp_ratio: int = 4,
    dropout: float = 0.0,
) -> Transformer:
    """A causal pre-LN Transformer language model.

    Args:
      d_model: ``d``, the width of the residual stream.
      num_layers: blocks (attention + MLP).
      num_heads: ``H``; must divide ``d_model`` (and ``d_model / H`` must be even for
        rotary positions).
      context: the longest sequence for learned positions (their table's rows).
      positions: ``"rotary"`` or ``"learned"``.
      tied: the output layer is the token embedding, transposed (plus a bias).
      mlp_ratio: the MLP's hidden width over ``d``.
      dropout: rate on the embeddings, on each block's two branches and before the output.

    Returns:
      A `Transformer`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from experiments.transformer import transformer
      >>> model = transformer(32, 2, 4, context=16)
      >>> params = model.init(jax.random.key(0), 50)
      >>> model.apply(params, jnp.ones((3, 7), jnp.int32)).shape
      (3, 7, 50)
      >>> cache = model.init_cache(params, 3, 16)
      >>> cache, logits = model.step(params, cache, jnp.ones((3,), jnp.int32))
      >>> logits.shape, int(cache.position)
      ((3, 50), 1)
    """
    for name, value in (("d_model", d_model), ("num_layers", num_layers),
                        ("num_heads", num_heads), ("context", context),
                        ("mlp_ratio", mlp_ratio)):  # fmt: skip
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if d_model % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
    head = d_model // num_heads
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}; got {positions!r}")
    if positions == "rotary" and head % 2:
        raise ValueError(
            f"rotary positions need an even width per head; d_model={d_model} / "
            f"num_heads={num_heads} = {head}"
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

    def init(key, vocab_size: int) -> dict[str, Any]:
        keys = jax.random.split(key, num_layers + 3)
        normal = lambda k, shape, scale: scale * jax.random.normal(k, shape)
        ones, zeros = jnp.ones((d_model,)), jnp.zeros((d_model,))
        blocks = []
        for k in keys[3:]:
            k1, k2, k3, k4 = jax.random.split(k, 4)
            out_scale = 0.02 / np.sqrt(2 * num_layers)  # GPT-2: residual branches start small
            blocks.append(
                {
                    "ln1": {"scale": ones, "bias": zeros},
                    "qkv": normal(k1, (d_model, 3 * d_model), 0.02),
                    "out": normal(k2, (d_model, d_model), out_scale),
                    "ln2": {"scale": ones, "bias": zeros},
                    "up": normal(k3, (d_model, mlp_ratio * d_model), 0.02),
                    "up_bias": jnp.zeros((mlp_ratio * d_model,)),
                    "down": normal(k4, (mlp_ratio * d_model, d_model), out_scale),
                    "down_bias": zeros,
                }
            )
        params = {
            "embed": normal(keys[0], (vocab_size, d_model), 0.02),
            "blocks": tuple(blocks),
            "ln_f": {"scale": ones, "bias": zeros},
            "head_bias": jnp.zeros((vocab_size,)),
        }
        if positions == "learned":
            params["positions"] = normal(keys[1], (context, d_model), 0.02)
        if not tied:
            params["head"] = normal(keys[2], (d_model, vocab_size), 0.02)
        return params

    def embed(params, ids, pos):
        x = params["embed"][ids]
        if ids.ndim == 3:  # several ids per position (a paired recall task): their sum
            x = x.sum(axis=-2)
        if positions == "learned":
            x = x + params["positions"][pos]
        return x

    def logits_of(params, x):
        x = layer_norm(params["ln_f"], x)
        w = params["embed"].T if tied else params["head"]
        return x @ w + params["head_bias"]

    def mlp(p, x):
        h = jax.nn.gelu(layer_norm(p["ln2"], x) @ p["up"] + p["up_bias"])
        return h @ p["down"] + p["down_bias"]

    def qkv(p, x, pos):
        """``(q, k, v)``, each ``(..., H, k)``, rotated at ``pos`` (``(...)``)."""
        q, k, v = jnp.split(layer_norm(p["ln1"], x) @ p["qkv"], 3, axis=-1)
        q, k, v = (a.reshape(*a.shape[:-1], num_heads, head) for a in (q, k, v))
        if positions == "rotary":
            q, k = rotate(q, pos), rotate(k, pos)
        return q, k, v

    def apply(params, ids, *, mask=None, key=None):
        b, t = ids.shape[:2]
        if positions == "learned" and t > context:
            raise ValueError(
                f"ids of length {t} exceed the learned positions' context of {context}"
            )
        valid = jnp.ones((b, t), bool) if mask is None else jnp.asarray(mask, bool)
        pos = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0)  # padding is no position
        causal = jnp.tril(jnp.ones((t, t), bool))
        allowed = causal[None, None] & valid[:, None, None, :]  # (b, 1, t_query, t_key)
        keys = [None] * (2 * num_layers + 2)
        if key is not None and dropout > 0:
            keys = list(jax.random.split(key, 2 * num_layers + 2))
        x = drop(keys[0], embed(params, ids, pos))
        for n, p in enumerate(params["blocks"]):
            q, k, v = qkv(p, x, pos)  # (b, t, H, k)
            scores = jnp.einsum("bqhc,bkhc->bhqk", q, k) / np.sqrt(head)
            weights = jax.nn.softmax(jnp.where(allowed, scores, _NEG), axis=-1)
            attended = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(b, t, d_model)
            x = x + drop(keys[2 * n + 1], attended @ p["out"])
            x = x + drop(keys[2 * n + 2], mlp(p, x))
        return logits_of(params, drop(keys[-1], x))

    def drop(key, x):
        if key is None:
            return x
        keep = jax.random.bernoulli(key, 1 - dropout, x.shape)
        return jnp.where(keep, x / (1 - dropout), 0)

    def init_cache(params, batch: int, max_len: int) -> KVCache:
        if not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len must be an integer >= 1, got {max_len!r}")
        dtype = params["embed"].dtype
        shape = (batch, num_heads, max_len, head)
        empty = tuple(jnp.zeros(shape, dtype) for _ in range(num_layers))
        return KVCache(keys=empty, values=empty, position=jnp.zeros((), jnp.int32))

    def step(params, cache: KVCache, tokens):
        pos = cache.position
        n = cache.keys[0].shape[2]
        slot = pos % n
        # Slot j holds position pos - ((slot - j) mod n): valid once that is >= 0.
        held = (slot - jnp.arange(n)) % n <= pos  # (n,)
        x = embed(params, tokens, jnp.minimum(pos, context - 1))  # (b, d)
        new_keys, new_values = [], []
        for p, cached_k, cached_v in zip(params["blocks"], cache.keys, cache.values, strict=True):
            q, k, v = qkv(p, x, pos)  # (b, H, k)
            cached_k = jax.lax.dynamic_update_index_in_dim(cached_k, k, slot, axis=2)
            cached_v = jax.lax.dynamic_update_index_in_dim(cached_v, v, slot, axis=2)
            scores = jnp.einsum("bhc,bhnc->bhn", q, cached_k) / np.sqrt(head)
            weights = jax.nn.softmax(jnp.where(held[None, None], scores, _NEG), axis=-1)
            attended = jnp.einsum("bhn,bhnc->bhc", weights, cached_v).reshape(-1, d_model)
            x = x + attended @ p["out"]
            x = x + mlp(p, x)
            new_keys.append(cached_k)
            new_values.append(cached_v)
        cache = KVCache(tuple(new_keys), tuple(new_values), pos + 1)
        return cache, logits_of(params, x)

    return Transformer(init, apply, init_cache, step, context)


def layer_norm(p: dict[str, jax.Array], x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """LayerNorm over the last axis, with ``p["scale"]`` and ``p["bias"]`` ``(d,)``."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def rotate(x: jax.Array, pos: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021) of ``x`` ``(..., H, k)`` at positions
    ``pos`` (``x.shape[:-2]``, or a scalar): pairs ``(x[i], x[i + k/2])`` turn by
    ``pos * base**(-2i/k)``, so that a query-key product depends on the distance only."""
    half = x.shape[-1] // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)  # (k/2,)
    angle = jnp.asarray(pos, jnp.float32)[..., None, None] * freq  # (..., 1, k/2)
    cos, sin = jnp.cos(angle).astype(x.dtype), jnp.sin(angle).astype(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return jnp.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def tree_bytes(tree: Any) -> int:
    """Bytes of the arrays of a pytree (arrays or `jax.ShapeDtypeStruct`s).

    Example:
      >>> import jax.numpy as jnp
      >>> from experiments.transformer import tree_bytes
      >>> tree_bytes({"a": jnp.zeros((2, 3)), "b": (jnp.zeros(4, jnp.int32),)})
      40
    """
    return sum(
        int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree)
    )


def count_params(params: Any) -> int:
    """Number of scalars in a params pytree.

    Example:
      >>> import jax.numpy as jnp
      >>> from experiments.transformer import count_params
      >>> count_params({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
      16
    """
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
