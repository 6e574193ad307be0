"""Generating sequences under `jax.jit`: sampling with temperature and top-k, greedy decoding.

The model is given as a step function ``step_fn(carry, tokens) -> (carry, logits)`` that reads
one token per sequence ``(b,)`` and returns the next-token scores ``(b, v)``; the whole
generation is one `jax.lax.scan`, with no Python loop per token.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.checks import check_at_run_time
from jaxrnn.checks import check_count
from jaxrnn.checks import check_int
from jaxrnn.checks import check_key
from jaxrnn.checks import check_number
from jaxrnn.checks import check_scores
from jaxrnn.checks import check_size
from jaxrnn.checks import check_token_ids
from jaxrnn.checks import describe
from jaxrnn.checks import fail
from jaxrnn.checks import is_concrete
from jaxrnn.checks import said
from jaxrnn.checks import score_problems
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import PRNGKey

StepFn = Callable[[Carry, Array], tuple[Carry, Array]]


class Generated(NamedTuple):
    """What `generate` returns, carry first as `jaxrnn.unroll` and `jax.lax.scan` return it.
    (Before 0.1.0 the order was ``(tokens, carry)``: read the fields by name to be safe.)"""

    carry: Carry  # the model state after the last generated token
    tokens: Array  # (b, length) int32


def select(
    logits: Array, key: PRNGKey | None, *, temperature: float = 1.0, top_k: int | None = None
) -> Array:
    """Picks one token per row of ``logits`` ``(b, v)``: sampled, or argmax when greedy.

    ``temperature == 0`` (or ``key=None``) is greedy decoding. Otherwise the logits are divided
    by ``temperature`` and, with ``top_k``, all but the ``top_k`` largest are excluded before
    sampling. A temperature too small for float32 (``1e-40``) samples the most likely token, as
    the limit says, not at random. Logits may hold ``-inf`` (a token never chosen), but not
    NaN or ``+inf``: such a row is an error, not a silent token 0.

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
    check_scores("logits", score_problems(logits))
    if key is not None:
        check_key("key", key)
    _check_top_k(top_k, logits.shape[-1])
    return _pick(logits, key, check_temperature(temperature), top_k)


def _check_top_k(top_k: Any, vocab: int) -> None:
    if top_k is not None:
        check_int("top_k", top_k, low=1, high=vocab)


def _pick(logits: Array, key: PRNGKey | None, temperature: Array, top_k: int | None) -> Array:
    """`select` after its checks (so that a scan checks a traced temperature only once)."""
    vocab = logits.shape[-1]
    greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if key is None or (is_concrete(temperature) and float(temperature) == 0):
        return greedy
    # Scores relative to the best one are <= 0, so dividing by a temperature too small for
    # float32 (which flushes it to 0) still leaves the best token at 0 and the rest at -inf:
    # the greedy limit, not NaN. A traced temperature (under jit) may still be 0: argmax then.
    floor = jnp.finfo(jnp.float32).tiny
    safe = jnp.where(temperature > 0, jnp.maximum(temperature, floor), 1.0).astype(jnp.float32)
    wide = logits.astype(jnp.float32)
    scaled = (wide - jnp.max(wide, axis=-1, keepdims=True)) / safe
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
    if not is_concrete(temperature):
        if jnp.ndim(temperature) != 0 or not jnp.issubdtype(temperature.dtype, jnp.floating):
            fail("temperature", "a number", temperature, TypeError)
        temperature = temperature.astype(jnp.float32)
        check_at_run_time(_raise_bad_temperature, temperature)
        return temperature
    if isinstance(temperature, (np.ndarray, jax.Array)) and temperature.ndim == 0:
        temperature = (
            temperature.item() if temperature.dtype != jnp.bfloat16 else float(temperature)
        )
    value = check_number("temperature", temperature, low=0)
    if value > 0:  # a float32 denormal reads as 0 on the device: the smallest normal instead
        value = max(value, float(jnp.finfo(jnp.float32).tiny))
    return jnp.asarray(value, jnp.float32)


def _raise_bad_temperature(temperature) -> None:
    check_number("temperature", float(temperature), low=0)


def _check_logits(logits: Any, name: str = "logits") -> Array:
    if not hasattr(logits, "dtype"):
        try:
            logits = np.asarray(logits)
        except (TypeError, ValueError):
            fail(name, "an array of shape (b, v)", logits, TypeError)
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[-1] == 0:
        fail(name, "an array of shape (b, v) with v >= 1", said(f"shape {logits.shape}"))
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        fail(name, "a floating-point array", said(f"dtype {logits.dtype}"), TypeError)
    return logits


def _check_tokens(first_tokens: Any, vocab: int | None = None) -> Array:
    """``first_tokens`` as ``(b,)`` int32 ids in ``[0, vocab)``; floats are refused rather than
    truncated, ids outside the vocabulary rather than clamped by the embedding lookup."""
    tokens = check_token_ids("first_tokens", first_tokens, vocab)
    if tokens.ndim != 1:
        fail("first_tokens", "of shape (b,), one per sequence", said(f"shape {tokens.shape}"))
    return tokens


def _check_id(name: str, value: Any, vocab: int) -> None:
    expected = f"a token id in [0, {vocab}) (the vocabulary of step_fn's logits)"
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        fail(name, expected, value, TypeError)
    if not 0 <= value < vocab:
        fail(name, expected, int(value))


def _check_step_logits(logits: Any, rows: int) -> int:
    """The vocabulary size ``v`` of logits that ``step_fn`` returned (an array or its shape),
    which must be ``(rows, v)`` floats."""
    name = "the logits of step_fn"
    shape = tuple(getattr(logits, "shape", ()))
    if len(shape) != 2 or shape[0] != rows or shape[1] == 0:
        rows_are = "one row per sequence" + (" and hypothesis" if rows else "")
        fail(name, f"of shape ({rows}, v) with v >= 1, {rows_are}", said(f"shape {shape}"))
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        fail(name, "a floating-point array", said(f"dtype {logits.dtype}"), TypeError)
    return shape[1]


def _vocabulary(step_fn: StepFn, carry: Carry, tokens: Array) -> int:
    """``v``, the size of the vocabulary ``step_fn`` scores, from its output's shape."""
    if not callable(step_fn):
        fail("step_fn", "a function step_fn(carry, tokens) -> (carry, logits)", step_fn, TypeError)
    _, logits = jax.eval_shape(step_fn, carry, tokens)
    return _check_step_logits(logits, tokens.shape[0])


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
) -> Generated:
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
      `Generated` ``(carry, tokens (b, length) int32)``: carry first, as `jaxrnn.unroll` and
      `jax.lax.scan` return it.

    Examples:
      >>> from jaxrnn.decode import generate
      >>> import jax, jax.numpy as jnp
      >>> step = lambda carry, tok: (carry, jax.nn.one_hot((tok + 1) % 5, 5) * 10.0)
      >>> _, tokens = generate(step, (), jnp.array([0]), length=4)
      >>> tokens.tolist()
      [[1, 2, 3, 4]]
    """
    length = check_count("length", length)
    check_size("unroll", unroll)
    tokens = _check_tokens(first_tokens)
    vocab = _vocabulary(step_fn, carry, tokens)
    first_tokens = _check_tokens(first_tokens, vocab)
    if key is not None:
        check_key("key", key)
    _check_top_k(top_k, vocab)
    temperature = check_temperature(temperature)
    keys = None if key is None else jax.random.split(key, length)
    problems = jnp.zeros(tokens.shape, jnp.int32)

    def body(state, step_key):
        carry, tokens, problems = state
        carry, logits = step_fn(carry, tokens)
        _check_step_logits(logits, tokens.shape[0])
        # Checked once after the scan: a host callback per token would slow sampling down.
        problems = jnp.maximum(problems, score_problems(logits))
        tokens = _pick(logits, step_key, temperature, top_k)
        return (carry, tokens, problems), tokens

    (carry, _, problems), tokens = jax.lax.scan(
        body, (carry, first_tokens, problems), keys, length=length, unroll=unroll
    )
    check_scores("the logits of step_fn", problems)
    return Generated(carry, jnp.swapaxes(tokens, 0, 1))


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
    beam_size = check_size("beam_size", beam_size)
    max_length = check_size("max_length", max_length)
    check_number("length_penalty", length_penalty)
    first_tokens = _check_tokens(first_tokens)
    b, k = first_tokens.shape[0], beam_size
    _check_beam_carry(carry, b, k)
    vocab = _vocabulary(step_fn, carry, jnp.repeat(first_tokens, k))
    first_tokens = _check_tokens(first_tokens, vocab)
    # Checked here, where the vocabulary is known: a pad_id outside it would make every
    # finished hypothesis -inf and silently drop the best one.
    _check_id("eos_id", eos_id, vocab)
    _check_id("pad_id", pad_id, vocab)
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


def _check_beam_carry(carry: Carry, b: int, k: int) -> None:
    """Every leaf of a beam search's carry holds one row per hypothesis: ``b * k``."""
    leaves = jax.tree.leaves(carry)
    if any(jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != b * k for leaf in leaves):
        fail(
            "carry",
            f"a pytree whose leaves have {b * k} rows ({b} sequences times beam_size={k}), "
            "the beams of one sequence adjacent",
            said(describe(carry)),
            hint=f"repeat each sequence's carry per beam: jax.tree.map(lambda c: jnp.repeat(c, "
            f"{k}, axis=0), carry)",
        )
