"""jaxrnn layers as Flax linen modules: `RNN`, `Stacked` and `Bidirectional`.

Each module declares the params of a jaxrnn `Layer` as one linen param named ``"layer"``
(the pytree ``layer.init`` returns; the input size is read from the first call) and calls the
layer's ``apply``, so `jaxrnn.unroll` runs underneath; there is no second implementation.
Dropout draws from the ``"dropout"`` rng collection when not ``deterministic``.

    >>> import jax, jax.numpy as jnp, jaxrnn
    >>> model = jaxrnn.linen.RNN(jaxrnn.lstm(16))
    >>> variables = model.init(jax.random.key(0), jnp.ones((2, 5, 3)))
    >>> model.apply(variables, jnp.ones((2, 5, 3))).shape
    (2, 5, 16)

Needs Flax (``pip install 'jaxrnn[flax]'``).
"""

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxrnn import layers
from jaxrnn.cells.base import Cell
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_real_dtype
from jaxrnn.checks import fail
from jaxrnn.strategy import DEPRECATED_FIELDS
from jaxrnn.strategy import Strategy
from jaxrnn.strategy import resolve
from jaxrnn.typing import Array
from jaxrnn.typing import Carry


class RNN(nn.Module):
    """A cell over whole sequences (`jaxrnn.rnn`) as a linen module.

    Attributes:
      cell: a jaxrnn `Cell`, e.g. ``jaxrnn.lstm(128)``.
      recurrent_dropout: drop probability of the hidden state where the step reads it, one
        mask per sequence (`jaxrnn.rnn`).
      reverse: read each sequence backwards.
      return_carry: calls return ``(final_carry, ys)``.
      time_major: inputs and outputs are ``(t, b, ...)``.
      unroll: deprecated, a field of ``strategy``.
      mode: deprecated, a field of ``strategy``.
      remat: deprecated, a field of ``strategy``.
      fused: deprecated, a field of ``strategy``.
      param_dtype: the params' dtype.
      dtype: the compute dtype of the cells (``jnp.bfloat16`` with float32 params: mixed
        precision), None for the params'; as Flax names it.
      deterministic: no dropout; may also be given to the call (as for ``nn.Dropout``).
      strategy: how `jaxrnn.unroll` runs the cell (`jaxrnn.Strategy`), passed on untouched.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> model = jaxrnn.linen.RNN(jaxrnn.gru(8), recurrent_dropout=0.2)
      >>> xs = jnp.ones((2, 5, 3))
      >>> variables = model.init(jax.random.key(0), xs, deterministic=True)
      >>> ys = model.apply(variables, xs, deterministic=False,
      ...                  rngs={"dropout": jax.random.key(1)})
      >>> ys.shape
      (2, 5, 8)
    """

    cell: Cell
    recurrent_dropout: float = 0.0
    reverse: bool = False
    return_carry: bool = False
    time_major: bool = False
    # Deprecated: the fields of `strategy`, kept (at their old places) until 0.2.
    unroll: int | None = None
    mode: str | None = None
    remat: int | None = None
    fused: bool | None = None
    param_dtype: Any = jnp.float32
    deterministic: bool | None = None
    strategy: Strategy | None = None
    dtype: Any = None  # last: a new field keeps the others' positions

    def layer(self) -> layers.Layer:
        """The jaxrnn `Layer` this module runs."""
        given = {
            name: getattr(self, name)
            for name in DEPRECATED_FIELDS
            if getattr(self, name, None) is not None
        }
        return layers.rnn(
            layers.in_compute_dtype(self.cell, self.dtype, "dtype"),
            reverse=self.reverse,
            recurrent_dropout=self.recurrent_dropout,
            strategy=resolve(self.strategy, given, "jaxrnn.linen.RNN"),
        )

    @nn.compact
    def __call__(self, xs: Array, **kwargs: Any) -> Array | tuple[Carry, Array]:
        """See `run`: ``xs`` ``(b, t, i)`` -> ``ys`` or ``(final_carry, ys)``."""
        return run(self, self.layer(), xs, **kwargs)


class Stacked(nn.Module):
    """Layers on top of each other (`jaxrnn.stacked`) as a linen module.

    Attributes:
      cells: jaxrnn cells or layers, bottom first.
      dropout: drop probability between layers.
      variational: one dropout mask per sequence for all steps between layers.
      recurrent_dropout: recurrent dropout for every cell given as a cell.
      return_carry: as in `RNN`.
      time_major: as in `RNN`.
      param_dtype: as in `RNN`.
      dtype: as in `RNN`.
      deterministic: as in `RNN`.
      strategy: how the cells given as cells are run (`jaxrnn.Strategy`).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> model = jaxrnn.linen.Stacked((jaxrnn.lstm(16), jaxrnn.lstm(8)), dropout=0.2)
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 5, 3)), deterministic=True)
      >>> model.apply(variables, jnp.ones((2, 5, 3)), deterministic=True).shape
      (2, 5, 8)
    """

    cells: Sequence[Cell | layers.Layer]
    dropout: float = 0.0
    variational: bool = False
    recurrent_dropout: float = 0.0
    return_carry: bool = False
    time_major: bool = False
    param_dtype: Any = jnp.float32
    deterministic: bool | None = None
    strategy: Strategy | None = None
    dtype: Any = None  # last: a new field keeps the others' positions

    def layer(self) -> layers.Layer:
        """The jaxrnn `Layer` this module runs."""
        if not isinstance(self.cells, (list, tuple)):
            fail("cells", "a list of cells or layers, bottom first", self.cells, TypeError)
        options = dict(recurrent_dropout=self.recurrent_dropout, strategy=self.strategy)
        parts = [
            layers.as_layer(layers.in_compute_dtype(c, self.dtype, "dtype"), **options)
            for c in self.cells
        ]
        return layers.stacked(parts, dropout=self.dropout, variational=self.variational)

    @nn.compact
    def __call__(self, xs: Array, **kwargs: Any) -> Array | tuple[Carry, Array]:
        """See `run`."""
        return run(self, self.layer(), xs, **kwargs)


class Bidirectional(nn.Module):
    """Both reading directions merged (`jaxrnn.bidirectional`) as a linen module.

    Attributes:
      forward: the left-to-right cell or layer.
      backward: the right-to-left one; a fresh copy of ``forward``'s kind if None.
      merge: ``"concat"``, ``"sum"``, a function, or None for the pair of outputs.
      recurrent_dropout: recurrent dropout for each direction given as a cell.
      return_carry: as in `RNN`.
      time_major: as in `RNN`.
      param_dtype: as in `RNN`.
      dtype: as in `RNN`.
      deterministic: as in `RNN`.
      strategy: how the directions given as cells are run (`jaxrnn.Strategy`).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> model = jaxrnn.linen.Bidirectional(jaxrnn.gru(8))
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 5, 3)))
      >>> model.apply(variables, jnp.ones((2, 5, 3))).shape
      (2, 5, 16)
    """

    forward: Cell | layers.Layer
    backward: Cell | layers.Layer | None = None
    merge: str | Callable[[Array, Array], Array] | None = "concat"
    recurrent_dropout: float = 0.0
    return_carry: bool = False
    time_major: bool = False
    param_dtype: Any = jnp.float32
    deterministic: bool | None = None
    strategy: Strategy | None = None
    dtype: Any = None  # last: a new field keeps the others' positions

    def layer(self) -> layers.Layer:
        """The jaxrnn `Layer` this module runs."""
        backward = self.forward if self.backward is None else self.backward
        options = dict(recurrent_dropout=self.recurrent_dropout, strategy=self.strategy)
        return layers.bidirectional(
            layers.as_layer(layers.in_compute_dtype(self.forward, self.dtype, "dtype"), **options),
            layers.as_layer(layers.in_compute_dtype(backward, self.dtype, "dtype"), **options),
            merge=self.merge,
        )

    @nn.compact
    def __call__(self, xs: Array, **kwargs: Any) -> Array | tuple[Carry, Array]:
        """See `run`."""
        return run(self, self.layer(), xs, **kwargs)


def run(
    module: nn.Module,
    layer: layers.Layer,
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    mask: Array | None = None,
    resets: Array | None = None,
    initial_carry: Carry | None = None,
    reverse: bool = False,
    return_carry: bool | None = None,
    deterministic: bool | None = None,
) -> Array | tuple[Carry, Array]:
    """The call of every module here: declares ``layer``'s params as the param ``"layer"`` of
    ``module`` (initialised for ``xs.shape[-1]`` input features) and runs ``layer.apply``.

    Args:
      module: the calling module (inside its compact ``__call__``).
      layer: the jaxrnn `Layer` it runs.
      xs: inputs ``(b, t, i)`` (``(t, b, i)`` if the module is ``time_major``).
      seq_lengths: as in `jaxrnn.unroll`.
      mask: as in `jaxrnn.unroll`.
      resets: as in `jaxrnn.unroll`.
      initial_carry: as in `jaxrnn.unroll`.
      reverse: as in `jaxrnn.unroll`.
      return_carry: return ``(final_carry, ys)``; default the module's.
      deterministic: no dropout; merged with the module's attribute as ``nn.Dropout`` does
        (a layer with dropout needs it from one of the two).

    Returns:
      ``ys``, or ``(final_carry, ys)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> model = jaxrnn.linen.RNN(jaxrnn.lstm(4), return_carry=True)
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 5, 3)))
      >>> carry, ys = model.apply(variables, jnp.ones((2, 5, 3)), seq_lengths=jnp.array([5, 1]))
      >>> carry.h.shape, sorted(variables["params"])
      ((2, 4), ['layer'])
    """
    for name, flag in (("return_carry", return_carry), ("deterministic", deterministic)):
        if flag is not None:
            check_flag(name, flag)
    in_features = jnp.shape(xs)[-1]
    params = module.param(
        "layer",
        lambda key: layer.init(
            key, in_features, dtype=check_real_dtype(module.param_dtype, "param_dtype")
        ),
    )
    dropout_key = None
    if layer.uses_dropout:
        merged = nn.merge_param("deterministic", module.deterministic, deterministic)
        if not check_flag("deterministic", merged):
            dropout_key = module.make_rng("dropout")
    carry, ys = layer.apply(
        params,
        xs,
        seq_lengths=seq_lengths,
        mask=mask,
        resets=resets,
        initial_carry=initial_carry,
        reverse=reverse,
        time_major=module.time_major,
        dropout_key=dropout_key,
    )
    keep_carry = module.return_carry if return_carry is None else return_carry
    return (carry, ys) if keep_carry else ys


__all__ = (
    "RNN",
    "Bidirectional",
    "Stacked",
    "run",
)
