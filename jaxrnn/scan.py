"""Turning a step into a sequence: `lax.scan`, lengths and masking, reverse, time-major."""

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxrnn.cells.base import Cell
from jaxrnn.checks import check_at_run_time
from jaxrnn.checks import is_concrete
from jaxrnn.portable import is_portable
from jaxrnn.portable import scan
from jaxrnn.time_sharding import check_time_sharding
from jaxrnn.time_sharding import place_over_time
from jaxrnn.time_sharding import sharded_linear_scan
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
    unroll: int = 1,
    mode: str = "sequential",
    remat: int | None = None,
    fused: bool = True,
    time_sharding: tuple[Mesh, str] | None = None,
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
      seq_lengths: ``(b,)`` (the batch axes) integer valid lengths in ``[0, t]`` (``()`` for
        unbatched ``xs``);
        None means every sequence is ``t`` long.
      mask: a general mask, bool ``(b, t)`` (``(t, b)`` if time-major, ``(t,)`` unbatched),
        True on the steps to run: a False step leaves the carry unchanged, outputs zero, and
        its input never reaches the arithmetic, wherever it is (Keras masks with holes).
        With ``reverse=True`` the True steps are read from last to first. Combined with
        ``seq_lengths`` (both must hold); ``seq_lengths`` is the faster common case.
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
      unroll: passed to `jax.lax.scan`: how many steps one loop iteration runs.
      mode: ``"sequential"`` (a `jax.lax.scan` of the step, for every cell) or
        ``"parallel"`` (for cells whose recurrence is linear: `jaxrnn.mingru`,
        `jaxrnn.minlstm`, `jaxrnn.lru`, `jaxrnn.rg_lru`): the gates of all steps are computed
        at once, then the recurrence runs over them with `linear_scan` (an associative scan
        on GPU/TPU, a minimal loop on CPU). Both modes give the same numbers up to float
        rounding; the parallel one accumulates in float32 or wider.
      remat: checkpoint the scan in segments of this many steps (sequential mode): the
        backward pass keeps only the carries between segments and recomputes each segment,
        so memory grows like ``t / remat + remat`` steps instead of ``t``. ``remat ≈ sqrt(t)``
        is the usual choice for very long sequences. The input projection is then done per
        segment, too.
      fused: use the cell's hand-written sequence backward pass when it has one (LSTM, GRU:
        faster training, identical numbers); False differentiates the scan with JAX autodiff.
      time_sharding: ``(mesh, axis name)``: split the time axis over that mesh axis, each
        device holding ``t / devices`` steps (`jaxrnn.time_sharding`; ``mode="parallel"``
        only, as only a linear recurrence can be cut into blocks). Same values and
        gradients as on one device, up to rounding.

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
    _check_cell(cell)
    input_size = cell.check_params(params)
    dtype = jax.tree.leaves(params)[0].dtype
    spatial = cell.input_axes - 1  # axes of one step's input besides the features
    xs = _check_xs(xs, input_size, dtype, time_major, spatial)
    check_unroll_options(unroll, mode, remat, reverse, time_major, time_sharding)
    batch_rank = xs.ndim - 2 - spatial
    if batch_rank > 1:
        options = dict(
            reverse=reverse,
            unroll=unroll,
            mode=mode,
            remat=remat,
            fused=fused,
            time_sharding=time_sharding,
        )
        return _unroll_many_batch_axes(
            cell, params, xs, initial_carry, seq_lengths, mask, resets, time_major, options
        )
    xs_t = xs if (time_major or batch_rank == 0) else jnp.swapaxes(xs, 0, 1)
    num_steps, batch_shape = xs_t.shape[0], xs_t.shape[1 : 1 + batch_rank]
    steps_shape = xs_t.shape[: 1 + batch_rank]  # (t, *batch): one entry per step and sequence
    lengths = check_seq_lengths(seq_lengths, batch_shape, num_steps)
    carry = _check_initial_carry(cell, params, initial_carry, xs_t.shape[1:-1])
    valid = None if lengths is None else valid_steps(lengths, num_steps)
    starts = None
    if resets is not None:
        starts = _scan_order_resets(
            _check_mask(resets, steps_shape, time_major or batch_rank == 0, "resets"),
            valid,
            reverse,
        )
    if mask is not None:
        steps = _check_mask(mask, steps_shape, time_major or batch_rank == 0)
        valid = steps if valid is None else valid & steps
    if spatial:  # every position of an image shares its sequence's steps
        over_space = lambda m: jnp.broadcast_to(
            m.reshape(m.shape + (1,) * spatial), xs_t.shape[:-1]
        )
        valid = None if valid is None else over_space(valid)
        starts = None if starts is None else over_space(starts)
    if valid is not None:
        # Padding must never reach the arithmetic: a NaN or inf there would leave the outputs
        # clean (they are masked) but make the gradients NaN (0 * nan in the backward pass).
        xs_t = jnp.where(valid[..., None], xs_t, jnp.zeros((), xs_t.dtype))

    if num_steps == 0:
        ys = _no_outputs(cell, params, carry, xs_t)
    elif mode == "parallel":
        carry, ys = _parallel(cell, params, xs_t, carry, valid, reverse, starts, time_sharding)
    elif remat is not None:
        carry, ys = _segmented(cell, params, xs_t, carry, valid, reverse, unroll, remat, starts)
    elif fused and cell.fused is not None and unroll == 1:
        if starts is None:
            carry, ys = cell.fused(params, xs_t, carry, valid, reverse)
        else:
            carry, ys = cell.fused(params, xs_t, carry, valid, reverse, resets=starts)
    else:
        px = cell.project(params, xs_t)  # (t, b, g): one matmul for all steps
        carry, ys = _scan(cell, params, px, carry, valid, reverse, unroll, starts)

    if not time_major and batch_rank == 1:
        ys = jnp.swapaxes(ys, 0, 1)
    return carry, ys


def valid_steps(lengths: Array, num_steps: int) -> Array:
    """``(t, *batch)`` bool: True where step ``t`` of a sequence is within its length.

    Examples:
      >>> from jaxrnn.scan import valid_steps
      >>> import jax.numpy as jnp
      >>> valid_steps(jnp.array([2, 0]), 3).tolist()
      [[True, False], [True, False], [False, False]]
    """
    steps = jnp.arange(num_steps, dtype=lengths.dtype).reshape((num_steps,) + (1,) * lengths.ndim)
    return steps < lengths[None]


def _no_outputs(cell, params, carry, xs_t):
    """The empty ``(0, *batch, h)`` outputs of a sequence with no steps."""
    x = jax.ShapeDtypeStruct(xs_t.shape[1:], xs_t.dtype)
    y = jax.eval_shape(cell.step, params, carry, x)[1]
    return jnp.zeros((0, *y.shape), y.dtype)


def _scan_order_resets(starts: Array, valid: Array | None, reverse: bool) -> Array:
    """The steps before which the carry goes back to the initial one, in the order the scan
    reads them: the document starts, or, reading backwards, the documents' last steps (the
    step before each start). ``valid`` (the lengths' mask or None) drops resets in padding."""
    if valid is not None:
        starts = starts & valid
    if not reverse:
        return starts
    ends = jnp.concatenate([starts[1:], jnp.zeros_like(starts[:1])], axis=0)
    return ends if valid is None else ends & valid


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
            lambda new, old: jnp.where(_expand(ok, new), new, old), new_carry, carry
        )
        return new_carry, jnp.where(_expand(ok, y), y, jnp.zeros_like(y))

    return scan(masked_body, carry, (px, valid), reverse=reverse, unroll=unroll)


def _scan_with_resets(cell, params, px, carry, valid, reverse, unroll, resets, initial):
    """`_scan` where ``resets`` marks the steps that start from ``initial`` (packed rows)."""
    if valid is None:
        valid = jnp.ones(resets.shape, bool)

    def body(carry, inputs):
        px_t, ok, rs = inputs
        carry = jax.tree.map(lambda c0, c: jnp.where(_expand(rs, c), c0, c), initial, carry)
        new_carry, y = cell.step_projected(params, carry, px_t)
        new_carry = jax.tree.map(
            lambda new, old: jnp.where(_expand(ok, new), new, old), new_carry, carry
        )
        return new_carry, jnp.where(_expand(ok, y), y, jnp.zeros_like(y))

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


def _parallel(cell, params, xs_t, carry, valid, reverse, resets=None, time_sharding=None):
    """All steps of a linear recurrence ``h_t = a_t h_{t-1} + b_t`` by `linear_scan`, or by
    `time_sharding.sharded_linear_scan` over a mesh axis."""
    if cell.linear is None:
        raise ValueError(
            f"mode='parallel' needs a cell whose recurrence is linear in its carry "
            f"(jaxrnn.mingru, jaxrnn.minlstm, jaxrnn.lru, jaxrnn.rg_lru); {cell!r} has gates "
            "that read h_{t-1}, so use mode='sequential'"
        )
    if time_sharding is not None:  # the projection and gates are computed where they live
        xs_t = place_over_time(xs_t, *time_sharding)
    px = cell.project(params, xs_t)
    a, b = cell.linear.coefficients(params, px)  # (t, b, n), float32 or wider
    if valid is not None:
        ok = _expand(valid, a)
        a = jnp.where(ok, a, jnp.ones_like(a))  # padding leaves the state as it is
        b = jnp.where(ok, b, jnp.zeros_like(b))
    if resets is not None:  # h_t = a_t h_0 + b_t where step t starts from the initial state
        rs = _expand(resets, a)
        b = jnp.where(rs, a * carry.astype(a.dtype)[None] + b, b)
        a = jnp.where(rs, jnp.zeros_like(a), a)
    # Fold the initial state into the first step read (the last one when reversed).
    first = a.shape[0] - 1 if reverse else 0
    b = b.at[first].set(a[first] * carry.astype(a.dtype) + b[first])

    if time_sharding is None:
        states = linear_scan(a, b, reverse=reverse)
    else:
        states = sharded_linear_scan(a, b, *time_sharding, reverse=reverse)
    states = states.astype(carry.dtype)
    ys = cell.linear.readout(params, states, px)
    if valid is not None:
        ys = jnp.where(_expand(valid, ys), ys, jnp.zeros_like(ys))
    if time_sharding is not None:  # the outputs stay where they were computed
        ys = place_over_time(ys, *time_sharding)
    final = states[0] if reverse else states[-1]
    return final, ys


def linear_scan(a: Array, b: Array, *, reverse: bool = False, method: str | None = None) -> Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` from ``h_{-1} = 0``.

    Two algorithms, the same numbers up to rounding:

    - ``"associative"``: `jax.lax.associative_scan`, ``log t`` levels of work over the whole
      array; the fast choice where there are thousands of parallel lanes (GPU, TPU).
    - ``"loop"``: a `jax.lax.scan` over the precomputed coefficients with a hand-written
      backward pass (the reverse recurrence ``g_t = dh_t + a_{t+1} g_{t+1}``) that stores
      nothing but the states. Every sweep of the associative scan reads and writes the whole
      array, and on a CPU memory bandwidth, not arithmetic, is the limit: one sweep is the
      minimum (see ``benchmarks/README.md``).

    The default is ``"loop"`` on CPU and ``"associative"`` elsewhere.

    Args:
      a: ``(t, ...)`` multipliers.
      b: ``(t, ...)`` inputs, same shape and dtype.
      reverse: run from the last step to the first.
      method: ``"loop"``, ``"associative"`` or None (by backend).

    Returns:
      ``(t, ...)`` states ``h_t``.

    Examples:
      >>> from jaxrnn.scan import linear_scan
      >>> import jax.numpy as jnp
      >>> linear_scan(jnp.full(4, 0.5), jnp.ones(4))
      Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
    """
    if method is None:
        method = "loop" if jax.default_backend() == "cpu" else "associative"
    if method == "loop":
        return _linear_loop(a, b, reverse)
    if method != "associative":
        raise ValueError(f"method must be 'loop', 'associative' or None, got {method!r}")

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a2 * a1, a2 * b1 + b2

    return jax.lax.associative_scan(combine, (a, b), reverse=reverse, axis=0)[1]


def _loop_states(a, b, reverse):
    def body(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    return scan(body, jnp.zeros_like(b[0]), (a, b), reverse=reverse)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _linear_loop(a, b, reverse):
    return _loop_states(a, b, reverse)


def _linear_loop_fwd(a, b, reverse):
    states = _loop_states(a, b, reverse)
    return states, (a, states)


def _linear_loop_bwd(reverse, residuals, d_states):
    a, states = residuals
    # g_t = dh_t + a_{t+1} g_{t+1}: the same recurrence, run the other way.
    if reverse:
        a_next = jnp.concatenate([jnp.zeros_like(a[:1]), a[:-1]], axis=0)
        previous = jnp.concatenate([states[1:], jnp.zeros_like(states[:1])], axis=0)
    else:
        a_next = jnp.concatenate([a[1:], jnp.zeros_like(a[:1])], axis=0)
        previous = jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]], axis=0)
    g = _loop_states(a_next, d_states, not reverse)
    return g * previous, g


_linear_loop.defvjp(_linear_loop_fwd, _linear_loop_bwd)


def _expand(mask: Array, like: Array) -> Array:
    """``mask`` of the batch shape, with trailing unit axes to broadcast against ``like``."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _check_cell(cell: Any) -> None:
    if not isinstance(cell, Cell):
        raise TypeError(
            "cell must be a jaxrnn.Cell such as jaxrnn.lstm(hidden_size=128), got "
            f"{type(cell).__name__}; for a stacked or bidirectional layer call layer.apply"
        )


def _check_mask(
    mask: Any, time_major_shape: tuple[int, ...], time_major: bool, name: str = "mask"
) -> Array:
    """``mask`` (or ``resets``) as a bool ``(t, *batch)`` array, checked against the inputs'
    shape."""
    mask = jnp.asarray(mask)
    t, batch = time_major_shape[0], time_major_shape[1:]
    expected = (t, *batch) if time_major else (*batch, t)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{name} must be a bool array of shape {expected}, got dtype {mask.dtype}")
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"{name} must have shape {expected} (one entry per step of each sequence, "
            f"{'time-major' if time_major else 'batch-major'}), got {tuple(mask.shape)}; "
            "nothing is broadcast silently"
        )
    return mask if time_major else jnp.moveaxis(mask, -1, 0)


def _unroll_many_batch_axes(
    cell, params, xs, initial_carry, seq_lengths, mask, resets, time_major, options
):
    """`unroll` over ``xs (*batch, t, i)`` (or ``(t, *batch, i)``) with several batch axes: the
    batch axes are flattened into one, unrolled, and restored (no vmap, one scan)."""
    rank = xs.ndim - 1 - cell.input_axes  # batch axes
    batch = xs.shape[1 : 1 + rank] if time_major else xs.shape[:rank]
    size = math.prod(batch)
    flat_xs = xs.reshape(
        (xs.shape[0], size, *xs.shape[1 + rank :]) if time_major else (size, *xs.shape[rank:])
    )
    lengths = None
    if seq_lengths is not None:
        lengths = jnp.asarray(seq_lengths)
        if lengths.shape != batch:
            raise ValueError(
                f"seq_lengths must have shape {batch} (the batch axes of xs {tuple(xs.shape)}), "
                f"got {tuple(lengths.shape)}"
            )
        lengths = lengths.reshape(size)
    carry = None
    if initial_carry is not None:
        for leaf in jax.tree.leaves(initial_carry):
            if tuple(leaf.shape[: len(batch)]) != batch:
                raise ValueError(
                    f"initial_carry leaves must start with the batch axes {batch} of xs, got a "
                    f"leaf of shape {tuple(leaf.shape)}"
                )
        carry = jax.tree.map(lambda c: c.reshape((size, *c.shape[len(batch) :])), initial_carry)
    want = (xs.shape[0], *batch) if time_major else (*batch, xs.shape[rank])

    def flat_steps(name, steps):
        if steps is None:
            return None
        steps = jnp.asarray(steps)
        if tuple(steps.shape) != want:
            raise ValueError(f"{name} must have shape {want}, got {tuple(steps.shape)}")
        return steps.reshape((want[0], size) if time_major else (size, want[-1]))

    final, ys = unroll(
        cell,
        params,
        flat_xs,
        initial_carry=carry,
        seq_lengths=lengths,
        mask=flat_steps("mask", mask),
        resets=flat_steps("resets", resets),
        time_major=time_major,
        **options,
    )
    final = jax.tree.map(lambda c: c.reshape((*batch, *c.shape[1:])), final)
    if time_major:
        return final, ys.reshape((ys.shape[0], *batch, *ys.shape[2:]))
    return final, ys.reshape((*batch, *ys.shape[1:]))


def _check_xs(xs: Any, input_size: int, dtype, time_major: bool, spatial: int = 0) -> Array:
    """``xs`` as an array of rank 2 or more (plus the ``spatial`` axes of image cells) with
    ``input_size`` features and the params' dtype."""
    if not hasattr(xs, "ndim"):
        xs = jnp.asarray(xs)
    step = ", ".join(["*spatial"] * bool(spatial) + [str(input_size)])
    layout = "(time, *batch, %s)" if time_major else "(*batch, time, %s)"
    expected = f"{layout % step} or (time, {step})"
    if xs.ndim < 2 + spatial:
        raise ValueError(
            f"xs must have rank {2 + spatial} or more, shape {expected}, got rank {xs.ndim} "
            f"with shape {xs.shape}"
        )
    if xs.shape[-1] != input_size:
        raise ValueError(
            f"xs must have shape {expected} for params built with input_size={input_size}, "
            f"got {tuple(xs.shape)}"
        )
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise TypeError(f"xs must be a floating-point array of dtype {dtype}, got {xs.dtype}")
    if xs.dtype != dtype:
        raise TypeError(
            f"xs has dtype {xs.dtype} but params are {dtype}; cast one of them explicitly "
            f"(e.g. xs.astype(jnp.{dtype}))"
        )
    return jnp.asarray(xs)


def check_seq_lengths(seq_lengths: Any, batch_shape: tuple[int, ...], num_steps: int):
    """Validates ``seq_lengths`` against the batch shape and time axis; returns an array or None.

    Shapes and dtype are checked at trace time. Values are checked eagerly when concrete, and
    under `jax.jit` by a host callback that raises when a length is negative or too long.

    Args:
      seq_lengths: ``(b,)`` integers, or None.
      batch_shape: the batch shape of ``xs``: ``(b,)``, or ``()`` for one sequence.
      num_steps: ``t``, the length of the time axis.

    Returns:
      ``seq_lengths`` as a ``(b,)`` integer array, or None.

    Examples:
      >>> from jaxrnn.scan import check_seq_lengths
      >>> import jax.numpy as jnp
      >>> check_seq_lengths(jnp.array([3, 1]), batch_shape=(2,), num_steps=3)
      Array([3, 1], dtype=int32)
    """
    if seq_lengths is None:
        return None
    if not hasattr(seq_lengths, "dtype"):
        seq_lengths = np.asarray(seq_lengths)
    if tuple(seq_lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"seq_lengths must have shape {tuple(batch_shape)} (one length per sequence of xs), "
            f"got {tuple(seq_lengths.shape)}"
        )
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise TypeError(f"seq_lengths must be an integer array, got dtype {seq_lengths.dtype}")
    seq_lengths = jnp.asarray(seq_lengths)
    if not is_portable():  # an artifact cannot check at run time (and ONNX has no initial=)
        check_at_run_time(
            functools.partial(_raise_bad_lengths, num_steps=num_steps),
            jnp.min(seq_lengths, initial=num_steps),
            jnp.max(seq_lengths, initial=0),
        )
    elif is_concrete(seq_lengths):
        lengths = np.asarray(seq_lengths)
        _raise_bad_lengths(lengths.min(initial=num_steps), lengths.max(initial=0), num_steps)
    return seq_lengths


def _raise_bad_lengths(low, high, num_steps: int) -> None:
    if low < 0 or high > num_steps:
        raise ValueError(
            f"seq_lengths must lie in [0, {num_steps}] (the time axis of xs), got values from "
            f"{int(low)} to {int(high)}"
        )


def check_unroll_options(
    unroll: Any, mode: Any, remat: Any, reverse: Any, time_major: Any, time_sharding: Any = None
) -> None:
    """Raises for a value of `unroll`'s options that it cannot run, naming the option.

    Examples:
      >>> from jaxrnn.scan import check_unroll_options
      >>> check_unroll_options(1, "parallel", None, False, False)
    """
    if time_sharding is not None:
        check_time_sharding(time_sharding)
        if mode != "parallel":
            raise ValueError(
                "time_sharding needs mode='parallel' (a linear cell: jaxrnn.mingru, "
                "jaxrnn.minlstm, jaxrnn.lru, jaxrnn.rg_lru). A sequential scan cannot be cut "
                "into blocks that run at once; for an LSTM or GRU shard the batch instead "
                "(jaxrnn.distributed)"
            )
    for name, flag in (("reverse", reverse), ("time_major", time_major)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if mode not in ("sequential", "parallel"):
        raise ValueError(f"mode must be 'sequential' or 'parallel', got {mode!r}")
    if unroll is not True and (
        isinstance(unroll, bool) or not isinstance(unroll, (int, np.integer)) or unroll < 1
    ):
        raise ValueError(
            f"unroll must be a positive int (steps per loop iteration of the scan), got {unroll!r}"
        )
    if remat is not None:
        if mode == "parallel":
            raise ValueError(
                "remat applies to mode='sequential'; the parallel scan keeps no "
                "per-step residuals of the recurrence to checkpoint"
            )
        if isinstance(remat, bool) or not isinstance(remat, (int, np.integer)) or remat < 1:
            raise ValueError(f"remat must be a positive int (steps per segment), got {remat!r}")


def _check_initial_carry(cell: Cell, params: Params, initial_carry, batch_shape) -> Carry:
    expected = cell.initial_carry(params, batch_shape)
    if initial_carry is None:
        return expected
    want = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), expected)
    try:
        got = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), initial_carry
        )
    except TypeError as error:
        raise TypeError(f"initial_carry must be a pytree of arrays, got {error}") from None
    if jax.tree.structure(got) != jax.tree.structure(want) or jax.tree.leaves(got) != (
        jax.tree.leaves(want)
    ):
        raise ValueError(
            f"initial_carry must match {cell!r}.initial_carry(params, batch_shape="
            f"{tuple(batch_shape)}): expected {_describe(want)}, got {_describe(got)}"
        )
    return initial_carry


def _describe(tree) -> str:
    """``LSTMCarry(h=(2, 8) float32, c=...)``-style summary of a tree of shapes."""
    text = str(jax.tree.map(lambda s: f"{tuple(s.shape)} {s.dtype}", tree))
    return text.replace("'", "")
