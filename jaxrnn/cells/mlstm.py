"""The mLSTM cell of xLSTM (Beck et al. 2024): a matrix memory per head, exponential input
gates with a log-space stabiliser, and gates that read only ``x_t``, so that a sequence also
runs in a fully parallel (quadratic) form and a chunkwise one.

The stabilised arithmetic is that of NX-AI's ``mlstm_kernels`` (its native PyTorch recurrent,
parallel and chunkwise kernels): the same ``m``, the same ``1 / sqrt(d)`` scaling of ``q`` and
the same denominator ``max(|q n|, exp(-m)) + eps``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import input_kernel
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import wide_dtype
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_heads
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey

EPS = 1e-6  # added to the denominator, as mlstm_kernels' default eps


class MLSTMCarry(NamedTuple):
    """The mLSTM state, stabilised: the true memory is ``c * exp(m)``, the normaliser
    ``n * exp(m)``. Float32 (float64 for float64 params) whatever the compute dtype."""

    c: Array  # (..., heads, d, d) matrix memory, the sum of i_s k_s v_s^T (keys on axis -2)
    n: Array  # (..., heads, d) normaliser, the sum of i_s k_s
    m: Array  # (..., heads) stabiliser: the log of the scale factored out of c and n


@cell_factory
def mlstm(hidden_size: int, *, num_heads: int = 4, compute_dtype: DTypeLike | None = None) -> Cell:
    r"""The mLSTM cell of xLSTM (Beck et al. 2024): per head a ``(d, d)`` matrix memory,
    ``d = h / num_heads``, with an exponential input gate and a sigmoid forget gate.

    Per head, with ``q_t, k_t, v_t`` of size ``d`` and scalar gates, all read from ``x_t``:

    $$
    \begin{aligned}
    {[q, k, v, \tilde o, \tilde\imath, \tilde f]} &= x_t W + b, \qquad
    \log f_t = \log\sigma(\tilde f_t) \\
    m_t &= \max(\log f_t + m_{t-1},\ \tilde\imath_t) \\
    C_t &= e^{\log f_t + m_{t-1} - m_t} C_{t-1} + e^{\tilde\imath_t - m_t}\, k_t v_t^\top,
    \qquad n_t = e^{\log f_t + m_{t-1} - m_t} n_{t-1} + e^{\tilde\imath_t - m_t}\, k_t \\
    \tilde h_t &= \frac{C_t^\top \hat q_t}{\max(|n_t^\top \hat q_t|,\ e^{-m_t}) + \epsilon},
    \qquad \hat q_t = q_t / \sqrt d \\
    y_t &= \sigma(\tilde o_t) \odot [\tilde h_t^{(1)}, \dots, \tilde h_t^{(\text{heads})}]
    \end{aligned}
    $$

    This is the paper's ``C_t = f_t C_{t-1} + i_t v_t k_t^T``, ``h_t = C_t q_t / \max(|n_t^T
    q_t|, 1)`` with ``i_t = \exp(\tilde\imath_t)``, kept finite by the stabiliser ``m`` (the
    true state is ``C e^m``), exactly as NX-AI's ``mlstm_kernels`` compute it (their ``C`` is
    ``(d_k, d_v)`` as here; ``\epsilon`` = `EPS`).

    Params ``{"w_ih": (i, 4h + 2 heads), "b": (4h + 2 heads,)}``, columns ``q | k | v | o``
    (``h`` each, head after head) then ``i~`` and ``f~`` (one per head); LeCun-normal
    weights, zero biases except the forget gates', spread over ``[3, 6]`` across heads as in
    xLSTM. The carry is `MLSTMCarry(c (..., heads, d, d), n (..., heads, d), m (..., heads))`,
    float32 (`wide_dtype`), zeros initially (``m = 0`` as in ``mlstm_kernels``). ``y`` reads
    ``x_t`` through the output gate, so ``output`` is None.

    Every gate reads only ``x_t``, so besides ``jaxrnn.Strategy()`` (the sequential scan of
    ``step``) the cell runs with ``jaxrnn.Strategy(mode="parallel")`` (all steps at once, a
    causal ``(t, t)`` matrix per head: memory quadratic in ``t``) and
    ``jaxrnn.Strategy(mode="chunkwise", chunk_size=64)`` (the quadratic form within chunks,
    the recurrent state between them), with the same numbers, lengths, masks, resets and
    ``reverse`` included (`mlstm_heads`).

    Args:
      hidden_size: ``h``, a multiple of ``num_heads``.
      num_heads: the number of heads, each with its own ``(d, d)`` memory.
      compute_dtype: the dtype of the input projection, e.g. ``jnp.bfloat16`` with float32
        params (mixed precision); the recurrence runs in the carry's float32, outputs are in
        the compute dtype. None computes in the params' dtype.

    Returns:
      A `Cell` with ``parallel_form`` set.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.mlstm(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> xs = jax.random.normal(jax.random.key(1), (2, 20, 3))
      >>> carry, seq = jaxrnn.unroll(cell, params, xs)
      >>> carry.c.shape, carry.n.shape, carry.m.shape, seq.shape
      ((2, 2, 4, 4), (2, 2, 4), (2, 2), (2, 20, 8))
      >>> chunkwise = jaxrnn.Strategy(mode="chunkwise", chunk_size=8)
      >>> _, chunked = jaxrnn.unroll(cell, params, xs, strategy=chunkwise)
      >>> bool(jnp.allclose(seq, chunked, atol=1e-5))
      True
    """
    check_size("hidden_size", hidden_size)
    check_heads(num_heads, hidden_size)
    head_size, width = hidden_size // num_heads, 4 * hidden_size + 2 * num_heads

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {"w_ih": (input_size, width), "b": (width,)}

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        forget = jnp.linspace(3.0, 6.0, num_heads, dtype=wide_dtype(dtype))
        b = jnp.zeros((width,), dtype).at[width - num_heads :].set(forget.astype(dtype))
        return {"w_ih": input_kernel(key, input_size, width, dtype), "b": b}

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> MLSTMCarry:
        batch_shape = check_batch_shape(batch_shape)
        dtype = wide_dtype(params["w_ih"].dtype)
        heads = (*batch_shape, num_heads)
        return MLSTMCarry(
            c=jnp.zeros((*heads, head_size, head_size), dtype),
            n=jnp.zeros((*heads, head_size), dtype),
            m=jnp.zeros(heads, dtype),
        )

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b"])

    def step_projected(params: Params, carry: MLSTMCarry, px: Array):
        del params
        q, k, v, o, i, f = split_projection(px, num_heads)
        carry, h = mlstm_heads_step(carry, q, k, v, i, f)
        return carry, _gate(o, h, px.dtype)

    def parallel_form(params, px, carry, valid, reverse, resets, chunk_size):
        del params
        q, k, v, o, i, f = split_projection(px, num_heads)
        carry, h = mlstm_heads(q, k, v, i, f, carry, valid, reverse, resets, chunk_size)
        return carry, _gate(o, h, px.dtype)

    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker(
            "mlstm",
            hidden_size,
            shapes,
            label=f"mlstm(hidden_size={hidden_size}, num_heads={num_heads})",
        ),
        name="mlstm",
        hidden_size=hidden_size,
        compute_dtype=compute_dtype,
        parallel_form=parallel_form,
    )


def split_projection(px: Array, num_heads: int) -> tuple[Array, ...]:
    """The parts of a projected input ``px (..., 4h + 2 heads)``: ``q, k, v`` each
    ``(..., heads, d)``, the output gate's pre-activation ``o (..., h)``, and the input and
    forget gates' ``i, f (..., heads)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.mlstm import split_projection
      >>> [a.shape for a in split_projection(jnp.zeros((5, 4 * 8 + 2 * 2)), num_heads=2)]
      [(5, 2, 4), (5, 2, 4), (5, 2, 4), (5, 8), (5, 2), (5, 2)]
    """
    hidden = (px.shape[-1] - 2 * num_heads) // 4
    lead = px.shape[:-1]
    q, k, v, o = (px[..., j * hidden : (j + 1) * hidden] for j in range(4))
    heads = lambda a: a.reshape((*lead, num_heads, hidden // num_heads))
    i, f = px[..., 4 * hidden : 4 * hidden + num_heads], px[..., 4 * hidden + num_heads :]
    return heads(q), heads(k), heads(v), o, i, f


def _gate(o: Array, h: Array, dtype) -> Array:
    """``y = sigmoid(o) * h`` with the heads ``h (..., heads, d)`` side by side, in ``dtype``."""
    h = h.reshape((*h.shape[:-2], h.shape[-2] * h.shape[-1]))
    return (jax.nn.sigmoid(o.astype(h.dtype)) * h).astype(dtype)


def _read(q: Array, c: Array, n: Array, m: Array, eps: float) -> Array:
    """``h = (q C) / (max(|q n|, exp(-m)) + eps)`` for ``q (..., d)`` (already scaled),
    ``c (..., d, d)``, ``n (..., d)``, ``m (...)``."""
    num = jnp.einsum("...a,...ab->...b", q, c)
    return num / denominator(jnp.sum(q * n, axis=-1), m, eps)[..., None]


def denominator(qn: Array, m: Array, eps: float) -> Array:
    """``max(|q n|, exp(-m)) + eps``, the one normaliser of every form. ``exp(-m)`` is capped
    below float overflow: with both gates shut for long, ``m`` sinks past -88 and an ``inf``
    here would give ``h = 0`` but NaN gradients (``0 * inf``); the cap changes no output."""
    top = jnp.log(jnp.finfo(m.dtype).max) - 1.0
    return jnp.maximum(jnp.abs(qn), jnp.exp(jnp.minimum(-m, top))) + eps


def mlstm_heads_step(
    carry: MLSTMCarry, q: Array, k: Array, v: Array, i: Array, f: Array, eps: float = EPS
) -> tuple[MLSTMCarry, Array]:
    """One stabilised mLSTM step of every head (``mlstm_kernels``'
    ``mlstm_recurrent_step__native_fw``): ``q, k, v (..., heads, d)``, the gates'
    pre-activations ``i, f (..., heads)``; returns the new carry and ``h (..., heads, d)``, in
    the carry's dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.mlstm import MLSTMCarry, mlstm_heads_step
      >>> carry = MLSTMCarry(jnp.zeros((2, 3, 3)), jnp.zeros((2, 3)), jnp.zeros(2))
      >>> ones = jnp.ones((2, 3))
      >>> carry, h = mlstm_heads_step(carry, ones, ones, ones, jnp.zeros(2), jnp.zeros(2))
      >>> h.shape, carry.m.tolist()
      ((2, 3), [0.0, 0.0])
    """
    wide = carry.c.dtype
    q, k, v, i, f = (a.astype(wide) for a in (q, k, v, i, f))
    log_f = jax.nn.log_sigmoid(f)
    m = jnp.maximum(log_f + carry.m, i)
    decay, gain = jnp.exp(log_f + carry.m - m), jnp.exp(i - m)
    c = decay[..., None, None] * carry.c + gain[..., None, None] * (
        k[..., :, None] * v[..., None, :]
    )
    n = decay[..., None] * carry.n + gain[..., None] * k
    h = _read(q * q.shape[-1] ** -0.5, c, n, m, eps)
    return MLSTMCarry(c=c, n=n, m=m), h


def mlstm_heads(
    q: Array,
    k: Array,
    v: Array,
    i: Array,
    f: Array,
    carry: MLSTMCarry,
    valid: Array | None = None,
    reverse: bool = False,
    resets: Array | None = None,
    chunk_size: int | None = None,
    eps: float = EPS,
) -> tuple[MLSTMCarry, Array]:
    """Every step of a time-major sequence at once: the same numbers as `mlstm_heads_step`
    scanned over time (`jaxrnn.unroll`'s masked scan, with resets).

    ``q, k, v (t, n, heads, d)``, ``i, f (t, n, heads)``, ``carry`` with leaves
    ``(n, heads, ...)``; ``valid (t, n)`` (None: all) marks the steps that run (the others keep
    the state and give ``h = 0``), ``resets (t, n)`` (None: none) the steps that start from
    ``carry``; ``reverse`` runs from step ``t - 1`` down to 0. ``chunk_size`` None is the fully
    parallel form (``mlstm_kernels``' ``mlstm_parallel_fw``, one causal ``(t, t)`` matrix per
    head), an int the chunkwise form (its ``mlstm_chunkwise_fw``: the states at the chunks'
    starts by a scan over chunks, then every chunk's outputs at once; ``t`` is padded to a
    multiple). Returns the final carry and ``h (t, n, heads, d)`` in the carry's dtype.

    An invalid step is ``log f = 0``, ``i = -inf``: it adds nothing and decays nothing, so
    ``m``, the closed form ``m_t = max(F_t - F_a + m_0, max_s (F_t - F_s + i_s))`` of the
    step's running max (``F`` the cumulative ``log f``, ``a`` the last reset), matches the
    scan's, and no ``inf - inf`` is ever formed.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn.cells.mlstm import MLSTMCarry, mlstm_heads, mlstm_heads_step
      >>> q, k, v = jax.random.normal(jax.random.key(0), (3, 6, 1, 2, 4))
      >>> i, f = jax.random.normal(jax.random.key(1), (2, 6, 1, 2))
      >>> carry = MLSTMCarry(jnp.zeros((1, 2, 4, 4)), jnp.zeros((1, 2, 4)), jnp.zeros((1, 2)))
      >>> final, h = mlstm_heads(q, k, v, i, f, carry, chunk_size=4)
      >>> step = lambda c, a: mlstm_heads_step(c, *a)
      >>> looped, h_loop = jax.lax.scan(step, carry, (q, k, v, i, f))
      >>> bool(jnp.allclose(h, h_loop, atol=1e-5)), bool(jnp.allclose(final.m, looped.m))
      (True, True)
    """
    wide, num_steps = carry.c.dtype, q.shape[0]
    q, k, v, i, f = (a.astype(wide) for a in (q, k, v, i, f))
    if valid is not None:  # whatever sits at an invalid step never reaches the arithmetic
        ok = valid[..., None]
        q, k, v = (jnp.where(ok[..., None], a, jnp.zeros((), wide)) for a in (q, k, v))
        f = jnp.where(ok, f, jnp.zeros((), wide))
    log_f = jax.nn.log_sigmoid(f)
    if valid is not None:  # an invalid step decays nothing and adds nothing
        log_f = jnp.where(ok, log_f, jnp.zeros((), wide))
        i = jnp.where(ok, i, jnp.full((), -jnp.inf, wide))
    resets = jnp.zeros(log_f.shape[:2], bool) if resets is None else resets
    resets = jnp.broadcast_to(resets[..., None], log_f.shape)  # the same for every head
    parts = (q, k, v, log_f, i, resets)
    if reverse:
        parts = tuple(jnp.flip(a, 0) for a in parts)
    if chunk_size is None:  # one chunk of every step: the fully parallel form
        size, chunks = num_steps, 1
    else:  # whole chunks (the time axis may be a symbol under jax.export: no min with it)
        size, chunks = chunk_size, -(-num_steps // chunk_size)
    if num_steps == 0:
        return carry, jnp.zeros(q.shape, wide)
    parts = tuple(_chunked(a, chunks, size, fill) for a, fill in zip(parts, _PAD, strict=True))
    final, h = _chunkwise(*parts, carry, eps)  # h (n, heads, chunks, size, d)
    h = h.reshape((*h.shape[:2], chunks * size, h.shape[-1]))[:, :, :num_steps]
    h = jnp.moveaxis(h, 2, 0)
    if reverse:
        h = jnp.flip(h, 0)
    if valid is not None:
        h = jnp.where(valid[..., None, None], h, jnp.zeros((), wide))
    return final, h


# What pads the time axis to whole chunks: invalid steps (no q, k, v; log f = 0; i = -inf).
_PAD = (0.0, 0.0, 0.0, 0.0, -jnp.inf, False)


def _chunked(a: Array, chunks: int, size: int, fill) -> Array:
    """Time-major ``a (t, n, heads, ...)`` as ``(n, heads, chunks, size, ...)``, padded with
    ``fill``."""
    widths = [(0, chunks * size - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    padded = jnp.pad(a, widths, constant_values=jnp.asarray(fill, a.dtype))
    a = jnp.moveaxis(padded, 0, 2)
    return a.reshape((*a.shape[:2], chunks, size, *a.shape[3:]))


def _chunkwise(q, k, v, log_f, i, resets, carry: MLSTMCarry, eps: float):
    """The states at every chunk's start by a scan over chunks (a ``(d, d)`` update per
    chunk), then all chunks' outputs at once; inputs ``(n, heads, chunks, size, ...)``."""

    def chunk(enter, inputs):
        return _chunk_end(*inputs, enter, carry), enter

    over = lambda a: jnp.moveaxis(a, 2, 0)  # chunks first, for the scan
    final, enters = jax.lax.scan(chunk, carry, tuple(map(over, (k, v, log_f, i, resets))))
    enters = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 2), enters)
    chunks = q.shape[2]
    initial = jax.tree.map(
        lambda a: jnp.broadcast_to(a[:, :, None], (*a.shape[:2], chunks, *a.shape[2:])), carry
    )
    return final, _chunk_outputs(q, k, v, log_f, i, resets, enters, initial, eps)


def _log_decays(log_f: Array, resets: Array) -> tuple[Array, Array, Array, Array]:
    """Within each chunk ``(..., size)``: the cumulative ``F`` of ``log f``, the segment of
    each step (a reset starts a new one), the log-decay from the segment's start through the
    step, and whether a reset in this chunk came at or before the step (the segment starts
    from the initial carry, not from the state entering the chunk)."""
    cum_f = jnp.cumsum(log_f, axis=-1)
    segment = jnp.cumsum(resets.astype(jnp.int32), axis=-1)
    position = jax.lax.broadcasted_iota(jnp.int32, resets.shape, resets.ndim - 1)
    start = jax.lax.cummax(jnp.where(resets, position, 0), axis=resets.ndim - 1)
    before_start = jnp.take_along_axis(cum_f - log_f, start, axis=-1)
    return cum_f, segment, cum_f - before_start, segment > 0


def _pick(after_reset: Array, initial: Array, enter: Array) -> Array:
    """``initial`` where a reset came first, else ``enter``: one per step of a state
    ``(..., *state)`` picked by ``after_reset (..., *lead)``, broadcast over the state axes."""
    extra = initial.ndim - after_reset.ndim
    return jnp.where(after_reset.reshape(after_reset.shape + (1,) * extra), initial, enter)


def _chunk_end(k, v, log_f, i, resets, enter: MLSTMCarry, initial: MLSTMCarry) -> MLSTMCarry:
    """The state after a chunk's last step: ``k, v (n, heads, size, d)``, ``log_f, i,
    resets (n, heads, size)``, ``enter`` the state before the chunk, ``initial`` the carry
    that resets go back to."""
    cum_f, segment, from_start, after_reset = _log_decays(log_f, resets)
    last = cum_f[..., -1:]
    same = segment == segment[..., -1:]
    log_d = jnp.where(same, last - cum_f + i, jnp.full((), -jnp.inf, cum_f.dtype))
    reset = after_reset[..., -1]
    log_0 = from_start[..., -1] + _pick(reset, initial.m, enter.m)
    m = jnp.maximum(jnp.max(log_d, axis=-1), log_0)
    d, w0 = jnp.exp(log_d - m[..., None]), jnp.exp(log_0 - m)
    c = w0[..., None, None] * _pick(reset, initial.c, enter.c)
    n = w0[..., None] * _pick(reset, initial.n, enter.n)
    c = c + jnp.einsum("...s,...sa,...sb->...ab", d, k, v)
    n = n + jnp.einsum("...s,...sa->...a", d, k)
    return MLSTMCarry(c=c, n=n, m=m)


def _chunk_outputs(q, k, v, log_f, i, resets, enter: MLSTMCarry, initial: MLSTMCarry, eps):
    """``h`` at every step of every chunk at once: ``q, k, v (..., size, d)``, ``log_f, i,
    resets (..., size)``, the states ``enter`` and ``initial`` with leaves ``(..., ...)``."""
    cum_f, segment, from_start, after_reset = _log_decays(log_f, resets)
    size = cum_f.shape[-1]
    causal = jnp.tril(jnp.ones((size, size), bool)).reshape((1,) * (cum_f.ndim - 1) + (size, size))
    causal = causal & (segment[..., :, None] == segment[..., None, :])
    log_d = cum_f[..., :, None] - cum_f[..., None, :] + i[..., None, :]
    log_d = jnp.where(causal, log_d, jnp.full((), -jnp.inf, cum_f.dtype))
    log_0 = from_start + _pick(after_reset, initial.m[..., None], enter.m[..., None])
    m = jnp.maximum(jnp.max(log_d, axis=-1), log_0)  # (..., size): the step's m
    d, w0 = jnp.exp(log_d - m[..., None]), jnp.exp(log_0 - m)
    q = q * q.shape[-1] ** -0.5
    scores = jnp.einsum("...td,...sd->...ts", q, k) * d
    q_c = lambda c: jnp.einsum("...ta,...ab->...tb", q, c)
    q_n = lambda n: jnp.einsum("...ta,...a->...t", q, n)
    from_c = _pick(after_reset, q_c(initial.c), q_c(enter.c))
    from_n = jnp.where(after_reset, q_n(initial.n), q_n(enter.n))
    num = jnp.einsum("...ts,...sb->...tb", scores, v) + w0[..., None] * from_c
    qn = jnp.sum(scores, axis=-1) + w0 * from_n
    return num / denominator(qn, m, eps)[..., None]


FAMILY = Family(name="mlstm", make=mlstm)
