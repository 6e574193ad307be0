"""Hand-written backward passes for whole LSTM and GRU sequences (`jax.custom_vjp`).

Autodiff of a `lax.scan` saves several per-step arrays and accumulates ``dW_hh`` with a small
matrix product inside the backward loop at every step. These scans save only the hidden
states (and the LSTM's memory cells), recompute the gates in the backward loop, and compute
``dW_hh`` (and the GRU's ``db_hh``) with one large matrix product after it. The values and
gradients equal autodiff's (tested); ``jaxrnn.unroll(..., fused=False)`` is the reference.

Inputs are time-major: ``px (t, b, g)`` is the projected input, ``h0``/``c0`` ``(b, h)``,
``valid (t, b)`` marks real (non-padding) steps or is None.
"""

import functools

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import add_bias
from jaxrnn.typing import Array


def _previous(states: Array, first: Array, reverse: bool) -> Array:
    """The state each step starts from: ``states`` shifted by one step in reading order."""
    if reverse:
        return jnp.concatenate([states[1:], first[None]], axis=0)
    return jnp.concatenate([first[None], states[:-1]], axis=0)


def _where(valid, new, old):
    return new if valid is None else jnp.where(valid[..., None], new, old)


def _valid_steps(valid, num_steps):
    """Scan inputs for the mask (a dummy when there is none)."""
    return jnp.ones((num_steps, 1), bool) if valid is None else valid


# ----------------------------------------------------------------------------------- LSTM


def _lstm_gates(gates):
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _lstm_forward(w_hh, px, h0, c0, valid, reverse, keep_cells):
    def body(carry, inputs):
        h, c = carry
        px_t, ok = inputs
        i, f, g, o = _lstm_gates(px_t + h @ w_hh)
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if valid is not None:
            h_new, c_new = _where(ok, h_new, h), _where(ok, c_new, c)
        return (h_new, c_new), ((h_new, c_new) if keep_cells else h_new)

    (h, c), stacked = jax.lax.scan(
        body, (h0, c0), (px, _valid_steps(valid, px.shape[0])), reverse=reverse
    )
    hs, cs = stacked if keep_cells else (stacked, None)
    return h, c, hs, cs


def _outputs(hs, valid):
    return hs if valid is None else _where(valid, hs, jnp.zeros_like(hs))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def lstm_scan(w_hh, px, h0, c0, valid, reverse):
    """``(h_T, c_T, ys)``: the LSTM over ``px`` from ``(h0, c0)``; ``ys`` are the outputs
    (zero where ``valid`` is False)."""
    h, c, hs, _ = _lstm_forward(w_hh, px, h0, c0, valid, reverse, keep_cells=False)
    return h, c, _outputs(hs, valid)


def _lstm_scan_fwd(w_hh, px, h0, c0, valid, reverse):
    h, c, hs, cs = _lstm_forward(w_hh, px, h0, c0, valid, reverse, keep_cells=True)
    return (h, c, _outputs(hs, valid)), (w_hh, px, h0, c0, valid, hs, cs)


def _lstm_scan_bwd(reverse, residuals, cotangents):
    w_hh, px, h0, c0, valid, hs, cs = residuals
    dh_last, dc_last, dys = cotangents
    h_prev = _previous(hs, h0, reverse)
    c_prev = _previous(cs, c0, reverse)
    w_t = w_hh.T

    def body(carry, inputs):
        dh, dc = carry
        px_t, hp, cp, c_t, dy, ok = inputs
        i, f, g, o = _lstm_gates(px_t + hp @ w_hh)  # recomputed, not stored
        dh_total = dh + (dy if valid is None else _where(ok, dy, jnp.zeros_like(dy)))
        dc_total = dc
        tanh_c = jnp.tanh(c_t)
        d_o = dh_total * tanh_c * o * (1 - o)
        dc_total = dc_total + dh_total * o * (1 - tanh_c**2)
        d_i = dc_total * g * i * (1 - i)
        d_f = dc_total * cp * f * (1 - f)
        d_g = dc_total * i * (1 - g**2)
        dgates = jnp.concatenate([d_i, d_f, d_g, d_o], axis=-1)
        dh_new, dc_new = dgates @ w_t, dc_total * f
        if valid is not None:  # a padding step passes the gradient through untouched
            dgates = _where(ok, dgates, jnp.zeros_like(dgates))
            dh_new, dc_new = _where(ok, dh_new, dh), _where(ok, dc_new, dc)
        return (dh_new, dc_new), dgates

    steps = _valid_steps(valid, px.shape[0])
    (dh0, dc0), dgates = jax.lax.scan(
        body, (dh_last, dc_last), (px, h_prev, c_prev, cs, dys, steps), reverse=not reverse
    )
    # One large product instead of a small one per step.
    dw_hh = h_prev.reshape(-1, h_prev.shape[-1]).T @ dgates.reshape(-1, dgates.shape[-1])
    return dw_hh, dgates, dh0, dc0, None


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


# ------------------------------------------------------------------------------------ GRU


def _gru_parts(px_t, h, w_hh, b_hh):
    a_r, a_z, a_n = jnp.split(px_t, 3, axis=-1)
    u_r, u_z, u_n = jnp.split(add_bias(h @ w_hh, b_hh), 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    return r, z, n, u_n


def _gru_forward(w_hh, b_hh, px, h0, valid, reverse):
    def body(h, inputs):
        px_t, ok = inputs
        _, z, n, _ = _gru_parts(px_t, h, w_hh, b_hh)
        h_new = (1.0 - z) * n + z * h
        if valid is not None:
            h_new = _where(ok, h_new, h)
        return h_new, h_new

    return jax.lax.scan(body, h0, (px, _valid_steps(valid, px.shape[0])), reverse=reverse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_scan(w_hh, b_hh, px, h0, valid, reverse):
    """``(h_T, hs)``: the GRU over ``px`` from ``h0``; ``hs`` zero where ``valid`` is False."""
    h, hs = _gru_forward(w_hh, b_hh, px, h0, valid, reverse)
    return h, _outputs(hs, valid)


def _gru_scan_fwd(w_hh, b_hh, px, h0, valid, reverse):
    h, hs = _gru_forward(w_hh, b_hh, px, h0, valid, reverse)
    return (h, _outputs(hs, valid)), (w_hh, b_hh, px, h0, valid, hs)


def _gru_scan_bwd(reverse, residuals, cotangents):
    w_hh, b_hh, px, h0, valid, hs = residuals
    dh_last, dys = cotangents
    h_prev = _previous(hs, h0, reverse)
    w_t = w_hh.T

    def body(dh, inputs):
        px_t, hp, dy, ok = inputs
        r, z, n, u_n = _gru_parts(px_t, hp, w_hh, b_hh)  # recomputed, not stored
        dh_total = dh + (dy if valid is None else _where(ok, dy, jnp.zeros_like(dy)))
        d_z = dh_total * (hp - n) * z * (1 - z)
        d_n = dh_total * (1 - z) * (1 - n**2)
        d_r = d_n * u_n * r * (1 - r)
        d_px = jnp.concatenate([d_r, d_z, d_n], axis=-1)
        d_u = jnp.concatenate([d_r, d_z, d_n * r], axis=-1)
        dh_new = dh_total * z + d_u @ w_t
        if valid is not None:
            d_px = _where(ok, d_px, jnp.zeros_like(d_px))
            d_u = _where(ok, d_u, jnp.zeros_like(d_u))
            dh_new = _where(ok, dh_new, dh)
        return dh_new, (d_px, d_u)

    steps = _valid_steps(valid, px.shape[0])
    dh0, (d_px, d_u) = jax.lax.scan(body, dh_last, (px, h_prev, dys, steps), reverse=not reverse)
    flat_u = d_u.reshape(-1, d_u.shape[-1])
    dw_hh = h_prev.reshape(-1, h_prev.shape[-1]).T @ flat_u
    return dw_hh, flat_u.sum(axis=0), d_px, dh0, None


gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd)
