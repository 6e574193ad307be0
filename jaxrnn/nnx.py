"""jaxrnn layers as Flax NNX modules: `RNN`, `Stacked` and `Bidirectional`.

Each module holds the params of a jaxrnn `Layer` as `flax.nnx.Param`s and calls the layer's
``apply`` (so `jaxrnn.unroll`, with its fused backward pass and every mode, runs underneath);
there is no second implementation of any cell. Dropout (recurrent, and between the layers of a
stack) draws its keys from the ``dropout`` stream of the `flax.nnx.Rngs` given at construction,
and is off when the module is ``deterministic`` (``model.eval()``) or the call says so.

    >>> import jax.numpy as jnp, jaxrnn
    >>> from flax import nnx
    >>> rnn = jaxrnn.nnx.RNN(jaxrnn.lstm(16), in_features=3, rngs=nnx.Rngs(0))
    >>> rnn(jnp.ones((2, 5, 3))).shape
    (2, 5, 16)

Needs Flax (``pip install 'jaxrnn[flax]'``).
"""

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxrnn import layers
from jaxrnn.cells.base import Cell
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_real_dtype
from jaxrnn.checks import check_size
from jaxrnn.checks import check_tree
from jaxrnn.checks import fail
from jaxrnn.checks import warn
from jaxrnn.strategy import Strategy
from jaxrnn.strategy import resolve
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params


class Module(nnx.Module):
    """What `RNN`, `Stacked` and `Bidirectional` share: a jaxrnn `Layer` and its params.

    Attributes:
      layer: the jaxrnn `Layer` whose ``apply`` a call runs.
      params: the layer's params, the same pytree as ``layer.init`` returns with every array
        an `flax.nnx.Param`.
      deterministic: no dropout when True (`flax.nnx.Module.eval` sets it, ``train`` clears it).
    """

    def __init__(
        self,
        layer: layers.Layer,
        *,
        in_features: int,
        rngs: nnx.Rngs,
        dtype: Any = jnp.float32,
        return_carry: bool = False,
        time_major: bool = False,
        deterministic: bool = False,
    ):
        _check_rngs(rngs)
        check_size("in_features", in_features)
        dtype = check_real_dtype(dtype)
        for name, flag in (
            ("return_carry", return_carry),
            ("time_major", time_major),
            ("deterministic", deterministic),
        ):
            check_flag(name, flag)
        self.layer = layer
        self.params = nnx.data(
            jax.tree.map(nnx.Param, layer.init(rngs.params(), in_features, dtype=dtype))
        )
        self.in_features = in_features
        self.return_carry = return_carry
        self.time_major = time_major
        self.deterministic = deterministic
        self.rngs = rngs["dropout"].fork() if layer.uses_dropout else nnx.data(None)

    def get_params(self) -> Params:
        """The params as the plain pytree of arrays that ``self.layer.apply`` takes.

        Examples:
          >>> import jaxrnn
          >>> from flax import nnx
          >>> rnn = jaxrnn.nnx.RNN(jaxrnn.gru(4), in_features=3, rngs=nnx.Rngs(0))
          >>> sorted(rnn.get_params())
          ['b_hh', 'b_ih', 'w_hh', 'w_ih']
        """
        return jax.tree.map(lambda v: v[...], self.params, is_leaf=_is_variable)

    def set_params(self, params: Params) -> None:
        """Writes ``params`` (the layer's pytree, e.g. restored from a jaxrnn checkpoint or
        converted with `jaxrnn.interop`) into the module's `flax.nnx.Param`s.

        Raises:
          ValueError: when the structure, a shape or a dtype differs from the module's.

        Examples:
          >>> import jax, jaxrnn
          >>> from flax import nnx
          >>> cell = jaxrnn.gru(4)
          >>> rnn = jaxrnn.nnx.RNN(cell, in_features=3, rngs=nnx.Rngs(0))
          >>> trained = cell.init(jax.random.key(7), input_size=3)
          >>> rnn.set_params(trained)
          >>> bool((rnn.get_params()["w_hh"] == trained["w_hh"]).all())
          True
        """
        source = f"{self.layer!r} with in_features={self.in_features}"
        check_tree("params", params, self.get_params(), source=source)
        variables = jax.tree.leaves(self.params, is_leaf=_is_variable)
        for variable, value in zip(variables, jax.tree.leaves(params), strict=True):
            variable.set_value(jnp.asarray(value))

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        mask: Array | None = None,
        resets: Array | None = None,
        initial_carry: Carry | None = None,
        reverse: bool = False,
        return_carry: bool | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | None = None,
    ) -> Array | tuple[Carry, Array]:
        """Runs the layer over ``xs`` ``(b, t, in_features)`` (``(t, b, ...)`` if
        ``time_major``; several batch axes work, as in `jaxrnn.unroll`).

        Args:
          xs: the inputs.
          seq_lengths: as in `jaxrnn.unroll`.
          mask: as in `jaxrnn.unroll`.
          resets: as in `jaxrnn.unroll`.
          initial_carry: as in `jaxrnn.unroll`.
          reverse: as in `jaxrnn.unroll`.
          return_carry: return ``(final_carry, ys)`` instead of ``ys``; default the module's.
          deterministic: no dropout; default the module's (``eval()``/``train()``).
          rngs: where to draw the dropout key from instead of the module's own stream.

        Returns:
          ``ys`` ``(b, t, output_size)``, or ``(final_carry, ys)``.
        """
        deterministic = self.deterministic if deterministic is None else deterministic
        check_flag("deterministic", deterministic)
        if return_carry is not None:
            check_flag("return_carry", return_carry)
        if rngs is not None:
            _check_rngs(rngs)
        dropout_key = None
        if not deterministic and self.layer.uses_dropout:
            stream = self.rngs if rngs is None else rngs["dropout"]
            if stream is None:
                raise ValueError(
                    f"{type(self).__name__} drops out but has no rngs to draw from; pass "
                    "rngs=nnx.Rngs(...) to the call, or deterministic=True"
                )
            dropout_key = stream()
        carry, ys = self.layer.apply(
            self.get_params(),
            xs,
            seq_lengths=seq_lengths,
            mask=mask,
            resets=resets,
            initial_carry=initial_carry,
            reverse=reverse,
            time_major=self.time_major,
            dropout_key=dropout_key,
        )
        return (carry, ys) if (self.return_carry if return_carry is None else return_carry) else ys

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> Carry:
        """The layer's zero carry for ``batch_shape``, e.g. to pass a sequence in pieces.

        Examples:
          >>> import jaxrnn
          >>> from flax import nnx
          >>> rnn = jaxrnn.nnx.RNN(jaxrnn.lstm(4), in_features=3, rngs=nnx.Rngs(0))
          >>> rnn.initial_carry((2,)).c.shape
          (2, 4)
        """
        return self.layer.initial_carry(self.get_params(), batch_shape)


class RNN(Module):
    """A cell over whole sequences (`jaxrnn.rnn`) as a Flax NNX module.

    Args:
      cell: a jaxrnn `Cell`, e.g. ``jaxrnn.lstm(128)``.
      in_features: ``i``, the size of the inputs' last axis.
      rngs: `flax.nnx.Rngs`; ``params`` initialises the weights, ``dropout`` drives dropout.
      recurrent_dropout: drop probability of the hidden state where the step reads it, one
        mask per sequence for all steps (`jaxrnn.rnn`).
      reverse: read each sequence backwards.
      return_carry: calls return ``(final_carry, ys)``.
      time_major: inputs and outputs are ``(t, b, ...)``.
      strategy: how `jaxrnn.unroll` runs the cell (`jaxrnn.Strategy`), passed on untouched.
      dtype: the compute dtype of the cells (``jnp.bfloat16`` for mixed precision), None for
        the params'; as Flax names it. (Until 0.2, ``dtype=`` without ``param_dtype=`` keeps
        its old meaning, the params' dtype, with a `DeprecationWarning`.)
      param_dtype: the params' dtype (float32 when None).
      deterministic: start without dropout.
      **deprecated: the fields of `jaxrnn.Strategy` as keywords, as before 0.1.1.

    Examples:
      >>> import jax.numpy as jnp, jaxrnn
      >>> from flax import nnx
      >>> rnn = jaxrnn.nnx.RNN(jaxrnn.lstm(8), in_features=3, return_carry=True,
      ...                      rngs=nnx.Rngs(0))
      >>> carry, ys = rnn(jnp.ones((2, 5, 3)), seq_lengths=jnp.array([5, 2]))
      >>> ys.shape, carry.h.shape
      ((2, 5, 8), (2, 8))
    """

    def __init__(
        self,
        cell: Cell,
        *,
        in_features: int,
        rngs: nnx.Rngs,
        recurrent_dropout: float = 0.0,
        reverse: bool = False,
        return_carry: bool = False,
        time_major: bool = False,
        strategy: Strategy | None = None,
        dtype: Any = None,
        param_dtype: Any = None,
        deterministic: bool = False,
        **deprecated: Any,
    ):
        compute_dtype, param_dtype = _dtypes(dtype, param_dtype, "jaxrnn.nnx.RNN")
        layer = layers.rnn(
            layers.in_compute_dtype(cell, compute_dtype, "dtype"),
            reverse=reverse,
            recurrent_dropout=recurrent_dropout,
            strategy=resolve(strategy, deprecated, "jaxrnn.nnx.RNN"),
        )
        super().__init__(
            layer,
            in_features=in_features,
            rngs=rngs,
            dtype=param_dtype,
            return_carry=return_carry,
            time_major=time_major,
            deterministic=deterministic,
        )


class Stacked(Module):
    """Layers on top of each other (`jaxrnn.stacked`) as a Flax NNX module.

    Args:
      cells: jaxrnn cells or layers, bottom first (``jaxrnn.bidirectional(...)`` for a
        bidirectional level).
      in_features: ``i``.
      rngs: `flax.nnx.Rngs`.
      dropout: drop probability between layers (not after the last).
      variational: one dropout mask per sequence for all steps between layers.
      recurrent_dropout: recurrent dropout for every cell given as a cell.
      return_carry: as in `RNN`.
      time_major: as in `RNN`.
      strategy: how the cells given as cells are run (`jaxrnn.Strategy`).
      dtype: as in `RNN`.
      param_dtype: as in `RNN`.
      deterministic: as in `RNN`.

    Examples:
      >>> import jax.numpy as jnp, jaxrnn
      >>> from flax import nnx
      >>> deep = jaxrnn.nnx.Stacked([jaxrnn.lstm(16), jaxrnn.lstm(8)], in_features=3,
      ...                           dropout=0.2, recurrent_dropout=0.1, rngs=nnx.Rngs(0))
      >>> deep(jnp.ones((2, 5, 3))).shape
      (2, 5, 8)
    """

    def __init__(
        self,
        cells: Sequence[Cell | layers.Layer],
        *,
        in_features: int,
        rngs: nnx.Rngs,
        dropout: float = 0.0,
        variational: bool = False,
        recurrent_dropout: float = 0.0,
        return_carry: bool = False,
        time_major: bool = False,
        strategy: Strategy | None = None,
        dtype: Any = None,
        param_dtype: Any = None,
        deterministic: bool = False,
    ):
        if not isinstance(cells, (list, tuple)):
            fail("cells", "a list of cells or layers, bottom first", cells, TypeError)
        compute_dtype, param_dtype = _dtypes(dtype, param_dtype, "jaxrnn.nnx.Stacked")
        options = dict(recurrent_dropout=recurrent_dropout, strategy=strategy)
        parts = [
            layers.as_layer(layers.in_compute_dtype(c, compute_dtype, "dtype"), **options)
            for c in cells
        ]
        layer = layers.stacked(parts, dropout=dropout, variational=variational)
        super().__init__(
            layer,
            in_features=in_features,
            rngs=rngs,
            dtype=param_dtype,
            return_carry=return_carry,
            time_major=time_major,
            deterministic=deterministic,
        )


class Bidirectional(Module):
    """Both reading directions merged (`jaxrnn.bidirectional`) as a Flax NNX module.

    Args:
      forward: the left-to-right cell or layer.
      backward: the right-to-left one; a fresh copy of ``forward``'s kind if None.
      in_features: ``i``.
      rngs: `flax.nnx.Rngs`.
      merge: ``"concat"``, ``"sum"``, a function, or None for the pair of outputs.
      recurrent_dropout: recurrent dropout for each direction given as a cell.
      return_carry: as in `RNN`.
      time_major: as in `RNN`.
      strategy: how the directions given as cells are run (`jaxrnn.Strategy`).
      dtype: as in `RNN`.
      param_dtype: as in `RNN`.
      deterministic: as in `RNN`.

    Examples:
      >>> import jax.numpy as jnp, jaxrnn
      >>> from flax import nnx
      >>> bi = jaxrnn.nnx.Bidirectional(jaxrnn.gru(8), in_features=3, rngs=nnx.Rngs(0))
      >>> bi(jnp.ones((2, 5, 3)), seq_lengths=jnp.array([5, 3])).shape
      (2, 5, 16)
    """

    def __init__(
        self,
        forward: Cell | layers.Layer,
        backward: Cell | layers.Layer | None = None,
        *,
        in_features: int,
        rngs: nnx.Rngs,
        merge: str | Callable[[Array, Array], Array] | None = "concat",
        recurrent_dropout: float = 0.0,
        return_carry: bool = False,
        time_major: bool = False,
        strategy: Strategy | None = None,
        dtype: Any = None,
        param_dtype: Any = None,
        deterministic: bool = False,
    ):
        compute_dtype, param_dtype = _dtypes(dtype, param_dtype, "jaxrnn.nnx.Bidirectional")
        backward = forward if backward is None else backward
        options = dict(recurrent_dropout=recurrent_dropout, strategy=strategy)
        forward, backward = (
            layers.as_layer(layers.in_compute_dtype(m, compute_dtype, "dtype"), **options)
            for m in (forward, backward)
        )
        layer = layers.bidirectional(forward, backward, merge=merge)
        super().__init__(
            layer,
            in_features=in_features,
            rngs=rngs,
            dtype=param_dtype,
            return_carry=return_carry,
            time_major=time_major,
            deterministic=deterministic,
        )


def _dtypes(dtype: Any, param_dtype: Any, owner: str) -> tuple[Any, Any]:
    """``(compute dtype, params' dtype)`` from a module's ``dtype`` and ``param_dtype``, as
    Flax names them; ``dtype`` alone is read as before 0.1.3 (the params'), with a warning."""
    if dtype is not None:
        dtype = check_real_dtype(dtype, "dtype")
    if param_dtype is not None:
        param_dtype = check_real_dtype(param_dtype, "param_dtype")
    if param_dtype is None and dtype is not None:
        warn(
            f"{owner}(dtype={jnp.dtype(dtype).name}) sets the params' dtype until jaxrnn 0.2; "
            "from 0.2 dtype= is the compute dtype, as in Flax. Pass "
            f"param_dtype=jnp.{jnp.dtype(dtype).name} for the params' dtype (and dtype= for "
            "mixed precision)",
            DeprecationWarning,
        )
        return None, dtype
    return dtype, jnp.float32 if param_dtype is None else param_dtype


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def _check_rngs(rngs: Any) -> None:
    if not isinstance(rngs, nnx.Rngs):
        fail(
            "rngs",
            "a flax.nnx.Rngs such as nnx.Rngs(0) or nnx.Rngs(params=0, dropout=1)",
            rngs,
            TypeError,
            hint="a bare key is not a stream of keys: wrap it, nnx.Rngs(key)",
        )


__all__ = (
    "RNN",
    "Bidirectional",
    "Module",
    "Stacked",
)
