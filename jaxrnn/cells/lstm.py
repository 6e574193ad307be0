"""The LSTM cell (Hochreiter & Schmidhuber 1997, with forget gate), gate order i, f, g, o."""

from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxrnn.cells import fused as fused_scans
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import accumulate
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import concat_gates
from jaxrnn.cells.base import from_keras_one_bias
from jaxrnn.cells.base import input_kernel
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import orthogonal_blocks
from jaxrnn.cells.base import recurrent
from jaxrnn.cells.base import to_keras_one_bias
from jaxrnn.cells.fused import lstm_scan
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_number
from jaxrnn.checks import check_size
from jaxrnn.checks import fail
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


class LSTMCarry(NamedTuple):
    """The LSTM state, by name so that nobody guesses which of two arrays is which."""

    h: Array  # (..., h) hidden state, also the cell's output
    c: Array  # (..., h) memory cell


@cell_factory
def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    store_gates: bool | None = None,
    proj_size: int | None = None,
    compute_dtype: DTypeLike | None = None,
) -> Cell:
    r"""The LSTM cell, gate order i, f, g, o as in PyTorch and Flax.

    $$
    \begin{aligned}
    {[i, f, g, o]} &= x_t W_{ih} + h_{t-1} W_{hh} + b \\
    c_t &= \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g) \\
    h_t &= \sigma(o) \odot \tanh(c_t), \qquad y_t = h_t
    \end{aligned}
    $$

    Params ``{"w_ih": (i, 4h), "w_hh": (h, 4h), "b": (4h,)}``; the carry is
    `LSTMCarry(h, c)`, each ``(..., h)``. Each gate's block of ``w_hh`` starts orthogonal,
    ``w_ih`` LeCun-normal, and the forget-gate bias at ``forget_bias`` (the rest at zero), so a
    new LSTM remembers by default.

    With ``proj_size=p`` (PyTorch's ``proj_size``, Sak et al. 2014) the output is projected,
    ``h_t = (\sigma(o) \odot \tanh(c_t)) W_{hr}`` with ``w_hr (h, p)``: ``h`` and ``y`` are
    ``(..., p)``, ``c`` stays ``(..., h)``, ``w_hh`` is ``(p, 4h)`` and the cell's
    ``hidden_size`` (its output size) is ``p``. It trains through autodiff of the scan (no fused
    backward pass).

    Args:
      hidden_size: ``h``.
      forget_bias: initial value of the forget-gate bias.
      store_gates: for the fused backward pass, keep the gate activations of every step
        (True: one matrix product per backward step instead of two, more memory) or
        recompute them (False); None decides by size (stored from
        `jaxrnn.cells.fused.STORE_GATES_FROM` units, where storing measured faster).
      proj_size: ``p`` in ``[1, hidden_size)``, the size of the projected output; None for
        none.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.lstm(hidden_size=4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> carry, y = cell.step(params, cell.initial_carry(params), jnp.ones(3))
      >>> carry.c.shape, y.shape
      ((4,), (4,))
      >>> projected = jaxrnn.lstm(hidden_size=8, proj_size=2)
      >>> params = projected.init(jax.random.key(0), input_size=3)
      >>> carry, ys = jaxrnn.unroll(projected, params, jnp.ones((5, 3)))
      >>> carry.h.shape, carry.c.shape, ys.shape
      ((2,), (8,), (5, 2))
    """
    check_size("hidden_size", hidden_size)
    forget_bias = check_number("forget_bias", forget_bias)
    _check_proj_size(proj_size, hidden_size)
    out_size = hidden_size if proj_size is None else proj_size
    store = fused_scans.resolve_store_gates(hidden_size, store_gates)

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        out = {
            "w_ih": (input_size, 4 * hidden_size),
            "w_hh": (out_size, 4 * hidden_size),
            "b": (4 * hidden_size,),
        }
        if proj_size is not None:
            out["w_hr"] = (hidden_size, proj_size)
        return out

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        k_ih, k_hh, k_hr = jax.random.split(key, 3)
        b = jnp.zeros((4, hidden_size), dtype).at[1].set(forget_bias)
        if proj_size is None:
            w_hh = orthogonal_blocks(k_hh, hidden_size, 4, dtype)
        else:  # (p, 4h) blocks: LeCun-normal, like the input kernel
            w_hh = input_kernel(k_hh, proj_size, 4 * hidden_size, dtype)
        params = {
            "w_ih": input_kernel(k_ih, input_size, 4 * hidden_size, dtype),
            "w_hh": w_hh,
            "b": b.reshape(-1),
        }
        if proj_size is not None:
            params["w_hr"] = input_kernel(k_hr, hidden_size, proj_size, dtype)
        return params

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> LSTMCarry:
        batch_shape = check_batch_shape(batch_shape)
        dtype = params["w_hh"].dtype
        return LSTMCarry(
            h=jnp.zeros((*batch_shape, out_size), dtype),
            c=jnp.zeros((*batch_shape, hidden_size), dtype),
        )

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b"])

    def step_projected(params: Params, carry: LSTMCarry, px: Array) -> tuple[LSTMCarry, Array]:
        gates = px + recurrent(carry.h, params["w_hh"])
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = accumulate(jax.nn.sigmoid(f), carry.c, jax.nn.sigmoid(i) * jnp.tanh(g))
        h = jax.nn.sigmoid(o).astype(c.dtype) * jnp.tanh(c)
        if proj_size is not None:
            h = recurrent(h, params["w_hr"])
        return LSTMCarry(h=h, c=c), h

    def fused(params: Params, xs: Array, carry: LSTMCarry, valid, reverse: bool, resets=None):
        w_ih, b, w_hh = params["w_ih"], params["b"], params["w_hh"]
        h, c, ys = lstm_scan(
            w_ih, b, w_hh, xs, carry.h, carry.c, valid, resets, reverse, store, compute_dtype
        )
        return LSTMCarry(h=h, c=c), ys

    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker("lstm", hidden_size, shapes),
        name="lstm",
        hidden_size=out_size,
        fused=fused if proj_size is None else None,  # the hand-written pass has no W_hr
        output=lambda carry: carry.h,
        compute_dtype=compute_dtype,
    )


def _check_proj_size(proj_size: int | None, hidden_size: int) -> None:
    if proj_size is not None:
        check_size("proj_size", proj_size)
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size={hidden_size} (as in PyTorch), "
                f"got {proj_size}"
            )


def _from_torch(w_ih, w_hh, b_ih, b_hh, w_hr=None) -> Params:
    params = {"w_ih": w_ih.T, "w_hh": w_hh.T, "b": b_ih + b_hh}  # the same gate order i, f, g, o
    if w_hr is not None:  # proj_size > 0: weight_hr (p, h)
        params["w_hr"] = w_hr.T
    return params


def to_cudnn(layers: Sequence[Params | dict[str, Params]]) -> Array:
    """jaxrnn LSTM params as cuDNN's one packed weight vector (`jax.experimental.rnn.lstm`).

    ``layers`` holds one entry per layer: an LSTM's params, or ``{"forward": params,
    "backward": params}`` for a bidirectional layer (what `jaxrnn.bidirectional` initialises);
    all layers have one kind. cuDNN's layout is every (layer, direction)'s ``W_ih (4h, in)``
    and ``W_hh (4h, h)``, then every one's ``b_ih`` and ``b_hh``, gates i, f, g, o as here.
    jaxrnn's LSTM has one bias where cuDNN has two: it goes to ``b_ih``, and ``b_hh`` is zero
    (their sum is what both compute with). Projections (``w_hr``) have no cuDNN form.

    Examples:
      >>> import jax
      >>> from jaxrnn.cells.lstm import lstm, to_cudnn
      >>> params = lstm(4).init(jax.random.key(0), input_size=3)
      >>> to_cudnn([params]).shape  # 16 * 3 + 16 * 4 + 2 * 16
      (144,)
    """
    directions = [_directions(n, layer) for n, layer in enumerate(layers)]
    if len({len(d) for d in directions}) > 1:
        fail("layers", "all bidirectional or all one-directional", layers, TypeError)
    weights, biases = [], []
    for params in (p for layer in directions for p in layer):
        weights += [params["w_ih"].T.reshape(-1), params["w_hh"].T.reshape(-1)]
        biases += [params["b"], jnp.zeros_like(params["b"])]
    return jnp.concatenate(weights + biases)


def _directions(n: int, layer: Any) -> list[Params]:
    params = [layer["forward"], layer["backward"]] if "forward" in layer else [layer]
    for p in params:
        if "w_hr" in p or not {"w_ih", "w_hh", "b"} <= set(p):
            fail(f"layers[{n}]", "LSTM params without a projection (w_ih, w_hh, b)", p, TypeError)
    return params


def _from_flax(p) -> Params:  # flax.linen.LSTMCell and OptimizedLSTMCell; flax.nnx's too
    if "dense_i" in p:  # nnx.OptimizedLSTMCell: the four gates side by side, i, f, g, o
        return {
            "w_ih": p["dense_i"]["kernel"],
            "w_hh": p["dense_h"]["kernel"],
            "b": p["dense_h"]["bias"],
        }
    if "if_" in p:  # nnx.LSTMCell names linen's "if" "if_" (a Python keyword)
        p = {("if" if k == "if_" else k): v for k, v in p.items()}
    return {
        "w_ih": concat_gates(p[f"i{g}"]["kernel"] for g in "ifgo"),
        "w_hh": concat_gates(p[f"h{g}"]["kernel"] for g in "ifgo"),
        "b": concat_gates(p[f"h{g}"]["bias"] for g in "ifgo"),
    }


def _to_flax(params: Params) -> dict:
    w_ih = jnp.split(params["w_ih"], 4, axis=-1)
    w_hh = jnp.split(params["w_hh"], 4, axis=-1)
    b = jnp.split(params["b"], 4)
    out = {}
    for n, g in enumerate("ifgo"):
        out[f"i{g}"] = {"kernel": w_ih[n]}
        out[f"h{g}"] = {"kernel": w_hh[n], "bias": b[n]}
    return out


FAMILY = Family(
    name="lstm",
    make=lstm,
    gates=4,
    torch_module="LSTM",
    flax_cell="LSTMCell",
    from_torch=_from_torch,
    from_flax=_from_flax,
    to_flax=_to_flax,
    keras_layer="LSTM",  # kernel, recurrent_kernel, bias; gates i, f, c, o
    from_keras=from_keras_one_bias,
    to_keras=to_keras_one_bias,
)
