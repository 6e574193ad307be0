"""The LSTM through cuDNN (`jax.experimental.rnn.lstm`): ``jaxrnn.Strategy(cudnn=True)``.

With ``cudnn=True``, `jaxrnn.unroll` (and every layer and head that hands it the strategy)
sends a plain `jaxrnn.lstm` to cuDNN's LSTM kernel, forward and backward, when the call can
run there; otherwise it warns with the reason (a `CudnnFallbackWarning`, which can be
filtered) and runs the default path. `why_not` says beforehand what stops a call.

What cuDNN runs is the same sequence as jaxrnn's own paths, up to float rounding: with
``seq_lengths`` the outputs after each row's length are zero and the final carry is the one
after the row's last valid step (the initial carry for a length of 0); with ``reverse=True``
each row's valid prefix is read back to front (it is reversed in place, run forward, and the
outputs are put back), so `jaxrnn.bidirectional` and reversed layers use cuDNN too. Gradients
reach the params (through `jaxrnn.cells.lstm.to_cudnn`: one bias goes to ``b_ih``, ``b_hh``
is zero), the inputs and the initial carry (cuDNN's backward pass returns ``dh_0`` and
``dc_0``).

What stops a call (`why_not` names it): another cell than a plain `jaxrnn.lstm` (another
family, ``proj_size``, image cells, a wrapped step such as recurrent dropout); a ``mask``
(cuDNN only takes lengths: each row's valid steps as a prefix) or ``resets``; an empty batch;
a dtype other than float32 (the kernels of `jax.experimental.rnn` compute in float32 only;
with a cell's ``compute_dtype`` of float32, bfloat16 params are cast for the call); symbolic
shapes (`jax.export`: cuDNN sizes its workspace from concrete sizes); tracing inside
`jaxrnn.portable` (an artifact for any platform; the cuDNN call is CUDA's alone); a
``jax_default_matmul_precision`` that `jax.experimental.rnn.lstm` refuses (bfloat16); and a
backend that is not an NVIDIA GPU with jaxlib's cuDNN RNN kernels. The backend is the default
one when the call is traced.

Known limits of `jax.experimental.rnn` worked around here: a sequence of length 0 makes
cuDNN fail (jax#17966), so such a row runs one step of its zeroed padding and its results are
then replaced by the initial carry and zero outputs; its primitives have no batching rule, so
a call under `jax.vmap` falls back (with the warning) when tracing finds that out. Not worked
around: forward-mode differentiation (`jax.jvp`, `jax.jacfwd`) of a call that runs cuDNN fails
(the LSTM is a `jax.custom_vjp`), and the kernel copies the lengths to the host and
synchronises the stream on every call.
"""

from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import rnn

from jaxrnn import scan
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import input_dtype
from jaxrnn.cells.base import params_dtype
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.cells.lstm import to_cudnn
from jaxrnn.checks import warn
from jaxrnn.portable import is_portable
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params

# What `_backend` says when cuDNN's LSTM can run.
NVIDIA_GPU = "NVIDIA GPU"


class CudnnFallbackWarning(UserWarning):
    """``jaxrnn.Strategy(cudnn=True)`` could not run a call through cuDNN and ran the default
    path instead; the message names the cell and the reason. Filter it with
    ``warnings.filterwarnings("ignore", category=jaxrnn.cudnn.CudnnFallbackWarning)``."""


def why_not(
    cell: Cell,
    params: Params,
    xs: Array,
    *,
    initial_carry: Carry | None = None,
    seq_lengths: Array | None = None,
    mask: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
) -> str | None:
    """Why ``jaxrnn.unroll(cell, params, xs, ..., strategy=jaxrnn.Strategy(cudnn=True))``
    would not run cuDNN, or None when it would.

    Takes `jaxrnn.unroll`'s arguments and checks them as it does; a benchmark can call it to
    be sure that it times cuDNN, a user to learn what to change. (One reason shows only while
    the call is traced: under `jax.vmap`, which cuDNN's primitives cannot batch.)

    Args:
      cell: the cell, e.g. ``jaxrnn.lstm(128)``.
      params: its params.
      xs: inputs ``(b, t, i)`` (``(t, b, i)`` with ``time_major=True``, ``(t, i)`` alone).
      initial_carry: as in `jaxrnn.unroll`.
      seq_lengths: ``(b,)`` lengths, or None.
      mask: ``(b, t)`` bool, or None.
      resets: ``(b, t)`` bool, or None.
      reverse: read each sequence backwards.
      time_major: the layout of ``xs``.

    Returns:
      The reason as a phrase (``"the backend is cpu, not an NVIDIA GPU"``), or None.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> from jaxrnn.cudnn import why_not
      >>> cell = jaxrnn.gru(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> why_not(cell, params, jnp.ones((2, 5, 3)))
      'jaxrnn.gru(hidden_size=8) is not an LSTM (cuDNN runs jaxrnn.lstm only)'
      >>> cell = jaxrnn.lstm(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> reason = why_not(cell, params, jnp.ones((2, 5, 3)), seq_lengths=jnp.array([5, 0]))
      >>> reason is None or reason.startswith("the backend is")  # None on an NVIDIA GPU
      True
    """
    run = scan._prepare(
        cell, params, xs, initial_carry, seq_lengths, mask, resets, reverse, time_major
    )
    return _reason(cell, params, run)


def _reason(cell: Cell, params: Params, run: Any) -> str | None:
    """`why_not` for a call `jaxrnn.unroll` has prepared (``run``, a `jaxrnn.scan._Prepared`:
    inputs ``(t, n, i)`` time first with one batch axis ``n``): the call's own properties
    first, then the place it is traced in."""
    found = _cell_problem(cell, params) or _steps_problem(run)
    if found:
        return found
    dtype = _compute_dtype(cell, params)
    if dtype != jnp.float32:
        return (
            f"the call computes in {dtype}, and the cuDNN kernels of jax.experimental.rnn "
            "compute in float32 only"
        )
    if not all(isinstance(size, int) for size in run.xs.shape):
        return (
            f"the shape {tuple(run.xs.shape)} is symbolic (jax.export): cuDNN sizes its "
            "workspace from concrete batch and time sizes"
        )
    if is_portable():
        return (
            "it is traced inside jaxrnn.portable, for an artifact that runs on any platform "
            "(the cuDNN call exists on CUDA only)"
        )
    return _precision_problem() or _backend_problem()


def _cell_problem(cell: Cell, params: Params) -> str | None:
    if cell.input_axes != 1:
        return f"{cell!r} reads images (input_axes={cell.input_axes}); cuDNN's LSTM reads vectors"
    if cell.name != "lstm":
        return f"{cell!r} is not an LSTM (cuDNN runs jaxrnn.lstm only)"
    if "w_hr" in params:
        return (
            f"{cell!r} has a projection (proj_size), which jax.experimental.rnn.lstm does not take"
        )
    if cell.fused is None:
        return (
            f"{cell!r} is a wrapped LSTM whose step was replaced (e.g. recurrent dropout; "
            "cell.fused is None), which cuDNN's fixed LSTM step cannot run"
        )
    return None


def _steps_problem(run: Any) -> str | None:
    if run.starts is not None:
        return "resets (packed sequences): cuDNN starts each row from its initial carry once"
    if run.valid is not None and run.lengths is None:
        return (
            "a mask: cuDNN reads each row's valid steps as a prefix given by seq_lengths, and a "
            "mask may skip any step (pass seq_lengths alone where the mask is a prefix)"
        )
    if isinstance(run.xs.shape[1], int) and run.xs.shape[1] == 0:  # (not a symbolic size)
        return "the batch is empty"
    return None


def _precision_problem() -> str | None:
    # jax.experimental.rnn.lstm reads jax_default_matmul_precision itself and raises for the
    # values it has no cuDNN math mode for; ask its own rule (private, so only if it exists).
    rule = getattr(rnn, "_lstm_cudnn_allow_tf32", None)
    if rule is None:
        return None
    try:
        rule(None)
    except (NotImplementedError, ValueError) as error:
        setting = jax.config.jax_default_matmul_precision
        return (
            f"jax_default_matmul_precision={setting!r}, which jax.experimental.rnn.lstm "
            f"refuses ({error})"
        )
    return None


def _backend_problem() -> str | None:
    found = _backend()
    if found != NVIDIA_GPU:
        return f"the backend is {found}, not an NVIDIA GPU"
    return None


def _backend() -> str:
    """``"NVIDIA GPU"`` where cuDNN's LSTM can run, else what the default backend is."""
    backend = jax.default_backend()
    if backend != "gpu":
        return backend
    client = getattr(jax.devices()[0], "client", None)
    if "rocm" in str(getattr(client, "platform_version", "")).lower():
        return "gpu (ROCm)"
    if getattr(rnn.gpu_rnn, "compute_rnn_workspace_reserve_space_sizes", None) is None:
        return "gpu without jaxlib's cuDNN RNN kernels (the jax CUDA plugin's _rnn)"
    return NVIDIA_GPU


def _compute_dtype(cell: Cell, params: Params):
    """The dtype a call computes in: the cell's ``compute_dtype`` where it has one set (mixed
    precision), else the params' dtype."""
    return jnp.dtype(input_dtype(params_dtype(params), cell.compute_dtype))


def run(cell: Cell, params: Params, run: Any, reverse: bool) -> tuple[LSTMCarry, Array] | None:
    """``(carry, ys)`` of a call `jaxrnn.unroll` has prepared, through cuDNN; or None, after a
    `CudnnFallbackWarning` with the reason, for the default path to run it.

    ``run.xs`` is ``(t, n, i)``, time first with one batch axis; ``run.carry`` an
    `LSTMCarry` of ``(n, h)``; ``run.lengths`` ``(n,)`` or None. Returns the final
    `LSTMCarry` ``(n, h)`` in the dtypes of ``run.carry`` and the outputs ``ys (t, n, h)`` in
    the compute dtype, zero after each row's length.

    Examples:
      >>> import warnings, jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.gru(4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     _, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)),
      ...                           strategy=jaxrnn.Strategy(cudnn=True))
      >>> print(caught[0].category.__name__, caught[0].message)  # doctest: +ELLIPSIS
      CudnnFallbackWarning jaxrnn.gru(hidden_size=4) runs on the default path, not cuDNN: ...
      >>> ys.shape
      (2, 5, 4)
    """
    found = _reason(cell, params, run)
    if found is None:
        try:
            return _lstm(params, run, reverse, _compute_dtype(cell, params))
        except NotImplementedError as error:  # raised while tracing, before anything ran
            if "Batching rule" not in str(error):
                raise
            found = (
                "it runs under jax.vmap, and the primitives of jax.experimental.rnn have no "
                "batching rule"
            )
    warn(
        f"{cell!r} runs on the default path, not cuDNN: {found} (jaxrnn.Strategy(cudnn=True))",
        CudnnFallbackWarning,
    )
    return None


def _lstm(params: Params, run: Any, reverse: bool, dtype) -> tuple[LSTMCarry, Array]:
    """One `jax.experimental.rnn.lstm` call (batch-major, one layer, one direction)."""
    xs, carry, lengths = run.xs, run.carry, run.lengths
    steps, n, input_size = xs.shape
    if reverse:
        xs = jnp.flip(xs, axis=0) if lengths is None else _reverse_prefix(xs, lengths)
    if lengths is None:
        seq_lengths = jnp.full((n,), steps, jnp.int32)
    else:
        # cuDNN fails on a sequence of length 0 (jax#17966): such a row runs one step of its
        # zeroed padding here, and its results are replaced below.
        seq_lengths = jnp.maximum(lengths.astype(jnp.int32), 1)
    y, h_n, c_n = rnn.lstm(
        jnp.swapaxes(xs, 0, 1).astype(dtype),  # (n, t, i)
        carry.h.astype(dtype)[None],  # (1, n, h): one layer, one direction
        carry.c.astype(dtype)[None],
        to_cudnn([params]).astype(dtype),
        seq_lengths,
        input_size=input_size,
        hidden_size=carry.c.shape[-1],
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    ys = jnp.swapaxes(y, 0, 1)  # (t, n, h)
    h, c = h_n[0].astype(carry.h.dtype), c_n[0].astype(carry.c.dtype)
    if lengths is not None:
        ran = (lengths > 0)[:, None]
        h, c = jnp.where(ran, h, carry.h), jnp.where(ran, c, carry.c)
        ys = jnp.where(run.valid[..., None], ys, jnp.zeros((), ys.dtype))
        if reverse:
            ys = _reverse_prefix(ys, lengths)
    elif reverse:
        ys = jnp.flip(ys, axis=0)
    return LSTMCarry(h=h, c=c), ys


def _reverse_prefix(seq: Array, lengths: Array) -> Array:
    """``seq (t, n, ...)`` with each row's first ``lengths[n]`` steps in reverse order (step
    ``L - 1 - t`` at ``t``) and its padding where it was; its own inverse."""
    steps = jnp.arange(seq.shape[0], dtype=lengths.dtype)[:, None]  # (t, 1)
    ends = lengths[None, :]  # (1, n)
    source = jnp.where(steps < ends, ends - 1 - steps, steps)  # (t, n)
    source = source.reshape(source.shape + (1,) * (seq.ndim - 2))
    return jnp.take_along_axis(seq, source, axis=0)


__all__ = (
    "CudnnFallbackWarning",
    "why_not",
)
