"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that read only the
input, so the recurrence is linear in h and can run as a parallel scan over time."""

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import LinearRecurrence
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import input_kernel
from jaxrnn.cells.base import linear_step
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import wide_dtype
from jaxrnn.cells.base import zeros_carry
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


def _make(name: str, hidden_size: int, gates: int, coefficients, compute_dtype) -> Cell:
    check_size("hidden_size", hidden_size)

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {"w_ih": (input_size, gates * hidden_size), "b": (gates * hidden_size,)}

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        return {
            "w_ih": input_kernel(key, input_size, gates * hidden_size, dtype),
            "b": jnp.zeros((gates * hidden_size,), dtype),
        }

    initial_carry = zeros_carry(hidden_size, "w_ih", wide_dtype)

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b"])

    def readout(params: Params, h: Array, px: Array) -> Array:
        del px
        return h.astype(params["w_ih"].dtype)

    recurrence = LinearRecurrence(coefficients=coefficients, readout=readout)
    step_projected = linear_step(recurrence)
    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker(name, hidden_size, shapes),
        name=name,
        hidden_size=hidden_size,
        linear=recurrence,
        compute_dtype=compute_dtype,
    )


@cell_factory
def mingru(hidden_size: int, *, compute_dtype: DTypeLike | None = None) -> Cell:
    r"""The minGRU cell: a GRU whose gates read only ``x_t``.

    $$
    z_t = \sigma(x_t W_z + b_z), \quad \tilde h_t = x_t W_h + b_h, \quad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \quad y_t = h_t
    $$

    Params ``{"w_ih": (i, 2h), "b": (2h,)}`` (``z`` first, then ``h~``); the carry ``(..., h)``
    is float32 (accumulation precision). Because ``h_t`` is linear in ``h_{t-1}``,
    ``jaxrnn.unroll(..., strategy=jaxrnn.Strategy(mode="parallel"))`` evaluates it with an
    associative scan in ``O(log t)`` sequential depth.

    Args:
      hidden_size: ``h``.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell` with ``linear`` set.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.mingru(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> xs = jnp.ones((2, 16, 3))
      >>> _, seq = jaxrnn.unroll(cell, params, xs)
      >>> _, par = jaxrnn.unroll(cell, params, xs, strategy=jaxrnn.Strategy(mode="parallel"))
      >>> bool(jnp.allclose(seq, par, atol=1e-6))
      True
    """

    def coefficients(params, px):
        z, candidate = jnp.split(px.astype(wide_dtype(px.dtype)), 2, axis=-1)
        z = jax.nn.sigmoid(z)
        return 1.0 - z, z * candidate

    return _make("mingru", hidden_size, 2, coefficients, compute_dtype)


@cell_factory
def minlstm(hidden_size: int, *, compute_dtype: DTypeLike | None = None) -> Cell:
    r"""The minLSTM cell: forget and input gates that read only ``x_t``, normalised to sum to 1.

    $$
    \begin{aligned}
    f_t = \sigma(x_t W_f + b_f), \quad i_t = \sigma(x_t W_i + b_i), \quad
    \tilde h_t = x_t W_h + b_h \\
    h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t,
    \quad y_t = h_t
    \end{aligned}
    $$

    Params ``{"w_ih": (i, 3h), "b": (3h,)}`` (``f``, ``i``, ``h~``); float32 carry. Supports
    ``jaxrnn.Strategy(mode="parallel")``.

    Args:
      hidden_size: ``h``.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell` with ``linear`` set.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.minlstm(4)
      >>> params = cell.init(jax.random.key(0), input_size=2)
      >>> parallel = jaxrnn.Strategy(mode="parallel")
      >>> carry, ys = jaxrnn.unroll(cell, params, jnp.ones((3, 5, 2)), strategy=parallel)
      >>> ys.shape
      (3, 5, 4)
    """

    def coefficients(params, px):
        f, i, candidate = jnp.split(px.astype(wide_dtype(px.dtype)), 3, axis=-1)
        f, i = jax.nn.sigmoid(f), jax.nn.sigmoid(i)
        total = f + i
        return f / total, i / total * candidate

    return _make("minlstm", hidden_size, 3, coefficients, compute_dtype)


MINGRU = Family(name="mingru", make=mingru)
MINLSTM = Family(name="minlstm", make=minlstm)
