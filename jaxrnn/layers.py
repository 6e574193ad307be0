"""Composing unrolled cells: layers, stacks, bidirectional, dropout, and the two output heads.

A `Layer` is to a whole sequence what a `Cell` is to one step: a NamedTuple of pure functions
over plain pytrees. `rnn` turns a cell into a layer; `stacked` and `bidirectional` take cells
or layers (so they nest: a stack of bidirectional layers, a bidirectional pair of stacks).
"""

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple
from typing import Protocol

import jax
import jax.numpy as jnp

from jaxrnn import steps as steps_
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import hidden_state
from jaxrnn.cells.base import replace_step
from jaxrnn.cells.base import wider
from jaxrnn.cells.base import with_compute_dtype
from jaxrnn.cells.base import with_hidden_state
from jaxrnn.checks import check_axes
from jaxrnn.checks import check_choice
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_key
from jaxrnn.checks import check_probability
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.scan import check_runs
from jaxrnn.scan import unroll
from jaxrnn.strategy import Strategy
from jaxrnn.strategy import resolve
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


class ApplyFn(Protocol):
    """The signature every layer's ``apply`` has (`rnn`, `stacked`, `bidirectional`), named
    once: ``(params, xs (b, t, i), ...) -> (final_carry, ys (b, t, output_size))``, or
    ``(t, b, ...)`` for both with ``time_major=True``."""

    def __call__(
        self,
        params: Params,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        mask: Array | None = None,
        resets: Array | None = None,
        initial_carry: Carry | None = None,
        reverse: bool = False,
        time_major: bool = False,
        dropout_key: PRNGKey | None = None,
    ) -> tuple[Carry, Array]: ...


class Layer(NamedTuple):
    """A recurrent layer over whole sequences.

    Attributes:
      init: ``init(key, input_size, *, dtype=jnp.float32) -> params``.
      initial_carry: ``initial_carry(params, batch_shape=()) -> carry``.
      apply: ``apply(params, xs, *, seq_lengths=None, mask=None, resets=None,
        initial_carry=None, reverse=False, time_major=False, dropout_key=None) ->
        (final_carry, ys)`` with ``xs`` ``(b, t, i)``
        and ``ys`` ``(b, t, output_size)``, following the conventions of `jaxrnn.unroll`.
        Dropout is applied only when ``dropout_key`` is given (training); without it the
        layer is deterministic (evaluation).
      output_size: the size of the last axis of ``ys`` (a pair of sizes for a bidirectional
        layer with ``merge=None``, whose ``ys`` is a pair).
      name: a short description, e.g. ``"stacked(lstm(64), lstm(64))"``.
      uses_dropout: whether ``apply`` draws anything from a ``dropout_key`` (a layer
        without dropout ignores the key).
    """

    init: Callable[..., Params]
    initial_carry: Callable[..., Carry]
    apply: ApplyFn
    output_size: int | tuple[int, int]
    name: str
    uses_dropout: bool = False

    def __repr__(self) -> str:
        return f"jaxrnn.{self.name}"


class BidirectionalCarry(NamedTuple):
    """Final carries of the two directions of a `bidirectional` layer."""

    forward: Carry  # after the last valid step, reading left to right
    backward: Carry  # after position 0, reading right to left


def rnn(
    cell: Cell,
    *,
    reverse: bool = False,
    recurrent_dropout: float = 0.0,
    strategy: Strategy | None = None,
    **deprecated: Any,
) -> Layer:
    """A layer that unrolls ``cell`` over the sequence: `jaxrnn.unroll` with fixed options.

    Args:
      cell: a `Cell`.
      reverse: read sequences backwards (only the valid prefix, as in `jaxrnn.unroll`).
      recurrent_dropout: drop probability in ``[0, 1)`` for the hidden state where the step
        reads it (`with_recurrent_dropout`): when ``apply`` gets a ``dropout_key``, one mask is
        drawn per sequence and used at every step (Gal & Ghahramani 2016; Keras
        ``recurrent_dropout=``). Such a layer runs the plain scan (the fused passes do not
        know the mask) while it drops, and cannot run ``mode="parallel"``.
      strategy: how `jaxrnn.unroll` runs the cell (`jaxrnn.Strategy`), passed on untouched.
      **deprecated: the fields of `jaxrnn.Strategy` as keywords, as before 0.1.1.

    Returns:
      A `Layer` with ``output_size == cell.hidden_size``; its params are the cell's params.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> layer = jaxrnn.rnn(jaxrnn.gru(8), recurrent_dropout=0.25)
      >>> params = layer.init(jax.random.key(0), input_size=3)
      >>> carry, ys = layer.apply(params, jnp.ones((2, 5, 3)))
      >>> ys.shape
      (2, 5, 8)
      >>> _, dropped = layer.apply(params, jnp.ones((2, 5, 3)), dropout_key=jax.random.key(1))
      >>> bool(jnp.any(dropped != ys))
      True
    """
    if not isinstance(cell, Cell):
        fail("cell", "a jaxrnn.Cell such as jaxrnn.lstm(128)", cell, TypeError)
    layer_reverse = check_flag("reverse", reverse)
    check_probability("recurrent_dropout", recurrent_dropout)
    strategy = resolve(strategy, deprecated, "rnn")
    check_runs(cell, strategy)
    if recurrent_dropout > 0 and cell.parallel_form is not None:
        _no_recurrent_dropout(cell, recurrent_dropout, "its gates read only x_t and it has")
    if recurrent_dropout > 0 and strategy.mode != "sequential":
        fail(
            "recurrent_dropout",
            f"0 with mode={strategy.mode!r} (the parallel forms cannot apply a mask where the "
            "step reads the hidden state)",
            recurrent_dropout,
        )

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
        run = cell
        if dropout_key is not None:
            check_key("dropout_key", dropout_key)
            if recurrent_dropout > 0:
                keep = _recurrent_mask(cell, params, xs, time_major, dropout_key, recurrent_dropout)
                run = with_recurrent_dropout(cell, keep)
        return unroll(
            run,
            params,
            xs,
            initial_carry=initial_carry,
            seq_lengths=seq_lengths,
            mask=mask,
            resets=resets,
            reverse=check_flag("reverse", reverse) != layer_reverse,
            time_major=time_major,
            strategy=strategy,
        )

    extras = [
        ("reverse=True", reverse),
        (f"recurrent_dropout={recurrent_dropout}", recurrent_dropout),
        (f"strategy={strategy}", strategy != Strategy()),
    ]
    name = f"rnn({', '.join([f'{cell.name}({cell.hidden_size})'] + [t for t, on in extras if on])})"
    return Layer(
        init=cell.init,
        initial_carry=cell.initial_carry,
        apply=apply,
        output_size=cell.hidden_size,
        name=name,
        uses_dropout=recurrent_dropout > 0,
    )


def _recurrent_mask(cell: Cell, params: Params, xs: Array, time_major: bool, key, rate) -> Array:
    """One inverted-dropout mask per sequence, the shape of the hidden state that ``cell``
    carries for ``xs`` (batch axes, and the spatial axes of image cells)."""
    xs = jnp.asarray(xs)
    spatial = cell.input_axes - 1
    time_axis = 0 if time_major or xs.ndim == 2 + spatial else xs.ndim - 2 - spatial
    carry_batch = tuple(n for axis, n in enumerate(xs.shape[:-1]) if axis != time_axis)
    rank = len(carry_batch) - spatial
    batch, space = carry_batch[:rank], carry_batch[rank:]
    if len(batch) > 1:  # `unroll` runs several batch axes as one
        carry_batch = (math.prod(batch), *space)
    carry = jax.eval_shape(lambda: cell.initial_carry(params, carry_batch))
    hidden = hidden_state(carry)
    if not isinstance(hidden, jax.ShapeDtypeStruct) or hidden.shape != (
        *carry_batch,
        cell.hidden_size,
    ):
        _no_recurrent_dropout(cell, rate, f"its carry {_carry_shapes(carry)} has")
    keep = jax.random.bernoulli(key, 1.0 - rate, hidden.shape)
    return keep.astype(hidden.dtype) / (1.0 - rate)


def _no_recurrent_dropout(cell: Cell, rate: float, why: str) -> None:
    """The one refusal of ``recurrent_dropout`` for a cell with no ``h`` to drop."""
    fail(
        "recurrent_dropout",
        f"0 for {cell!r}: {why} no hidden state h of shape (..., {cell.hidden_size}) that its "
        "gates read (recurrent dropout masks h_{t-1} where the step reads it; use dropout "
        "between layers, jaxrnn.stacked(..., dropout=), instead)",
        rate,
    )


def _carry_shapes(carry: Any) -> str:
    shapes = [tuple(leaf.shape) for leaf in jax.tree.leaves(carry)]
    return str(shapes[0] if len(shapes) == 1 else shapes)


def as_layer(model: Cell | Layer, **rnn_options: Any) -> Layer:
    """``model`` as a `Layer`: a cell becomes ``rnn(cell, **rnn_options)``, a layer stays as
    it is (its options were fixed when it was built).

    Examples:
      >>> import jaxrnn
      >>> jaxrnn.as_layer(jaxrnn.lstm(4)).output_size
      4
      >>> jaxrnn.as_layer(jaxrnn.lstm(4), recurrent_dropout=0.1).uses_dropout
      True
    """
    return _as_layer(model, "model", **rnn_options)


def in_compute_dtype(model: Any, compute_dtype: Any, name: str = "compute_dtype") -> Any:
    """``model`` computing in ``compute_dtype``: a cell is made again with it
    (`jaxrnn.cells.base.with_compute_dtype`); None leaves ``model`` as it is; a layer was
    built from its cells already and is refused, naming ``name``.

    Examples:
      >>> import jax.numpy as jnp, jaxrnn
      >>> from jaxrnn.layers import in_compute_dtype
      >>> in_compute_dtype(jaxrnn.lstm(4), jnp.bfloat16)
      jaxrnn.lstm(hidden_size=4, compute_dtype=bfloat16)
    """
    if compute_dtype is None or not isinstance(model, (Cell, Layer)):
        return model  # `_as_layer` names anything else
    if isinstance(model, Layer):
        fail(
            name,
            "None for a layer given whole (its cells are fixed; make them with compute_dtype=)",
            said(str(compute_dtype)),
            TypeError,
        )
    return with_compute_dtype(model, compute_dtype, name)


def _as_layer(model: Any, name: str, **rnn_options: Any) -> Layer:
    """`as_layer` with the argument's name for the error."""
    if isinstance(model, Layer):
        return model
    if isinstance(model, Cell):
        return rnn(model, **rnn_options)
    fail(name, "a jaxrnn.Cell or jaxrnn.Layer such as jaxrnn.lstm(128)", model, TypeError)


def stacked(
    layers: Sequence[Cell | Layer],
    *,
    dropout: float = 0.0,
    variational: bool = False,
    strategy: Strategy | None = None,
) -> Layer:
    """A deep RNN: each layer reads the outputs of the one below.

    Dropout with rate ``dropout`` is applied to the outputs *between* layers (not after the
    last), only when ``apply`` is given a ``dropout_key``.

    Args:
      layers: cells or layers, bottom first.
      dropout: drop probability in ``[0, 1)`` between layers.
      variational: one dropout mask per sequence for all time steps (Gal & Ghahramani 2016;
        Keras ``dropout=`` on an RNN) instead of a fresh one at every position.
      strategy: how the entries given as cells are run (`jaxrnn.Strategy`); a layer keeps
        the strategy it was built with.

    Returns:
      A `Layer`; params and carries are tuples with one entry per layer.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> deep = jaxrnn.stacked([jaxrnn.lstm(16), jaxrnn.lstm(8)], dropout=0.2)
      >>> params = deep.init(jax.random.key(0), input_size=3)
      >>> carries, ys = deep.apply(params, jnp.ones((2, 5, 3)), dropout_key=jax.random.key(1))
      >>> ys.shape, len(carries)
      ((2, 5, 8), 2)
    """
    if not isinstance(layers, (list, tuple)):
        fail("layers", "a list of cells or layers, bottom first", layers, TypeError)
    if not layers:
        fail("layers", "a list of at least one cell or layer", said("an empty list"))
    layers = tuple(
        _as_layer(layer, f"layers[{n}]", strategy=strategy) for n, layer in enumerate(layers)
    )
    for n, layer in enumerate(layers[:-1]):
        if not isinstance(layer.output_size, int):
            raise ValueError(
                f"layers[{n}] ({layer!r}) returns two unmerged outputs (merge=None), which the "
                "layer above cannot read; only the last layer of a stack may leave them unmerged"
            )
    check_probability("dropout", dropout)
    check_flag("variational", variational)

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        params = []
        for layer, layer_key in zip(layers, jax.random.split(key, len(layers)), strict=True):
            params.append(layer.init(layer_key, input_size, dtype=dtype))
            input_size = layer.output_size
        return tuple(params)

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        _check_tuple(params, len(layers), "params")
        return tuple(
            layer.initial_carry(p, batch_shape) for layer, p in zip(layers, params, strict=True)
        )

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
        _check_tuple(params, len(layers), "params")
        if initial_carry is not None:
            _check_tuple(initial_carry, len(layers), "initial_carry")
        keys = [None] * (2 * len(layers))
        if dropout_key is not None:
            keys = list(jax.random.split(check_key("dropout_key", dropout_key), 2 * len(layers)))
        carries = []
        for n, layer in enumerate(layers):
            carry, xs = layer.apply(
                params[n],
                xs,
                seq_lengths=seq_lengths,
                mask=mask,
                resets=resets,
                initial_carry=None if initial_carry is None else initial_carry[n],
                reverse=reverse,
                time_major=time_major,
                dropout_key=keys[2 * n],
            )
            carries.append(carry)
            if dropout_key is not None and dropout > 0 and n < len(layers) - 1:
                time_axis = 0 if time_major or xs.ndim == 2 else xs.ndim - 2
                shared = (time_axis,) if variational else ()
                xs = dropout_apply(keys[2 * n + 1], xs, dropout, shared_axes=shared)
        return tuple(carries), xs

    name = "stacked(" + ", ".join(layer.name for layer in layers) + ")"
    return Layer(
        init=init,
        initial_carry=initial_carry,
        apply=apply,
        output_size=layers[-1].output_size,
        name=name,
        uses_dropout=(dropout > 0 and len(layers) > 1)
        or any(layer.uses_dropout for layer in layers),
    )


def bidirectional(
    forward: Cell | Layer,
    backward: Cell | Layer | None = None,
    *,
    merge: str | Callable[[Array, Array], Array] | None = "concat",
    strategy: Strategy | None = None,
) -> Layer:
    """Reads each sequence both ways and merges the two outputs at every position.

    ``backward`` reads only the valid prefix of each sequence, right to left; its output at
    position ``t`` has seen ``xs[t:length]``. For a many-to-one head over a bidirectional
    layer, use the final carries (`BidirectionalCarry`) or `pool` with ``"mean"``/``"max"``:
    the backward output at the last position has seen only the last element.

    Args:
      forward: the left-to-right cell or layer.
      backward: the right-to-left one; a fresh copy of ``forward``'s kind if None (the two
        never share params).
      merge: ``"concat"`` (features ``hf + hb``), ``"sum"``, a function
        ``merge(ys_forward, ys_backward) -> ys``, or None for both directions unmerged:
        ``ys`` is then the pair ``(ys_forward, ys_backward)`` and ``output_size`` the pair of
        widths (Keras ``merge_mode=None``); such a layer can only be the last of a stack.
      strategy: how the directions given as cells are run (`jaxrnn.Strategy`).

    Returns:
      A `Layer`; params are ``{"forward": ..., "backward": ...}``, carries a
      `BidirectionalCarry`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> bi = jaxrnn.bidirectional(jaxrnn.gru(8))
      >>> params = bi.init(jax.random.key(0), input_size=3)
      >>> carry, ys = bi.apply(params, jnp.ones((2, 5, 3)), seq_lengths=jnp.array([5, 3]))
      >>> ys.shape
      (2, 5, 16)
    """
    fwd = _as_layer(forward, "forward", strategy=strategy)
    bwd = _as_layer(forward if backward is None else backward, "backward", strategy=strategy)
    merge_fn = _merge_function(merge)
    if merge is None:
        output_size = (fwd.output_size, bwd.output_size)
    else:
        output_size = _merged_size(merge, merge_fn, fwd.output_size, bwd.output_size)

    def init(key: PRNGKey, input_size: int, *, dtype=jnp.float32) -> Params:
        k_fwd, k_bwd = jax.random.split(key)
        return {
            "forward": fwd.init(k_fwd, input_size, dtype=dtype),
            "backward": bwd.init(k_bwd, input_size, dtype=dtype),
        }

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> BidirectionalCarry:
        return BidirectionalCarry(
            fwd.initial_carry(params["forward"], batch_shape),
            bwd.initial_carry(params["backward"], batch_shape),
        )

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
        carry0 = _check_bidirectional_call(params, initial_carry)
        keys = (None, None)
        if dropout_key is not None:
            keys = tuple(jax.random.split(check_key("dropout_key", dropout_key)))
        steps = dict(seq_lengths=seq_lengths, mask=mask, resets=resets, time_major=time_major)
        carry_f, ys_f = fwd.apply(
            params["forward"],
            xs,
            initial_carry=carry0[0],
            reverse=reverse,
            dropout_key=keys[0],
            **steps,
        )
        carry_b, ys_b = bwd.apply(
            params["backward"],
            xs,
            initial_carry=carry0[1],
            reverse=not reverse,
            dropout_key=keys[1],
            **steps,
        )
        # Directions may compute in different dtypes (one mixed-precision cell): merge in the
        # wider one, explicitly.
        dtype = wider(ys_f.dtype, ys_b.dtype)
        return BidirectionalCarry(carry_f, carry_b), merge_fn(
            ys_f.astype(dtype), ys_b.astype(dtype)
        )

    name = f"bidirectional({fwd.name}, {bwd.name})"
    return Layer(
        init=init,
        initial_carry=initial_carry,
        apply=apply,
        output_size=output_size,
        name=name,
        uses_dropout=fwd.uses_dropout or bwd.uses_dropout,
    )


def _merge_function(merge: Any) -> Callable:
    """The function that joins the two directions' outputs, by ``merge``'s name."""
    if merge is None:
        return lambda a, b: (a, b)
    if merge == "concat":
        return lambda a, b: jnp.concatenate([a, b], axis=-1)
    if merge == "sum":
        return jnp.add
    if callable(merge):
        return merge
    fail("merge", "'concat', 'sum', a function or None", merge)


def _check_bidirectional_call(params: Any, initial_carry: Any) -> tuple[Any, Any]:
    """The two initial carries of a bidirectional call (either may be None)."""
    if not isinstance(params, dict) or set(params) != {"forward", "backward"}:
        got = f"a {type(params).__name__}" + (
            f" with keys {sorted(params)}" if isinstance(params, dict) else ""
        )
        fail(
            "params", "a dict with keys 'forward' and 'backward' (a bidirectional layer)", said(got)
        )
    carry0 = (None, None) if initial_carry is None else initial_carry
    if not isinstance(carry0, (tuple, list)) or len(carry0) != 2:
        got = f"a {type(carry0).__name__}" + (
            f" of length {len(carry0)}" if isinstance(carry0, (tuple, list)) else ""
        )
        fail(
            "initial_carry",
            "a BidirectionalCarry(forward, backward) (either may be None)",
            said(got),
        )
    return carry0


def _merged_size(merge, merge_fn, forward_size: int, backward_size: int) -> int:
    """The feature size of ``merge_fn(ys_forward, ys_backward)``, checked on a probe of shape
    ``(2, 3, size)``: the merge must keep the batch and time axes and return one array."""
    probe = [jax.ShapeDtypeStruct((2, 3, n), jnp.float32) for n in (forward_size, backward_size)]
    widths = f"forward width {forward_size}, backward width {backward_size}"
    if merge == "sum" and forward_size != backward_size:
        raise ValueError(
            f"merge='sum' needs both directions to have the same width, got {widths}; "
            "use merge='concat' or layers of equal size"
        )
    try:
        out = jax.eval_shape(merge_fn, *probe)
    except (TypeError, ValueError) as error:
        raise ValueError(f"merge failed on outputs of ({widths}): {error}") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape[:2] != (2, 3) or len(out.shape) != 3:
        got = out.shape if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
        raise ValueError(
            f"merge must map ys_forward (b, t, {forward_size}) and ys_backward (b, t, "
            f"{backward_size}) to one array (b, t, features); for (2, 3, ...) inputs it "
            f"returned {got}"
        )
    return out.shape[-1]


def dropout_apply(
    key: PRNGKey, xs: Array, rate: float, *, shared_axes: Sequence[int] = ()
) -> Array:
    """Inverted dropout: zeroes each entry with probability ``rate``, scales the rest up.

    Args:
      key: PRNG key.
      xs: any array.
      rate: drop probability in ``[0, 1)``.
      shared_axes: axes along which one draw is shared, e.g. the time axis for variational
        dropout (the same features dropped at every step of a sequence).

    Returns:
      An array like ``xs`` whose expectation is ``xs``.

    Examples:
      >>> from jaxrnn.layers import dropout_apply
      >>> import jax, jax.numpy as jnp
      >>> dropout_apply(jax.random.key(0), jnp.ones(4), 0.0)
      Array([1., 1., 1., 1.], dtype=float32)
      >>> same = dropout_apply(jax.random.key(0), jnp.ones((2, 5, 3)), 0.5, shared_axes=(1,))
      >>> bool(jnp.all(same == same[:, :1]))
      True
    """
    check_key("key", key)
    rate = check_probability("rate", rate)
    if not (hasattr(xs, "dtype") and jnp.issubdtype(xs.dtype, jnp.floating)):
        fail("xs", "a floating-point array", xs, TypeError)
    shared = check_axes("shared_axes", shared_axes, xs.ndim)
    if rate == 0:
        return xs
    shape = tuple(1 if axis in shared else n for axis, n in enumerate(xs.shape))
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, xs / (1.0 - rate), jnp.zeros_like(xs))


def with_recurrent_dropout(cell: Cell, mask: Array) -> Cell:
    """``cell`` whose recurrent input ``h_{t-1}`` is multiplied by ``mask`` at every step.

    Variational (Gal & Ghahramani 2016) recurrent dropout: draw one mask per sequence
    *outside* the scan, e.g. ``jax.random.bernoulli(key, 1 - rate, (b, h)) / (1 - rate)``,
    and the same units are dropped at all time steps. The mask scales the hidden state where
    the step reads it: for the Elman cell and the LSTM that is only the input of ``W_hh``
    (the LSTM's memory ``c`` is untouched); for the GRU it also scales the ``z * h_{t-1}``
    term. The carries and outputs returned are never masked.

    Args:
      cell: a cell whose carry holds its hidden state ``h``.
      mask: ``(b, h)`` multipliers, broadcast against the carry's batch shape.

    Returns:
      A `Cell` with the same params, to use in place of ``cell`` for one call.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.lstm(4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> mask = jax.random.bernoulli(jax.random.key(1), 0.75, (2, 4)) / 0.75
      >>> _, ys = jaxrnn.unroll(jaxrnn.with_recurrent_dropout(cell, mask), params,
      ...                       jnp.ones((2, 5, 3)))
      >>> ys.shape
      (2, 5, 4)
    """

    if not isinstance(cell, Cell):
        fail("cell", "a jaxrnn.Cell such as jaxrnn.lstm(128)", cell, TypeError)
    mask_shape = tuple(getattr(mask, "shape", ()))
    if not mask_shape or mask_shape[-1] != cell.hidden_size:
        raise ValueError(
            f"mask must have shape (b, {cell.hidden_size}) for {cell!r} (one multiplier per "
            f"hidden unit), got {mask_shape}"
        )

    def step_projected(params, carry, px):
        hidden = hidden_state(carry)
        if mask.shape != hidden.shape:
            raise ValueError(
                f"mask must have the shape of the hidden state {tuple(hidden.shape)} "
                f"(batch, hidden), got {mask_shape}; nothing is broadcast silently"
            )
        dropped = with_hidden_state(carry, hidden * mask.astype(hidden.dtype))
        return cell.step_projected(params, dropped, px)

    # The hand-written sequence passes and the parallel scan do not know the mask.
    return replace_step(cell, step_projected)


def pool(
    ys: Array,
    seq_lengths: Array | None = None,
    *,
    mask: Array | None = None,
    method: str = "last",
    time_major: bool = False,
) -> Array:
    """Reduces per-step outputs to one vector per sequence, ignoring padding.

    The steps that count are those `jaxrnn.unroll` runs for the same ``seq_lengths`` and
    ``mask`` (both are read by `jaxrnn.steps.read`), so ``"last"`` is the output of the last
    step the scan ran.

    Args:
      ys: outputs ``(b, t, h)`` (``(t, b, h)`` if time-major, or ``(t, h)``).
      seq_lengths: ``(b,)`` valid lengths, or None for full length.
      mask: ``(b, t)`` bool (``(t, b)`` if time-major), True on the steps that ran, or None.
      method: ``"last"`` (the output at the last valid step: the lecture's many-to-one),
        ``"mean"`` or ``"max"`` over the valid steps.
      time_major: layout of ``ys``.

    Returns:
      ``(b, h)``; zeros for sequences without a valid step.

    Examples:
      >>> from jaxrnn.layers import pool
      >>> import jax.numpy as jnp
      >>> ys = jnp.arange(6.0).reshape(1, 3, 2)
      >>> pool(ys, jnp.array([2]))
      Array([[2., 3.]], dtype=float32)
      >>> pool(ys, mask=jnp.array([[True, True, False]]))
      Array([[2., 3.]], dtype=float32)
    """
    check_choice("method", method, ("last", "mean", "max"))
    check_flag("time_major", time_major)
    if not (hasattr(ys, "dtype") and hasattr(ys, "ndim")) or ys.ndim < 2:
        fail("ys", "an array of shape (b, t, h), (t, b, h) or (t, h)", ys)
    if not jnp.issubdtype(ys.dtype, jnp.floating):
        fail("ys", "a floating-point array", said(f"dtype {ys.dtype}"), TypeError)
    ys_t = ys if (time_major or ys.ndim == 2) else jnp.moveaxis(ys, -2, 0)  # (t, *batch, h)
    num_steps, batch_shape = ys_t.shape[0], tuple(ys_t.shape[1:-1])
    seen = steps_.read(
        seq_lengths,
        mask,
        None,
        num_steps=num_steps,
        batch_shape=batch_shape,
        time_major=time_major or ys.ndim == 2,
    )
    if method == "last":
        index = seen.last(num_steps, batch_shape)
        out = jnp.take_along_axis(ys_t, jnp.maximum(index, 0)[None, ..., None], axis=0)[0]
        if seen.valid is None:
            return out
        return jnp.where((index >= 0)[..., None], out, jnp.zeros_like(out))
    if seen.valid is None:
        valid = jnp.ones((num_steps, *batch_shape, 1), bool)
    else:
        valid = seen.valid[..., None]  # (t, *batch, 1)
    counts = jnp.sum(valid, axis=0)
    if method == "mean":
        total = jnp.sum(jnp.where(valid, ys_t, jnp.zeros_like(ys_t)), axis=0)
        return total / jnp.maximum(counts, 1).astype(ys.dtype)
    # initial= only where it is needed (no steps at all): ONNX exporters refuse it.
    empty = isinstance(num_steps, int) and num_steps == 0
    out = jnp.max(jnp.where(valid, ys_t, -jnp.inf), axis=0, initial=-jnp.inf if empty else None)
    return jnp.where(counts > 0, out, jnp.zeros_like(out))


def many_to_one(
    model: Cell | Layer,
    params: Params,
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    mask: Array | None = None,
    method: str = "last",
    strategy: Strategy | None = None,
    **apply_kwargs: Any,
) -> Array:
    """The lecture's many-to-one head: one output vector per sequence.

    Args:
      model: a `Cell` or `Layer`.
      params: its params.
      xs: inputs ``(b, t, i)``.
      seq_lengths: ``(b,)`` valid lengths, or None.
      mask: ``(b, t)`` bool, True on the steps to run (as in `jaxrnn.unroll`), or None; the
        head reads the last step that ran.
      method: how to reduce over time, see `pool` (``"last"``: the last valid output).
      strategy: how a `Cell` is run (`jaxrnn.Strategy`); a layer keeps its own.
      **apply_kwargs: passed to the layer's ``apply`` (``initial_carry``, ``resets``,
        ``reverse``, ``time_major``, ``dropout_key``).

    Returns:
      ``(b, h)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.lstm(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> jaxrnn.many_to_one(cell, params, jnp.ones((2, 5, 3))).shape
      (2, 8)
    """
    layer = _head_layer(model, strategy)
    check_choice("method", method, ("last", "mean", "max"))
    time_major = apply_kwargs.get("time_major", False)
    reads_carry = (
        isinstance(model, Cell)
        and model.output is not None
        and method == "last"
        and seq_lengths is None
        and mask is None
        and not apply_kwargs.get("reverse", False)
    )
    if reads_carry:
        # The last output is the final carry's: XLA then drops the stacked outputs.
        carry, _ = layer.apply(params, xs, **apply_kwargs)
        return model.output(carry)
    _, ys = layer.apply(params, xs, seq_lengths=seq_lengths, mask=mask, **apply_kwargs)
    if not isinstance(ys, jax.Array):  # a bidirectional layer with merge=None
        fail("model", "a layer with one output (merge=None gives a pair)", model, TypeError)
    return pool(ys, seq_lengths, mask=mask, method=method, time_major=time_major)


def many_to_many(
    model: Cell | Layer,
    params: Params,
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    strategy: Strategy | None = None,
    **apply_kwargs: Any,
) -> Array:
    """The lecture's many-to-many head: an output at every time step (zeros on padding).

    Args:
      model: a `Cell` or `Layer`.
      params: its params.
      xs: inputs ``(b, t, i)``.
      seq_lengths: ``(b,)`` valid lengths, or None.
      strategy: how a `Cell` is run (`jaxrnn.Strategy`); a layer keeps its own.
      **apply_kwargs: passed to the layer's ``apply`` (``mask``, ``resets``, ...).

    Returns:
      ``(b, t, h)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.gru(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> jaxrnn.many_to_many(cell, params, jnp.ones((2, 5, 3))).shape
      (2, 5, 8)
    """
    layer = _head_layer(model, strategy)
    return layer.apply(params, xs, seq_lengths=seq_lengths, **apply_kwargs)[1]


def _head_layer(model: Cell | Layer, strategy: Strategy | None) -> Layer:
    """The layer a head runs: a cell with ``strategy``; a layer as it was built."""
    if isinstance(model, Layer) and strategy is not None:
        fail(
            "strategy",
            "None for a jaxrnn.Layer, whose strategy was fixed when it was built "
            "(jaxrnn.rnn(cell, strategy=...))",
            said(repr(strategy)),
        )
    return as_layer(model, strategy=strategy)


def _check_tuple(value: Any, length: int, name: str) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != length:
        got = f"a {type(value).__name__}" + (
            f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""
        )
        fail(name, f"a tuple of {length} entries, one per layer of the stack", said(got))
