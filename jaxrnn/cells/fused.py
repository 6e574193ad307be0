"""Hand-written backward passes for whole LSTM and GRU sequences (`jax.custom_vjp`).

On XLA's CPU backend three things dominate the time of a recurrent scan: every per-step
array the scan stacks, slicing a large ``(t, b, 4h)`` array at every step, and small
weight-gradient products accumulated inside the backward loop. So these scans

- read the raw inputs ``x_t`` inside the step rather than slicing a hoisted ``(t, b, 4h)``
  projection; the LSTM multiplies ``[x_t, h]`` by ``[W_ih; W_hh]``, one product per step;
- save, for the backward pass, the state each step *starts* from (so no shifted copy is
  needed) and, when the cell's ``store_gates`` option says so (by default from
  `STORE_GATES_FROM` units), the gates as separate ``(t, b, h)`` arrays, so
  the backward loop has one matrix product per step instead of two;
- form ``dW_ih``, ``dW_hh``, the bias gradients and ``dxs`` with one large product each per
  chunk of steps (`chunk_length`: at most `CHUNK_BYTES` of stacked gate gradients), not per
  step and not for the whole sequence at once (a buffer the kernel would fault in afresh at
  every call).

The measurements behind each choice are in ``benchmarks/README.md``.

Values and gradients equal JAX autodiff of the plain scan (tested);
``jaxrnn.Strategy(fused=False)`` is that reference. Inputs are time-major: ``xs (t, b, i)``
(or ``(t, i)``), states ``(b, h)``, ``valid (t, b)`` marks real steps or is None, and
``resets (t, b)`` (or None) marks the steps before which the state goes back to the initial
one (packed sequences; see ``resets`` in `jaxrnn.unroll`).
"""

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal
from jax.custom_derivatives import SymbolicZero

from jaxrnn.cells.base import accumulate
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cast_params
from jaxrnn.cells.base import recurrent
from jaxrnn.cells.base import wide_dtype
from jaxrnn.checks import fail
from jaxrnn.portable import scan
from jaxrnn.typing import Array

STORE_GATES_FROM = 64  # hidden size from which LSTM and GRU store their gates
# Hidden size from which the LSTM's forward-only pass runs its two products separately, two
# steps per loop iteration (faster from 256 units, slower below: benchmarks/README.md).
SPLIT_PRODUCTS_FROM = 256


def stores_gates(hidden_size: int) -> bool:
    """Whether a cell of this size stores its gates when its ``store_gates`` option is None.

    Examples:
      >>> from jaxrnn.cells.fused import stores_gates
      >>> stores_gates(128), stores_gates(16)
      (True, False)
    """
    return hidden_size >= STORE_GATES_FROM


def resolve_store_gates(hidden_size: int, store_gates: bool | None) -> bool:
    """A cell's ``store_gates`` option, checked: None decides by size (`stores_gates`).

    Examples:
      >>> from jaxrnn.cells.fused import resolve_store_gates
      >>> resolve_store_gates(128, None), resolve_store_gates(128, False)
      (True, False)
    """
    if store_gates is not None and not isinstance(store_gates, bool):
        fail("store_gates", "None, True or False", store_gates, TypeError)
    return stores_gates(hidden_size) if store_gates is None else store_gates


def _following(starts: Array, last: Array, reverse: bool) -> Array:
    """The state each step ends with, from the states the steps start from and the final
    state (in reading order). When only the last output is used, XLA reduces this to
    ``last``."""
    if reverse:
        return jnp.concatenate([last[None], starts[:-1]], axis=0)
    return jnp.concatenate([starts[1:], last[None]], axis=0)


def _values(*args):
    """The primal values of a ``symbolic_zeros`` forward rule's arguments."""
    return tuple(a.value if isinstance(a, CustomVJPPrimal) else a for a in args)


def _cotangent(ct, like):
    """``ct`` as an array: zeros shaped like ``like`` for a symbolic zero."""
    return jnp.zeros(like.shape, like.dtype) if isinstance(ct, SymbolicZero) else ct


def _output_cotangent(dys):
    """None when the outputs are unused (a symbolic zero), so the loop skips them."""
    return None if isinstance(dys, SymbolicZero) else dys


def _with_dy(dh, dy, ok, valid):
    if dy is None:
        return dh
    dy = dy.astype(dh.dtype)  # outputs in the compute dtype, state gradients in the carry's
    return dh + (dy if valid is None else _where(ok, dy, jnp.zeros_like(dy)))


def _where(ok, new, old):
    return new if ok is None else jnp.where(ok[..., None], new, old)


def _outputs(hs, valid):
    return hs if valid is None else _where(valid, hs, jnp.zeros_like(hs))


def _steps(valid, num_steps):
    """Scan inputs for the mask (a placeholder when there is none)."""
    return jnp.zeros((num_steps,), bool) if valid is None else valid


def _reset(rs, initial, state):
    """The state a step starts from: ``initial`` where the step resets, else ``state``. The
    scans stack the state *before* the reset, so `_following` still gives each step's end."""
    if rs is None:
        return state
    return jnp.where(rs[..., None], jnp.broadcast_to(initial, state.shape), state)


def _split_reset(rs, d_state, d_initial):
    """The gradient of a step's start state sent on to the step before, and the one collected
    for the initial state (which every resetting step read instead of the previous state)."""
    if rs is None:
        return d_state, d_initial
    zero = jnp.zeros_like(d_state)
    return jnp.where(rs[..., None], zero, d_state), d_initial + jnp.where(
        rs[..., None], d_state, zero
    )


def _flat(x: Array) -> Array:
    return x.reshape(-1, x.shape[-1])


def _accumulator(w: Array) -> Array:
    """Zeros for the sum of ``w``'s gradient over steps: float32 or wider, whatever ``w``'s
    dtype (mixed precision sums many small bfloat16 products)."""
    return jnp.zeros(w.shape, wide_dtype(w.dtype))


def _weight_product(inputs: Array, grads: Array, like: Array) -> Array:
    """``inputs^T @ grads`` over all rows in the inputs' (compute) dtype, accumulated in
    ``like``'s (wide) dtype, as mixed-precision training forms weight gradients."""
    flat = _flat(grads).astype(inputs.dtype)
    return jnp.matmul(_flat(inputs).T, flat, preferred_element_type=like.dtype)


CHUNK_BYTES = 3 * 2**20  # most bytes of stacked per-step gradients per backward chunk
CHUNK_MIN = 8  # fewest steps per chunk


def chunk_length(num_steps: int, step_bytes: int) -> int:
    """Steps per chunk of a backward loop whose steps each stack ``step_bytes``: the largest
    divisor of ``num_steps`` from `CHUNK_MIN` up whose chunk fits in `CHUNK_BYTES`, or
    ``num_steps`` itself (one chunk) when there is none.

    Examples:
      >>> from jaxrnn.cells.fused import chunk_length
      >>> chunk_length(100, 64 * 512 * 4), chunk_length(500, 32 * 512 * 4), chunk_length(97, 4)
      (20, 25, 97)
    """
    for length in range(min(num_steps, CHUNK_BYTES // max(step_bytes, 1)), CHUNK_MIN - 1, -1):
        if num_steps % length == 0:
            return length
    return num_steps


def _chunked(body, carry, sequences, reverse, step_bytes):
    """The backward loop as a scan over chunks of `chunk_length` steps: ``body(carry,
    chunk_of_sequences) -> (carry, ys_of_chunk)``, in backward order (last chunk first unless
    ``reverse``). Per-step results stacked for the whole sequence cost a freshly mapped,
    zero-filled ``(t, b, 4h)`` buffer per call; per chunk they stay small and are reused.
    Returns ``(carry, ys)`` with ``ys`` joined back to ``(t, ...)``."""
    num_steps = jax.tree.leaves(sequences)[0].shape[0]
    length = chunk_length(num_steps, step_bytes)
    split = lambda a: a.reshape((num_steps // length, length, *a.shape[1:]))
    carry, ys = jax.lax.scan(body, carry, jax.tree.map(split, sequences), reverse=not reverse)
    return carry, jax.tree.map(lambda a: a.reshape((num_steps, *a.shape[2:])), ys)


# ----------------------------------------------------------------------------------- LSTM


def _joint_product(x, h, w_xh, b):
    """``x W_ih + h W_hh + b`` as one matrix product of ``[x, h]`` with ``[W_ih; W_hh]``: one
    product per step instead of two (measured in benchmarks/README.md)."""
    return add_bias(jnp.concatenate([x, h.astype(x.dtype)], axis=-1) @ w_xh, b)


def _lstm_gates(gates):
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _lstm_forward(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, keep, compute_dtype):
    """The scan. ``keep="h"`` stacks the outputs; for the backward pass, ``"start"`` stacks
    the state ``(h, c)`` each step starts from (what the gradient needs, with no shifted
    copy), and ``"gates"`` adds the four gates as separate arrays (slicing one
    ``(t, b, 4h)`` array per step in the backward loop measured slower than four reads).
    Products and gates are in ``compute_dtype`` (None: the weights'); the state keeps its
    own dtype, so ``c`` accumulates in it."""
    w_ih, b, w_hh = cast_params((w_ih, b, w_hh), compute_dtype)
    xs = xs.astype(w_ih.dtype)

    # The backward pass's forward joins [x, h] into one product; a forward-only pass of a wide
    # cell runs x W_ih and h W_hh as two independent products that XLA may run side by side.
    split = keep == "h" and w_hh.shape[0] >= SPLIT_PRODUCTS_FROM
    w_xh = None if split else jnp.concatenate([w_ih, w_hh], axis=0)

    def body(carry, inputs):
        h_before, c_before = carry
        x, ok, rs = inputs
        h, c = _reset(rs, h0, h_before), _reset(rs, c0, c_before)
        if split:
            products = add_bias(x @ w_ih + recurrent(h, w_hh), b)
        else:
            products = _joint_product(x, h, w_xh, b)
        i, f, g, o = _lstm_gates(products)
        c_new = accumulate(f, c, i * g)
        h_new = o.astype(c_new.dtype) * jnp.tanh(c_new)
        if valid is not None:
            h_new, c_new = _where(ok, h_new, h), _where(ok, c_new, c)
        if keep == "h":
            return (h_new, c_new), h_new
        start = (h_before, c_before)
        return (h_new, c_new), ((*start, (i, f, g, o)) if keep == "gates" else start)

    steps = (xs, _steps(valid, xs.shape[0]), resets)
    (h, c), stacked = scan(body, (h0, c0), steps, reverse=reverse, unroll=2 if split else 1)
    return h, c, stacked


def _in(compute_dtype, ys: Array) -> Array:
    """Outputs in the compute dtype (None: as they are)."""
    return ys if compute_dtype is None else ys.astype(compute_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def lstm_scan(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, store_gates, compute_dtype=None):
    """``(h_T, c_T, ys)``: the LSTM over ``xs`` from ``(h0, c0)``; ``ys`` are the outputs
    (zero where ``valid`` is False) and the final state is the one after each last valid step.
    ``store_gates`` keeps the gate activations for the backward pass instead of recomputing;
    ``compute_dtype`` (None: the weights') is the dtype of the products, gates and ``ys``."""
    keep = "h"
    h, c, hs = _lstm_forward(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, keep, compute_dtype)
    return h, c, _in(compute_dtype, _outputs(hs, valid))


def _lstm_scan_fwd(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, store_gates, compute_dtype):
    w_ih, b, w_hh, xs, h0, c0, valid, resets = _values(w_ih, b, w_hh, xs, h0, c0, valid, resets)
    keep = "gates" if store_gates else "start"
    h, c, stacked = _lstm_forward(
        w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, keep, compute_dtype
    )
    hs = _following(stacked[0], h, reverse)
    initial = None if resets is None else (h0, c0)
    residuals = ((w_ih, b, w_hh), xs, c, valid, resets, initial, stacked)
    return (h, c, _in(compute_dtype, _outputs(hs, valid))), residuals


def _lstm_delta(dh, dc, i, f, g, o, c_prev, c_t):
    """Gradients of the gate pre-activations ``(b, 4h)`` and of ``c`` through the cell."""
    tanh_c = jnp.tanh(c_t)
    d_o = dh * tanh_c * o * (1 - o)
    dc_total = dc + dh * o * (1 - tanh_c**2)
    d_i = dc_total * g * i * (1 - i)
    d_f = dc_total * c_prev * f * (1 - f)
    d_g = dc_total * i * (1 - g**2)
    return jnp.concatenate([d_i, d_f, d_g, d_o], axis=-1), dc_total * f


def _lstm_scan_bwd(reverse, store_gates, compute_dtype, residuals, cotangents):
    weights, xs_given, c_last, valid, resets, initial, stacked = residuals
    # The forward's own (compute-dtype) weights: the products below are the exact derivative
    # of what ran, in the wider dtype of the gradients they meet.
    w_ih, b, w_hh = cast_params(weights, compute_dtype)
    xs = xs_given.astype(w_ih.dtype)
    h_prev, c_prev = stacked[0], stacked[1]
    h0, c0 = (None, None) if resets is None else initial
    gates = stacked[2] if store_gates else None
    dh_last, dc_last, dys = cotangents
    dh_last, dc_last = _cotangent(dh_last, c_last), _cotangent(dc_last, c_last)
    dys = _output_cotangent(dys)
    # The gradient recurrence through h and c is a sum over steps: it runs in the state's
    # (wide) dtype, with the weights the forward used.
    w_hh_t = w_hh.T.astype(c_last.dtype)
    w_ih_t = w_ih.T.astype(c_last.dtype)
    w_xh = None if store_gates else jnp.concatenate([w_ih, w_hh], axis=0)

    # The cell c_t a step ends with is the one the step after it (the previous backward
    # iteration) started from: it is carried rather than stacked a second time. (The scan
    # stacks the state before a reset, so this holds across resets too.)
    def body(carry, inputs):
        dh, dc, c_t, d_initial = carry
        x, hp, cp, dy, ok, stored, rs = inputs
        hp, cp = _reset(rs, h0, hp), _reset(rs, c0, cp)
        if store_gates:
            i, f, g, o = stored
        else:
            i, f, g, o = _lstm_gates(_joint_product(x, hp, w_xh, b))  # recomputed
        i, f, g, o = (a.astype(c_t.dtype) for a in (i, f, g, o))
        dgates, dc_new = _lstm_delta(_with_dy(dh, dy, ok, valid), dc, i, f, g, o, cp, c_t)
        dh_new = dgates @ w_hh_t
        if valid is not None:  # a padding step passes the gradient through untouched
            dgates = _where(ok, dgates, jnp.zeros_like(dgates))
            dh_new, dc_new = _where(ok, dh_new, dh), _where(ok, dc_new, dc)
        if rs is not None:
            dh_new, dh_init = _split_reset(rs, dh_new, d_initial[0])
            dc_new, dc_init = _split_reset(rs, dc_new, d_initial[1])
            d_initial = (dh_init, dc_init)
        return (dh_new, dc_new, inputs[2], d_initial), dgates

    # Each chunk reads x and h_prev for its weight gradients; the step body reads them only
    # when it recomputes the gates.
    steps = (xs, h_prev, c_prev, dys, _steps(valid, xs.shape[0]), gates, resets)

    def chunk(carry, inputs):
        # The weight gradients are formed per chunk of steps with one large product each,
        # so the stacked gate gradients never exist for the whole sequence (see `_chunked`).
        state, (dw_ih, db, dw_hh) = carry
        x, hp = inputs[0], _reset(inputs[-1], h0, inputs[1])
        state, dgates = jax.lax.scan(body, state, inputs, reverse=not reverse)
        sums = (
            dw_ih + _weight_product(x, dgates, dw_ih),
            db + _flat(dgates).sum(axis=0, dtype=db.dtype),
            dw_hh + _weight_product(hp, dgates, dw_hh),
        )
        return (state, sums), dgates @ w_ih_t

    zeros = tuple(_accumulator(w) for w in (w_ih, b, w_hh))
    d_initial = None if resets is None else (jnp.zeros_like(h0), jnp.zeros_like(c0))
    ((dh0, dc0, _, d_initial), (dw_ih, db, dw_hh)), dxs = _chunked(
        chunk,
        ((dh_last, dc_last, c_last, d_initial), zeros),
        steps,
        reverse,
        step_bytes=4 * c_last.size * c_last.dtype.itemsize,  # one step's gate gradients
    )
    if resets is not None:
        dh0, dc0 = dh0 + d_initial[0], dc0 + d_initial[1]
    dw_ih, db, dw_hh = (d.astype(w.dtype) for d, w in zip((dw_ih, db, dw_hh), weights, strict=True))
    dxs = dxs.astype(xs_given.dtype)
    return dw_ih, db, dw_hh, dxs, dh0.astype(c_last.dtype), dc0.astype(c_last.dtype), None, None


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd, symbolic_zeros=True)


# ------------------------------------------------------------------------------------ GRU


def _gru_parts(x, h, w_ih, b_ih, w_hh, b_hh):
    a_r, a_z, a_n = jnp.split(add_bias(x @ w_ih, b_ih), 3, axis=-1)
    u_r, u_z, u_n = jnp.split(add_bias(recurrent(h, w_hh), b_hh), 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    return r, z, n, u_n


def _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, keep, compute_dtype):
    """The scan. ``keep="h"`` stacks the outputs; for the backward pass, ``"start"`` stacks
    the state each step starts from (before a reset), and ``"gates"`` adds ``(r, z, n, u_n)``.
    Products and gates in ``compute_dtype`` (None: the weights'), the state in its own."""
    w_ih, b_ih, w_hh, b_hh = cast_params((w_ih, b_ih, w_hh, b_hh), compute_dtype)
    xs = xs.astype(w_ih.dtype)

    def body(h_before, inputs):
        x, ok, rs = inputs
        h = _reset(rs, h0, h_before)
        r, z, n, u_n = _gru_parts(x, h, w_ih, b_ih, w_hh, b_hh)
        h_new = accumulate(z, h, (1.0 - z) * n)
        if valid is not None:
            h_new = _where(ok, h_new, h)
        if keep == "h":
            return h_new, h_new
        return h_new, ((h_before, (r, z, n, u_n)) if keep == "gates" else (h_before, None))

    steps = (xs, _steps(valid, xs.shape[0]), resets)
    return scan(body, h0, steps, reverse=reverse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def gru_scan(
    w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, store_gates, compute_dtype=None
):
    """``(h_T, ys)``: the GRU over ``xs`` from ``h0``; ``ys`` zero where ``valid`` is False.
    ``store_gates`` keeps the gates for the backward pass instead of recomputing them;
    ``compute_dtype`` (None: the weights') is the dtype of the products, gates and ``ys``."""
    weights = (w_ih, b_ih, w_hh, b_hh)
    h, hs = _gru_forward(*weights, xs, h0, valid, resets, reverse, "h", compute_dtype)
    return h, _in(compute_dtype, _outputs(hs, valid))


def _gru_scan_fwd(
    w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, store_gates, compute_dtype
):
    values = _values(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets)
    w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets = values
    keep = "gates" if store_gates else "start"
    weights = (w_ih, b_ih, w_hh, b_hh)
    h, (h_prev, gates) = _gru_forward(*weights, xs, h0, valid, resets, reverse, keep, compute_dtype)
    hs = _following(h_prev, h, reverse)
    initial = None if resets is None else h0
    residuals = (weights, xs, valid, resets, initial, h_prev, gates)
    return (h, _in(compute_dtype, _outputs(hs, valid))), residuals


def _gru_scan_bwd(reverse, store_gates, compute_dtype, residuals, cotangents):
    weights, xs_given, valid, resets, h0, h_prev, gates = residuals
    w_ih, b_ih, w_hh, b_hh = cast_params(weights, compute_dtype)  # as the forward ran
    xs = xs_given.astype(w_ih.dtype)
    dh_last, dys = cotangents
    dh_last = _cotangent(dh_last, jax.ShapeDtypeStruct(h_prev.shape[1:], h_prev.dtype))
    dys = _output_cotangent(dys)
    w_hh_t, w_ih_t = w_hh.T.astype(h_prev.dtype), w_ih.T.astype(h_prev.dtype)  # as the LSTM's

    def body(carry, inputs):
        dh, d_initial = carry
        x, hp, dy, ok, stored, rs = inputs
        hp = _reset(rs, h0, hp)
        if store_gates:
            r, z, n, u_n = stored
        else:
            r, z, n, u_n = _gru_parts(x, hp, w_ih, b_ih, w_hh, b_hh)  # recomputed
        r, z, n, u_n = (a.astype(hp.dtype) for a in (r, z, n, u_n))
        dh_total = _with_dy(dh, dy, ok, valid)
        d_z = dh_total * (hp - n) * z * (1 - z)
        d_n = dh_total * (1 - z) * (1 - n**2)
        d_r = d_n * u_n * r * (1 - r)
        d_a = jnp.concatenate([d_r, d_z, d_n], axis=-1)  # gradient of x W_ih + b_ih
        d_u = jnp.concatenate([d_r, d_z, d_n * r], axis=-1)  # gradient of h W_hh + b_hh
        dh_new = dh_total * z + d_u @ w_hh_t
        if valid is not None:
            d_a = _where(ok, d_a, jnp.zeros_like(d_a))
            r = _where(ok, r, jnp.zeros_like(r))
            dh_new = _where(ok, dh_new, dh)
        dh_new, d_initial = _split_reset(rs, dh_new, d_initial)
        return (dh_new, d_initial), (d_a, r)

    steps = (xs, h_prev, dys, _steps(valid, xs.shape[0]), gates, resets)
    h_size = h_prev.shape[-1]

    def chunk(carry, inputs):  # the weight gradients per chunk of steps, as for the LSTM
        dh, (dw_ih, db_ih, dw_hh, db_hh) = carry
        x, hp = inputs[0], _reset(inputs[-1], h0, inputs[1])
        dh, (d_a, r) = jax.lax.scan(body, dh, inputs, reverse=not reverse)
        # d_u differs from d_a only in its n part, scaled by r: stack r (h), not d_u (3h).
        d_u = jnp.concatenate([d_a[..., : 2 * h_size], d_a[..., 2 * h_size :] * r], axis=-1)
        sums = (
            dw_ih + _weight_product(x, d_a, dw_ih),
            db_ih + _flat(d_a).sum(axis=0, dtype=db_ih.dtype),
            dw_hh + _weight_product(hp, d_u, dw_hh),
            db_hh + _flat(d_u).sum(axis=0, dtype=db_hh.dtype),
        )
        return (dh, sums), d_a @ w_ih_t

    zeros = tuple(_accumulator(w) for w in (w_ih, b_ih, w_hh, b_hh))
    d_initial = None if resets is None else jnp.zeros_like(h0)
    ((dh0, d_initial), (dw_ih, db_ih, dw_hh, db_hh)), dxs = _chunked(
        chunk,
        ((dh_last, d_initial), zeros),
        steps,
        reverse,
        step_bytes=4 * h_prev[0].size * h_prev.dtype.itemsize,  # d_a (3h) and r (h)
    )
    if resets is not None:
        dh0 = dh0 + d_initial
    grads = tuple(
        d.astype(w.dtype) for d, w in zip((dw_ih, db_ih, dw_hh, db_hh), weights, strict=True)
    )
    return (*grads, dxs.astype(xs_given.dtype), dh0.astype(h_prev.dtype), None, None)


gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd, symbolic_zeros=True)
