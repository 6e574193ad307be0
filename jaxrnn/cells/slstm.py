"""The sLSTM cell of xLSTM (Beck et al. 2024): scalar memory with exponential gating, a
normaliser and a stabiliser state, block-diagonal (per head) recurrent weights."""

from typing import Any
from typing import NamedTuple

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
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_heads
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_size
from jaxrnn.checks import fail
from jaxrnn.typing import Array
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


class SLSTMCarry(NamedTuple):
    """The sLSTM state, each ``(..., h)``; all zeros to start (a zero ``n`` marks a first step)."""

    h: Array  # (..., h) hidden state, also the cell's output
    c: Array  # (..., h) memory cell
    n: Array  # (..., h) normaliser: the running sum of input gates, h = o * c / n
    m: Array  # (..., h) stabiliser: the log-scale that the exponential gates are divided by


@cell_factory
def slstm(hidden_size: int, *, num_heads: int = 4, compute_dtype: DTypeLike | None = None) -> Cell:
    r"""The sLSTM cell of xLSTM (Beck et al. 2024), as its PyTorch "vanilla" backend computes it.

    Gate order i, f, z, o; the forget gate is exponential in log-sigmoid form and the
    exponentials are stabilised by a running maximum ``m``:

    $$
    \begin{aligned}
    {[\tilde\imath, \tilde f, \tilde z, \tilde o]} &= x_t W_{ih} + b
        + \operatorname{blockdiag}(h_{t-1}) R \\
    m_t &= \max(\tilde\imath, \; m_{t-1} + \log\sigma(\tilde f))
        \quad (m_t = \tilde\imath \text{ where } n_{t-1} = 0) \\
    i'_t &= \exp(\tilde\imath - m_t), \qquad
    f'_t = \min(1, \exp(m_{t-1} + \log\sigma(\tilde f) - m_t)) \\
    c_t &= f'_t \odot c_{t-1} + i'_t \odot \tanh(\tilde z), \qquad
    n_t = f'_t \odot n_{t-1} + i'_t \\
    h_t &= \sigma(\tilde o) \odot c_t / n_t, \qquad y_t = h_t
    \end{aligned}
    $$

    ``m`` cancels in ``c_t / n_t``: it only keeps ``exp`` finite (both gates are at most 1),
    however large the pre-activations. A zero ``n`` (the zero initial carry, or a reset)
    starts the stabiliser at ``\tilde\imath``, so the first step has ``i' = 1`` and ``n_1 = 1``
    (the reference tests ``n == 0`` for the whole batch; here each unit is tested, which is
    the same from a zero carry and also right for packed rows). Every later ``n_t >= 1``.

    The recurrent weights are block-diagonal: head ``k`` of ``num_heads`` maps its own
    ``d = h / num_heads`` units of ``h_{t-1}`` to its ``d`` units of each gate.

    Params ``{"w_ih": (i, 4h), "w_hh": (num_heads, d, 4d), "b": (4h,)}``: the columns of
    ``w_ih`` and ``b`` are the gates i, f, z, o side by side, each ``h`` wide with its heads in
    order; ``w_hh[k, j, g * d + e]`` is the weight from unit ``j`` of head ``k`` to unit ``e``
    of head ``k`` of gate ``g`` (xlstm's external ``recurrent_kernel (heads, d, 4, d)``
    reshaped). The carry is `SLSTMCarry(h, c, n, m)`, each ``(..., h)``, zeros to start; with
    a ``compute_dtype`` it stays in the wider dtype, and the stabiliser and both sums are
    computed in it. ``w_ih`` starts LeCun-normal, each gate's block of each head of ``w_hh``
    orthogonal, and the forget-gate bias from 3 to 6 along each head (xlstm's
    ``small_init``; the rest at zero), so a new sLSTM remembers.

    Sequential only: every gate reads ``h_{t-1}``, so there is no parallel (associative
    scan) form; ``jaxrnn.Strategy(mode="parallel")`` is refused with a message that says so.
    `from_xlstm` converts the weights of the ``xlstm`` package's ``sLSTMLayer`` or
    ``sLSTMCell``.

    Args:
      hidden_size: ``h``, divisible by ``num_heads``.
      num_heads: diagonal blocks of the recurrent weights (xlstm's ``num_heads``).
      compute_dtype: the dtype of the products and gate arithmetic, e.g. ``jnp.bfloat16``
        with float32 params (mixed precision: the carry stays float32, see `Cell`); None
        computes in the params' dtype.

    Returns:
      A `Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.slstm(hidden_size=8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> params["w_hh"].shape
      (2, 4, 16)
      >>> carry, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)))
      >>> ys.shape, carry.n.shape
      ((2, 5, 8), (2, 8))
      >>> bool(jnp.all(carry.n >= 1.0))
      True
    """
    check_size("hidden_size", hidden_size)
    check_heads(num_heads, hidden_size)
    head = hidden_size // num_heads
    gates = 4 * hidden_size

    def shapes(input_size: int) -> dict[str, tuple[int, ...]]:
        return {
            "w_ih": (input_size, gates),
            "w_hh": (num_heads, head, 4 * head),
            "b": (gates,),
        }

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        k_ih, k_hh = jax.random.split(key)
        heads = jax.random.split(k_hh, num_heads)
        forget = jnp.tile(jnp.linspace(3.0, 6.0, head), num_heads)
        return {
            "w_ih": input_kernel(k_ih, input_size, gates, dtype),
            "w_hh": jnp.stack([orthogonal_blocks(k, head, 4, dtype) for k in heads]),
            "b": jnp.zeros((4, hidden_size), dtype).at[1].set(forget.astype(dtype)).reshape(-1),
        }

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> SLSTMCarry:
        batch_shape = check_batch_shape(batch_shape)
        zeros = jnp.zeros((*batch_shape, hidden_size), params["w_hh"].dtype)
        return SLSTMCarry(h=zeros, c=zeros, n=zeros, m=zeros)

    def project(params: Params, xs: Array) -> Array:
        return add_bias(xs @ params["w_ih"], params["b"])

    def recurrent(h: Array, w_hh: Array) -> Array:
        """``h (..., h)`` through the block-diagonal ``w_hh``: ``(..., 4h)``, gate-major."""
        batch = h.shape[:-1]
        units = h.astype(w_hh.dtype).reshape((*batch, num_heads, head))
        per_gate = jnp.einsum("...kj,kjge->...gke", units, w_hh.reshape(num_heads, head, 4, head))
        return per_gate.reshape((*batch, gates))

    def step_projected(params: Params, carry: SLSTMCarry, px: Array) -> tuple[SLSTMCarry, Array]:
        i, f, z, o = jnp.split(px + recurrent(carry.h, params["w_hh"]), 4, axis=-1)
        wide = carry.c.dtype  # the stabiliser and the sums stay in the carry's precision
        i = i.astype(wide)
        log_f = carry.m + jax.nn.log_sigmoid(f.astype(wide))
        m = jnp.where(carry.n == 0, i, jnp.maximum(i, log_f))
        i_gate = jnp.exp(i - m)
        # At most 1; the clamp matters on a first step, where m = i may lie far below log_f
        # (it is taken in the exponent so that neither value nor gradient sees an inf).
        f_gate = jnp.exp(jnp.minimum(log_f - m, 0.0))
        c = accumulate(f_gate, carry.c, i_gate * jnp.tanh(z).astype(wide))
        n = accumulate(f_gate, carry.n, i_gate)
        h = jax.nn.sigmoid(o).astype(wide) * c / n
        return SLSTMCarry(h=h, c=c, n=n, m=m), h

    return make_cell(
        init=init,
        initial_carry=initial_carry,
        project=project,
        step_projected=step_projected,
        check_params=make_param_checker(
            "slstm",
            hidden_size,
            shapes,
            label=f"slstm(hidden_size={hidden_size}, num_heads={num_heads})",
        ),
        name="slstm",
        hidden_size=hidden_size,
        output=lambda carry: carry.h,
        compute_dtype=compute_dtype,
    )


def from_xlstm(module: Any) -> Params:
    """`slstm` params from a module of the ``xlstm`` package (PyTorch): an ``sLSTMLayer``
    without its causal convolution (``conv1d_kernel_size=0``), or an ``sLSTMCell``.

    The weights are read through xlstm's backend-independent views (``recurrent_kernel``
    ``(heads, d, 4, d)`` and ``bias`` ``(heads, 4, d)``), so a module of either backend
    ("vanilla" or "cuda") converts alike. Of a layer, the four headwise input projections
    become one block-diagonal ``w_ih (h, 4h)``; note that the layer feeds the cell's input gate
    from its module named ``fgate`` and the forget gate from ``igate`` (followed here, as the
    layer computes). The layer's group norm and dropout come after the cell and are not part
    of it. An ``sLSTMCell`` takes the gate pre-activations ``(..., 4h)`` as its input, so its
    ``w_ih`` is the identity ``(4h, 4h)``. Build the cell as
    ``jaxrnn.slstm(h, num_heads=module.config.num_heads)``.

    Examples:
      >>> import jax.numpy as jnp, jaxrnn
      >>> from jaxrnn.cells.slstm import from_xlstm
      >>> from_xlstm("not a module")
      Traceback (most recent call last):
      ...
      TypeError: module must be an sLSTMLayer or sLSTMCell of the xlstm package, got 'not a module'
    """
    cell = getattr(module, "slstm_cell", module)
    if not (hasattr(cell, "recurrent_kernel") and hasattr(cell, "config")):
        fail("module", "an sLSTMLayer or sLSTMCell of the xlstm package", module, TypeError)
    config = cell.config
    heads, hidden = config.num_heads, config.hidden_size
    head = hidden // heads
    kernel = _numpy(cell.recurrent_kernel[...])  # (heads, d_in, gates, d_out)
    bias = _numpy(cell.bias[...])  # (heads, gates, d)
    params = {
        "w_hh": kernel.reshape(heads, head, 4 * head),
        "b": bias.transpose(1, 0, 2).reshape(-1),  # gate-major, heads in order within a gate
    }
    if cell is module:
        params["w_ih"] = jnp.eye(4 * hidden, dtype=params["b"].dtype)
        return params
    if getattr(module.config, "conv1d_kernel_size", 0) > 0:
        fail(
            "module",
            "an sLSTMLayer with conv1d_kernel_size=0 (its input and forget gates read a causal "
            "convolution of x, which is not part of the cell)",
            module,
            hint="convert its slstm_cell and feed the cell the gate pre-activations",
        )
    # The order in which sLSTMLayer.forward concatenates its projections: i, f, z, o.
    projections = [module.fgate, module.igate, module.zgate, module.ogate]
    blocks = []
    for n, projection in enumerate(projections):
        weight = _numpy(projection.weight)  # (heads, d_out, d_in): out = x_head @ weight.T
        blocks.append(jax.scipy.linalg.block_diag(*(w.T for w in weight)))
        if projection.bias is not None:  # xlstm builds them without; added to b if present
            window = slice(n * hidden, (n + 1) * hidden)
            params["b"] = params["b"].at[window].add(_numpy(projection.bias))
    params["w_ih"] = jnp.concatenate(blocks, axis=-1)
    return params


def _numpy(tensor: Any) -> Array:
    """A torch tensor as a JAX array of its dtype (bfloat16 through float32: NumPy has none)."""
    tensor = tensor.detach().cpu()
    if str(tensor.dtype) == "torch.bfloat16":
        return jnp.asarray(tensor.float().numpy()).astype(jnp.bfloat16)
    return jnp.asarray(tensor.numpy())


FAMILY = Family(name="slstm", make=slstm)
