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


def select(
    logits: Array, key: PRNGKey | None, *, temperature: float = 1.0, top_k: int | None = None
) -> Array:
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

    (carry, _), tokens = jax.lax.scan(
        body, (carry, first_tokens), keys, length=length, unroll=unroll
    )
    return jnp.swapaxes(tokens, 0, 1), carry


def beam_search(
    step_fn: StepFn,
    carry: Carry,
    first_tokens: Array,
    *,
    beam_size: int,
    max_length: int,
    eos_id: int,
    pad_id: int = 0,
    length_penalty: float = 0.6,
) -> tuple[Array, Array, Array]:
    """Beam search for ``b`` sequences at once, as one `jax.lax.scan` of ``max_length`` steps.

    Every step expands each of the ``k`` live hypotheses of a sequence by every token and keeps
    the ``k`` best by total log-probability. A hypothesis that emits ``eos_id`` is finished: it
    stays in the beam with its score frozen and only ``pad_id`` after it. At the end each
    hypothesis is ranked by ``log p / ((5 + length) / 6) ** length_penalty`` (Wu et al. 2016;
    0 ranks by raw log-probability, larger values favour longer outputs).

    Args:
      step_fn: ``step_fn(carry, tokens (b*k,)) -> (carry, logits (b*k, v))``; the carry's
        leaves have leading dimension ``b*k``, beams of one sequence adjacent.
      carry: the state for the ``b*k`` hypotheses (e.g. ``jnp.repeat(state, k, axis=0)``).
      first_tokens: ``(b,)`` the start token of each sequence (e.g. ``<bos>``).
      beam_size: ``k``.
      max_length: the most tokens generated (EOS included).
      eos_id: the end token.
      pad_id: what follows the end.
      length_penalty: the ``alpha`` of the length normalisation.

    Returns:
      ``(tokens (b, k, max_length), scores (b, k), lengths (b, k))``, best hypothesis first;
      lengths count the tokens up to and including EOS.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> table = jnp.log(jnp.array([[.1, .1, .4, .4], [.1, .1, .1, .7], [.1, .1, .7, .1],
      ...                            [.1, .9, 0., 0.]]) + 1e-9)  # next-token log-probs
      >>> step = lambda carry, tok: (carry, table[tok])
      >>> tokens, scores, lengths = beam_search(step, (), jnp.array([0]), beam_size=2,
      ...                                       max_length=4, eos_id=1)
      >>> tokens[0, 0].tolist(), lengths[0, 0].tolist()
      ([3, 1, 0, 0], 2)
    """
    if beam_size < 1 or max_length < 1:
        raise ValueError(
            f"beam_size and max_length must be positive, got {beam_size}, {max_length}"
        )
    first_tokens = jnp.asarray(first_tokens, jnp.int32)
    b, k = first_tokens.shape[0], beam_size
    # Only the first beam is live at the start: the others are copies and must not be chosen.
    scores = jnp.tile(jnp.asarray([0.0] + [-jnp.inf] * (k - 1), jnp.float32), (b, 1))
    state = (
        carry,
        jnp.repeat(first_tokens, k),  # (b*k,) last token of each hypothesis
        scores,  # (b, k) total log-probability
        jnp.zeros((b, k), bool),  # finished
        jnp.zeros((b, k), jnp.int32),  # lengths
        jnp.full((b, k, max_length), pad_id, jnp.int32),  # tokens so far
    )

    def body(state, t):
        carry, last, scores, finished, lengths, tokens = state
        carry, logits = step_fn(carry, last)
        log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        vocab = log_p.shape[-1]
        log_p = log_p.reshape(b, k, vocab)
        # A finished hypothesis may only be extended by padding, at no cost.
        only_pad = jnp.where(jnp.arange(vocab) == pad_id, 0.0, -jnp.inf)
        log_p = jnp.where(finished[..., None], only_pad, log_p)
        candidates = (scores[..., None] + log_p).reshape(b, k * vocab)
        scores, flat = jax.lax.top_k(candidates, k)
        beam, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        pick = lambda x: jnp.take_along_axis(x, beam.reshape(b, k, *([1] * (x.ndim - 2))), 1)
        was_finished = pick(finished)
        finished = was_finished | (token == eos_id)
        lengths = pick(lengths) + (~was_finished).astype(jnp.int32)
        tokens = pick(tokens).at[:, :, t].set(token)
        rows = (jnp.arange(b)[:, None] * k + beam).reshape(-1)  # flat index of the parents
        carry = jax.tree.map(lambda leaf: leaf[rows], carry)
        return (carry, token.reshape(-1), scores, finished, lengths, tokens), None

    state, _ = jax.lax.scan(body, state, jnp.arange(max_length))
    _, _, scores, _, lengths, tokens = state
    penalty = ((5.0 + lengths.astype(jnp.float32)) / 6.0) ** length_penalty
    normalised = scores / penalty
    order = jnp.argsort(-normalised, axis=-1)
    take = lambda x: jnp.take_along_axis(x, order.reshape(b, k, *([1] * (x.ndim - 2))), 1)
    return take(tokens), take(normalised), take(lengths)
