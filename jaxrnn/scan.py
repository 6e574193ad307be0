"""Turning a step into a sequence, in three steps: check the arguments, put them into one
time-major shape ``(t, b, ...)`` with one batch axis, and run the chosen `jaxrnn.Strategy`
(the scan of the step, the cell's fused passes, checkpointed segments, or the parallel scan of a
linear recurrence)."""

import math
import warnings
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import steps as steps_
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import check_input_dtype
from jaxrnn.cells.base import params_dtype
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_lengths
from jaxrnn.checks import check_tree
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.parallel import linear_scan
from jaxrnn.parallel import place_over_time
from jaxrnn.parallel import sharded_linear_scan
from jaxrnn.portable import scan
from jaxrnn.steps import expand
from jaxrnn.steps import valid_steps
from jaxrnn.strategy import CHUNKWISE_CELLS
from jaxrnn.strategy import DEFAULT_CHUNK_SIZE
from jaxrnn.strategy import PARALLEL_CELLS
from jaxrnn.strategy import Strategy
from jaxrnn.strategy import resolve
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params


def unroll(
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
    strategy: Strategy | None = None,
    **deprecated: Any,
) -> tuple[Carry, Array]:
    """Runs ``cell`` over every time step of ``xs`` with one `jax.lax.scan`.

    The input projection of all time steps is one matmul before the scan; the scan body is
    the recurrent half of the step. Gradients of anything computed from the result with
    `jax.grad` are backpropagation through time.

    With ``seq_lengths``, sequence ``n`` is ``xs[n, :seq_lengths[n]]`` and the rest is padding:
    the final carry is the carry after its last valid step, outputs at padded positions are
    zero, and whatever sits in the padding has no effect. A length of 0 gives the initial carry
    and all-zero outputs. With ``reverse=True`` each sequence is read from its last valid step
    back to its first (only the valid prefix is reversed; padding stays at the end), and
    ``ys[n, t]`` is still the output at input position ``t``.

    Args:
      cell: a `Cell`, e.g. ``jaxrnn.lstm(128)``.
      params: the cell's params, from ``cell.init``.
      xs: inputs ``(b, t, i)``, or ``(t, b, i)`` with ``time_major=True``, or ``(t, i)`` for a
        single unbatched sequence; several batch axes ``(b1, b2, ..., t, i)`` work too (one
        scan over the flattened batch, no vmap), with lengths and carries shaped
        ``(b1, b2, ...)``. Must have the params' dtype.
      initial_carry: the carry before the first step; zeros (``cell.initial_carry``) if None.
      seq_lengths: ``(b,)`` (the batch axes) valid lengths in ``[0, t]`` (``()`` for
        unbatched ``xs``), of any integer dtype; None means every sequence is ``t`` long.
      mask: a general mask, bool ``(b, t)`` (``(t, b)`` if time-major, ``(t,)`` unbatched),
        True on the steps to run: a False step leaves the carry unchanged, outputs zero, and
        its input never reaches the arithmetic, wherever it is (Keras masks with holes).
        With ``reverse=True`` the True steps are read from last to first. Combined with
        ``seq_lengths`` (both must hold); ``seq_lengths`` is the faster common case. The heads
        (`jaxrnn.many_to_one`, `jaxrnn.pool`) take the same ``mask`` and read the same last
        step (`jaxrnn.steps.read` decides for both).
      resets: packed sequences: bool, the shape of ``mask``, True where a new document starts
        in the row. The carry goes back to the initial carry before each such step, so
        several documents laid end to end in one row give the same numbers (values and
        gradients) as each document run alone; `jaxrnn.packing` lays them out. With
        ``reverse=True`` each document is read from its end back to its start. The final
        carry is the one after the row's last document (its first, read in reverse); per
        document results are read from ``ys`` at the documents' ends (`jaxrnn.packing.last`).
        Resets past ``seq_lengths`` are ignored; a reset on a masked step still resets.
      reverse: read each sequence backwards.
      time_major: ``xs`` and ``ys`` are ``(t, b, ...)`` instead of ``(b, t, ...)``.
      strategy: how to run it, a `jaxrnn.Strategy` (mode, unroll, remat, fused,
        time_sharding); the default is the sequential scan with the fused passes.
      **deprecated: the fields of `jaxrnn.Strategy` as keywords (``mode="parallel"``), as
        before 0.1.1: still accepted with a `DeprecationWarning` until 0.2.

    Returns:
      ``(final_carry, ys)``: the carry after each sequence's last valid step (leaves
      ``(b, h)``) and the outputs ``(b, t, h)`` (``(t, b, h)`` if time-major, ``(t, h)`` if
      unbatched).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.lstm(hidden_size=8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> xs = jnp.ones((2, 5, 3))
      >>> carry, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=jnp.array([5, 2]))
      >>> ys.shape, carry.h.shape
      ((2, 5, 8), (2, 8))
      >>> bool(jnp.all(ys[1, 2:] == 0))
      True
    """
    strategy = resolve(strategy, deprecated, "unroll")
    run = _prepare(cell, params, xs, initial_carry, seq_lengths, mask, resets, reverse, time_major)
    carry, ys = _run(cell, params, run, reverse, strategy)
    return _restore(run, carry, ys)


class _Prepared(NamedTuple):
    """`unroll`'s arguments, checked, in the one shape every strategy runs on."""

    xs: Array  # (t, n, *spatial, i): time-major, the batch axes flattened into n
    carry: Carry  # leaves (n, *spatial, ...)
    valid: Array | None  # (t, n, *spatial) bool: the steps that run, or None for all
    starts: Array | None  # (t, n, *spatial) bool: resets in the order the scan reads them
    batch_shape: tuple[int, ...]  # the batch axes of the call, () for one sequence
    batch_axis: int | None  # where the batch axes go back in ys (None: one sequence)
    lengths: Array | None  # (n,) int32 when the valid steps are exactly a prefix of each row


def _prepare(cell, params, xs, initial_carry, seq_lengths, mask, resets, reverse, time_major):
    """Check, then put into one time-major shape with one batch axis."""
    if not isinstance(cell, Cell):
        fail(
            "cell",
            "a jaxrnn.Cell such as jaxrnn.lstm(hidden_size=128)",
            cell,
            TypeError,
            hint="for a stacked or bidirectional layer call layer.apply",
        )
    input_size = cell.check_params(params)
    dtype = params_dtype(params)
    check_flag("reverse", reverse)
    check_flag("time_major", time_major)
    spatial = cell.input_axes - 1  # axes of one step's input besides the features
    xs = _check_xs(xs, input_size, dtype, time_major, spatial, cell.compute_dtype)
    batch_rank = xs.ndim - 2 - spatial
    time_axis = 0 if (time_major or batch_rank == 0) else batch_rank
    num_steps = xs.shape[time_axis]
    batch_shape = tuple(xs.shape[1 : 1 + batch_rank] if time_axis == 0 else xs.shape[:batch_rank])
    space = tuple(xs.shape[xs.ndim - 1 - spatial : -1])
    seen = steps_.read(
        seq_lengths,
        mask,
        resets,
        num_steps=num_steps,
        batch_shape=batch_shape,
        time_major=time_major or batch_rank == 0,
    )
    carry = _check_initial_carry(cell, params, initial_carry, (*batch_shape, *space))
    starts = steps_.in_scan_order(seen, reverse)
    # One batch axis n (1 for a single sequence), time first.
    n = math.prod(batch_shape)
    xs = jnp.moveaxis(xs, time_axis, 0).reshape((num_steps, n, *space, input_size))
    carry = jax.tree.map(lambda c: c.reshape((n, *c.shape[len(batch_shape) :])), carry)
    over_space = lambda m: (
        None
        if m is None
        else jnp.broadcast_to(m.reshape((num_steps, n) + (1,) * spatial), (num_steps, n, *space))
    )
    valid, starts = over_space(seen.valid), over_space(starts)
    if valid is not None:
        # Padding must never reach the arithmetic: a NaN or inf there would leave the outputs
        # clean (they are masked) but make the gradients NaN (0 * nan in the backward pass).
        xs = jnp.where(valid[..., None], xs, jnp.zeros((), xs.dtype))
    batch_axis = None if batch_rank == 0 else (0 if time_major else batch_rank)
    lengths = None
    if seen.lengths is not None and seen.mask is None:
        lengths = seen.lengths.reshape((n,))
    return _Prepared(xs, carry, valid, starts, batch_shape, batch_axis, lengths)


def check_runs(cell: Cell, strategy: Strategy) -> None:
    """Raises when ``strategy`` cannot run ``cell``: ``mode="parallel"`` needs a cell whose
    gates read only ``x_t`` (``linear`` or ``parallel_form``), ``mode="chunkwise"`` a cell
    with a chunkwise form (``parallel_form``), ``time_sharding`` and ``scan_method`` an
    elementwise linear recurrence (``linear``).

    Examples:
      >>> import jaxrnn
      >>> from jaxrnn.scan import check_runs
      >>> check_runs(jaxrnn.lstm(4), jaxrnn.Strategy(mode="parallel"))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: strategy must be mode='sequential' for jaxrnn.lstm(hidden_size=4), ...
    """
    mode = strategy.mode
    if mode == "sequential":
        return
    linear, form = cell.linear is not None, cell.parallel_form is not None
    if not form and (mode == "chunkwise" or not linear):
        runs = "'sequential' or 'parallel'" if linear else "'sequential'"
        why = (
            "whose state is an elementwise linear recurrence"
            if linear
            else "whose gates read h_{t-1}"
        )
        fail(
            "strategy",
            f"mode={runs} for {cell!r}, {why} (mode='parallel' needs a cell whose recurrence "
            f"is linear in its carry or that has a parallel form: {PARALLEL_CELLS}; "
            f"mode='chunkwise' a cell with a chunkwise form: {CHUNKWISE_CELLS})",
            said(repr(strategy)),
        )
    if not linear and (strategy.time_sharding is not None or strategy.scan_method is not None):
        fail(
            "strategy",
            f"time_sharding=None and scan_method=None for {cell!r}: both cut or run an "
            "elementwise linear recurrence (jaxrnn.linear_scan), which its state is not",
            said(repr(strategy)),
        )


def _run(cell: Cell, params: Params, run: _Prepared, reverse: bool, strategy: Strategy):
    """The chosen strategy over ``run.xs (t, n, ...)``: ``(carry, ys (t, n, ...))``."""
    check_runs(cell, strategy)
    xs, carry, valid, starts = run.xs, run.carry, run.valid, run.starts
    if xs.shape[0] == 0:
        return carry, _no_outputs(cell, params, carry, xs)
    if strategy.cudnn:
        from jaxrnn import cudnn  # imports jax.experimental.rnn only when asked for

        ran = cudnn.run(cell, params, run, reverse)
        if ran is not None:
            return ran
    if cell.parallel_form is not None and strategy.mode != "sequential":
        chunk = strategy.chunk_size or DEFAULT_CHUNK_SIZE
        chunk_size = chunk if strategy.mode == "chunkwise" else None
        px = cell.project(params, xs)
        return cell.parallel_form(params, px, carry, valid, reverse, starts, chunk_size)
    if strategy.mode == "parallel":
        return _parallel(
            cell,
            params,
            xs,
            carry,
            valid,
            reverse,
            starts,
            strategy.time_sharding,
            strategy.scan_method,
        )
    if strategy.remat is not None:
        return _segmented(
            cell, params, xs, carry, valid, reverse, strategy.unroll, strategy.remat, starts
        )
    if strategy.fused and cell.fused is not None and strategy.unroll == 1:
        resets = {} if starts is None else {"resets": starts}
        return cell.fused(params, xs, carry, valid, reverse, **resets)
    px = cell.project(params, xs)  # (t, n, g): one matmul for all steps
    return _scan(cell, params, px, carry, valid, reverse, strategy.unroll, starts)


def _restore(run: _Prepared, carry: Carry, ys: Array) -> tuple[Carry, Array]:
    """The call's own batch axes and layout back."""
    batch = run.batch_shape
    carry = jax.tree.map(lambda c: c.reshape((*batch, *c.shape[1:])), carry)
    ys = ys.reshape((ys.shape[0], *batch, *ys.shape[2:]))
    if run.batch_axis:  # batch-major: the batch axes before time
        ys = jnp.moveaxis(ys, 0, run.batch_axis)
    return carry, ys


def _no_outputs(cell, params, carry, xs_t):
    """The empty ``(0, *batch, h)`` outputs of a sequence with no steps."""
    x = jax.ShapeDtypeStruct(xs_t.shape[1:], xs_t.dtype)
    y = jax.eval_shape(cell.step, params, carry, x)[1]
    return jnp.zeros((0, *y.shape), y.dtype)


def _scan(cell, params, px, carry, valid, reverse, unroll, resets=None, initial=None):
    """The recurrence over time-major projected inputs ``px``; ``valid`` ``(t, *batch)`` marks
    the real steps (None: all are), ``resets`` (in scan order, or None) the steps that start
    from ``initial`` (by default the ``carry`` the scan starts from)."""
    if resets is not None:
        initial = carry if initial is None else initial
        return _scan_with_resets(cell, params, px, carry, valid, reverse, unroll, resets, initial)
    if valid is None:

        def body(carry, px_t):
            return cell.step_projected(params, carry, px_t)

        return scan(body, carry, px, reverse=reverse, unroll=unroll)

    # Masking per step, rather than gathering the carry at length-1 afterwards, means the
    # scan stacks only ys, and the reversed scan reads exactly the valid prefix backwards.
    def masked_body(carry, inputs):
        px_t, ok = inputs
        new_carry, y = cell.step_projected(params, carry, px_t)
        new_carry = jax.tree.map(
            lambda new, old: jnp.where(expand(ok, new), new, old), new_carry, carry
        )
        return new_carry, jnp.where(expand(ok, y), y, jnp.zeros_like(y))

    return scan(masked_body, carry, (px, valid), reverse=reverse, unroll=unroll)


def _scan_with_resets(cell, params, px, carry, valid, reverse, unroll, resets, initial):
    """`_scan` where ``resets`` marks the steps that start from ``initial`` (packed rows)."""
    if valid is None:
        valid = jnp.ones(resets.shape, bool)

    def body(carry, inputs):
        px_t, ok, rs = inputs
        carry = jax.tree.map(lambda c0, c: jnp.where(expand(rs, c), c0, c), initial, carry)
        new_carry, y = cell.step_projected(params, carry, px_t)
        new_carry = jax.tree.map(
            lambda new, old: jnp.where(expand(ok, new), new, old), new_carry, carry
        )
        return new_carry, jnp.where(expand(ok, y), y, jnp.zeros_like(y))

    return scan(body, carry, (px, valid, resets), reverse=reverse, unroll=unroll)


def _segmented(cell, params, xs_t, carry, valid, reverse, unroll, segment, resets=None):
    """`_scan` in checkpointed segments of ``segment`` steps (see ``remat`` in `unroll`)."""
    num_steps, batch_shape = xs_t.shape[0], xs_t.shape[1:-1]
    num_segments = -(-num_steps // segment)
    padded = num_segments * segment
    if valid is None and padded != num_steps:
        valid = jnp.ones((num_steps, *batch_shape), bool)  # the padding must be skipped
    split = lambda a: a.reshape((num_segments, segment, *a.shape[1:]))
    pad = lambda a: jnp.pad(a, [(0, padded - num_steps)] + [(0, 0)] * (a.ndim - 1))
    xs_seg = split(pad(xs_t))
    valid_seg = None if valid is None else split(pad(valid))
    resets_seg = None if resets is None else split(pad(resets))
    initial = carry

    @jax.checkpoint
    def segment_of(initial, carry, inputs):
        xs_part, valid_part, resets_part = inputs
        px = cell.project(params, xs_part)
        return _scan(cell, params, px, carry, valid_part, reverse, unroll, resets_part, initial)

    def run_segment(carry, inputs):
        return segment_of(initial, carry, inputs)

    inputs = (xs_seg, valid_seg, resets_seg)
    carry, ys = scan(run_segment, carry, inputs, reverse=reverse)
    ys = ys.reshape((padded, *ys.shape[2:]))[:num_steps]
    return carry, ys


def _parallel(
    cell, params, xs_t, carry, valid, reverse, resets=None, time_sharding=None, method=None
):
    """All steps of a linear recurrence ``h_t = a_t h_{t-1} + b_t`` by `linear_scan`, or by
    `time_sharding.sharded_linear_scan` over a mesh axis."""
    if time_sharding is not None:  # the projection and gates are computed where they live
        xs_t = place_over_time(xs_t, *time_sharding)
    px = cell.project(params, xs_t)
    a, b = cell.linear.coefficients(params, px)  # (t, b, n), float32 or wider
    if valid is not None:
        ok = expand(valid, a)
        a = jnp.where(ok, a, jnp.ones_like(a))  # padding leaves the state as it is
        b = jnp.where(ok, b, jnp.zeros_like(b))
    if resets is not None:  # h_t = a_t h_0 + b_t where step t starts from the initial state
        rs = expand(resets, a)
        b = jnp.where(rs, a * carry.astype(a.dtype)[None] + b, b)
        a = jnp.where(rs, jnp.zeros_like(a), a)
    # Fold the initial state into the first step read (the last one when reversed).
    first = -1 if reverse else 0  # -1, not t - 1: the time axis may be symbolic (jax.export)
    b = b.at[first].set(a[first] * carry.astype(a.dtype) + b[first])

    if method == "pallas":
        _check_pallas_dtype(a)
    if time_sharding is None:
        states = linear_scan(a, b, reverse=reverse, method=method)
    else:
        states = sharded_linear_scan(a, b, *time_sharding, reverse=reverse)
    states = states.astype(carry.dtype)
    ys = cell.linear.readout(params, states, px)
    if valid is not None:
        ys = jnp.where(expand(valid, ys), ys, jnp.zeros_like(ys))
    if time_sharding is not None:  # the outputs stay where they were computed
        ys = place_over_time(ys, *time_sharding)
    final = states[0] if reverse else states[-1]
    return final, ys


def _check_pallas_dtype(a: Array) -> None:
    from jaxrnn.pallas import DTYPES  # imports Pallas only when asked for

    if str(a.dtype) not in DTYPES:
        fail(
            "strategy",
            "a scan_method other than 'pallas' for a recurrence in "
            f"{a.dtype} (the kernel takes {', '.join(DTYPES)})",
            said("scan_method='pallas'"),
            TypeError,
        )


def _check_xs(
    xs: Any, input_size: int, dtype, time_major: bool, spatial: int = 0, compute_dtype=None
) -> Array:
    """``xs`` as an array of rank 2 or more (plus the ``spatial`` axes of image cells) with
    ``input_size`` features, cast to the dtype the cell reads (`check_input_dtype`)."""
    step = ", ".join(["*spatial"] * bool(spatial) + [str(input_size)])
    layout = "(time, *batch, %s)" if time_major else "(*batch, time, %s)"
    expected = f"an array of shape {layout % step} or (time, {step})"
    if not hasattr(xs, "ndim"):
        try:
            xs = jnp.asarray(xs)
        except (TypeError, ValueError):
            fail("xs", expected, xs, TypeError)
    if xs.ndim < 2 + spatial or xs.shape[-1] != input_size:
        fail(
            "xs",
            expected + f" for params built with input_size={input_size}",
            said(f"shape {tuple(xs.shape)}"),
        )
    target = check_input_dtype("xs", xs.dtype, dtype, compute_dtype)
    return jnp.asarray(xs).astype(target)


def _check_initial_carry(cell: Cell, params: Params, initial_carry, batch_shape) -> Carry:
    expected = cell.initial_carry(params, batch_shape)
    if initial_carry is None:
        return expected
    source = f"{cell!r}.initial_carry(params, batch_shape={tuple(batch_shape)})"
    return check_tree("initial_carry", initial_carry, expected, source=source)


def check_seq_lengths(seq_lengths: Any, batch_shape: tuple[int, ...], num_steps: int):
    """Deprecated: `jaxrnn.checks.check_lengths` with the name ``"seq_lengths"``.

    Examples:
      >>> import warnings, jax.numpy as jnp
      >>> from jaxrnn.scan import check_seq_lengths
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore")
      ...     check_seq_lengths(jnp.array([3, 1]), batch_shape=(2,), num_steps=3)
      Array([3, 1], dtype=int32)
    """
    warnings.warn(
        "jaxrnn.scan.check_seq_lengths is deprecated: use "
        "jaxrnn.checks.check_lengths('seq_lengths', ...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return check_lengths("seq_lengths", seq_lengths, tuple(batch_shape), num_steps)


def check_unroll_options(
    unroll: Any, mode: Any, remat: Any, reverse: Any, time_major: Any, time_sharding: Any = None
) -> None:
    """Deprecated: make a `jaxrnn.Strategy`, which checks its options when it is made.

    Examples:
      >>> import warnings
      >>> from jaxrnn.scan import check_unroll_options
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore")
      ...     check_unroll_options(1, "parallel", None, False, False)
    """
    warnings.warn(
        "jaxrnn.scan.check_unroll_options is deprecated: make a jaxrnn.Strategy, which checks "
        "its options",
        DeprecationWarning,
        stacklevel=2,
    )
    check_flag("reverse", reverse)
    check_flag("time_major", time_major)
    Strategy(mode=mode, unroll=unroll, remat=remat, time_sharding=time_sharding)


__all__ = (
    "check_runs",
    "linear_scan",
    "unroll",
    "valid_steps",
)
