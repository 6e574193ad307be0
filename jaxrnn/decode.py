"""Generating sequences under `jax.jit`: sampling with temperature and top-k, greedy decoding.

The model is given as a step function ``step_fn(carry, tokens) -> (carry, logits)`` that reads
one token per sequence ``(b,)`` and returns the next-token scores ``(b, v)``; the whole
generation is one `jax.lax.scan`, with no Python loop per token.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.checks import check_at_run_time
from jaxrnn.checks import is_concrete
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

    Examples:
      >>> from jaxrnn.decode import select
      >>> import jax, jax.numpy as jnp
      >>> logits = jnp.array([[0.0, 5.0, 1.0]])
      >>> select(logits, None).tolist()
      [1]
      >>> select(logits, jax.random.key(0), temperature=1.0, top_k=1).tolist()
      [1]
    """
    logits = _check_logits(logits)
    return _pick(logits, key, check_temperature(temperature), top_k)


def _pick(logits: Array, key: PRNGKey | None, temperature: Array, top_k: int | None) -> Array:
    """`select` after its checks (so that a scan checks a traced temperature only once)."""
    vocab = logits.shape[-1]
    if top_k is not None and (
        isinstance(top_k, bool)
        or not isinstance(top_k, (int, np.integer))
        or not 1 <= top_k <= vocab
    ):
        raise ValueError(f"top_k must be an int in [1, {vocab}] (the vocabulary), got {top_k!r}")
    greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if key is None or (is_concrete(temperature) and float(temperature) == 0):
        return greedy
    # A traced temperature (under jit) may still be 0: divide by 1 then and pick the argmax.
    safe = jnp.where(temperature > 0, temperature, 1.0).astype(jnp.float32)
    scaled = logits.astype(jnp.float32) / safe
    if top_k is not None and top_k < vocab:
        kth = jax.lax.top_k(scaled, top_k)[0][..., -1:]
        scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
    sampled = jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)
    if is_concrete(temperature):
        return sampled
    return jnp.where(temperature > 0, sampled, greedy)


def check_temperature(temperature: Any) -> Any:
    """``temperature`` as a float32 scalar if it is a finite number ``>= 0``, else a
    `ValueError`; a traced value is checked when the compiled code runs.

    Examples:
      >>> from jaxrnn.decode import check_temperature
      >>> check_temperature(0.8)
      Array(0.8, dtype=float32)
    """
    if isinstance(temperature, bool) or jnp.ndim(temperature) != 0:
        raise TypeError(f"temperature must be a number, got {temperature!r}")
    if not jnp.issubdtype(jnp.result_type(temperature), jnp.number):
        raise TypeError(f"temperature must be a number, got {temperature!r}")
    temperature = jnp.asarray(temperature, jnp.float32)
    check_at_run_time(_raise_bad_temperature, temperature)
    return temperature


def _raise_bad_temperature(temperature) -> None:
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 is greedy), got {float(temperature)}"
        )


def _check_logits(logits: Any) -> Array:
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (b, v) with v >= 1, got {logits.shape}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"logits must be a floating-point array, got dtype {logits.dtype}")
    return logits


def _check_tokens(first_tokens: Any) -> Array:
    """``first_tokens`` as ``(b,)`` int32; floats are refused rather than truncated."""
    dtype = jnp.result_type(first_tokens) if hasattr(first_tokens, "dtype") else None
    if dtype is None:
        values = np.asarray(first_tokens)
        dtype = values.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"first_tokens must be integer token ids, got dtype {dtype}; cast them explicitly "
            "(e.g. tokens.astype(jnp.int32)) if they really are ids"
        )
    tokens = jnp.asarray(first_tokens, jnp.int32)
    if tokens.ndim != 1:
        raise ValueError(f"first_tokens must have shape (b,), one per sequence, got {tokens.shape}")
    return tokens


def _check_count(name: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def _check_id(name: str, value: Any, vocab: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 <= value < vocab
    ):
        raise ValueError(
            f"{name} must be a token id in [0, {vocab}) (the vocabulary of step_fn's logits), "
            f"got {value!r}"
        )


def _check_step_logits(logits: Any, rows: int) -> Array:
    """The logits ``step_fn`` returned: ``(rows, v)`` floats."""
    logits = _check_logits(logits)
    if logits.shape[:-1] != (rows,):
        raise ValueError(
            f"step_fn must return logits of shape ({rows}, v), one row per sequence"
            f"{' and hypothesis' if rows else ''}, got {logits.shape}"
        )
    return logits


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
) -> tuple[Carry, Array]:
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
      ``(final carry, tokens (b, length) int32)``: carry first, as `jaxrnn.unroll` and
      `jax.lax.scan` return it.

    Examples:
      >>> from jaxrnn.decode import generate
      >>> import jax, jax.numpy as jnp
      >>> step = lambda carry, tok: (carry, jax.nn.one_hot((tok + 1) % 5, 5) * 10.0)
      >>> _, tokens = generate(step, (), jnp.array([0]), length=4)
      >>> tokens.tolist()
      [[1, 2, 3, 4]]
    """
    length = _check_count("length", length, low=0)
    _check_count("unroll", unroll, low=1)
    first_tokens = _check_tokens(first_tokens)
    temperature = check_temperature(temperature)
    keys = None if key is None else jax.random.split(key, length)

    def body(state, step_key):
        carry, tokens = state
        carry, logits = step_fn(carry, tokens)
        tokens = _pick(_check_step_logits(logits, tokens.shape[0]), step_key, temperature, top_k)
        return (carry, tokens), tokens

    (carry, _), tokens = jax.lax.scan(
        body, (carry, first_tokens), keys, length=length, unroll=unroll
    )
    return carry, jnp.swapaxes(tokens, 0, 1)


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

    Examples:
      >>> from jaxrnn.decode import beam_search
      >>> import jax, jax.numpy as jnp
      >>> table = jnp.log(jnp.array([[.1, .1, .4, .4], [.1, .1, .1, .7], [.1, .1, .7, .1],
      ...                            [.1, .9, 0., 0.]]) + 1e-9)  # next-token log-probs
      >>> step = lambda carry, tok: (carry, table[tok])
      >>> tokens, scores, lengths = beam_search(step, (), jnp.array([0]), beam_size=2,
      ...                                       max_length=4, eos_id=1)
      >>> tokens[0, 0].tolist(), lengths[0, 0].tolist()
      ([3, 1, 0, 0], 2)
    """
    beam_size = _check_count("beam_size", beam_size, low=1)
    max_length = _check_count("max_length", max_length, low=1)
    if not np.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    first_tokens = _check_tokens(first_tokens)
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
        logits = _check_step_logits(logits, b * k)
        vocab = logits.shape[-1]
        # Checked here, where the vocabulary is known: a pad_id outside it would make every
        # finished hypothesis -inf and silently drop the best one.
        _check_id("eos_id", eos_id, vocab)
        _check_id("pad_id", pad_id, vocab)
        log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
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
