"""The `Cell` type shared by every cell family, and what the families share: init and checks."""

import functools
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.checks import check_batch_shape
from jaxrnn.checks import check_compute_dtype
from jaxrnn.checks import check_tree
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params
from jaxrnn.typing import PRNGKey


class Cell(NamedTuple):
    """A recurrent cell as a bundle of pure functions, in the style of an optax transform.

    A cell is made by a factory (`jaxrnn.elman`, `jaxrnn.lstm`, `jaxrnn.gru`, ...) that captures
    its hyper-parameters. Params and carries are plain pytrees; nothing is stored in the cell.

    Attributes:
      init: ``init(key, input_size, *, dtype=jnp.float32) -> params``.
      initial_carry: ``initial_carry(params, batch_shape=()) -> carry``, zeros of shape
        ``(*batch_shape, h)`` per carry leaf.
      step: ``step(params, carry, x) -> (carry, y)`` with ``x`` of shape ``(..., i)``; exactly
        the body signature of `jax.lax.scan`.
      project: ``project(params, xs) -> px``, the input half of a step for any number of
        leading axes ``(..., i) -> (..., g)``; `jaxrnn.unroll` calls it once for all time
        steps, as one matmul, before the scan.
      step_projected: ``step_projected(params, carry, px) -> (carry, y)``, the recurrent half of
        a step. ``step(p, c, x) == step_projected(p, c, project(p, x))``.
      check_params: ``check_params(params) -> input_size``; raises a `ValueError` or
        `TypeError` naming the offending entry when ``params`` do not fit this cell.
      name: the family, e.g. ``"lstm"``.
      hidden_size: ``h``, the size of ``y`` and of each carry leaf.
      linear: for cells whose recurrence is linear in the carry, ``h_t = a_t * h_{t-1} + b_t``
        with ``a_t, b_t`` depending on ``x_t`` only: a `LinearRecurrence` that lets
        ``jaxrnn.Strategy(mode="parallel")`` evaluate all steps with an associative scan.
        None for the classic cells, whose gates read ``h_{t-1}``.
      fused: optional ``fused(params, xs, carry, valid, reverse, resets=None) -> (carry, ys)``
        running the whole time-major sequence ``xs (t, b, i)`` with a hand-written backward pass
        (`jaxrnn.cells.fused`);
        `jaxrnn.unroll` uses it unless ``jaxrnn.Strategy(fused=False)``. Same numbers as the scan of
        ``step_projected``.
      output: optional ``output(carry) -> y`` when a step's output is a function of the carry
        it ends with (``h`` for the classic cells); `jaxrnn.many_to_one` then reads the final
        carry instead of stacking every step's output. None when ``y`` also reads ``x``.
      input_axes: the trailing axes of one step's input: 1 for ``(..., i)`` vectors, 3 for
        the ``(..., height, width, channels)`` images of `jaxrnn.conv_lstm`. The spatial
        axes belong to the carry too: `jaxrnn.unroll` asks for ``initial_carry(params,
        (*batch, *spatial))``, while lengths, masks and resets stay per sequence.
      compute_dtype: the dtype of the matrix products and gate arithmetic (e.g.
        ``jnp.bfloat16`` with float32 params: mixed precision), or None for the params' own.
        Whatever it is, the carry keeps the wider of the two dtypes and sums over steps
        accumulate in it; outputs are in the compute dtype, gradients in the params' dtype.
      remake: ``remake(**options) -> Cell``, the factory call that made this cell with some
        options changed (`with_compute_dtype` uses it); None for a wrapped cell.
      parallel_form: for cells whose every gate reads only ``x_t`` but whose state is not an
        elementwise linear recurrence (`jaxrnn.mlstm`'s matrix memory): ``parallel_form(params,
        px, carry, valid, reverse, resets, chunk_size) -> (carry, ys)`` over the projected
        time-major inputs ``px (t, n, g)`` with one batch axis, the same numbers as the scan of
        ``step_projected`` (``valid (t, n)`` or None: invalid steps keep the carry and give
        zeros; ``resets (t, n)`` or None: those steps start from ``carry``). ``chunk_size``
        None is the fully parallel form, an int the chunkwise one; `jaxrnn.unroll` calls it for
        ``jaxrnn.Strategy(mode="parallel")`` and ``mode="chunkwise"``.
    """

    init: Callable[..., Params]
    initial_carry: Callable[..., Carry]
    step: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    project: Callable[[Params, Array], Any]
    step_projected: Callable[[Params, Carry, Any], tuple[Carry, Array]]
    check_params: Callable[[Params], int]
    name: str
    hidden_size: int
    linear: "LinearRecurrence | None" = None
    fused: Callable[..., tuple[Carry, Array]] | None = None
    output: Callable[[Carry], Array] | None = None
    input_axes: int = 1
    compute_dtype: Any = None
    remake: Callable[..., "Cell"] | None = None
    parallel_form: Callable[..., tuple[Carry, Array]] | None = None

    def __repr__(self) -> str:
        mixed = "" if self.compute_dtype is None else f", compute_dtype={self.compute_dtype}"
        return f"jaxrnn.{self.name}(hidden_size={self.hidden_size}{mixed})"


def cell_factory(make: Callable[..., Cell]) -> Callable[..., Cell]:
    """Marks a family's factory: the cells it makes carry ``remake``, the same call with some
    options changed, so `with_compute_dtype` works on any of them."""

    @functools.wraps(make)
    def factory(*args: Any, **options: Any) -> Cell:
        if "compute_dtype" in options:  # checked here once for every family
            options["compute_dtype"] = check_compute_dtype(options["compute_dtype"])
        cell = make(*args, **options)
        return cell._replace(remake=functools.partial(factory, *args, **options))

    return factory


def with_compute_dtype(cell: Cell, compute_dtype: Any, name: str = "compute_dtype") -> Cell:
    """``cell`` made again with another ``compute_dtype`` (None: the params' dtype).

    Examples:
      >>> import jax.numpy as jnp, jaxrnn
      >>> from jaxrnn.cells.base import with_compute_dtype
      >>> with_compute_dtype(jaxrnn.gru(4), jnp.bfloat16)
      jaxrnn.gru(hidden_size=4, compute_dtype=bfloat16)
    """
    if not isinstance(cell, Cell):
        fail("cell", "a jaxrnn.Cell", cell, TypeError)
    compute_dtype = check_compute_dtype(compute_dtype, name)
    if compute_dtype == cell.compute_dtype:
        return cell
    if cell.remake is None:
        fail(
            "cell",
            f"a cell made by a jaxrnn factory such as jaxrnn.lstm to take {name}= (this one "
            "was built by make_cell, replace_step or a wrapper such as recurrent dropout)",
            said(repr(cell)),
            TypeError,
            hint="give compute_dtype= to the factory of the cell it was built from",
        )
    return cell.remake(compute_dtype=compute_dtype)


def cast_params(params: Params, dtype: Any) -> Params:
    """The floating-point leaves of ``params`` in ``dtype`` (the compute dtype)."""
    if dtype is None:
        return params
    return jax.tree.map(
        lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params
    )


def wider(a: Any, b: Any) -> Any:
    """The dtype both ``a`` and ``b`` fit in (JAX's standard promotion, asked for explicitly:
    jaxrnn's own tests run with implicit promotion turned off)."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(a, b)


def carry_dtype(dtype: Any, compute_dtype: Any) -> Any:
    """The dtype a carry leaf of ``dtype`` (the params') keeps: the wider of it and the
    compute dtype, so steps never accumulate in a narrower type than either."""
    return dtype if compute_dtype is None else wider(dtype, compute_dtype)


def accumulate(decay: Array, state: Array, update: Array) -> Array:
    """``decay * state + update`` in ``state``'s dtype: the sum carried from step to step
    (an LSTM's ``c``, a GRU's ``h``) stays in the carry's (float32) precision while the gates
    were computed in the compute dtype. All three ``(..., h)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.base import accumulate
      >>> half = jnp.full(2, 0.5, jnp.bfloat16)
      >>> accumulate(half, jnp.ones(2), half)
      Array([1., 1.], dtype=float32)
    """
    return decay.astype(state.dtype) * state + update.astype(state.dtype)


def recurrent(h: Array, w: Array) -> Array:
    """``h (..., h) @ w (h, g)`` in ``w``'s dtype (the compute dtype): the carry ``h`` may be
    wider.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.base import recurrent
      >>> recurrent(jnp.ones((2, 3)), jnp.ones((3, 4), jnp.bfloat16)).dtype
      dtype(bfloat16)
    """
    return h.astype(w.dtype) @ w


def params_dtype(params: Params) -> Any:
    """The dtype of a cell's params (they share one: `make_param_checker` checks it)."""
    return jax.tree.leaves(params)[0].dtype


def input_dtype(dtype: Any, compute_dtype: Any) -> Any:
    """The dtype a step's input is cast to: the compute dtype when given (the caller asked
    for that precision), else the params' dtype."""
    return dtype if compute_dtype is None else compute_dtype


class Family(NamedTuple):
    """What the library knows about a cell family besides its step, kept in the family's file.

    Attributes:
      name: the family's name, as in ``Cell.name`` (``"lstm"``).
      make: its factory (`jaxrnn.lstm`).
      gates: blocks of ``h`` columns in ``w_hh`` (and ``w_ih``) of the classic cells (LSTM 4,
        in the order i, f, g, o); None for cells without ``w_hh``.
      torch_module: the ``torch.nn`` module with the same maths (``"LSTM"``), or None.
      flax_cell: the ``flax.linen`` cell with the same maths, or None.
      from_torch: ``from_torch(w_ih, w_hh, b_ih, b_hh) -> params`` from PyTorch's layout
        (``(g, i)`` and ``(g, h)`` weights, ``(g,)`` biases, numpy arrays), or None.
      from_flax: ``from_flax(flax_params) -> params``, or None.
      to_flax: ``to_flax(params) -> flax_params``, or None.
      keras_layer: the Keras 3 layer with the same maths (``"LSTM"``), or None.
      from_keras: ``from_keras([kernel, recurrent_kernel, bias]) -> params`` from the
        layer's ``get_weights()`` (``(i, g)``, ``(h, g)`` and its bias, numpy arrays; no bias
        for ``use_bias=False``), or None.
      to_keras: ``to_keras(params) -> [kernel, recurrent_kernel, bias]`` for
        ``set_weights``, or None.
    """

    name: str
    make: Callable[..., "Cell"]
    gates: int | None = None
    torch_module: str | None = None
    flax_cell: str | None = None
    from_torch: Callable[..., Params] | None = None
    from_flax: Callable[[Mapping], Params] | None = None
    to_flax: Callable[[Params], dict] | None = None
    keras_layer: str | None = None
    from_keras: Callable[[list], Params] | None = None
    to_keras: Callable[[Params], list] | None = None


def from_keras_one_bias(weights: list) -> Params:
    """``[kernel, recurrent_kernel, bias]`` of Keras's SimpleRNN and LSTM (the same layout
    and, for the LSTM, the same gate order i, f, g, o as jaxrnn); no bias means zeros."""
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else np.zeros(kernel.shape[-1], kernel.dtype)
    return {"w_ih": kernel, "w_hh": recurrent, "b": bias}


def to_keras_one_bias(params: Params) -> list:
    """The inverse of `from_keras_one_bias`."""
    return [np.asarray(params[k]) for k in ("w_ih", "w_hh", "b")]


class LinearRecurrence(NamedTuple):
    """The two halves of a step ``h_t = a_t * h_{t-1} + b_t``, ``y_t = readout(h_t, x_t)``.

    Attributes:
      coefficients: ``coefficients(params, px) -> (a, b)``, elementwise, shaped like the carry
        (for any leading shape of ``px``), in float32 (or complex64): the scan accumulates in
        that precision whatever the params' dtype.
      readout: ``readout(params, h, px) -> y``, elementwise in time.
    """

    coefficients: Callable[[Params, Any], tuple[Array, Array]]
    readout: Callable[[Params, Array, Any], Array]


def replace_step(cell: Cell, step_projected: Callable, **fields: Any) -> Cell:
    """``cell`` with another recurrent half ``step_projected``: the one way to wrap a step.

    ``step`` is rebuilt from ``project`` and the new ``step_projected``; the fast paths derived
    from the old step (``linear``: the parallel scan, ``fused``: the hand-written sequence
    passes) are dropped, so `jaxrnn.unroll` runs the new step exactly as written. ``output``
    is kept: it reads the carry, whose structure a wrapper keeps. ``fields`` replaces any other
    field (``project``, ``check_params``, ``name``).

    Examples:
      >>> import jaxrnn
      >>> from jaxrnn.cells.base import replace_step
      >>> cell = jaxrnn.lstm(4)
      >>> noisy = replace_step(cell, cell.step_projected, name="noisy_lstm")
      >>> noisy.fused is None and noisy.output is cell.output
      True
    """
    dropped = {"linear": None, "fused": None, "remake": None, "parallel_form": None}
    fields = {**cell._asdict(), **dropped, **fields}
    for derived in ("step", "step_projected"):
        fields.pop(derived)
    # ``project``, ``initial_carry`` and the old step already compute in the cell's dtype, and
    # a wrapper calls them with the params as given: nothing is wrapped again (a wrapper
    # calling ``cell.step`` would otherwise see params already cast to the compute dtype).
    return make_cell(step_projected=step_projected, wrap=False, **fields)


def hidden_state(carry: Carry) -> Array:
    """The hidden state ``h`` of a carry: ``carry.h`` for carries with named parts (LSTM),
    the carry itself for the one-array carries of the other cells."""
    return carry.h if hasattr(carry, "h") else carry


def with_hidden_state(carry: Carry, h: Array) -> Carry:
    """``carry`` with its hidden state replaced by ``h`` (the inverse of `hidden_state`)."""
    return carry._replace(h=h) if hasattr(carry, "h") else h


def make_cell(
    *, project: Callable, step_projected: Callable, wrap: bool = True, **fields: Any
) -> Cell:
    """A `Cell` whose ``step`` is ``step_projected`` after ``project``: the families define the
    two halves and this joins them, so ``step(p, c, x) == step_projected(p, c, project(p, x))``
    holds by construction. ``fields`` are the other fields of `Cell`. With a
    ``compute_dtype``, the halves are wrapped to compute in it (see `Cell`) unless ``wrap`` is
    False: `replace_step` passes halves that already do.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.base import make_cell, zeros_carry
      >>> running_sum = make_cell(
      ...     init=None, initial_carry=zeros_carry(1, "w"), check_params=None, name="sum",
      ...     hidden_size=1, project=lambda p, x: 2 * x,
      ...     step_projected=lambda p, h, px: (h + px, h + px),
      ... )
      >>> running_sum.initial_carry({"w": jnp.zeros(3)}, (2,)).shape
      (2, 1)
      >>> running_sum.step(None, jnp.zeros(1), jnp.ones(1))
      (Array([2.], dtype=float32), Array([2.], dtype=float32))
    """

    check_params = fields.get("check_params")
    input_axes = fields.get("input_axes", 1)
    compute_dtype = fields["compute_dtype"] = check_compute_dtype(fields.get("compute_dtype"))
    if compute_dtype is not None and wrap:
        fields = _in_compute_dtype(compute_dtype, fields)
        project, step_projected = _compute_halves(
            compute_dtype, project, step_projected, fields.get("linear")
        )
    initial_carry = fields.get("initial_carry")

    def step(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        if check_params is not None:
            dtype = _check_step(
                check_params(params), initial_carry, input_axes, compute_dtype, params, carry, x
            )
            x = x.astype(dtype)
        return step_projected(params, carry, project(params, x))

    return Cell(step=step, project=project, step_projected=step_projected, **fields)


def _compute_halves(compute_dtype, project, step_projected, linear):
    """The two halves of a step in ``compute_dtype``: params and inputs cast to it, the carry
    kept in its own (wider) dtype, the output in the compute dtype. A linear cell's step is
    its (mixed-precision) `LinearRecurrence`'s."""

    def project_in(params: Params, xs: Array) -> Any:
        return project(cast_params(params, compute_dtype), xs.astype(compute_dtype))

    def step_in(params: Params, carry: Carry, px: Any) -> tuple[Carry, Array]:
        if linear is None:
            new, y = step_projected(cast_params(params, compute_dtype), carry, px)
        else:
            new, y = linear_step(linear)(params, carry, px)
        new = jax.tree.map(lambda n, old: n.astype(old.dtype), new, carry)
        return new, y.astype(compute_dtype)

    return project_in, step_in


def _in_compute_dtype(compute_dtype, fields: dict) -> dict:
    """The other fields of a mixed-precision cell: carries of `carry_dtype`; a linear cell's
    coefficients from the params as they are (each family widens them, `wide_dtype`, and a
    decay rounded to bfloat16 would be another decay, compounded over every step), its readout
    in the compute dtype."""
    fields = dict(fields)
    initial_carry, linear = fields.get("initial_carry"), fields.get("linear")

    def initial_carry_wide(params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        carry = initial_carry(params, batch_shape)
        return jax.tree.map(lambda c: c.astype(carry_dtype(c.dtype, compute_dtype)), carry)

    fields["initial_carry"] = initial_carry_wide
    if linear is not None:

        def readout(params: Params, h: Array, px: Any) -> Array:
            return linear.readout(cast_params(params, compute_dtype), h, px).astype(compute_dtype)

        fields["linear"] = LinearRecurrence(coefficients=linear.coefficients, readout=readout)
    if fields.get("parallel_form") is not None:
        fields["parallel_form"] = _form_in_compute_dtype(compute_dtype, fields["parallel_form"])
    return fields


def _form_in_compute_dtype(compute_dtype, parallel_form: Callable) -> Callable:
    """A whole-sequence form in ``compute_dtype``, as `_compute_halves` does for one step."""

    def form(params: Params, px: Any, carry: Carry, *rest: Any) -> tuple[Carry, Array]:
        new, ys = parallel_form(cast_params(params, compute_dtype), px, carry, *rest)
        new = jax.tree.map(lambda n, old: n.astype(old.dtype), new, carry)
        return new, ys.astype(compute_dtype)

    return form


def _check_step(input_size, initial_carry, input_axes, compute_dtype, params, carry, x):
    """The checks of a public ``step``: ``x`` ``(..., i)`` of a dtype `check_input_dtype`
    takes and a carry for its batch shape; returns the dtype ``x`` is cast to.
    (`jaxrnn.unroll` checks once and calls the two halves.)"""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        fail("x", f"an array of shape (..., {input_size})", x, TypeError)
    dtype = params_dtype(params)
    if len(x.shape) < input_axes or x.shape[-1] != input_size:
        fail(
            "x",
            f"an array of shape (..., {input_size}) (the params' input_size)",
            said(f"shape {tuple(x.shape)}"),
        )
    target = check_input_dtype("x", x.dtype, dtype, compute_dtype)
    batch = tuple(x.shape[: len(x.shape) - 1])
    if input_axes > 1:  # the carry of an image cell covers the image too
        batch = tuple(x.shape[:-1])
    expected = jax.eval_shape(lambda p: initial_carry(p, batch), params)
    check_tree("carry", carry, expected, source=f"initial_carry(params, batch_shape={batch})")
    return target


def check_input_dtype(name: str, got: Any, params_dtype: Any, compute_dtype: Any) -> Any:
    """The dtype a step's input of dtype ``got`` is cast to, or a `TypeError` naming ``name``.

    Any floating dtype is cast to a cell's ``compute_dtype`` when it has one (the caller asked
    for that precision). Without one, the input must fit the params' dtype without loss
    (bfloat16 inputs to float32 params are widened; float32 inputs to bfloat16 params are
    refused rather than silently rounded).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.base import check_input_dtype
      >>> check_input_dtype("xs", jnp.bfloat16, jnp.float32, None)
      dtype('float32')
      >>> check_input_dtype("xs", jnp.float32, jnp.bfloat16, None)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      TypeError: xs must be of a dtype that fits the params' dtype bfloat16 without loss, ...
    """
    got, target = jnp.dtype(got), jnp.dtype(input_dtype(params_dtype, compute_dtype))
    if not jnp.issubdtype(got, jnp.floating):
        fail(name, f"a floating-point array (of dtype {target})", said(f"dtype {got}"), TypeError)
    if compute_dtype is None and wider(got, target) != target:
        fail(
            name,
            f"of a dtype that fits the params' dtype {target} without loss",
            said(f"dtype {got}"),
            TypeError,
            hint=f"cast it ({name}.astype(jnp.{target})); for mixed precision keep the params "
            f"in {got} and give the cell compute_dtype=jnp.{target}",
        )
    return target


def zeros_carry(hidden_size: int, like: str, dtype_of: Callable = lambda dtype: dtype) -> Callable:
    """``initial_carry(params, batch_shape=())`` of a cell whose carry is one array: zeros
    ``(*batch_shape, hidden_size)`` of ``dtype_of(params[like].dtype)`` (see `make_cell`)."""

    def initial_carry(params: Params, batch_shape: tuple[int, ...] = ()) -> Array:
        batch_shape = check_batch_shape(batch_shape)
        return jnp.zeros((*batch_shape, hidden_size), dtype_of(params[like].dtype))

    return initial_carry


def linear_step(recurrence: LinearRecurrence) -> Callable:
    """``step_projected`` of a cell defined by a `LinearRecurrence`."""

    def step_projected(params: Params, h: Array, px: Any) -> tuple[Array, Array]:
        a, b = recurrence.coefficients(params, px)
        h = (a * h.astype(a.dtype) + b).astype(h.dtype)
        return h, recurrence.readout(params, h, px)

    return step_projected


def wide_dtype(dtype):
    """float32, or float64 when ``dtype`` is wider than 32 bits: the precision that random
    inits are drawn in and that linear recurrences accumulate in.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.cells.base import wide_dtype
      >>> wide_dtype(jnp.bfloat16), wide_dtype(jnp.float32)
      (<class 'jax.numpy.float32'>, <class 'jax.numpy.float32'>)
    """
    return jnp.float64 if jnp.finfo(dtype).bits > 32 else jnp.float32


def orthogonal_blocks(key: PRNGKey, hidden_size: int, num_blocks: int, dtype) -> Array:
    """``num_blocks`` independent orthogonal ``(h, h)`` matrices side by side: ``(h, n*h)``.

    Each gate's recurrent matrix is orthogonal on its own, so every gate starts with a
    norm-preserving recurrence, as in Flax and Keras.
    """
    keys = jax.random.split(key, num_blocks)
    ortho = jax.nn.initializers.orthogonal()
    wide = wide_dtype(dtype)  # QR has no bfloat16 kernel; compute wide, then cast
    blocks = [ortho(k, (hidden_size, hidden_size), wide) for k in keys]
    return jnp.concatenate(blocks, axis=-1).astype(dtype)


def input_kernel(key: PRNGKey, input_size: int, width: int, dtype) -> Array:
    """LeCun-normal input weights ``(i, width)``: unit-variance inputs give unit-variance gates."""
    init = jax.nn.initializers.lecun_normal()
    return init(key, (input_size, width), wide_dtype(dtype)).astype(dtype)


def add_bias(y: Array, bias: Array) -> Array:
    """``y (..., g) + bias (g,)`` with the broadcast written out (no implicit rank promotion)."""
    return y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)


def concat_gates(arrays) -> Array:
    """Per-gate blocks joined along the last axis, in order (the weight converters' layout)."""
    return jnp.concatenate(list(arrays), axis=-1)


def make_param_checker(
    name: str,
    hidden_size: int,
    shapes: Callable[[int], Mapping[str, tuple[int, ...]]],
    input_key: str = "w_ih",
    *,
    label: str | None = None,
    input_axis: int = 0,
    input_rank: int = 2,
) -> Callable[[Params], int]:
    """Builds ``check_params(params) -> input_size`` for a cell whose params are a flat dict.

    ``shapes(input_size)`` gives the expected shape of every entry; the input size is read
    from ``params[input_key].shape[input_axis]``, an array of rank ``input_rank``.
    ``label`` names the cell in the messages (default ``name(hidden_size=...)``).
    """
    label = label or f"{name}(hidden_size={hidden_size})"

    def check_params(params: Params) -> int:
        if not isinstance(params, Mapping):
            raise TypeError(
                f"params must be the dict returned by {label}.init, got {type(params).__name__}"
            )
        expected_keys = set(shapes(1))
        if set(params) != expected_keys:
            raise ValueError(
                f"params must have keys {sorted(expected_keys)} for {label}, got "
                f"{sorted(map(str, params))}; were these params made by a different cell?"
            )
        w_in = params[input_key]
        if getattr(w_in, "ndim", None) != input_rank:
            raise ValueError(
                f"params[{input_key!r}] must be a {input_rank}-D array shaped "
                f"({', '.join(map(str, shapes('input_size')[input_key]))}) for {label}, got "
                f"{type(w_in).__name__} with shape {getattr(w_in, 'shape', None)}"
            )
        input_size = int(w_in.shape[input_axis])
        dtype = None
        for key, shape in shapes(input_size).items():
            value = params[key]
            got = tuple(getattr(value, "shape", ()))
            if got != tuple(shape):
                hint = _guess_cell(params)
                reads_input = shapes(input_size) != shapes(input_size + 1)
                raise ValueError(
                    f"params[{key!r}] must have shape {tuple(shape)} for {label}"
                    + (f" with input_size={input_size}" if reads_input else "")
                    + f", got {got}"
                    + (f"; these params look like they come from {hint}" if hint else "")
                )
            if not jnp.issubdtype(value.dtype, jnp.floating):
                raise TypeError(
                    f"params[{key!r}] must be a real floating-point array, got dtype {value.dtype}"
                )
            if dtype is None:
                dtype = value.dtype
            elif value.dtype != dtype:
                raise TypeError(
                    f"all params of {label} must share one dtype; params[{key!r}] is "
                    f"{value.dtype} while others are {dtype}"
                )
        return input_size

    return check_params


def _guess_cell(params: Mapping) -> str:
    """A best guess at which cell made ``params``, from the shape of the recurrent matrix."""
    w_hh = params.get("w_hh")
    shape = getattr(w_hh, "shape", ())
    if len(shape) != 2 or shape[0] == 0 or shape[1] % shape[0]:
        return ""
    from jaxrnn.cells import FAMILIES  # the families import this module

    ratio = shape[1] // shape[0]
    names = [f.name for f in FAMILIES.values() if f.gates == ratio]
    article = "an" if names and names[0][0] in "aefhilmnorsx" else "a"  # as the letters sound
    return f"{article} {names[0]} cell with hidden_size={shape[0]}" if len(names) == 1 else ""
