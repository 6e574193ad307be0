"""The Real-Gated Linear Recurrent Unit of Griffin / RecurrentGemma (De et al. 2024): a
diagonal linear recurrence whose decay and input gates read only ``x_t``, so all steps can run
at once (``mode="parallel"``)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import LinearRecurrence
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import linear_step
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import wide_dtype
from jaxrnn.cells.base import zeros_carry
from jaxrnn.checks import check_heads
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_number
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey

_C = 8.0  # the fixed scale of log a in the paper: a = sigmoid(...) ** (C * softplus(Lambda))
_MAX_GRADIENT = 1000.0  # the bound on d sqrt(1 - a^2) that keeps training finite as a -> 1


@cell_factory
def rg_lru(
    hidden_size: int,
    *,
    num_heads: int = 1,
    min_rad: float = 0.9,
    max_rad: float = 0.999,
    compute_dtype: DTypeLike | None = None,
) -> Cell:
    r"""The RG-LRU cell of Griffin and RecurrentGemma (real-valued, as released).

    $$
    \begin{aligned}
    r_t &= \sigma(x_t W_a + b_a), \qquad i_t = \sigma(x_t W_x + b_x) \\
    a_t &= \exp(-8\, r_t \odot \operatorname{softplus}(\Lambda)) \\
    h_t &= a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot (i_t \odot x_t), \qquad y_t = h_t
    \end{aligned}
    $$

    The gates are block-diagonal (``num_heads`` blocks), and the input is gated elementwise,
    so the input size equals ``hidden_size``. Params ``{"a_param": (h,), "w_a": (n, h/n, h/n),
    "b_a": (n, h/n), "w_x": ..., "b_x": ...}`` (``n`` heads); the carry is ``(..., h)``.
    ``a`` starts uniformly on the ring ``[min_rad, max_rad]``. The recurrence is linear in
    ``h``, so ``jaxrnn.Strategy(mode="parallel")`` runs all steps with `linear_scan`, in
    float32 or wider.

    RecurrentGemma skips the ``sqrt(1 - a^2)`` factor on a document's first step
    (``segment_pos == 0``); here every step has it, the first included, so a packed row
    (``resets=``) equals each document run alone with this cell (tested), and equals
    RecurrentGemma's layer where ``segment_pos > 0`` (tested where it is installed).

    Args:
      hidden_size: ``h``, divisible by ``num_heads``.
      num_heads: diagonal blocks of the two gates.
      min_rad: smallest initial ``a`` (at ``r = 1``).
      max_rad: largest initial ``a``.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.rg_lru(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), input_size=8)
      >>> xs = jax.random.normal(jax.random.key(1), (2, 64, 8))
      >>> _, ys = jaxrnn.unroll(cell, params, xs, strategy=jaxrnn.Strategy(mode="parallel"))
      >>> _, ys_seq = jaxrnn.unroll(cell, params, xs)
      >>> ys.shape, bool(jnp.allclose(ys, ys_seq, atol=1e-5))
      ((2, 64, 8), True)
    """
    check_size("hidden_size", hidden_size)
    check_heads(num_heads, hidden_size)
    min_rad = check_number("min_rad", min_rad, low=0, high=1, low_open=True, high_open=True)
    max_rad = check_number("max_rad", max_rad, low=min_rad, high=1, low_open=True, high_open=True)
    block = hidden_size // num_heads
    label = f"rg_lru(hidden_size={hidden_size}, num_heads={num_heads})"
    shapes = {  # the input is gated elementwise: input_size == hidden_size
        "a_param": (hidden_size,),
        "w_a": (num_heads, block, block),
        "b_a": (num_heads, block),
        "w_x": (num_heads, block, block),
        "b_x": (num_heads, block),
    }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        if input_size != hidden_size:
            raise ValueError(
                f"the RG-LRU gates its input elementwise, so input_size must equal "
                f"hidden_size={hidden_size}, got {input_size}; project the inputs first"
            )
        k_a, k_wa, k_wx = jax.random.split(key, 3)
        unit = jax.random.uniform(k_a, (hidden_size,), jnp.float32)
        # a at r = 1, uniform in area on the ring [min_rad, max_rad], stored as RecurrentGemma
        # does: softplus(a_param) = -log(a).
        log_radius = 0.5 * jnp.log(unit * (max_rad**2 - min_rad**2) + min_rad**2 + 1e-8)
        a_param = jnp.log(jnp.exp(-log_radius) - 1.0)
        scale = 1.0 / np.sqrt(block)
        return {
            "a_param": a_param.astype(dtype),
            "w_a": (scale * jax.random.normal(k_wa, shapes["w_a"])).astype(dtype),
            "b_a": jnp.zeros(shapes["b_a"], dtype),
            "w_x": (scale * jax.random.normal(k_wx, shapes["w_x"])).astype(dtype),
            "b_x": jnp.zeros(shapes["b_x"], dtype),
        }

    initial_carry = zeros_carry(hidden_size, "a_param")

    def block_linear(x: Array, w: Array, b: Array) -> Array:
        heads = x.reshape((*x.shape[:-1], num_heads, block))
        out = jnp.einsum("...hi,hij->...hj", heads, w) + jnp.broadcast_to(b, heads.shape)
        return out.reshape(x.shape)

    def project(params: Params, xs: Array) -> Array:
        # px = [x, gate_x pre-activation, gate_a pre-activation]: what the step needs of x.
        gate_x = block_linear(xs, params["w_x"], params["b_x"])
        gate_a = block_linear(xs, params["w_a"], params["b_a"])
        return jnp.concatenate([xs, gate_x, gate_a], axis=-1)

    def coefficients(params: Params, px: Array) -> tuple[Array, Array]:
        px = px.astype(wide_dtype(px.dtype))
        x, gate_x, gate_a = jnp.split(px, 3, axis=-1)
        decay = jax.nn.softplus(params["a_param"].astype(px.dtype))
        log_a = -_C * jax.nn.sigmoid(gate_a) * jnp.broadcast_to(decay, gate_a.shape)
        a = jnp.exp(log_a)
        multiplier = _bounded_sqrt(1.0 - jnp.exp(2.0 * log_a))
        return a, x * jax.nn.sigmoid(gate_x) * multiplier

    recurrence = LinearRecurrence(coefficients=coefficients, readout=lambda params, h, px: h)
    step_projected = linear_step(recurrence)
    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker(
            "rg_lru", hidden_size, lambda _: shapes, "a_param", label=label, input_rank=1
        ),
        name="rg_lru",
        hidden_size=hidden_size,
        linear=recurrence,
        output=lambda h: h,
        compute_dtype=compute_dtype,
    )


@jax.custom_vjp
def _bounded_sqrt(x: Array) -> Array:
    """``sqrt(x)`` whose derivative is capped at `_MAX_GRADIENT` (it is infinite at 0, where
    ``a -> 1``), as RecurrentGemma trains it."""
    return jnp.sqrt(x)


def _bounded_sqrt_fwd(x):
    return jnp.sqrt(x), x


def _bounded_sqrt_bwd(x, g):
    floor = 1.0 / (4.0 * _MAX_GRADIENT**2)
    return (g * 0.5 / jnp.sqrt(jnp.maximum(x, floor)),)


_bounded_sqrt.defvjp(_bounded_sqrt_fwd, _bounded_sqrt_bwd)


def _from_flax(p) -> Params:  # recurrentgemma.jax.layers.RGLRU (a flax.linen module)
    return {
        "a_param": p["a_param"],
        "w_a": p["a_gate"]["w"],
        "b_a": p["a_gate"]["b"],
        "w_x": p["input_gate"]["w"],
        "b_x": p["input_gate"]["b"],
    }


def _to_flax(params: Params) -> dict:
    return {
        "a_param": params["a_param"],
        "a_gate": {"w": params["w_a"], "b": params["b_a"]},
        "input_gate": {"w": params["w_x"], "b": params["b_x"]},
    }


FAMILY = Family(
    name="rg_lru",
    make=rg_lru,
    flax_cell="RGLRU",  # recurrentgemma.jax.layers, not flax.linen
    from_flax=_from_flax,
    to_flax=_to_flax,
)
