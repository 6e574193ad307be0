"""Residual blocks around a recurrent cell, as `Layer` s: `mamba_block` (Gu & Dao 2023) and
`xlstm_block` (Beck et al. 2024). Each reads and writes ``d_model`` features, normalises its input
first (RMSNorm) and adds it back at the end, so blocks stack (`jaxrnn.stacked`) into a model.

Lengths, masks, resets, ``reverse`` and ``initial_carry`` mean what they mean for
`jaxrnn.unroll`, for every part of a block that reads across time (the cell, and Mamba's
causal convolution), and the final carry continues a stream: ``apply`` on a sequence in two
pieces, passing the carry, equals one call on the whole.
"""

import math
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import steps as steps_
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import check_input_dtype
from jaxrnn.cells.base import params_dtype
from jaxrnn.cells.base import wider
from jaxrnn.cells.mamba import _numpy
from jaxrnn.cells.mamba import default_dt_rank
from jaxrnn.cells.mamba import from_mambapy
from jaxrnn.cells.mamba import mamba
from jaxrnn.cells.mlstm import mlstm
from jaxrnn.cells.slstm import slstm
from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_choice
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_heads
from jaxrnn.checks import check_init_args
from jaxrnn.checks import check_number
from jaxrnn.checks import check_size
from jaxrnn.checks import check_tree
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.layers import Layer
from jaxrnn.scan import check_runs
from jaxrnn.scan import unroll
from jaxrnn.strategy import Strategy
from jaxrnn.strategy import resolve
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey

EPS = 1e-5  # RMSNorm's epsilon, mambapy's rms_norm_eps


class MambaBlockCarry(NamedTuple):
    """What a `mamba_block` carries from one piece of a stream to the next."""

    conv: Array  # (..., conv_size - 1, E): the last x-branch inputs, oldest first
    ssm: Array  # (..., E, N) float32: the S6 state


def mamba_block(
    d_model: int,
    *,
    state_size: int = 16,
    expand: int = 2,
    conv_size: int = 4,
    dt_rank: int | None = None,
    strategy: Strategy | None = None,
) -> Layer:
    r"""A Mamba block with its pre-norm and residual, as mambapy's ``ResidualBlock``.

    With ``E = expand * d_model`` and ``x`` the block's input ``(b, t, d_model)``:

    $$
    \begin{aligned}
    [u, z] &= \mathrm{RMSNorm}(x) W_{in}, \quad u, z \in \mathbb{R}^{E} \\
    c_t &= \textstyle\sum_{j=0}^{K-1} w_j \odot u_{t-K+1+j} + b_c, \quad
    s = \mathrm{SiLU}(c), \quad y = \mathrm{S6}(s)\ (`jaxrnn.mamba`) \\
    \mathrm{out} &= (y \odot \mathrm{SiLU}(z)) W_{out} + x
    \end{aligned}
    $$

    The causal depthwise convolution (width ``K = conv_size``) reads only the steps that run,
    within one document: it never reads padding or a masked step (its window skips them), a
    reset restarts its window from the initial carry's (as the S6 state restarts), and with
    ``reverse=True`` it reads the valid steps from last to first (anti-causal over the valid
    prefix). The S6 runs with `jaxrnn.unroll` and ``strategy`` as given (``mode="parallel"``:
    a parallel scan). Outputs at steps that do not run are zero.

    Params: ``norm (d,)``, ``in_proj (d, 2E)``, ``conv_w (K, E)`` (``conv_w[K-1]`` reads the
    current step), ``conv_b (E,)``, ``ssm`` (the `jaxrnn.mamba` cell's), ``out_proj (E, d)``,
    initialised as mambapy's (PyTorch's layer defaults, no bias on the projections). The
    carry is `MambaBlockCarry`: the convolution's window and the S6 state, everything
    one-token-at-a-time generation needs. `from_mambapy_block` converts mambapy's weights.

    Args:
      d_model: ``d``, the features in and out (the input size must be ``d``: a residual).
      state_size: ``N``, the S6 state per channel.
      expand: ``E / d``.
      conv_size: ``K``, the width of the convolution over time (1: none).
      dt_rank: the rank of Δ's projection; default ``ceil(d_model / 16)`` (mambapy's "auto").
      strategy: how `jaxrnn.unroll` runs the S6 (`jaxrnn.Strategy`), passed on untouched.

    Returns:
      A `Layer` with ``output_size == d_model``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> block = jaxrnn.mamba_block(8, state_size=4)
      >>> params = block.init(jax.random.key(0), input_size=8)
      >>> xs = jax.random.normal(jax.random.key(1), (2, 10, 8))
      >>> carry, ys = block.apply(params, xs)
      >>> ys.shape, carry.conv.shape, carry.ssm.shape
      ((2, 10, 8), (2, 3, 16), (2, 16, 4))
      >>> first, _ = block.apply(params, xs[:, :6])  # a stream in two pieces
      >>> _, rest = block.apply(params, xs[:, 6:], initial_carry=first)
      >>> bool(jnp.allclose(rest, ys[:, 6:], atol=1e-5))
      True
    """
    d = check_size("d_model", d_model)
    e = d * check_size("expand", expand)
    k = check_size("conv_size", conv_size)
    rank = default_dt_rank(d) if dt_rank is None else check_size("dt_rank", dt_rank)
    cell = mamba(e, state_size=state_size, dt_rank=rank)
    strategy = _check_strategy(cell, strategy, "mamba_block")
    label = f"mamba_block(d_model={d})"

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        _check_input_size(input_size, d, label)
        return _init_mamba(key, d, e, k, cell, dtype)

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> MambaBlockCarry:
        batch_shape = check_batch_shape(batch_shape)
        window = jnp.zeros((*batch_shape, k - 1, e), params["in_proj"].dtype)
        return MambaBlockCarry(window, cell.initial_carry(params["ssm"], batch_shape))

    apply = _block_apply(_mamba_apply, cell, strategy, init, initial_carry, d, label)
    name = f"mamba_block(d_model={d}, state_size={state_size}, expand={expand}, conv_size={k})"
    return Layer(init, initial_carry, apply, d, name)


def _block_apply(body, cell: Cell, strategy, init, zero, d: int, label: str):
    """A block's ``apply`` (`jaxrnn.layers.ApplyFn`): the checks and the one time-major layout
    every block shares, then ``body(cell, strategy, params, run, reverse)``."""

    def apply(
        params,
        xs,
        *,
        seq_lengths=None,
        mask=None,
        resets=None,
        initial_carry=None,
        reverse=False,
        time_major=False,
        dropout_key=None,
    ):
        del dropout_key  # no dropout in a block
        _check_params(params, init, d, label)
        steps = dict(seq_lengths=seq_lengths, mask=mask, resets=resets, time_major=time_major)
        run = _prepare(xs, d, params, steps, check_flag("reverse", reverse), initial_carry, zero)
        return body(cell, strategy, params, run, reverse)

    return apply


def _mamba_apply(cell: Cell, strategy, params: Params, run: "_Run", reverse: bool):
    """`mamba_block`'s ``apply`` after its checks."""
    normed = rms_norm(run.xs, params["norm"])
    u, z = jnp.split(normed @ params["in_proj"], 2, axis=-1)  # (t, n, E) each
    flip = (lambda a: None if a is None else jnp.flip(a, 0)) if reverse else (lambda a: a)
    conv, window = causal_conv(
        flip(u),
        run.carry.conv,
        params["conv_w"],
        params["conv_b"],
        flip(run.valid),
        flip(run.starts),
        holes=run.holes,
    )
    ssm, ys = unroll(
        cell,
        params["ssm"],
        jax.nn.silu(flip(conv)),
        initial_carry=run.carry.ssm,
        reverse=reverse,
        time_major=True,
        strategy=strategy,
        **run.unroll,
    )
    out = (ys * jax.nn.silu(z)) @ params["out_proj"] + run.xs
    return _restore(run, MambaBlockCarry(window, ssm), out)


def _check_strategy(cell: Cell, strategy: Any, caller: str) -> Strategy:
    """``strategy`` checked where the block is made, as `jaxrnn.rnn` checks its own."""
    strategy = resolve(strategy, {}, caller)
    check_runs(cell, strategy)
    return strategy


def _check_input_size(input_size: int, d: int, label: str) -> None:
    if input_size != d:
        fail(
            "input_size",
            f"{d}, the d_model of {label} (its output is added to its input)",
            input_size,
            hint="put a projection to d_model features in front of the block",
        )


def _init_mamba(key: PRNGKey, d: int, e: int, k: int, cell: Cell, dtype) -> Params:
    """mambapy's init: PyTorch's ``nn.Linear`` and ``nn.Conv1d`` defaults (uniform in
    ``±fan_in^{-1/2}``), RMSNorm weights of one, the S6's own (`jaxrnn.mamba`)."""
    keys = jax.random.split(key, 5)
    uniform = lambda key, shape, fan_in: jax.random.uniform(
        key, shape, minval=-(fan_in**-0.5), maxval=fan_in**-0.5
    )
    params = {
        "norm": jnp.ones((d,)),
        "in_proj": uniform(keys[0], (d, 2 * e), d),
        "conv_w": uniform(keys[1], (k, e), k),
        "conv_b": uniform(keys[2], (e,), k),
        "out_proj": uniform(keys[3], (e, d), e),
    }
    params = {name: value.astype(dtype) for name, value in params.items()}
    return {**params, "ssm": cell.init(keys[4], e, dtype=dtype)}


def rms_norm(x: Array, weight: Array, eps: float = EPS) -> Array:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last axis, as mambapy's ``RMSNorm``;
    the mean is taken in float32 (or wider).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.blocks import rms_norm
      >>> rms_norm(jnp.array([3.0, -3.0]), jnp.full(2, 2.0)).round(3)
      Array([ 2., -2.], dtype=float32)
    """
    wide = wider(x.dtype, jnp.float32)
    x_wide = x.astype(wide)
    scale = jax.lax.rsqrt(jnp.mean(x_wide**2, axis=-1, keepdims=True) + eps)
    return (x_wide * scale).astype(x.dtype) * weight.reshape((1,) * (x.ndim - 1) + weight.shape)


def causal_conv(
    u: Array,
    window: Array,
    w: Array,
    b: Array,
    valid: Array | None = None,
    starts: Array | None = None,
    *,
    holes: bool = False,
) -> tuple[Array, Array]:
    r"""A causal depthwise convolution over time that reads only the steps that run.

    ``c_t = b + \sum_{j} w_{K-1-j} u_{p_j(t)}`` where ``p_0(t) = t`` and ``p_j(t)`` is the
    ``j``-th step that runs before ``t`` in the same document; where there is none, the
    entries of ``window`` (the inputs before the first step) stand in, as they do after each
    document start. All steps at once (gathers, no scan).

    Args:
      u: ``(t, n, E)`` inputs, time-major, in the order they are read.
      window: ``(n, K-1, E)`` the inputs before the first step, oldest first.
      w: ``(K, E)`` taps; ``w[K-1]`` reads the current step.
      b: ``(E,)`` bias.
      valid: ``(t, n)`` bool, the steps that run (None: all).
      starts: ``(t, n)`` bool, the steps before which the window goes back to ``window``.
      holes: whether ``valid`` may have holes (a mask); False: the steps that run are one
        contiguous run per row (lengths), which needs no sort.

    Returns:
      ``(c (t, n, E), window after the last step that runs (n, K-1, E))``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.blocks import causal_conv
      >>> u = jnp.arange(1.0, 5.0).reshape(4, 1, 1)
      >>> c, window = causal_conv(u, jnp.zeros((1, 2, 1)), jnp.ones((3, 1)), jnp.zeros(1))
      >>> c[:, 0, 0], window[0, :, 0]
      (Array([1., 3., 6., 9.], dtype=float32), Array([3., 4.], dtype=float32))
    """
    t, n, e = u.shape
    k = w.shape[0]
    # One more step past the end, that never runs: its window is the one left at the end.
    pad = lambda a, fill: jnp.pad(a, [(0, 1)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)
    valid = jnp.ones((t, n), bool) if valid is None else valid
    starts = jnp.zeros((t, n), bool) if starts is None else starts
    u1, valid, starts = pad(u, 0), pad(valid, False), pad(starts, False)
    count = valid.astype(jnp.int32)
    before = jnp.cumsum(count, axis=0) - count  # steps run before each step
    started = jnp.cumsum(starts.astype(jnp.int32), axis=0)  # starts up to each step
    # (t + 1, n) positions, and (1, n) the last, t: from the data, not from t (which may be a
    # symbolic size, which converters to ONNX take as a shape but not as a value).
    positions = jnp.cumsum(jnp.ones_like(count), axis=0) - 1
    end = jnp.max(positions, axis=0, keepdims=True)
    if holes:  # the position of the r-th step that runs, for each rank r
        columns = jnp.cumsum(jnp.ones_like(count), axis=1) - 1
        ranks = jnp.where(valid, before, end)  # the steps that do not run all go to row t
        ranked = jnp.zeros_like(positions).at[ranks, columns].set(positions)
        position_of = lambda rank: jnp.take_along_axis(
            ranked, jnp.minimum(jnp.maximum(rank, 0), end), axis=0
        )
    else:  # one run of steps per row, from its first
        first = jnp.argmax(valid, axis=0).astype(jnp.int32)[None]
        position_of = lambda rank: jnp.minimum(jnp.maximum(first + rank, 0), end)
    tap = lambda j, a: a * w[j].reshape(1, 1, e)
    c = tap(k - 1, u1) + b.reshape(1, 1, e)
    lagged, in_document = [], jnp.zeros_like(count)  # steps of this document before, < lag
    for lag in range(1, k):
        at = position_of(before - lag)  # the lag-th step that ran before
        # ... is in this document: it exists, and no document started after it.
        same = (before >= lag) & (jnp.take_along_axis(started, at, axis=0) == started)
        earlier = jnp.take_along_axis(u1, at[..., None], axis=0)
        # Else the window's entry as far before the document start (a select over its K-1
        # entries rather than a gather, which exporters take with symbolic sizes).
        back = k - 1 - lag + in_document
        from_window = sum(
            jnp.where((back == j)[..., None], window[None, :, j], jnp.zeros((), u.dtype))
            for j in range(k - 1)
        )
        entry = jnp.where(same[..., None], earlier, from_window)
        c = c + tap(k - 1 - lag, entry)
        lagged.append(entry[-1])
        in_document = in_document + same.astype(jnp.int32)
    new_window = jnp.stack(lagged[::-1], axis=1) if lagged else window
    return c[:-1], new_window


class _Run(NamedTuple):
    """A block's call, checked, in one time-major shape with one batch axis."""

    xs: Array  # (t, n, d): zeros where a step does not run
    valid: Array | None  # (t, n) bool, or None for all
    starts: Array | None  # (t, n) bool: resets in the order they are read (`in_scan_order`)
    holes: bool  # a mask was given: the steps that run may have holes
    unroll: dict  # seq_lengths, mask, resets for `unroll` with time_major=True
    batch_shape: tuple[int, ...]
    time_axis: int  # where time goes back in ys
    carry: Carry  # the initial carry, leaves (n, ...)


def _prepare(xs, d: int, params: Params, steps: dict, reverse: bool, given, zero) -> _Run:
    """``xs``, the step keywords of ``apply`` and the initial carry ``given`` (or the one of
    ``zero(params, batch_shape)``) checked and made time-major with one batch axis."""
    time_major = check_flag("time_major", steps["time_major"])
    if not hasattr(xs, "ndim"):
        xs = jnp.asarray(xs)
    if xs.ndim < 2 or xs.shape[-1] != d:
        layout = "(time, *batch, %d)" if time_major else "(*batch, time, %d)"
        fail(
            "xs",
            f"an array of shape {layout % d} or (time, {d}): a block's input size is its d_model",
            said(f"shape {tuple(xs.shape)}"),
        )
    xs = xs.astype(check_input_dtype("xs", xs.dtype, params_dtype(params), None))
    batch_rank = xs.ndim - 2
    time_axis = 0 if (time_major or batch_rank == 0) else batch_rank
    num_steps = xs.shape[time_axis]
    batch_shape = tuple(size for axis, size in enumerate(xs.shape[:-1]) if axis != time_axis)
    seen = steps_.read(
        steps["seq_lengths"],
        steps["mask"],
        steps["resets"],
        num_steps=num_steps,
        batch_shape=batch_shape,
        time_major=time_major or batch_rank == 0,
    )
    n = math.prod(batch_shape)
    flat = lambda a: None if a is None else a.reshape((num_steps, n))
    xs = jnp.moveaxis(xs, time_axis, 0).reshape((num_steps, n, d))
    valid = flat(seen.valid)
    if valid is not None:  # padding never reaches the arithmetic (nor its gradients)
        xs = jnp.where(valid[..., None], xs, jnp.zeros((), xs.dtype))
    lengths = None if seen.lengths is None else seen.lengths.reshape((n,))
    keywords = {"seq_lengths": lengths, "mask": flat(seen.mask), "resets": flat(seen.resets)}
    starts = flat(steps_.in_scan_order(seen, reverse))
    carry = zero(params, batch_shape)
    if given is not None:
        source = f"layer.initial_carry(params, batch_shape={batch_shape})"
        carry = check_tree("initial_carry", given, jax.eval_shape(lambda: carry), source=source)
    rank = len(batch_shape)
    carry = jax.tree.map(lambda c: c.reshape((n, *c.shape[rank:])), carry)
    holes = seen.mask is not None
    return _Run(xs, valid, starts, holes, keywords, batch_shape, time_axis, carry)


def _restore(run: _Run, carry: Carry, out: Array) -> tuple[Carry, Array]:
    """Outputs zero where a step does not run; the call's batch axes and layout back."""
    if run.valid is not None:
        out = jnp.where(run.valid[..., None], out, jnp.zeros((), out.dtype))
    carry = jax.tree.map(lambda c: c.reshape((*run.batch_shape, *c.shape[1:])), carry)
    out = out.reshape((out.shape[0], *run.batch_shape, out.shape[-1]))
    return carry, jnp.moveaxis(out, 0, run.time_axis)


def _check_params(params: Any, init, d: int, label: str) -> None:
    """``params`` must have the structure, shapes and dtype that ``init`` makes."""
    if not isinstance(params, Mapping):
        fail("params", f"the dict returned by {label}.init", params, TypeError)
    dtype = params_dtype(params)
    template = jax.eval_shape(lambda: init(jax.random.key(0), d, dtype=dtype))
    check_tree("params", params, template, source=f"{label}.init(key, {d}, dtype={dtype})")


def from_mambapy_block(state_dict: Mapping[str, Any]) -> Params:
    """The params of a `mamba_block` from a mambapy ``ResidualBlock``'s weights (the keys
    ``norm.weight`` and ``mixer.*``) or a ``MambaBlock``'s (its norm weight set to one).

    The block is ``jaxrnn.mamba_block(d_model, state_size=N, expand=E // d_model,
    conv_size=K, dt_rank=R)`` of the mambapy config; ``bias=True`` projections and
    ``inner_layernorms`` are not converted (refused), ``conv_bias=False`` gives zeros.

    Args:
      state_dict: ``block.state_dict()`` (torch tensors or numpy arrays).

    Returns:
      The params, float32 numpy arrays.

    Examples:
      >>> import numpy as np
      >>> from jaxrnn.blocks import from_mambapy_block
      >>> weights = {"in_proj.weight": np.zeros((32, 8)), "conv1d.weight": np.zeros((16, 1, 4)),
      ...            "x_proj.weight": np.zeros((9, 16)), "dt_proj.weight": np.zeros((16, 1)),
      ...            "dt_proj.bias": np.zeros(16), "A_log": np.zeros((16, 4)),
      ...            "D": np.ones(16), "out_proj.weight": np.zeros((8, 16))}
      >>> from_mambapy_block(weights)["conv_w"].shape
      (4, 16)
    """
    if not isinstance(state_dict, Mapping):
        fail("state_dict", "a mapping such as ResidualBlock.state_dict()", state_dict, TypeError)
    prefix = "mixer." if any(str(key).startswith("mixer.") for key in state_dict) else ""
    for bias in ("in_proj.bias", "out_proj.bias"):
        if prefix + bias in state_dict:
            fail("state_dict", "a MambaBlock with bias=False", said(f"one with {bias}"))
    get = lambda key: _numpy(state_dict, prefix + key)
    conv = get("conv1d.weight")  # (E, 1, K)
    in_proj = get("in_proj.weight")  # (2E, d)
    e, d = conv.shape[0], in_proj.shape[1]
    has = lambda key: key in state_dict
    return {
        "norm": _numpy(state_dict, "norm.weight") if has("norm.weight") else np.ones(d, np.float32),
        "in_proj": in_proj.T,
        "conv_w": conv[:, 0, :].T.copy(),
        "conv_b": get("conv1d.bias") if has(prefix + "conv1d.bias") else np.zeros(e, np.float32),
        "ssm": from_mambapy(state_dict, prefix=prefix),
        "out_proj": get("out_proj.weight").T,
    }


def xlstm_block(
    d_model: int,
    *,
    cell: str = "mlstm",
    num_heads: int = 4,
    proj_factor: float = 2,
    strategy: Strategy | None = None,
) -> Layer:
    r"""An xLSTM block (Beck et al. 2024) with its pre-norm and residual.

    ``cell="mlstm"``, the pre-up-projection block: with ``P = round(proj_factor * d)``,

    $$
    [u, z] = \mathrm{RMSNorm}(x) W_{up} \in \mathbb{R}^{2P}, \quad
    \mathrm{out} = \big((\mathrm{mLSTM}(u) + s \odot u) \odot \mathrm{SiLU}(z)\big) W_{down} + x
    $$

    with a learnable skip ``s`` (ones at first). The paper's block also has a causal
    convolution (width 4) feeding the mLSTM's queries and keys, and a per-head group norm
    of the mLSTM's output; both are left out here (the mLSTM reads ``u`` directly).

    ``cell="slstm"``, the post-up-projection block: the sLSTM in a residual, then a gated
    MLP in a second residual, with ``P = round(proj_factor * d)`` (the paper uses 4/3):

    $$
    v = \mathrm{sLSTM}(\mathrm{RMSNorm}(x)) + x, \quad
    [g, a] = \mathrm{RMSNorm}(v) W_{up}, \quad
    \mathrm{out} = (\mathrm{GELU}(g) \odot a) W_{down} + v
    $$

    The paper's sLSTM block also convolves the input of the i and f gates and group-norms the
    heads; both are left out. The cells are `jaxrnn.mlstm` and `jaxrnn.slstm`; lengths,
    masks, resets, ``reverse`` and the carry (the cell's) are `jaxrnn.unroll`'s, and outputs
    at steps that do not run are zero.

    Params: ``norm (d,)``, ``up (d, 2P)``, ``cell`` (the cell's), ``down (P, d)``, and
    ``skip (P,)`` (mLSTM) or ``norm2 (d,)`` (sLSTM); projections LeCun-normal.

    Args:
      d_model: ``d``, the features in and out.
      cell: ``"mlstm"`` or ``"slstm"``.
      num_heads: the cell's heads (must divide its width: ``P`` for the mLSTM, ``d`` for
        the sLSTM).
      proj_factor: ``P / d``: the mLSTM's up-projection, the sLSTM block's MLP.
      strategy: how `jaxrnn.unroll` runs the cell (`jaxrnn.Strategy`), passed on untouched.

    Returns:
      A `Layer` with ``output_size == d_model``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> block = jaxrnn.xlstm_block(8, cell="mlstm", num_heads=2)
      >>> params = block.init(jax.random.key(0), input_size=8)
      >>> carry, ys = block.apply(params, jnp.ones((2, 5, 8)), seq_lengths=jnp.array([5, 2]))
      >>> ys.shape, carry.c.shape
      ((2, 5, 8), (2, 2, 8, 8))
    """
    d = check_size("d_model", d_model)
    check_choice("cell", cell, ("mlstm", "slstm"))
    proj_factor = check_number("proj_factor", proj_factor, low=0, low_open=True)
    p = check_size("round(proj_factor * d_model)", round(proj_factor * d))
    if cell == "mlstm":
        inner = mlstm(p, num_heads=check_heads(num_heads, p, "round(proj_factor * d_model)"))
    else:
        inner = slstm(d, num_heads=check_heads(num_heads, d, "d_model"))
    strategy = _check_strategy(inner, strategy, "xlstm_block")
    label = f"xlstm_block(d_model={d}, cell={cell!r})"

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        dtype = check_init_args(key, input_size, dtype)
        _check_input_size(input_size, d, label)
        k_up, k_down, k_cell = jax.random.split(key, 3)
        lecun = jax.nn.initializers.lecun_normal()
        params = {
            "norm": jnp.ones((d,), dtype),
            "up": lecun(k_up, (d, 2 * p), jnp.float32).astype(dtype),
            "cell": inner.init(k_cell, p if cell == "mlstm" else d, dtype=dtype),
            "down": lecun(k_down, (p, d), jnp.float32).astype(dtype),
        }
        extra = (
            {"skip": jnp.ones((p,), dtype)} if cell == "mlstm" else {"norm2": jnp.ones((d,), dtype)}
        )
        return {**params, **extra}

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return inner.initial_carry(params["cell"], check_batch_shape(batch_shape))

    apply = _block_apply(_xlstm_apply, inner, strategy, init, initial_carry, d, label)
    return Layer(init, initial_carry, apply, d, label)


def _xlstm_apply(cell: Cell, strategy, params: Params, run: _Run, reverse: bool):
    """`xlstm_block`'s ``apply`` after its checks."""

    def recurrent(inputs: Array) -> tuple[Carry, Array]:
        return unroll(
            cell,
            params["cell"],
            inputs,
            initial_carry=run.carry,
            reverse=reverse,
            time_major=True,
            strategy=strategy,
            **run.unroll,
        )

    if "skip" in params:  # the mLSTM block
        u, z = jnp.split(rms_norm(run.xs, params["norm"]) @ params["up"], 2, axis=-1)
        carry, ys = recurrent(u)
        skip = params["skip"].reshape(1, 1, -1)
        out = ((ys + skip * u) * jax.nn.silu(z)) @ params["down"] + run.xs
    else:  # the sLSTM block
        carry, ys = recurrent(rms_norm(run.xs, params["norm"]))
        mid = ys + run.xs
        g, a = jnp.split(rms_norm(mid, params["norm2"]) @ params["up"], 2, axis=-1)
        out = (jax.nn.gelu(g) * a) @ params["down"] + mid
    return _restore(run, carry, out)


__all__ = (
    "MambaBlockCarry",
    "causal_conv",
    "from_mambapy_block",
    "mamba_block",
    "rms_norm",
    "xlstm_block",
)
