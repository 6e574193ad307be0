"""Weights to and from PyTorch (``torch.nn.RNN/LSTM/GRU``), Flax linen cells and Keras 3
layers (``SimpleRNN``, ``LSTM``, ``GRU``, ``Bidirectional``).

Neither torch, flax nor keras is needed at run time here: PyTorch weights arrive as a state
dict of anything `numpy.asarray` accepts, Flax weights as the nested dict of ``variables``,
Keras weights as the layer itself or its ``get_weights()`` list.
"""

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells import FAMILIES
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_int
from jaxrnn.checks import check_real_dtype
from jaxrnn.checks import fail
from jaxrnn.typing import Params


def from_torch(
    cell: Cell,
    state_dict: Mapping[str, Any],
    *,
    layer: int = 0,
    reverse: bool = False,
    prefix: str = "",
    dtype: Any = jnp.float32,
) -> Params:
    """Converts one layer and direction of a ``torch.nn.RNN``/``LSTM``/``GRU`` to jaxrnn params.

    PyTorch stores ``weight_ih_l{layer}`` as ``(g, i)`` and two biases; jaxrnn stores
    ``w_ih`` as ``(i, g)``. Elman and LSTM fold ``bias_ih + bias_hh`` into one ``b``; the GRU
    keeps both because its reset gate multiplies the hidden bias. A layer built with
    ``bias=False`` gets zero biases. For ``nn.RNN(nonlinearity="relu")`` build the cell with
    ``jaxrnn.elman(h, activation=jax.nn.relu)``; for ``nn.LSTM(proj_size=p)`` with
    ``jaxrnn.lstm(h, proj_size=p)`` (``weight_hr`` becomes ``w_hr``).

    Args:
      cell: the jaxrnn cell the weights are for (its kind and hidden size are checked).
      state_dict: ``module.state_dict()``; values are tensors or arrays.
      layer: which layer of a multi-layer module.
      reverse: the backward direction of a bidirectional module (``..._reverse`` keys).
      prefix: the prefix of the keys when the RNN is a submodule, e.g. ``"encoder.rnn."``.
      dtype: the dtype of the returned params.

    Returns:
      Params for ``cell``.

    Examples:
      >>> import numpy as np, jaxrnn
      >>> h, i = 4, 3
      >>> state = {"weight_ih_l0": np.zeros((4 * h, i)), "weight_hh_l0": np.zeros((4 * h, h)),
      ...          "bias_ih_l0": np.zeros(4 * h), "bias_hh_l0": np.zeros(4 * h)}
      >>> params = jaxrnn.interop.from_torch(jaxrnn.lstm(h), state)
      >>> params["w_ih"].shape
      (3, 16)
    """
    family = _family_of(cell, "from_torch")
    _check_state_dict(state_dict)
    check_int("layer", layer, low=0)
    check_flag("reverse", reverse)
    if not isinstance(prefix, str):
        fail("prefix", "a str such as 'encoder.rnn.'", prefix, TypeError)
    dtype = check_real_dtype(dtype)
    gates = family.gates
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = {
        part: f"{prefix}{part}{suffix}" for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }
    for required in ("weight_ih", "weight_hh"):
        if names[required] not in state_dict:
            found = sorted(k for k in state_dict if "weight" in k)
            raise ValueError(
                f"state_dict has no {names[required]!r} (layer={layer}, "
                f"reverse={reverse}, prefix={prefix!r}); its weight keys are {found}"
            )
    w_ih = _to_numpy(state_dict[names["weight_ih"]])
    w_hh = _to_numpy(state_dict[names["weight_hh"]])
    # What the cell expects: (recurrent input, gates * units) for w_hh; an LSTM with a
    # projection reads h of its proj_size and has w_hr.
    expected = jax.eval_shape(functools.partial(cell.init, input_size=1), jax.random.key(0))
    recurrent, width = expected["w_hh"].shape
    hidden = width // gates
    torch_name = family.torch_module
    extra = {}
    hr_key = f"{prefix}weight_hr{suffix}"
    if (hr_key in state_dict) != ("w_hr" in expected):
        if "w_hr" in expected:
            raise ValueError(
                f"{cell!r} has a projection (proj_size={recurrent}) but state_dict has no "
                f"{hr_key!r}: the torch.nn.LSTM was built without proj_size"
            )
        w_hr = _to_numpy(state_dict[hr_key])
        raise ValueError(
            f"state_dict has {hr_key!r} (a torch.nn.LSTM with proj_size={w_hr.shape[0]}): "
            f"build the cell as jaxrnn.lstm({w_hr.shape[-1]}, proj_size={w_hr.shape[0]})"
        )
    if hr_key in state_dict:
        extra["w_hr"] = _to_numpy(state_dict[hr_key])
        if extra["w_hr"].shape != (recurrent, hidden):
            raise ValueError(
                f"state_dict[{hr_key!r}] must have shape ({recurrent}, {hidden}) for {cell!r}, "
                f"got {extra['w_hr'].shape}"
            )
    if w_hh.ndim != 2 or w_hh.shape != (width, recurrent):
        raise ValueError(
            f"state_dict[{names['weight_hh']!r}] must have shape ({width}, {recurrent}) for "
            f"{cell!r} (a torch.nn.{torch_name} with hidden_size={hidden}), got {w_hh.shape}"
        )
    if w_ih.ndim != 2 or w_ih.shape[0] != gates * hidden:
        raise ValueError(
            f"state_dict[{names['weight_ih']!r}] must have shape "
            f"({gates * hidden}, input_size), got {w_ih.shape}"
        )
    b_ih, b_hh = _torch_biases(state_dict, names, gates * hidden, w_hh.dtype)
    params = family.from_torch(w_ih, w_hh, b_ih, b_hh, **extra)
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    cell.check_params(params)
    return params


def from_flax(cell: Cell, variables: Mapping[str, Any]) -> Params:
    """Converts the variables of a ``flax.linen`` cell to jaxrnn params.

    Supported: ``SimpleCell`` (without ``residual``) for `jaxrnn.elman`, ``LSTMCell`` and
    ``OptimizedLSTMCell`` for `jaxrnn.lstm`, ``GRUCell`` for `jaxrnn.gru`, ``MGUCell`` for
    `jaxrnn.mgu`, ``ConvLSTMCell`` for `jaxrnn.conv_lstm`; and the ``flax.nnx`` cells of the
    same names (``SimpleCell``, ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``), given as
    the module itself. Flax's GRU has no hidden bias on r and z (the NNX one none at all);
    the missing biases become zeros in ``b_hh``.

    Args:
      cell: the jaxrnn cell.
      variables: what ``flax_cell.init`` returned (``{"params": {...}}``) or its ``"params"``;
        or a ``flax.nnx`` cell, or its ``nnx.state``.

    Returns:
      Params for ``cell``.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxrnn
      >>> flax_cell = nn.GRUCell(features=4)
      >>> variables = flax_cell.init(jax.random.key(0), jnp.zeros(4), jnp.zeros(3))
      >>> params = jaxrnn.interop.from_flax(jaxrnn.gru(4), variables)
      >>> params["w_hh"].shape
      (4, 12)
    """
    family = _family_of(cell, "from_flax")
    variables = _pure_nnx_state(variables)
    if not isinstance(variables, Mapping):
        raise TypeError(
            "variables must be the dict that flax_cell.init returned, got "
            f"{type(variables).__name__}"
        )
    p = variables.get("params", variables)
    if not isinstance(p, Mapping):
        raise TypeError(f"variables['params'] must be a dict of the cell's layers, got {p!r}")
    try:
        params = family.from_flax(p)
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"variables do not look like those of the flax cell matching {cell!r}; "
            f"missing {error}; top-level names: {sorted(p)}"
        ) from None
    cell.check_params(params)
    return params


def _pure_nnx_state(variables: Any) -> Any:
    """The params of a ``flax.nnx`` cell (or its `nnx.State`) as a nested dict; other values
    as they are. Flax is imported only when such an object arrives."""
    if type(variables).__module__.startswith("flax.nnx"):
        from flax import nnx

        if isinstance(variables, nnx.Module):
            variables = nnx.state(variables, nnx.Param)
        return nnx.to_pure_dict(variables)
    return variables


def to_flax(cell: Cell, params: Params) -> dict[str, Any]:
    """Converts jaxrnn params to ``flax.linen`` cell variables (the inverse of `from_flax`).

    The GRU's hidden biases for r and z are folded into Flax's input biases, which is exact
    because they are added together before the sigmoid.

    Args:
      cell: the jaxrnn cell.
      params: its params.

    Returns:
      ``{"params": {...}}`` for ``SimpleCell``, ``LSTMCell``/``OptimizedLSTMCell`` or
      ``GRUCell`` with ``features=cell.hidden_size``.

    Examples:
      >>> import jax, jaxrnn
      >>> cell = jaxrnn.lstm(4)
      >>> variables = jaxrnn.interop.to_flax(cell, cell.init(jax.random.key(0), input_size=3))
      >>> sorted(variables["params"])
      ['hf', 'hg', 'hi', 'ho', 'if', 'ig', 'ii', 'io']
    """
    family = _family_of(cell, "to_flax")
    cell.check_params(params)
    out = family.to_flax(params)
    return {"params": out}


def from_keras(cell: Cell, layer: Any, *, dtype: Any = jnp.float32) -> Params:
    """Converts a Keras 3 recurrent layer's weights to jaxrnn params.

    ``SimpleRNN`` becomes `jaxrnn.elman`, ``LSTM`` `jaxrnn.lstm` (the same gate order), ``GRU``
    `jaxrnn.gru` (``reset_after=True``, the Keras default) or ``jaxrnn.gru(h,
    reset_after=False)``; Keras's GRU blocks z, r, h are reordered to r, z, n. A
    ``Bidirectional`` layer gives ``{"forward": ..., "backward": ...}`` for
    `jaxrnn.bidirectional` (``merge_mode="concat"`` is its default merge too). Keras's masked
    steps repeat the previous output where jaxrnn outputs zero (unless, as inside
    ``Bidirectional``, ``zero_output_for_mask``); the final states agree.

    Args:
      cell: the jaxrnn cell (its kind and size are checked against the layer).
      layer: a Keras layer, or a single layer's ``get_weights()`` list ``[kernel,
        recurrent_kernel, bias]`` (``bias`` absent for ``use_bias=False``); a ``Bidirectional``
        layer is passed as the layer. A SimpleRNN's activation is not checked: build
        `jaxrnn.elman` with the same one.
      dtype: the dtype of the returned params.

    Returns:
      Params for ``cell``, or a forward/backward dict of them for ``Bidirectional``.

    Examples:
      >>> import numpy as np, jaxrnn
      >>> h, i = 4, 3
      >>> weights = [np.zeros((i, 3 * h)), np.zeros((h, 3 * h)), np.zeros((2, 3 * h))]
      >>> params = jaxrnn.interop.from_keras(jaxrnn.gru(h), weights)
      >>> params["w_hh"].shape, params["b_hh"].shape
      ((4, 12), (12,))
    """
    family = _family_of(cell, "from_keras")
    if hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer"):
        return {
            "forward": from_keras(cell, layer.forward_layer, dtype=dtype),
            "backward": from_keras(cell, layer.backward_layer, dtype=dtype),
        }
    if hasattr(layer, "get_weights"):
        _check_keras_layer(cell, family, layer)
        weights = layer.get_weights()
    else:
        weights = layer
    if not isinstance(weights, (list, tuple)) or not all(hasattr(w, "shape") for w in weights):
        raise TypeError(
            "layer must be a Keras layer or its get_weights() list of arrays, got "
            f"{type(layer).__name__}"
        )
    weights = [np.asarray(w) for w in weights]
    gates = family.gates
    recurrent_shape = (cell.hidden_size, gates * cell.hidden_size)
    bias_shapes = [(gates * cell.hidden_size,)]
    if family.name == "gru":
        bias_shapes = [(2, gates * cell.hidden_size)]
    if len(weights) not in (2, 3) or weights[0].ndim != 2:
        raise ValueError(
            f"Keras weights for {cell!r} must be [kernel (input_size, {gates * cell.hidden_size}), "
            f"recurrent_kernel {recurrent_shape}, bias {bias_shapes[0]}], got shapes "
            f"{[w.shape for w in weights]}"
        )
    if weights[0].shape[1] != recurrent_shape[1] or weights[1].shape != recurrent_shape:
        raise ValueError(
            f"Keras weights for {cell!r} (a keras.layers.{family.keras_layer} with units="
            f"{cell.hidden_size}) must be kernel (input_size, {recurrent_shape[1]}) and "
            f"recurrent_kernel {recurrent_shape}, got {weights[0].shape} and {weights[1].shape}"
        )
    if len(weights) == 3 and weights[2].shape not in bias_shapes:
        hint = ""
        if family.keras_layer == "GRU":
            hint = " (a (3h,) bias is a GRU with reset_after=False: use jaxrnn.gru(h, "
            hint += "reset_after=False); a (2, 3h) one reset_after=True: jaxrnn.gru(h))"
        raise ValueError(
            f"the Keras bias for {cell!r} must have shape {bias_shapes[0]}, got "
            f"{weights[2].shape}{hint}"
        )
    params = {k: jnp.asarray(v, dtype) for k, v in family.from_keras(weights).items()}
    cell.check_params(params)
    return params


def to_keras(cell: Cell, params: Params) -> list[np.ndarray]:
    """jaxrnn params as a Keras 3 layer's weights, for ``layer.set_weights`` (the inverse of
    `from_keras`).

    A `jaxrnn.bidirectional` layer's ``{"forward": ..., "backward": ...}`` params give the list
    of a ``Bidirectional`` layer (forward weights, then backward). A GRU's two biases become
    the ``(2, 3h)`` bias of ``reset_after=True``, or their sum (exact) for
    ``reset_after=False``.

    Args:
      cell: the jaxrnn cell.
      params: its params.

    Returns:
      ``[kernel, recurrent_kernel, bias]`` as numpy arrays.

    Examples:
      >>> import jax, jaxrnn
      >>> cell = jaxrnn.lstm(4)
      >>> weights = jaxrnn.interop.to_keras(cell, cell.init(jax.random.key(0), input_size=3))
      >>> [w.shape for w in weights]
      [(3, 16), (4, 16), (16,)]
    """
    family = _family_of(cell, "to_keras")
    if isinstance(params, Mapping) and set(params) == {"forward", "backward"}:
        return to_keras(cell, params["forward"]) + to_keras(cell, params["backward"])
    cell.check_params(params)
    if "w_hr" in params:
        raise ValueError("Keras's LSTM has no projection: an LSTM with proj_size has no match")
    return [np.asarray(w) for w in family.to_keras(params)]


def _check_keras_layer(cell: Cell, family: Family, layer: Any) -> None:
    """The Keras layer's class, size and options match ``cell`` (else the numbers would be
    silently different)."""
    kind = type(layer).__name__
    if kind != family.keras_layer:
        raise ValueError(f"{cell!r} takes a keras.layers.{family.keras_layer}, got a {kind}")
    units = getattr(layer, "units", cell.hidden_size)
    if units != cell.hidden_size:
        raise ValueError(
            f"{cell!r} has hidden_size={cell.hidden_size}; the layer has units={units}"
        )
    if kind == "GRU" and bool(layer.reset_after) != (family.name == "gru"):
        want = "jaxrnn.gru(h)" if layer.reset_after else "jaxrnn.gru(h, reset_after=False)"
        raise ValueError(f"the Keras GRU has reset_after={layer.reset_after}: use {want}")
    for option, expected in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        used = getattr(getattr(layer, option, None), "__name__", expected)
        if kind != "SimpleRNN" and used != expected:
            raise ValueError(
                f"the Keras {kind} uses {option}={used}; jaxrnn's {family.name} uses {expected}"
            )


def _family_of(cell: Cell, converter: str) -> Family:
    """The `Family` of ``cell``, if it has the ``converter`` (e.g. ``"from_torch"``)."""
    family = FAMILIES.get(getattr(cell, "name", None)) if isinstance(cell, Cell) else None
    if family is None or getattr(family, converter) is None:
        able = [f"jaxrnn.{f.name}" for f in FAMILIES.values() if getattr(f, converter)]
        listed = " or ".join([", ".join(able[:-1]), able[-1]] if len(able) > 1 else able)
        raise TypeError(f"cell must be {listed} (the cells {converter} knows), got {cell!r}")
    return family


def _torch_biases(state_dict: Mapping, names: dict, width: int, dtype) -> tuple:
    """``bias_ih`` and ``bias_hh`` of a torch module's layer: both, or zeros for neither."""
    present = [part for part in ("bias_ih", "bias_hh") if names[part] in state_dict]
    if len(present) == 1:
        other = "bias_hh" if present == ["bias_ih"] else "bias_ih"
        raise ValueError(
            f"state_dict has {names[present[0]]!r} but no {names[other]!r}: a torch module has "
            "both biases (bias=True) or neither (bias=False); a missing one would silently "
            "become zeros"
        )
    zeros = np.zeros(width, dtype)
    biases = []
    for part in ("bias_ih", "bias_hh"):
        value = _to_numpy(state_dict.get(names[part], zeros))
        if value.shape != (width,):
            raise ValueError(
                f"state_dict[{names[part]!r}] must have shape ({width},), got {value.shape}"
            )
        biases.append(value)
    return tuple(biases)


def _check_state_dict(state_dict: Any) -> None:
    if isinstance(state_dict, Mapping):
        return
    module = callable(getattr(state_dict, "state_dict", None))
    fail(
        "state_dict",
        "a mapping of parameter names to tensors, such as module.state_dict()",
        state_dict,
        TypeError,
        hint="call .state_dict() on the torch module" if module else "",
    )


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; torch is not imported here
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: widen (exactly)
            value = value.float()
        value = value.numpy()
    return np.asarray(value)
