"""The GRU cell (Cho et al. 2014) in the PyTorch / cuDNN / Flax convention, gate order r, z, n."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxrnn.cells import fused as fused_scans
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import accumulate
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import cell_factory
from jaxrnn.cells.base import concat_gates
from jaxrnn.cells.base import input_kernel
from jaxrnn.cells.base import make_cell
from jaxrnn.cells.base import make_param_checker
from jaxrnn.cells.base import orthogonal_blocks
from jaxrnn.cells.base import recurrent
from jaxrnn.cells.base import zeros_carry
from jaxrnn.cells.fused import gru_scan
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


@cell_factory
def gru(
    hidden_size: int,
    *,
    reset_after: bool = True,
    store_gates: bool | None = None,
    compute_dtype: DTypeLike | None = None,
) -> Cell:
    r"""The GRU cell, with the reset gate applied to the hidden projection *including* its bias.

    $$
    \begin{aligned}
    {[a_r, a_z, a_n]} &= x_t W_{ih} + b_{ih}, \qquad [u_r, u_z, u_n] = h_{t-1} W_{hh} + b_{hh} \\
    r &= \sigma(a_r + u_r), \qquad z = \sigma(a_z + u_z) \\
    n &= \tanh(a_n + r \odot u_n) \\
    h_t &= (1 - z) \odot n + z \odot h_{t-1}, \qquad y_t = h_t
    \end{aligned}
    $$

    This is ``torch.nn.GRU``, cuDNN and ``flax.linen.GRUCell`` (which has no ``b_hh`` for r and
    z; those add to ``b_ih`` exactly). Params ``{"w_ih": (i, 3h), "b_ih": (3h,),
    "w_hh": (h, 3h), "b_hh": (3h,)}``; the carry is ``h`` of shape ``(..., h)``.

    With ``reset_after=False`` the reset gate applies to the hidden state *before* its
    product, ``n = tanh(a_n + (r ⊙ h_{t-1}) W_{hn} + b_{hn})``: the convention of Keras'
    ``GRU(reset_after=False)``, TF1 and the original paper (Cho et al. 2014). That cell is
    named ``"gru_reset_before"`` (the PyTorch/Flax converters refuse it, their GRUs reset
    after) and has no fused backward pass: it trains through the plain scan.

    Args:
      hidden_size: ``h``.
      reset_after: True (default) resets ``h W_hn + b_hn`` as above; False resets ``h``
        before the product.
      store_gates: for the fused backward pass, keep the gate activations of every step
        (True: one matrix product per backward step instead of two, more memory) or
        recompute them (False); None decides by size (stored from
        `jaxrnn.cells.fused.STORE_GATES_FROM` units, where storing measured faster).
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.gru(hidden_size=4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> h, y = cell.step(params, cell.initial_carry(params, (2,)), jnp.ones((2, 3)))
      >>> h.shape
      (2, 4)
    """
    check_size("hidden_size", hidden_size)
    check_flag("reset_after", reset_after)
    store = fused_scans.resolve_store_gates(hidden_size, store_gates)

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {
            "w_ih": (input_size, 3 * hidden_size),
            "b_ih": (3 * hidden_size,),
            "w_hh": (hidden_size, 3 * hidden_size),
            "b_hh": (3 * hidden_size,),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        k_ih, k_hh = jax.random.split(key)
        return {
            "w_ih": input_kernel(k_ih, input_size, 3 * hidden_size, dtype),
            "b_ih": jnp.zeros((3 * hidden_size,), dtype),
            "w_hh": orthogonal_blocks(k_hh, hidden_size, 3, dtype),
            "b_hh": jnp.zeros((3 * hidden_size,), dtype),
        }

    initial_carry = zeros_carry(hidden_size, "w_hh")

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b_ih"])

    def step_projected(params: Params, h: Array, px: Array) -> tuple[Array, Array]:
        a_r, a_z, a_n = jnp.split(px, 3, axis=-1)
        if reset_after:
            u_r, u_z, u_n = jnp.split(
                add_bias(recurrent(h, params["w_hh"]), params["b_hh"]), 3, axis=-1
            )
            r = jax.nn.sigmoid(a_r + u_r)
            z = jax.nn.sigmoid(a_z + u_z)
            n = jnp.tanh(a_n + r * u_n)
        else:
            w_rz, w_n = params["w_hh"][:, : 2 * hidden_size], params["w_hh"][:, 2 * hidden_size :]
            b_rz, b_n = params["b_hh"][: 2 * hidden_size], params["b_hh"][2 * hidden_size :]
            u_r, u_z = jnp.split(add_bias(recurrent(h, w_rz), b_rz), 2, axis=-1)
            r = jax.nn.sigmoid(a_r + u_r)
            z = jax.nn.sigmoid(a_z + u_z)
            n = jnp.tanh(a_n + add_bias(recurrent(r * h.astype(r.dtype), w_n), b_n))
        h = accumulate(z, h, (1.0 - z) * n)
        return h, h

    def fused(params: Params, xs: Array, h: Array, valid, reverse: bool, resets=None):
        w_ih, b_ih, w_hh, b_hh = (params[k] for k in ("w_ih", "b_ih", "w_hh", "b_hh"))
        return gru_scan(w_ih, b_ih, w_hh, b_hh, xs, h, valid, resets, reverse, store, compute_dtype)

    name = "gru" if reset_after else "gru_reset_before"
    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker(name, hidden_size, shapes),
        name=name,
        hidden_size=hidden_size,
        fused=fused if reset_after else None,  # the hand-written pass resets after
        output=lambda h: h,
        compute_dtype=compute_dtype,
    )


def _from_torch(w_ih, w_hh, b_ih, b_hh) -> Params:
    # The same convention (reset gate on h W_hn + b_hn), so both biases are kept apart.
    return {"w_ih": w_ih.T, "b_ih": b_ih, "w_hh": w_hh.T, "b_hh": b_hh}


def _from_flax(p) -> Params:  # flax.linen.GRUCell: no hidden bias on r and z
    if "dense_i" in p:  # nnx.GRUCell: gates r, z, n side by side, no hidden bias at all
        bias = p["dense_i"]["bias"]
        return {
            "w_ih": p["dense_i"]["kernel"],
            "b_ih": bias,
            "w_hh": p["dense_h"]["kernel"],
            "b_hh": jnp.zeros_like(bias),
        }
    hn_bias = p["hn"]["bias"]
    return {
        "w_ih": concat_gates(p[f"i{g}"]["kernel"] for g in "rzn"),
        "b_ih": concat_gates(p[f"i{g}"]["bias"] for g in "rzn"),
        "w_hh": concat_gates(p[f"h{g}"]["kernel"] for g in "rzn"),
        "b_hh": concat_gates([jnp.zeros_like(hn_bias), jnp.zeros_like(hn_bias), hn_bias]),
    }


def _to_flax(params: Params) -> dict:
    # The hidden biases of r and z fold into Flax's input biases: they are added together
    # before the sigmoid, so this is exact.
    w_ih = jnp.split(params["w_ih"], 3, axis=-1)
    w_hh = jnp.split(params["w_hh"], 3, axis=-1)
    b_ih = jnp.split(params["b_ih"], 3)
    b_hh = jnp.split(params["b_hh"], 3)
    return {
        "ir": {"kernel": w_ih[0], "bias": b_ih[0] + b_hh[0]},
        "iz": {"kernel": w_ih[1], "bias": b_ih[1] + b_hh[1]},
        "in": {"kernel": w_ih[2], "bias": b_ih[2]},
        "hr": {"kernel": w_hh[0]},
        "hz": {"kernel": w_hh[1]},
        "hn": {"kernel": w_hh[2], "bias": b_hh[2]},
    }


def _keras_to_ours(a):
    """Keras orders the GRU's blocks z, r, h; jaxrnn (and PyTorch) r, z, n."""
    z, r, n = np.split(np.asarray(a), 3, axis=-1)
    return np.concatenate([r, z, n], axis=-1)


def _ours_to_keras(a):
    r, z, n = np.split(np.asarray(a), 3, axis=-1)
    return np.concatenate([z, r, n], axis=-1)


def _from_keras(weights: list) -> Params:
    # reset_after=True: bias (2, 3h), input and recurrent biases; False: one (3h,) bias.
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else np.zeros(kernel.shape[-1], kernel.dtype)
    b_ih, b_hh = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
    return {
        "w_ih": _keras_to_ours(kernel),
        "b_ih": _keras_to_ours(b_ih),
        "w_hh": _keras_to_ours(recurrent),
        "b_hh": _keras_to_ours(b_hh),
    }


def _to_keras_reset_after(params: Params) -> list:
    bias = np.stack([_ours_to_keras(params["b_ih"]), _ours_to_keras(params["b_hh"])])
    return [_ours_to_keras(params["w_ih"]), _ours_to_keras(params["w_hh"]), bias]


def _to_keras_reset_before(params: Params) -> list:
    # Both biases are added outside the products here, so their sum is exact.
    bias = _ours_to_keras(np.asarray(params["b_ih"]) + np.asarray(params["b_hh"]))
    return [_ours_to_keras(params["w_ih"]), _ours_to_keras(params["w_hh"]), bias]


FAMILY = Family(
    name="gru",
    make=gru,
    gates=3,
    torch_module="GRU",
    flax_cell="GRUCell",
    from_torch=_from_torch,
    from_flax=_from_flax,
    to_flax=_to_flax,
    keras_layer="GRU",  # reset_after=True, the Keras 3 default
    from_keras=_from_keras,
    to_keras=_to_keras_reset_after,
)

RESET_BEFORE = Family(
    name="gru_reset_before",
    make=functools.partial(gru, reset_after=False),
    gates=3,
    keras_layer="GRU",  # reset_after=False
    from_keras=_from_keras,
    to_keras=_to_keras_reset_before,
)
