"""Generating sequences under `jax.jit`: sampling with temperature and top-k, greedy decoding.

The model is given as a step function ``step_fn(carry, tokens) -> (carry, logits)`` that reads
one token per sequence ``(b,)`` and returns the next-token scores ``(b, v)``; the whole
generation is one `jax.lax.scan`, with no Python loop per token.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import PRNGKey

StepFn = Callable[[Carry, Array], tuple[Carry, Array]]


def select(logits: Array, key: PRNGKey | None, *, temperature: float = 1.0,
           top_k: int | None = None) -> Array:
    """Picks one token per row of ``logits`` ``(b, v)``: sampled, or argmax when greedy.

    ``temperature == 0`` (or ``key=None``) is greedy decoding. Otherwise the logits are divided
    by ``temperature`` and, with ``top_k``, all but the ``top_k`` largest are excluded before
    sampling.

    Args:
      logits: ``(b, v)`` unnormalised scores.
      key: PRNG key, or None for greedy.
      temperature: ``> 0`` sharpens (< 1) or flattens (> 1) the distribution; 0 is greedy.
      top_k: sample only among the ``top_k`` most likely tokens.

    Returns:
      ``(b,)`` int32 token ids.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> logits = jnp.array([[0.0, 5.0, 1.0]])
      >>> select(logits, None).tolist()
      [1]
      >>> select(logits, jax.random.key(0), temperature=1.0, top_k=1).tolist()
      [1]
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= logits.shape[-1]:
        raise ValueError(f"top_k must be in [1, {logits.shape[-1]}], got {top_k}")
    if key is None or temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    scaled = logits.astype(jnp.float32) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(scaled, top_k)[0][..., -1:]
        scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
    return jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)


def generate(
    step_fn: StepFn,
    carry: Carry,
    first_tokens: Array,
    *,
    length: int,
    key: PRNGKey | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    unroll: int = 1,
) -> tuple[Array, Carry]:
    """Generates ``length`` tokens after ``first_tokens`` with one `jax.lax.scan`.

    Each step feeds the previous token to ``step_fn`` and picks the next with `select`. Prime
    the model first (run it over the prompt with `jaxrnn.unroll` to get ``carry``) and pass
    the prompt's last token as ``first_tokens``. Same key, same text.

    Args:
      step_fn: ``step_fn(carry, tokens (b,)) -> (carry, logits (b, v))``.
      carry: the model state after the prompt.
      first_tokens: ``(b,)`` the last token of each prompt.
      length: number of tokens to generate (static).
      key: PRNG key; None (or ``temperature=0``) decodes greedily.
      temperature: see `select`.
      top_k: see `select`.
      unroll: steps per loop iteration of the scan (speed only).

    Returns:
      ``(tokens (b, length) int32, final carry)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> step = lambda carry, tok: (carry, jax.nn.one_hot((tok + 1) % 5, 5) * 10.0)
      >>> tokens, _ = generate(step, (), jnp.array([0]), length=4)
      >>> tokens.tolist()
      [[1, 2, 3, 4]]
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    first_tokens = jnp.asarray(first_tokens, jnp.int32)
    keys = None if key is None else jax.random.split(key, length)

    def body(state, step_key):
        carry, tokens = state
        carry, logits = step_fn(carry, tokens)
        tokens = select(logits, step_key, temperature=temperature, top_k=top_k)
        return (carry, tokens), tokens

    (carry, _), tokens = jax.lax.scan(body, (carry, first_tokens), keys, length=length,
                                      unroll=unroll)
    return jnp.swapaxes(tokens, 0, 1), carry
