"""The Elman (simple) RNN cell: the recurrence of the lecture."""

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import from_keras_one_bias
from jaxrnn.cells.base import input_kernel
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import orthogonal_blocks
from jaxrnn.cells.base import recurrent
from jaxrnn.cells.base import to_keras_one_bias
from jaxrnn.cells.base import zeros_carry
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.typing import Activation
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


@cell_factory
def elman(
    hidden_size: int, *, activation: Activation = jnp.tanh, compute_dtype: DTypeLike | None = None
) -> Cell:
    r"""The simple (Elman) RNN cell.

    $$
    h_t = \mathrm{act}(x_t W_{ih} + h_{t-1} W_{hh} + b), \qquad y_t = h_t
    $$

    Params ``{"w_ih": (i, h), "w_hh": (h, h), "b": (h,)}``; the carry is ``h`` of shape
    ``(..., h)``. ``w_hh`` starts orthogonal, ``w_ih`` LeCun-normal, ``b`` at zero.

    Args:
      hidden_size: ``h``.
      activation: elementwise non-linearity, ``jnp.tanh`` as in the lecture and PyTorch.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.elman(hidden_size=4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> h, y = cell.step(params, cell.initial_carry(params, (2,)), jnp.ones((2, 3)))
      >>> y.shape
      (2, 4)
    """
    check_size("hidden_size", hidden_size)
    if not callable(activation):
        raise TypeError(f"activation must be a function such as jnp.tanh, got {activation!r}")

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {
            "w_ih": (input_size, hidden_size),
            "w_hh": (hidden_size, hidden_size),
            "b": (hidden_size,),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        k_ih, k_hh = jax.random.split(key)
        return {
            "w_ih": input_kernel(k_ih, input_size, hidden_size, dtype),
            "w_hh": orthogonal_blocks(k_hh, hidden_size, 1, dtype),
            "b": jnp.zeros((hidden_size,), dtype),
        }

    initial_carry = zeros_carry(hidden_size, "w_hh")

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b"])

    def step_projected(params: Params, h: Array, px: Array) -> tuple[Array, Array]:
        h = activation(px + recurrent(h, params["w_hh"]))
        return h, h

    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker("elman", hidden_size, shapes),
        name="elman",
        hidden_size=hidden_size,
        output=lambda h: h,
        compute_dtype=compute_dtype,
    )


def _from_torch(w_ih, w_hh, b_ih, b_hh) -> Params:
    return {"w_ih": w_ih.T, "w_hh": w_hh.T, "b": b_ih + b_hh}


def _from_flax(p) -> Params:  # flax.linen.SimpleCell, or nnx.SimpleCell (dense_i, dense_h)
    i, h = ("dense_i", "dense_h") if "dense_i" in p else ("i", "h")
    return {"w_ih": p[i]["kernel"], "w_hh": p[h]["kernel"], "b": p[i]["bias"]}


def _to_flax(params: Params) -> dict:
    return {
        "i": {"kernel": params["w_ih"], "bias": params["b"]},
        "h": {"kernel": params["w_hh"]},
    }


FAMILY = Family(
    name="elman",
    make=elman,
    gates=1,
    torch_module="RNN",
    flax_cell="SimpleCell",
    from_torch=_from_torch,
    from_flax=_from_flax,
    to_flax=_to_flax,
    keras_layer="SimpleRNN",
    from_keras=from_keras_one_bias,
    to_keras=to_keras_one_bias,
)
