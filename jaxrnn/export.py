"""Trained models out of Python: `jax.export` artifacts and ONNX files.

A forward pass (a classifier, one step of a sampler with its carry, a chunk of a stream) is
traced once for inputs whose batch and time sizes stay symbolic, inside `jaxrnn.portable`
(no host callbacks, no reversed scans), and written to one file:

- `save` writes `jax.export`'s serialized form. Any process with JAX reads it back with
  ``jax.export.deserialize(open(path, "rb").read()).call(*args)``: it needs neither jaxrnn
  nor the model's code, and gives the same numbers as the jitted function.
- `save_onnx` converts with jax2onnx (``pip install 'jaxrnn[export]'``) for onnxruntime and
  other serving stacks.

Arguments and results must be arrays or tuples/lists/dicts of arrays (flatten a carry with
named parts, e.g. ``tuple(carry)``), so that a reader needs no jaxrnn types.
"""

import logging
import os
import re
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.files import write_atomically
from jaxrnn.portable import portable


def arguments(*specs: tuple[str, Any]) -> list[jax.ShapeDtypeStruct]:
    """Abstract arguments with symbolic sizes: one ``(shape, dtype)`` pair per argument,
    the shape a comma-separated string of sizes and names (``"b, t, 32"``). A name stands
    for the same size in every argument (one `jax.export.symbolic_shape` scope).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.export import arguments
      >>> xs, lengths = arguments(("b, t, 32", jnp.float32), ("b", jnp.int32))
      >>> xs.shape[0] == lengths.shape[0], xs.shape[2]
      (True, 32)
    """
    if not specs:
        fail("specs", "at least one (shape, dtype) pair, e.g. ('b, t, 32', jnp.float32)", specs)
    parsed = [_parse_spec(n, spec) for n, spec in enumerate(specs)]
    names = sorted({p for shape, _ in parsed for p in shape if not isinstance(p, int)})
    symbols = dict(zip(names, jax.export.symbolic_shape(", ".join(names)), strict=True))
    return [
        jax.ShapeDtypeStruct(tuple(p if isinstance(p, int) else symbols[p] for p in shape), dtype)
        for shape, dtype in parsed
    ]


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse_spec(n: int, spec: Any) -> tuple[list, Any]:
    """The sizes (ints and names) and dtype of argument ``n``'s ``(shape, dtype)`` pair."""
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str)):
        fail(
            f"argument {n}",
            "a (shape, dtype) pair such as ('b, t, 32', jnp.float32)",
            spec,
            TypeError,
        )
    shape, dtype = spec
    parts = [part.strip() for part in shape.split(",")]
    if parts == [""]:  # a scalar
        parts = []
    sizes = []
    for part in parts:
        if part.isdigit():
            sizes.append(int(part))
        elif _NAME.fullmatch(part):
            sizes.append(part)
        else:
            fail(
                f"the shape of argument {n}",
                "comma-separated sizes, each an int >= 0 or a name, such as 'b, t, 32'",
                said(f"{part!r} in {shape!r}"),
            )
    try:
        dtype = jnp.dtype(dtype) if dtype is not None else None
    except TypeError:
        dtype = None
    if dtype is None:
        fail(
            f"the dtype of argument {n}",
            "a dtype such as jnp.float32 or 'int32'",
            spec[1],
            TypeError,
        )
    return sizes, dtype


def save(fn: Callable, args: Sequence[Any], path: str | os.PathLike) -> jax.export.Exported:
    """Traces ``fn`` for ``args`` (see `arguments`) and writes the `jax.export` artifact.

    The file is written atomically (a temporary file, then a rename): a reader never sees a
    half-written artifact.

    Args:
      fn: the function to serve; arrays (or tuples/lists/dicts of arrays) in and out. Params
        it closes over become constants of the artifact.
      args: the abstract arguments, e.g. ``arguments(("b, t, 32", jnp.float32))``.
      path: the file to write.

    Returns:
      The `jax.export.Exported` that was written.

    Examples:
      >>> import os, tempfile, jax, jax.numpy as jnp, numpy as np, jaxrnn
      >>> from jaxrnn import export
      >>> cell = jaxrnn.lstm(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> last = lambda xs: jaxrnn.many_to_one(cell, params, xs)
      >>> path = os.path.join(tempfile.mkdtemp(), "last.jax")
      >>> _ = export.save(last, export.arguments(("b, t, 3", jnp.float32)), path)
      >>> served = jax.export.deserialize(open(path, "rb").read())  # no jaxrnn needed here
      >>> xs = np.ones((4, 9, 3), np.float32)
      >>> bool((served.call(xs) == jax.jit(last)(xs)).all())
      True
    """
    exported = _export(fn, args)
    write_atomically(path, exported.serialize())
    return exported


def load(path: str | os.PathLike) -> jax.export.Exported:
    """Reads an artifact that `save` wrote; call it with ``.call(*args)``.

    This is ``jax.export.deserialize`` with errors that name the file; a serving process
    may use that directly and never import jaxrnn.

    Examples:
      >>> import os, tempfile, jax.numpy as jnp
      >>> from jaxrnn import export
      >>> path = os.path.join(tempfile.mkdtemp(), "double.jax")
      >>> _ = export.save(lambda x: 2 * x, export.arguments(("n", jnp.float32)), path)
      >>> export.load(path).call(jnp.arange(3.0))
      Array([0., 2., 4.], dtype=float32)
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise OSError(f"cannot read the exported model {path}: {error.strerror}") from None
    try:
        return jax.export.deserialize(bytearray(data))
    except Exception as error:  # the flatbuffer reader raises assorted types on bad bytes
        raise ValueError(
            f"{path} is not a jax.export artifact (damaged, or another kind of file): "
            f"{type(error).__name__}: {error}"
        ) from None


def save_onnx(
    fn: Callable,
    args: Sequence[Any],
    path: str | os.PathLike,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> str:
    """Converts ``fn`` for ``args`` to an ONNX model with jax2onnx and writes it atomically.

    Symbolic sizes of ``args`` stay symbolic in the ONNX graph. Reversed scans
    (bidirectional layers, ``reverse=True``) are traced as forward scans over flipped inputs
    (`jaxrnn.portable`), which jax2onnx can convert.

    Args:
      fn: the function; arrays in, an array or a tuple of arrays out.
      args: the abstract arguments, e.g. ``arguments(("b, t, 32", jnp.float32))``.
      path: the ``.onnx`` file to write.
      input_names: names of the graph's inputs, one per argument.
      output_names: names of its outputs.

    Returns:
      ``path``.

    Examples:
      >>> import os, tempfile, jax, jax.numpy as jnp, numpy as np, jaxrnn
      >>> import onnxruntime
      >>> from jaxrnn import export
      >>> cell = jaxrnn.gru(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> last = lambda xs: jaxrnn.many_to_one(cell, params, xs)
      >>> path = export.save_onnx(last, export.arguments(("b, t, 3", jnp.float32)),
      ...                         os.path.join(tempfile.mkdtemp(), "last.onnx"),
      ...                         input_names=["xs"])
      >>> session = onnxruntime.InferenceSession(path)
      >>> xs = np.ones((4, 9, 3), np.float32)
      >>> bool(np.allclose(session.run(None, {"xs": xs})[0], last(xs), atol=1e-5))
      True
    """
    path = os.fspath(path)
    to_onnx = _jax2onnx()
    names = {}
    if input_names is not None:
        names["input_names"] = list(input_names)
    if output_names is not None:
        names["output_names"] = list(output_names)
    # onnx_ir warns about each shape constant it leaves untyped; the model is complete.
    serde = logging.getLogger("onnx_ir.serde")
    level = serde.level
    serde.setLevel(logging.ERROR)
    try:
        with portable():
            model = to_onnx(lambda *a: fn(*a), list(args), **names)
    finally:
        serde.setLevel(level)
    write_atomically(path, model.SerializeToString())
    return path


def save_by_suffix(
    fn: Callable,
    args: Sequence[Any],
    path: str | os.PathLike,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> str:
    """`save_onnx` when ``path`` ends in ``.onnx``, else `save`; returns the format written,
    ``"onnx"`` or ``"jax.export"`` (what the experiments' ``--export PATH`` does).

    Examples:
      >>> import os, tempfile, jax.numpy as jnp
      >>> from jaxrnn import export
      >>> path = os.path.join(tempfile.mkdtemp(), "double.jax")
      >>> export.save_by_suffix(lambda x: 2 * x, export.arguments(("b", jnp.float32)), path,
      ...                       input_names=["x"], output_names=["y"])
      'jax.export'
    """
    if os.fspath(path).endswith(".onnx"):
        save_onnx(fn, args, path, input_names=input_names, output_names=output_names)
        return "onnx"
    save(fn, args, path)
    return "jax.export"


def _export(fn: Callable, args: Sequence[Any]) -> jax.export.Exported:
    with portable():
        # A fresh function object: jit's trace cache must not hand back a trace made
        # outside `portable` (with host callbacks or reversed scans).
        return jax.export.export(jax.jit(lambda *a: fn(*a)))(*args)


def _jax2onnx():
    try:
        # jax2onnx logs a traceback for each optional plugin whose library (dm_pix, ...) does
        # not import; none of them is needed here.
        logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
        from jax2onnx import to_onnx
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs jax2onnx and onnxruntime: pip install 'jaxrnn[export]' ({error})"
        ) from None
    return to_onnx


__all__ = (
    "arguments",
    "load",
    "save",
    "save_onnx",
)
