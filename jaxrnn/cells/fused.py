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

from jaxrnn.cells.base import add_bias
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
    return add_bias(jnp.concatenate([x, h], axis=-1) @ w_xh, b)


def _lstm_gates(gates):
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _lstm_forward(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, keep):
    """The scan. ``keep="h"`` stacks the outputs; for the backward pass, ``"start"`` stacks
    the state ``(h, c)`` each step starts from (what the gradient needs, with no shifted
    copy), and ``"gates"`` adds the four gates as separate arrays (slicing one
    ``(t, b, 4h)`` array per step in the backward loop measured slower than four reads)."""

    # The backward pass's forward joins [x, h] into one product; a forward-only pass of a wide
    # cell runs x W_ih and h W_hh as two independent products that XLA may run side by side.
    split = keep == "h" and w_hh.shape[0] >= SPLIT_PRODUCTS_FROM
    w_xh = None if split else jnp.concatenate([w_ih, w_hh], axis=0)

    def body(carry, inputs):
        h_before, c_before = carry
        x, ok, rs = inputs
        h, c = _reset(rs, h0, h_before), _reset(rs, c0, c_before)
        if split:
            products = add_bias(x @ w_ih + h @ w_hh, b)
        else:
            products = _joint_product(x, h, w_xh, b)
        i, f, g, o = _lstm_gates(products)
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if valid is not None:
            h_new, c_new = _where(ok, h_new, h), _where(ok, c_new, c)
        if keep == "h":
            return (h_new, c_new), h_new
        start = (h_before, c_before)
        return (h_new, c_new), ((*start, (i, f, g, o)) if keep == "gates" else start)

    steps = (xs, _steps(valid, xs.shape[0]), resets)
    (h, c), stacked = scan(body, (h0, c0), steps, reverse=reverse, unroll=2 if split else 1)
    return h, c, stacked


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def lstm_scan(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, store_gates):
    """``(h_T, c_T, ys)``: the LSTM over ``xs`` from ``(h0, c0)``; ``ys`` are the outputs
    (zero where ``valid`` is False) and the final state is the one after each last valid step.
    ``store_gates`` keeps the gate activations for the backward pass instead of recomputing."""
    h, c, hs = _lstm_forward(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, "h")
    return h, c, _outputs(hs, valid)


def _lstm_scan_fwd(w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, store_gates):
    w_ih, b, w_hh, xs, h0, c0, valid, resets = _values(w_ih, b, w_hh, xs, h0, c0, valid, resets)
    h, c, stacked = _lstm_forward(
        w_ih, b, w_hh, xs, h0, c0, valid, resets, reverse, "gates" if store_gates else "start"
    )
    hs = _following(stacked[0], h, reverse)
    initial = None if resets is None else (h0, c0)
    return (h, c, _outputs(hs, valid)), (w_ih, b, w_hh, xs, c, valid, resets, initial, stacked)


def _lstm_delta(dh, dc, i, f, g, o, c_prev, c_t):
    """Gradients of the gate pre-activations ``(b, 4h)`` and of ``c`` through the cell."""
    tanh_c = jnp.tanh(c_t)
    d_o = dh * tanh_c * o * (1 - o)
    dc_total = dc + dh * o * (1 - tanh_c**2)
    d_i = dc_total * g * i * (1 - i)
    d_f = dc_total * c_prev * f * (1 - f)
    d_g = dc_total * i * (1 - g**2)
    return jnp.concatenate([d_i, d_f, d_g, d_o], axis=-1), dc_total * f


def _lstm_scan_bwd(reverse, store_gates, residuals, cotangents):
    w_ih, b, w_hh, xs, c_last, valid, resets, initial, stacked = residuals
    h_prev, c_prev = stacked[0], stacked[1]
    h0, c0 = (None, None) if resets is None else initial
    gates = stacked[2] if store_gates else None
    dh_last, dc_last, dys = cotangents
    dh_last, dc_last = _cotangent(dh_last, c_last), _cotangent(dc_last, c_last)
    dys = _output_cotangent(dys)
    w_hh_t = w_hh.T
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
        flat = _flat(dgates)
        sums = (dw_ih + _flat(x).T @ flat, db + flat.sum(axis=0), dw_hh + _flat(hp).T @ flat)
        return (state, sums), dgates @ w_ih.T

    zeros = tuple(jnp.zeros_like(w) for w in (w_ih, b, w_hh))
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
    return dw_ih, db, dw_hh, dxs, dh0, dc0, None, None


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd, symbolic_zeros=True)


# ------------------------------------------------------------------------------------ GRU


def _gru_parts(x, h, w_ih, b_ih, w_hh, b_hh):
    a_r, a_z, a_n = jnp.split(add_bias(x @ w_ih, b_ih), 3, axis=-1)
    u_r, u_z, u_n = jnp.split(add_bias(h @ w_hh, b_hh), 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    return r, z, n, u_n


def _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, keep):
    """The scan. ``keep="h"`` stacks the outputs; for the backward pass, ``"start"`` stacks
    the state each step starts from (before a reset), and ``"gates"`` adds ``(r, z, n, u_n)``."""

    def body(h_before, inputs):
        x, ok, rs = inputs
        h = _reset(rs, h0, h_before)
        r, z, n, u_n = _gru_parts(x, h, w_ih, b_ih, w_hh, b_hh)
        h_new = (1.0 - z) * n + z * h
        if valid is not None:
            h_new = _where(ok, h_new, h)
        if keep == "h":
            return h_new, h_new
        return h_new, ((h_before, (r, z, n, u_n)) if keep == "gates" else (h_before, None))

    steps = (xs, _steps(valid, xs.shape[0]), resets)
    return scan(body, h0, steps, reverse=reverse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def gru_scan(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, store_gates):
    """``(h_T, ys)``: the GRU over ``xs`` from ``h0``; ``ys`` zero where ``valid`` is False.
    ``store_gates`` keeps the gates for the backward pass instead of recomputing them."""
    h, hs = _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, "h")
    return h, _outputs(hs, valid)


def _gru_scan_fwd(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, store_gates):
    values = _values(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets)
    w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets = values
    keep = "gates" if store_gates else "start"
    h, (h_prev, gates) = _gru_forward(w_ih, b_ih, w_hh, b_hh, xs, h0, valid, resets, reverse, keep)
    hs = _following(h_prev, h, reverse)
    initial = None if resets is None else h0
    residuals = (w_ih, b_ih, w_hh, b_hh, xs, valid, resets, initial, h_prev, gates)
    return (h, _outputs(hs, valid)), residuals


def _gru_scan_bwd(reverse, store_gates, residuals, cotangents):
    w_ih, b_ih, w_hh, b_hh, xs, valid, resets, h0, h_prev, gates = residuals
    dh_last, dys = cotangents
    dh_last = _cotangent(dh_last, jax.ShapeDtypeStruct(h_prev.shape[1:], h_prev.dtype))
    dys = _output_cotangent(dys)
    w_hh_t = w_hh.T

    def body(carry, inputs):
        dh, d_initial = carry
        x, hp, dy, ok, stored, rs = inputs
        hp = _reset(rs, h0, hp)
        if store_gates:
            r, z, n, u_n = stored
        else:
            r, z, n, u_n = _gru_parts(x, hp, w_ih, b_ih, w_hh, b_hh)  # recomputed
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
        flat_a, flat_u = _flat(d_a), _flat(d_u)
        sums = (
            dw_ih + _flat(x).T @ flat_a,
            db_ih + flat_a.sum(axis=0),
            dw_hh + _flat(hp).T @ flat_u,
            db_hh + flat_u.sum(axis=0),
        )
        return (dh, sums), d_a @ w_ih.T

    zeros = tuple(jnp.zeros_like(w) for w in (w_ih, b_ih, w_hh, b_hh))
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
    return dw_ih, db_ih, dw_hh, db_hh, dxs, dh0, None, None


gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd, symbolic_zeros=True)
