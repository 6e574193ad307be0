"""The minimal gated unit (Zhou et al. 2016): one gate that both forgets and resets."""

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import accumulate
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import input_kernel
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import orthogonal_blocks
from jaxrnn.cells.base import recurrent
from jaxrnn.cells.base import zeros_carry
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_number
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


@cell_factory
def mgu(
    hidden_size: int, *, forget_bias: float = 1.0, compute_dtype: DTypeLike | None = None
) -> Cell:
    r"""The MGU cell, in the convention of ``flax.linen.MGUCell``.

    $$
    \begin{aligned}
    {[a_f, a_n]} &= x_t W_{ih} + b_{ih}, \qquad [u_f, u_n] = h_{t-1} W_{hh} \\
    f &= \sigma(a_f + u_f), \qquad n = \tanh(a_n + f \odot (u_n + b_{hn})) \\
    h_t &= (1 - f) \odot n + f \odot h_{t-1}, \qquad y_t = h_t
    \end{aligned}
    $$

    A GRU with its reset and update gates tied: two blocks of weights instead of three.
    Params ``{"w_ih": (i, 2h), "b_ih": (2h,), "w_hh": (h, 2h), "b_hn": (h,)}``; the carry is
    ``h`` of shape ``(..., h)``. The forget gate's bias starts at ``forget_bias`` (Flax: 1).
    It has no fused backward pass: it trains through the plain scan.

    Args:
      hidden_size: ``h``.
      forget_bias: initial value of the forget-gate bias (the first half of ``b_ih``).
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.mgu(hidden_size=4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> h, y = cell.step(params, cell.initial_carry(params, (2,)), jnp.ones((2, 3)))
      >>> y.shape, params["w_hh"].shape
      ((2, 4), (4, 8))
    """
    check_size("hidden_size", hidden_size)
    forget_bias = check_number("forget_bias", forget_bias)

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {
            "w_ih": (input_size, 2 * hidden_size),
            "b_ih": (2 * hidden_size,),
            "w_hh": (hidden_size, 2 * hidden_size),
            "b_hn": (hidden_size,),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        k_ih, k_hh = jax.random.split(key)
        bias = jnp.concatenate([jnp.full((hidden_size,), forget_bias), jnp.zeros(hidden_size)])
        return {
            "w_ih": input_kernel(k_ih, input_size, 2 * hidden_size, dtype),
            "b_ih": bias.astype(dtype),
            "w_hh": orthogonal_blocks(k_hh, hidden_size, 2, dtype),
            "b_hn": jnp.zeros((hidden_size,), dtype),
        }

    initial_carry = zeros_carry(hidden_size, "w_hh")

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b_ih"])

    def step_projected(params: Params, h: Array, px: Array) -> tuple[Array, Array]:
        a_f, a_n = jnp.split(px, 2, axis=-1)
        u_f, u_n = jnp.split(recurrent(h, params["w_hh"]), 2, axis=-1)
        f = jax.nn.sigmoid(a_f + u_f)
        n = jnp.tanh(a_n + f * add_bias(u_n, params["b_hn"]))
        h = accumulate(f, h, (1.0 - f) * n)
        return h, h

    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker("mgu", hidden_size, shapes),
        name="mgu",
        hidden_size=hidden_size,
        output=lambda h: h,
        compute_dtype=compute_dtype,
    )


def _from_flax(p) -> Params:  # flax.linen.MGUCell with reset_gate=True
    return {
        "w_ih": jnp.concatenate([p["if"]["kernel"], p["in"]["kernel"]], axis=-1),
        "b_ih": jnp.concatenate([p["if"]["bias"], p["in"]["bias"]]),
        "w_hh": jnp.concatenate([p["hf"]["kernel"], p["hn"]["kernel"]], axis=-1),
        "b_hn": p["hn"]["bias"],
    }


def _to_flax(params: Params) -> dict:
    w_if, w_in = jnp.split(params["w_ih"], 2, axis=-1)
    b_if, b_in = jnp.split(params["b_ih"], 2)
    w_hf, w_hn = jnp.split(params["w_hh"], 2, axis=-1)
    return {
        "if": {"kernel": w_if, "bias": b_if},
        "in": {"kernel": w_in, "bias": b_in},
        "hf": {"kernel": w_hf},
        "hn": {"kernel": w_hn, "bias": params["b_hn"]},
    }


FAMILY = Family(
    name="mgu",
    make=mgu,
    gates=2,
    flax_cell="MGUCell",
    from_flax=_from_flax,
    to_flax=_to_flax,
)
