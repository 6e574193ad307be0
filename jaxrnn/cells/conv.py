"""The convolutional LSTM (Shi et al. 2015): the LSTM with its products replaced by
convolutions, over ``(..., *spatial, channels)`` inputs (images, or 1-D/3-D signals)."""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import accumulate
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey

_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


@cell_factory
def conv_lstm(
    features: int,
    kernel_size: Sequence[int] = (3, 3),
    *,
    forget_bias: float = 1.0,
    compute_dtype: DTypeLike | None = None,
) -> Cell:
    r"""The convolutional LSTM cell, gate order i, f, g, o as in `jaxrnn.lstm`.

    $$
    \begin{aligned}
    {[i, f, g, o]} &= W_{ih} * x_t + W_{hh} * h_{t-1} + b \\
    c_t &= \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g), \qquad
    h_t = \sigma(o) \odot \tanh(c_t)
    \end{aligned}
    $$

    where ``*`` is a ``"SAME"``-padded, stride-1 convolution, so ``h`` and ``c`` keep the
    input's spatial shape. Params ``{"w_ih": (*kernel_size, i, 4f), "w_hh": (*kernel_size, f,
    4f), "b": (4f,)}``; the carry is `LSTMCarry(h, c)`, each ``(..., *spatial, f)``. Inputs of
    a sequence are ``(b, t, *spatial, i)``; `jaxrnn.unroll` builds the initial carry with
    ``initial_carry(params, (b, *spatial))``, and lengths, masks and resets are per sequence
    ``(b,)`` / ``(b, t)`` as for every cell. Flax's ``ConvLSTMCell`` computes the same (its
    gates ordered i, g, f, o with a fixed ``+1`` on f): `jaxrnn.interop.from_flax` converts.
    `jaxrnn.rnn`, `jaxrnn.stacked` and `jaxrnn.bidirectional` take it; `jaxrnn.pool`,
    `jaxrnn.many_to_one` and ``stacked(..., variational=True)`` expect vector steps (read the
    final carry of `jaxrnn.unroll` instead).

    Args:
      features: ``f``, the channels of ``h`` and ``c``.
      kernel_size: the convolution window, one int per spatial axis (1 to 3 axes).
      forget_bias: initial value of the forget-gate bias.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell` with ``input_axes == len(kernel_size) + 1``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.conv_lstm(features=4, kernel_size=(3, 3))
      >>> params = cell.init(jax.random.key(0), input_size=2)
      >>> frames = jnp.ones((5, 6, 8, 8, 2))  # 5 clips of 6 frames of 8x8 pixels, 2 channels
      >>> carry, ys = jaxrnn.unroll(cell, params, frames, seq_lengths=jnp.array([6, 4, 6, 1, 0]))
      >>> ys.shape, carry.c.shape
      ((5, 6, 8, 8, 4), (5, 8, 8, 4))
    """
    check_size("features", features)
    if isinstance(kernel_size, int) or not isinstance(kernel_size, Sequence):
        raise TypeError(
            f"kernel_size must be a tuple with one int per spatial axis, e.g. (3, 3), got "
            f"{kernel_size!r}"
        )
    kernel_size = tuple(kernel_size)
    if len(kernel_size) not in _LAYOUTS:
        raise ValueError(f"kernel_size must have 1 to 3 entries (spatial axes), got {kernel_size}")
    for size in kernel_size:
        check_size("kernel_size entries", size)
    spatial = len(kernel_size)
    layout = _LAYOUTS[spatial]

    conv = functools.partial(_conv, spatial=spatial, layout=layout)

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {
            "w_ih": (*kernel_size, input_size, 4 * features),
            "w_hh": (*kernel_size, features, 4 * features),
            "b": (4 * features,),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        k_ih, k_hh = jax.random.split(key)
        window = int(np.prod(kernel_size))
        lecun = lambda k, fan_in, shape: jax.random.normal(k, shape, dtype) / np.sqrt(fan_in)
        b = jnp.zeros((4, features), dtype).at[1].set(forget_bias)
        return {
            "w_ih": lecun(k_ih, window * input_size, shapes(input_size)["w_ih"]),
            "w_hh": lecun(k_hh, window * features, shapes(input_size)["w_hh"]),
            "b": b.reshape(-1),
        }

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> LSTMCarry:
        batch_shape = check_batch_shape(batch_shape)
        if len(batch_shape) < spatial:
            raise ValueError(
                f"batch_shape of jaxrnn.conv_lstm must end with the {spatial} spatial axes of "
                f"the inputs, (*batch, *spatial), got {batch_shape}"
            )
        zeros = jnp.zeros((*batch_shape, features), params["w_hh"].dtype)
        return LSTMCarry(h=zeros, c=zeros)

    def project(params: Params, xs: Array) -> Array:
        return add_bias(conv(xs, params["w_ih"]), params["b"])

    def step_projected(params: Params, carry: LSTMCarry, px: Array) -> tuple[LSTMCarry, Array]:
        gates = px + conv(carry.h.astype(params["w_hh"].dtype), params["w_hh"])
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = accumulate(jax.nn.sigmoid(f), carry.c, jax.nn.sigmoid(i) * jnp.tanh(g))
        h = jax.nn.sigmoid(o).astype(c.dtype) * jnp.tanh(c)
        return LSTMCarry(h=h, c=c), h

    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker(
            "conv_lstm",
            features,
            shapes,
            label=f"conv_lstm(features={features}, kernel_size={kernel_size})",
            input_axis=-2,
            input_rank=spatial + 2,
        ),
        name="conv_lstm",
        hidden_size=features,
        output=lambda carry: carry.h,
        input_axes=spatial + 1,
        compute_dtype=compute_dtype,
    )


def _conv(x: Array, w: Array, spatial: int, layout) -> Array:
    """``x (..., *spatial, c)`` convolved with ``w``: any leading axes, one batch for XLA."""
    lead = x.shape[: x.ndim - spatial - 1]
    flat = x.reshape((-1, *x.shape[x.ndim - spatial - 1 :]))
    out = jax.lax.conv_general_dilated(flat, w, (1,) * spatial, "SAME", dimension_numbers=layout)
    return out.reshape((*lead, *out.shape[1:]))


def _flax_order(a):
    """jaxrnn's blocks i, f, g, o against Flax's i, g, f, o (the same swap both ways)."""
    i, x, y, o = jnp.split(a, 4, axis=-1)
    return jnp.concatenate([i, y, x, o], axis=-1)


def _from_flax(p) -> Params:  # flax.linen.ConvLSTMCell: f gets a fixed +1 inside the step
    bias = p["ih"]["bias"] + p["hh"]["bias"]
    one = jnp.zeros_like(bias).reshape(4, -1).at[2].set(1.0).reshape(-1)  # Flax's f block
    return {
        "w_ih": _flax_order(p["ih"]["kernel"]),
        "w_hh": _flax_order(p["hh"]["kernel"]),
        "b": _flax_order(bias + one),
    }


def _to_flax(params: Params) -> dict:
    b = _flax_order(params["b"])
    one = jnp.zeros_like(b).reshape(4, -1).at[2].set(1.0).reshape(-1)
    return {
        "ih": {"kernel": _flax_order(params["w_ih"]), "bias": b - one},
        "hh": {"kernel": _flax_order(params["w_hh"]), "bias": jnp.zeros_like(b)},
    }


FAMILY = Family(
    name="conv_lstm",
    make=conv_lstm,
    gates=4,
    flax_cell="ConvLSTMCell",
    from_flax=_from_flax,
    to_flax=_to_flax,
)
