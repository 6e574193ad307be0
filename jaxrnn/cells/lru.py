"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences"): a complex diagonal linear recurrence with a stable exponential
parameterisation, evaluated sequentially or with a parallel scan."""

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import LinearRecurrence
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import linear_step
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import wide_dtype
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_number
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


@cell_factory
def lru(
    hidden_size: int,
    *,
    state_size: int | None = None,
    r_min: float = 0.9,
    r_max: float = 0.999,
    max_phase: float = 2 * math.pi,
    compute_dtype: DTypeLike | None = None,
) -> Cell:
    r"""The LRU cell: ``n`` complex states, each decaying and rotating on its own.

    $$
    \begin{aligned}
    \lambda = \exp(-e^{\nu} + i e^{\theta}), \quad \gamma = e^{\gamma_{\log}}
    \approx \sqrt{1 - |\lambda|^2} \\
    h_t = \lambda \odot h_{t-1} + \gamma \odot (x_t B), \quad
    y_t = \mathrm{Re}(h_t C) + x_t D
    \end{aligned}
    $$

    ``|lambda|`` starts uniform in the ring ``[r_min, r_max]`` (close to 1: long memory) and
    the phases in ``[0, max_phase]``. Params (all real): ``nu_log, theta_log, gamma_log (n,)``,
    ``b_re, b_im (i, n)``, ``c_re, c_im (n, h)``, ``d (i, h)``. The carry is ``(..., n)``
    complex64. Supports ``jaxrnn.Strategy(mode="parallel")``.

    Args:
      hidden_size: ``h``, the size of the output ``y``.
      state_size: ``n``, the number of complex states (default ``h``).
      r_min: smallest initial ``|lambda|``.
      r_max: largest initial ``|lambda|``.
      max_phase: largest initial phase of ``lambda``.
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell` with ``linear`` set.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.lru(8, state_size=16)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> parallel = jaxrnn.Strategy(mode="parallel")
      >>> carry, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 10, 3)), strategy=parallel)
      >>> carry.dtype, ys.shape
      (dtype('complex64'), (2, 10, 8))
    """
    check_size("hidden_size", hidden_size)
    n = hidden_size if state_size is None else state_size
    check_size("state_size", n)
    r_min = check_number("r_min", r_min, low=0, high=1, high_open=True)
    r_max = check_number("r_max", r_max, low=r_min, high=1, low_open=True)
    max_phase = check_number("max_phase", max_phase, low=0)

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {
            "nu_log": (n,),
            "theta_log": (n,),
            "gamma_log": (n,),
            "b_re": (input_size, n),
            "b_im": (input_size, n),
            "c_re": (n, hidden_size),
            "c_im": (n, hidden_size),
            "d": (input_size, hidden_size),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        return _init(key, input_size, n, hidden_size, (r_min, r_max, max_phase), dtype)

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> Array:
        batch_shape = check_batch_shape(batch_shape)
        wide = wide_dtype(params["d"].dtype)
        return jnp.zeros(
            (*batch_shape, n), jnp.complex128 if wide == jnp.float64 else jnp.complex64
        )

    def project(params: Params, xs: Array):
        wide = wide_dtype(xs.dtype)
        x = xs.astype(wide)
        bx = jax.lax.complex(x @ params["b_re"].astype(wide), x @ params["b_im"].astype(wide))
        return bx, xs @ params["d"]

    def coefficients(params: Params, px):
        bx, _ = px
        wide = bx.real.dtype
        magnitude = -jnp.exp(params["nu_log"].astype(wide))
        phase = jnp.exp(params["theta_log"].astype(wide))
        lam = jnp.exp(jax.lax.complex(magnitude, phase))
        gamma = jnp.exp(params["gamma_log"].astype(wide))
        a = jnp.broadcast_to(lam.reshape((1,) * (bx.ndim - 1) + (n,)), bx.shape)
        return a, bx * gamma.astype(bx.dtype).reshape((1,) * (bx.ndim - 1) + (n,))

    def readout(params: Params, h: Array, px) -> Array:
        _, dx = px
        wide = h.real.dtype
        y = h.real @ params["c_re"].astype(wide) - h.imag @ params["c_im"].astype(wide)
        return y.astype(dx.dtype) + dx

    recurrence = LinearRecurrence(coefficients=coefficients, readout=readout)
    step_projected = linear_step(recurrence)
    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker("lru", hidden_size, shapes, input_key="b_re"),
        name="lru",
        hidden_size=hidden_size,
        linear=recurrence,
        compute_dtype=compute_dtype,
    )


def _init(key: PRNGKey, input_size: int, n: int, hidden_size: int, ring, dtype) -> Params:
    """`lru`'s init: ``lambda`` uniform on the ring ``[r_min, r_max]`` with phases in
    ``[0, max_phase]``, and ``gamma`` normalising each state's input."""
    r_min, r_max, max_phase = ring
    k = jax.random.split(key, 7)
    u1, u2 = jax.random.uniform(k[0], (n,)), jax.random.uniform(k[1], (n,))
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = jnp.log(max_phase * u2 + 1e-12)
    magnitude = jnp.exp(-jnp.exp(nu_log))
    gamma_log = jnp.log(jnp.sqrt(1.0 - magnitude**2))
    normal = lambda key, shape, scale: scale * jax.random.normal(key, shape)
    params = {
        "nu_log": nu_log,
        "theta_log": theta_log,
        "gamma_log": gamma_log,
        "b_re": normal(k[2], (input_size, n), 1 / math.sqrt(2 * input_size)),
        "b_im": normal(k[3], (input_size, n), 1 / math.sqrt(2 * input_size)),
        "c_re": normal(k[4], (n, hidden_size), 1 / math.sqrt(n)),
        "c_im": normal(k[5], (n, hidden_size), 1 / math.sqrt(n)),
        "d": normal(k[6], (input_size, hidden_size), 1 / math.sqrt(input_size)),
    }
    return {name: value.astype(dtype) for name, value in params.items()}


FAMILY = Family(name="lru", make=lru)
