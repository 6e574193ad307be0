"""Mamba's selective state space, S6 (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces"): a diagonal linear recurrence whose step size and input and output maps
are read from the input, so it runs sequentially or as a parallel scan over time. The rest of a
Mamba block (projections, causal convolution, gate) is `jaxrnn.mamba_block`."""

import math
from collections.abc import Mapping
from typing import Any

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
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey

# mambapy's (and the paper's) defaults for the initial step sizes Δ.
DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4


def default_dt_rank(width: int) -> int:
    """``ceil(width / 16)``: the rank of Δ's projection that mambapy's ``dt_rank="auto"`` picks
    for a model of ``width`` features.

    Examples:
      >>> from jaxrnn.cells.mamba import default_dt_rank
      >>> default_dt_rank(64), default_dt_rank(8)
      (4, 1)
    """
    return math.ceil(width / 16)


@cell_factory
def mamba(
    hidden_size: int,
    *,
    state_size: int = 16,
    dt_rank: int | None = None,
    compute_dtype: DTypeLike | None = None,
) -> Cell:
    r"""The S6 selective scan of Mamba: ``h`` channels, each with a state of ``N`` numbers.

    $$
    \begin{aligned}
    \Delta_t = \mathrm{softplus}(x_t W_x^{\Delta} W_{\Delta} + b_{\Delta}) \in \mathbb{R}^h,
    \quad B_t = x_t W_x^{B}, \quad C_t = x_t W_x^{C} \in \mathbb{R}^N,
    \quad A = -\exp(A_{\log}) \in \mathbb{R}^{h \times N} \\
    h_t = \exp(\Delta_t \otimes A) \odot h_{t-1} + (\Delta_t \odot x_t) \otimes B_t, \quad
    y_t = h_t C_t + D \odot x_t
    \end{aligned}
    $$

    ``W_x = [W_x^Δ | W_x^B | W_x^C]`` is one ``(h, R + 2N)`` matrix (mambapy's ``x_proj``).
    The scan runs per channel, so the input size is ``h``: put a projection in front, or use
    `jaxrnn.mamba_block`, which has one (and the convolution and gate of the paper's block).

    Params: ``x_proj (h, R + 2N)``, ``dt_proj (R, h)``, ``dt_bias (h,)``, ``A_log (h, N)``,
    ``D (h,)``, initialised as mambapy does: ``A_log = log(1..N)`` in every channel, ``D = 1``,
    ``dt_bias`` the inverse softplus of step sizes drawn log-uniformly in ``[1e-3, 1e-1]``,
    ``dt_proj`` uniform in ``±R^{-1/2}``, ``x_proj`` uniform in ``±h^{-1/2}`` (PyTorch's
    ``nn.Linear``). The carry ``(..., h, N)`` is float32 (the accumulation precision), one
    trailing axis more than other cells'. Since ``h_t`` is linear in ``h_{t-1}``,
    ``jaxrnn.Strategy(mode="parallel")`` runs it with `jaxrnn.linear_scan`. `from_mambapy`
    converts a mambapy ``MambaBlock``'s S6 weights.

    Args:
      hidden_size: ``h``, the channels (the input and output size).
      state_size: ``N``, the state per channel (the paper's 16).
      dt_rank: ``R``, the rank of Δ's projection; default ``ceil(h / 16)`` (`mamba_block`
        passes mambapy's ``ceil(d_model / 16)``).
      compute_dtype: the dtype of the projections and the readout, e.g. ``jnp.bfloat16``
        with float32 params; Δ, ``exp(Δ A)`` and the state stay float32 (see `Cell`).

    Returns:
      A `Cell` with ``linear`` set.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.mamba(8, state_size=4)
      >>> params = cell.init(jax.random.key(0), input_size=8)
      >>> xs = jax.random.normal(jax.random.key(1), (2, 16, 8))
      >>> carry, ys = jaxrnn.unroll(cell, params, xs)
      >>> carry.shape, ys.shape
      ((2, 8, 4), (2, 16, 8))
      >>> parallel = jaxrnn.Strategy(mode="parallel")
      >>> bool(jnp.allclose(jaxrnn.unroll(cell, params, xs, strategy=parallel)[1], ys,
      ...                   atol=1e-5))
      True
    """
    h = check_size("hidden_size", hidden_size)
    n = check_size("state_size", state_size)
    rank = default_dt_rank(h) if dt_rank is None else check_size("dt_rank", dt_rank)
    label = f"mamba(hidden_size={h})"

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        del input_size  # the scan is per channel: the input size is h
        return {
            "x_proj": (h, rank + 2 * n),
            "dt_proj": (rank, h),
            "dt_bias": (h,),
            "A_log": (h, n),
            "D": (h,),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        if input_size != h:
            fail(
                "input_size",
                f"{h}, the hidden_size of {label} (the selective scan runs one channel per "
                "input feature)",
                input_size,
                hint=f"put a projection to {h} features in front of the cell, or use "
                "jaxrnn.mamba_block, which has one",
            )
        return _init(key, h, n, rank, dtype)

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> Array:
        batch_shape = check_batch_shape(batch_shape)
        return jnp.zeros((*batch_shape, h, n), wide_dtype(params["A_log"].dtype))

    recurrence = LinearRecurrence(
        coefficients=lambda params, px: _coefficients(params, px, h, n),
        readout=lambda params, states, px: _readout(params, states, px, h, n),
    )
    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=lambda params, xs: _project(params, xs, rank),
        step_projected=linear_step(recurrence),
        check_params=make_param_checker("mamba", h, shapes, input_key="x_proj", label=label),
        name="mamba",
        hidden_size=h,
        linear=recurrence,
        compute_dtype=compute_dtype,
    )


def _init(key: PRNGKey, h: int, n: int, rank: int, dtype) -> Params:
    """mambapy's init of a MambaBlock's S6 (see `mamba`), drawn in float32 and cast."""
    k_x, k_dt, k_bias = jax.random.split(key, 3)
    uniform = lambda k, shape, bound: jax.random.uniform(k, shape, minval=-bound, maxval=bound)
    low, high = math.log(DT_MIN), math.log(DT_MAX)
    dt = jnp.exp(jax.random.uniform(k_bias, (h,)) * (high - low) + low)
    dt = jnp.maximum(dt, DT_FLOOR)
    params = {
        "x_proj": uniform(k_x, (h, rank + 2 * n), h**-0.5),
        "dt_proj": uniform(k_dt, (rank, h), rank**-0.5),
        "dt_bias": dt + jnp.log(-jnp.expm1(-dt)),  # softplus(dt_bias) == dt
        "A_log": jnp.broadcast_to(jnp.log(jnp.arange(1, n + 1, dtype=jnp.float32)), (h, n)),
        "D": jnp.ones((h,)),
    }
    return {name: value.astype(dtype) for name, value in params.items()}


def _project(params: Params, xs: Array, rank: int) -> Array:
    """``(..., h) -> (..., 2h + 2N)``: ``[x, Δ before its bias and softplus, B, C]``, the two
    matmuls of every step at once."""
    dbc = xs @ params["x_proj"]  # (..., R + 2N)
    dt = dbc[..., :rank] @ params["dt_proj"]  # (..., h)
    return jnp.concatenate([xs, dt, dbc[..., rank:]], axis=-1)


def _split(px: Array, h: int, n: int) -> tuple[Array, Array, Array, Array]:
    """``px`` of `_project` as ``x (..., h), dt (..., h), B (..., N), C (..., N)``."""
    return px[..., :h], px[..., h : 2 * h], px[..., 2 * h : 2 * h + n], px[..., 2 * h + n :]


def _coefficients(params: Params, px: Array, h: int, n: int) -> tuple[Array, Array]:
    """``a = exp(Δ ⊗ A)`` and ``b = (Δ ⊙ x) ⊗ B``, ``(..., h, N)`` in float32 (or wider), from
    the params as they are (float32 under mixed precision)."""
    wide = wide_dtype(px.dtype)
    x, dt, b_in, _ = _split(px.astype(wide), h, n)
    lead = (1,) * (px.ndim - 1)
    delta = jax.nn.softplus(dt + params["dt_bias"].astype(wide).reshape((*lead, h)))
    a_log = params["A_log"].astype(wide).reshape((*lead, h, n))
    a = jnp.exp(-delta[..., None] * jnp.exp(a_log))
    return a, (delta * x)[..., None] * b_in[..., None, :]


def _readout(params: Params, states: Array, px: Array, h: int, n: int) -> Array:
    """``y = h_t C_t + D ⊙ x_t``, summed in the states' precision, in ``px``'s dtype."""
    wide = states.dtype
    x, _, _, c = _split(px.astype(wide), h, n)
    d = params["D"].astype(wide).reshape((1,) * (x.ndim - 1) + (h,))
    # A product and a sum rather than a matmul: no TF32 rounding of the float32 state on GPUs.
    return (jnp.sum(states * c[..., None, :], axis=-1) + d * x).astype(px.dtype)


def from_mambapy(state_dict: Mapping[str, Any], *, prefix: str = "") -> Params:
    """The params of a `mamba` cell from a mambapy ``MambaBlock``'s S6 weights.

    ``x_proj.weight (R + 2N, E)``, ``dt_proj.weight (E, R)``, ``dt_proj.bias (E,)``,
    ``A_log (E, N)`` and ``D (E,)`` of ``block.state_dict()`` (torch tensors or numpy
    arrays); the cell is ``jaxrnn.mamba(E, state_size=N, dt_rank=R)``. Same Δ, A, B, C and D
    as mambapy's ``MambaBlock.ssm``; mambapy's ``inner_layernorms`` (Jamba) are not converted.

    Args:
      state_dict: the weights, e.g. ``block.state_dict()``.
      prefix: the keys' prefix, e.g. ``"mixer."`` for a mambapy ``ResidualBlock``.

    Returns:
      ``{"x_proj", "dt_proj", "dt_bias", "A_log", "D"}`` as float32 numpy arrays.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.cells.mamba import from_mambapy
      >>> weights = {"x_proj.weight": np.zeros((9, 8)), "dt_proj.weight": np.zeros((8, 1)),
      ...            "dt_proj.bias": np.zeros(8), "A_log": np.zeros((8, 4)), "D": np.ones(8)}
      >>> {k: v.shape for k, v in from_mambapy(weights).items()}["x_proj"]
      (8, 9)
    """
    if not isinstance(state_dict, Mapping):
        fail("state_dict", "a mapping such as MambaBlock.state_dict()", state_dict, TypeError)
    if any(str(k).startswith(prefix + "dt_layernorm") for k in state_dict):
        fail(
            "state_dict",
            "the weights of a MambaBlock without inner_layernorms",
            said("one with dt_layernorm weights (MambaConfig(inner_layernorms=True))"),
        )
    get = lambda key: _numpy(state_dict, prefix + key)
    return {
        "x_proj": get("x_proj.weight").T,
        "dt_proj": get("dt_proj.weight").T,
        "dt_bias": get("dt_proj.bias"),
        "A_log": get("A_log"),
        "D": get("D"),
    }


def _numpy(state_dict: Mapping[str, Any], key: str) -> np.ndarray:
    """``state_dict[key]`` as a float32 numpy array (a torch tensor is detached first)."""
    if key not in state_dict:
        fail("state_dict", f"a mambapy state dict with the key {key!r}", sorted(state_dict))
    value = state_dict[key]
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.ascontiguousarray(np.asarray(value, np.float32))


FAMILY = Family(name="mamba", make=mamba)
