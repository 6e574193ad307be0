"""An API fuzzer: hypothesis draws calls of jaxrnn's public API with valid and invalid arguments,
and every call must have one property (`verify`):

    either the result equals a reference (a Python loop over ``cell.step`` for the sequence
    functions, the documents run alone for packing, NumPy for the rest), or a `ValueError` or
    `TypeError` raised from a frame inside jaxrnn names the argument that was bad.

Each strategy below builds a `Call` from one valid call by replacing arguments with *variants*,
each labelled valid (a uint8 length array, NaN in padding, a Python list for an array) or
invalid with the name of the argument the error must name. `tests/test_fuzz.py` runs a bounded
profile in ``make test``; ``JAXRNN_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py``
runs it long.

Only public API is called. Where the API changed (``strategy=``), `_strategy` speaks both forms,
so the fuzzer can be run against older versions of jaxrnn to see what it finds there.
"""

import dataclasses
import inspect
import math
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import jaxrnn
from jaxrnn import decode
from jaxrnn import packing
from jaxrnn import text

NUMPY_INTS = (np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint32)


@dataclasses.dataclass
class Call:
    """One drawn call: ``run()`` calls the API; ``expect(result)`` checks a valid call's result
    against the reference (raising AssertionError); ``bad`` names the invalid argument, or is
    None for a valid call."""

    what: str
    run: Callable[[], Any]
    expect: Callable[[Any], None]
    bad: str | tuple[str, ...] | None = None  # several: the error may name any of them

    def __repr__(self) -> str:
        return f"Call({self.what}, bad={self.bad})"


class Finding(AssertionError):
    """A call that broke the property; ``kind`` sorts findings for a report."""

    def __init__(self, kind: str, call: Call, detail: str):
        super().__init__(f"{kind}: {call.what}: {detail}")
        self.kind = kind


def verify(call: Call) -> None:
    """The property. Raises `Finding` when the call breaks it."""
    try:
        result = call.run()
    except (ValueError, TypeError) as error:
        origin = traceback.extract_tb(error.__traceback__)[-1].filename
        message = str(error)
        if call.bad is None:
            raise Finding(
                "valid call refused", call, f"{type(error).__name__}: {message}"
            ) from error
        if "/jaxrnn/" not in origin.replace("\\", "/"):
            raise Finding(
                "error from outside jaxrnn", call, f"{type(error).__name__} in {origin}: {message}"
            ) from error
        names = (call.bad,) if isinstance(call.bad, str) else call.bad
        if not any(name in message for name in names):
            raise Finding(
                "error does not name the argument", call, f"expected {call.bad!r} in: {message}"
            ) from error
        return
    except Exception as error:  # anything else is what the fuzzer looks for
        raise Finding(
            "error of the wrong type", call, f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
    if call.bad is not None:
        raise Finding("bad argument accepted", call, f"{call.bad} was not refused")
    try:
        call.expect(result)
    except AssertionError as error:
        raise Finding("wrong result", call, str(error)[:500]) from error


# --- helpers ----------------------------------------------------------------------------------


def _strategy(**fields) -> dict[str, Any]:
    """``strategy=jaxrnn.Strategy(**fields)``, or the keywords of versions without it."""
    if not fields:
        return {}
    if hasattr(jaxrnn, "Strategy"):
        return {"strategy": jaxrnn.Strategy(**fields)}
    return dict(fields)


def _close(got, want, what="result", rtol=2e-4, atol=2e-5):
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    if any(np.asarray(leaf).dtype == jnp.bfloat16 for leaf in got_leaves + want_leaves):
        # Mixed precision: the scan fuses bfloat16 ops that one eager step rounds apart.
        rtol, atol = max(rtol, 3e-2), max(atol, 3e-2)
    assert len(got_leaves) == len(want_leaves), (
        f"{what}: {len(got_leaves)} leaves, want {len(want_leaves)}"
    )
    for g, w in zip(got_leaves, want_leaves, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{what}: shape {g.shape}, want {w.shape}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


def _run_maybe_jitted(fn: Callable, args: tuple, jit: bool):
    if not jit:
        return fn(*args)
    compiled = jax.jit(fn)
    if hasattr(jaxrnn, "checked"):
        return jaxrnn.checked(compiled)(*args)
    return jax.block_until_ready(compiled(*args))


CELLS = {
    "lstm": lambda h: jaxrnn.lstm(h),
    "gru": lambda h: jaxrnn.gru(h),
    "elman": lambda h: jaxrnn.elman(h),
    "mgu": lambda h: jaxrnn.mgu(h),
    "mingru": lambda h: jaxrnn.mingru(h),
    "minlstm": lambda h: jaxrnn.minlstm(h),
    "lru": lambda h: jaxrnn.lru(h, state_size=3),
    # Mixed precision: float32 params and carries, bfloat16 products and outputs.
    "lstm_bf16": lambda h: jaxrnn.lstm(h, compute_dtype=jnp.bfloat16),
    "mingru_bf16": lambda h: jaxrnn.mingru(h, compute_dtype=jnp.bfloat16),
    # xLSTM and Mamba: one head so that any hidden size divides; Mamba's input is its width.
    "slstm": lambda h: jaxrnn.slstm(h, num_heads=1),
    "mlstm": lambda h: jaxrnn.mlstm(h, num_heads=1),
    "mamba": lambda h: jaxrnn.mamba(h, state_size=2),
}
# The cells each mode runs, read from the cells themselves (the library's one definition).
PARALLEL = tuple(
    n for n, make in CELLS.items() if make(2).linear is not None or make(2).parallel_form
)
CHUNKWISE = tuple(n for n, make in CELLS.items() if make(2).parallel_form is not None)
SAME_SIZE = ("mamba",)  # input size must equal the hidden size


def reference_unroll(cell, params, xs, lengths, mask, resets, initial, reverse):
    """The semantics of `jaxrnn.unroll`, written as a Python loop over ``cell.step``, one
    sequence at a time. ``xs (n, t, i)`` batch-major with one batch axis; ``lengths (n,)``
    Python ints or None; ``mask``/``resets`` ``(n, t)`` bool or None; ``initial`` a carry with
    leaves ``(n, ...)``."""
    n, t = xs.shape[:2]
    step = jax.jit(cell.step)
    x_spec = jax.ShapeDtypeStruct(xs.shape[2:], xs.dtype)
    y_spec = jax.eval_shape(cell.step, params, cell.initial_carry(params), x_spec)[1]
    ys = np.zeros((n, t, *y_spec.shape), y_spec.dtype)
    final = jax.tree.map(lambda c: np.array(c), initial)
    for j in range(n):
        length = t if lengths is None else int(lengths[j])
        valid = [s < length and (mask is None or bool(mask[j, s])) for s in range(t)]
        starts = [resets is not None and bool(resets[j, s]) and s < length for s in range(t)]
        if reverse:  # reading backwards, a document starts at its last step
            starts = [s + 1 < t and starts[s + 1] and s < length for s in range(t)]
        first = jax.tree.map(lambda c, j=j: c[j], initial)
        carry = first
        for s in reversed(range(t)) if reverse else range(t):
            if starts[s]:
                carry = first
            if valid[s]:
                carry, y = step(params, carry, xs[j, s])
                ys[j, s] = np.asarray(y)
        for leaf, value in zip(jax.tree.leaves(final), jax.tree.leaves(carry), strict=True):
            leaf[j] = np.asarray(value)
    return final, ys


# --- variants of the per-call arguments ---------------------------------------------------------


VALID_LENGTHS = ["none", "valid", "valid", "list"]
BAD_LENGTHS = ["bool", "float", "range", "shape", "str"]
VALID_STEPS = ["none", "valid", "valid"]
BAD_STEPS = ["ints", "transposed", "flat"]


@st.composite
def hostile(draw) -> bool:
    """Whether a call may get invalid arguments: one call in three. The others are valid
    calls with unusual values, where silent wrong answers hide."""
    return draw(st.integers(0, 2)) == 0


@st.composite
def lengths_variant(draw, batch, t, allow_bad=True):
    """``(value passed, lengths as Python ints or None, bad name or None)``."""
    n = math.prod(batch)
    kind = draw(st.sampled_from(VALID_LENGTHS + (BAD_LENGTHS if allow_bad else [])))
    values = draw(st.lists(st.integers(0, t), min_size=n, max_size=n))
    if kind == "none":
        return None, None, None
    if kind == "list" and n == 0:
        kind = "valid"  # [] has no batch shape
    if kind in ("valid", "list"):
        longest = max(values, default=0)
        dtype = draw(st.sampled_from([d for d in NUMPY_INTS if np.iinfo(d).max >= longest]))
        array = np.asarray(values, dtype).reshape(batch)
        return (array.tolist() if kind == "list" else array), values, None
    if kind == "bool":
        return np.ones(batch, bool), None, "seq_lengths"
    if kind == "float":
        return np.asarray(values, np.float32).reshape(batch), None, "seq_lengths"
    if kind == "range":
        wrong = draw(st.sampled_from([-1, t + 1, 2**32 + 3, 2**31]))
        bad = np.asarray(values, np.int64)
        if n == 0:
            return bad.reshape(batch), values, None  # nothing to be wrong
        bad[draw(st.integers(0, n - 1))] = wrong
        return bad.reshape(batch), None, "seq_lengths"
    if kind == "shape":
        return np.asarray([*values, 1], np.int32), None, "seq_lengths"
    return "5", None, "seq_lengths"


@st.composite
def steps_variant(draw, name, batch, t, time_major, allow_bad=True):
    """A ``mask`` or ``resets`` variant: ``(value passed, (n, t) bool or None, bad or None)``."""
    n = math.prod(batch)
    kind = draw(st.sampled_from(VALID_STEPS + (BAD_STEPS if allow_bad else [])))
    steps = np.asarray(draw(st.lists(st.booleans(), min_size=n * t, max_size=n * t)), bool)
    flat = steps.reshape(n, t)
    shaped = flat.reshape(*batch, t)
    if time_major:
        shaped = np.moveaxis(shaped, -1, 0)
    if kind == "none":
        return None, None, None
    if kind == "ints":
        return shaped.astype(np.int32), None, name
    wrong = {"transposed": shaped.T, "flat": shaped.reshape(-1)}.get(kind)
    if wrong is None or wrong.shape == shaped.shape:  # a wrong shape that happens to fit
        return shaped, flat, None
    return wrong, None, name


@st.composite
def sequence_setup(draw):
    """A cell, params, inputs and the layout of one sequence call."""
    name = draw(st.sampled_from(sorted(CELLS)))
    hidden = draw(st.integers(1, 4))
    features = draw(st.integers(1, 3))
    batch = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=2)))
    long = draw(st.integers(0, 11)) == 0  # a time axis past what uint8 can count
    t = 260 if long else draw(st.integers(0, 6))
    if long:
        batch = (2,)
    time_major = draw(st.booleans()) and bool(batch)
    if name in SAME_SIZE:
        features = hidden
    cell = CELLS[name](hidden)
    params = cell.init(jax.random.key(draw(st.integers(0, 3))), input_size=features)
    xs = np.asarray(
        jax.random.normal(jax.random.key(draw(st.integers(0, 3))), (*batch, t, features))
    )
    return name, cell, params, xs, batch, t, time_major


def _layout(xs_bm, batch, time_major):
    """Batch-major ``(*batch, t, i)`` inputs in the call's layout."""
    return np.moveaxis(xs_bm, len(batch), 0) if time_major else xs_bm


def _unlayout(ys, batch, time_major):
    return np.moveaxis(ys, 0, len(batch)) if time_major else ys


@st.composite
def unroll_calls(draw):
    """`jaxrnn.unroll` with every per-call argument, eager or jitted, in every mode."""
    name, cell, params, xs, batch, t, time_major = draw(sequence_setup())
    n = math.prod(batch)
    bad_ok = draw(hostile())
    lengths_value, lengths, bad_lengths = draw(lengths_variant(batch, t, bad_ok))
    mask_value, mask, bad_mask = draw(steps_variant("mask", batch, t, time_major, bad_ok))
    resets_value, resets, bad_resets = draw(steps_variant("resets", batch, t, time_major, bad_ok))
    reverse = draw(st.booleans())
    modes = ["default", "autodiff", "remat", "unroll"]
    modes += ["parallel"] * (name in PARALLEL) + ["chunkwise"] * (name in CHUNKWISE)
    mode = draw(st.sampled_from(modes))
    options = {
        "default": {},
        "autodiff": dict(fused=False),
        "remat": dict(remat=draw(st.integers(1, 4))),
        "unroll": dict(unroll=draw(st.integers(2, 3))),
        "parallel": dict(mode="parallel"),
        "chunkwise": dict(mode="chunkwise", chunk_size=draw(st.integers(1, 4))),
    }[mode]
    jit = draw(st.booleans())
    if (
        isinstance(lengths_value, np.ndarray)
        and lengths_value.size
        and (np.abs(lengths_value.astype(np.float64)).max() >= 2**31)
    ):
        # Without x64, jax.jit itself casts an int64 argument to int32 (with a warning)
        # before jaxrnn sees it: 2**32 + 3 arrives as 3. Only eager calls can be checked.
        jit = False
    carry_kind = draw(st.sampled_from(["none", "none", "given"] + ["wrong"] * bad_ok))
    initial = cell.initial_carry(params, batch)
    initial = jax.tree.map(lambda c: c + jnp.asarray(0.25, c.dtype), initial)
    carry_value = {
        "none": None,
        "given": initial,
        "wrong": jax.tree.map(lambda c: c[..., :0], initial),
    }[carry_kind]
    xs_kind = draw(
        st.sampled_from(["valid", "valid", "nan_padding", "list"] + ["ints", "features"] * bad_ok)
    )
    xs_value = _layout(xs, batch, time_major)
    bad = tuple(b for b in (bad_lengths, bad_mask, bad_resets) if b)
    if carry_kind == "wrong":
        bad += ("initial_carry",)
    if xs_kind == "nan_padding" and lengths is not None and t and n:
        poisoned = xs.reshape(n, t, xs.shape[-1]).copy()
        for j, length in enumerate(lengths):
            poisoned[j, length:] = np.nan
        xs_value = _layout(poisoned.reshape(xs.shape), batch, time_major)
    elif xs_kind == "ints":
        xs_value = xs_value.astype(np.int32)
        bad += ("xs",)
    elif xs_kind == "features":
        xs_value = np.concatenate([xs_value, xs_value[..., :1]], axis=-1)
        bad += ("xs",)
    elif xs_kind == "list" and xs.size < 60:
        xs_value = xs_value.tolist() if xs.size else xs_value

    kwargs = dict(
        seq_lengths=lengths_value,
        mask=mask_value,
        resets=resets_value,
        reverse=reverse,
        time_major=time_major,
        **_strategy(**options),
    )
    if carry_value is not None:
        kwargs["initial_carry"] = carry_value

    def run():
        def f(xs_arg):
            return jaxrnn.unroll(cell, params, xs_arg, **kwargs)

        if (
            jit
            and isinstance(xs_value, np.ndarray)
            and all(
                v is None or isinstance(v, np.ndarray)
                for v in (lengths_value, mask_value, resets_value)
            )
        ):
            traced = dict(kwargs)

            def g(xs_arg, lengths_arg, mask_arg, resets_arg):
                traced.update(seq_lengths=lengths_arg, mask=mask_arg, resets=resets_arg)
                return jaxrnn.unroll(cell, params, xs_arg, **traced)

            return _run_maybe_jitted(g, (xs_value, lengths_value, mask_value, resets_value), True)
        return f(xs_value)

    def expect(result):
        carry, ys = result
        flat_xs = xs.reshape(n, t, xs.shape[-1])
        start = jax.tree.map(lambda c: np.asarray(c).reshape(n, *c.shape[len(batch) :]), initial)
        if carry_value is None:
            start = jax.tree.map(lambda c: np.zeros_like(c), start)
        want_carry, want_ys = reference_unroll(
            cell, params, flat_xs, lengths, mask, resets, start, reverse
        )
        want_carry = jax.tree.map(lambda c: c.reshape(*batch, *c.shape[1:]), want_carry)
        want_ys = want_ys.reshape(*batch, t, *want_ys.shape[2:])
        _close(carry, want_carry, "final carry")
        _close(_unlayout(np.asarray(ys), batch, time_major), want_ys, "ys")

    what = (
        f"unroll({name}, batch={batch}, t={t}, time_major={time_major}, reverse={reverse}, "
        f"{mode}, jit={jit}, seq_lengths={_short(lengths_value)}, mask={_short(mask_value)}, "
        f"resets={_short(resets_value)}, initial_carry={carry_kind}, xs={xs_kind})"
    )
    return Call(what, run, expect, bad or None)


def _short(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return type(value).__name__


# --- heads: many_to_one and pool read the same last step as the scan --------------------------


@st.composite
def head_calls(draw):
    """`jaxrnn.many_to_one` over a cell, `rnn`, `stacked` or `bidirectional`, with lengths and
    masks, against the reference loop."""
    name = draw(st.sampled_from(["lstm", "gru", "elman", "mingru"]))
    cell = CELLS[name](3)
    wrap = draw(st.sampled_from(["cell", "rnn", "stacked", "bidirectional"]))
    model = {
        "cell": cell,
        "rnn": jaxrnn.rnn(cell) if wrap == "rnn" else None,
        "stacked": jaxrnn.stacked([cell, CELLS["gru"](2)]) if wrap == "stacked" else None,
        "bidirectional": jaxrnn.bidirectional(cell) if wrap == "bidirectional" else None,
    }[wrap]
    batch, t = (draw(st.integers(1, 3)),), draw(st.integers(1, 5))
    features = 2
    params = model.init(jax.random.key(0), input_size=features)
    xs = np.array(jax.random.normal(jax.random.key(1), (*batch, t, features)))
    bad_ok = draw(hostile())
    lengths_value, lengths, bad_lengths = draw(lengths_variant(batch, t, bad_ok))
    mask_value, mask, bad_mask = draw(steps_variant("mask", batch, t, False, bad_ok))
    method = draw(st.sampled_from(["last", "mean", "max"]))
    bad = tuple(b for b in (bad_lengths, bad_mask) if b) or None

    def run():
        return jaxrnn.many_to_one(
            model, params, xs, seq_lengths=lengths_value, mask=mask_value, method=method
        )

    def expect(result):
        n = batch[0]

        def loop(c, p, inputs, reverse=False):
            start = jax.tree.map(np.asarray, c.initial_carry(p, batch))
            return reference_unroll(c, p, inputs, lengths, mask, None, start, reverse)[1]

        if wrap in ("cell", "rnn"):
            ys = loop(cell, params, xs)
        elif wrap == "stacked":
            ys = loop(CELLS["gru"](2), params[1], loop(cell, params[0], xs))
        else:
            ys = np.concatenate(
                [loop(cell, params["forward"], xs), loop(cell, params["backward"], xs, True)], -1
            )
        valid = np.ones((n, t), bool)
        if lengths is not None:
            valid &= np.arange(t)[None] < np.asarray(lengths)[:, None]
        if mask is not None:
            valid &= mask
        want = np.zeros((n, ys.shape[-1]), ys.dtype)
        for j in range(n):
            steps = np.flatnonzero(valid[j])
            if not steps.size:
                continue
            picked = ys[j, steps]
            want[j] = {"last": picked[-1], "mean": picked.mean(0), "max": picked.max(0)}[method]
        _close(result, want, f"many_to_one({method})")

    what = (
        f"many_to_one({wrap}({name}), t={t}, {method}, seq_lengths={_short(lengths_value)}, "
        f"mask={_short(mask_value)})"
    )
    return Call(what, run, expect, bad)


# --- packing -------------------------------------------------------------------------------------


@st.composite
def packing_calls(draw):
    """Documents packed into rows: `packing.last`, `first` and `unpack` against each document
    run alone; outputs given time-major with and without saying so."""
    lengths = draw(st.lists(st.integers(1, 5), min_size=1, max_size=5))
    row_length = draw(st.integers(max(lengths), 7))
    cell = jaxrnn.gru(2)
    params = cell.init(jax.random.key(0), input_size=1)
    docs = [
        np.arange(1, n + 1, dtype=np.float32)[:, None] * (k + 1) / 7 for k, n in enumerate(lengths)
    ]
    packed = packing.pack(docs, row_length)
    xs = jnp.asarray(packed.values, jnp.float32)
    _, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=packed.seq_lengths, resets=packed.resets)
    alone = [np.asarray(jaxrnn.unroll(cell, params, jnp.asarray(d))[1]) for d in docs]
    which = draw(st.sampled_from(["last", "first", "unpack"]))
    layout = draw(st.sampled_from(["batch-major", "time-major said", "time-major unsaid"]))
    rows = packed.values.shape[0]
    if (
        layout == "time-major said"
        and "time_major" not in inspect.signature(packing.last).parameters
    ):
        layout = "batch-major"  # a version without the option
    ys_value = ys if layout == "batch-major" else jnp.swapaxes(ys, 0, 1)
    kwargs = {"time_major": True} if layout == "time-major said" else {}
    bad = None
    if layout == "time-major unsaid" and rows != row_length:
        bad = "ys"
    elif layout == "time-major unsaid":
        layout = "batch-major"
        ys_value = ys
    max_length = None
    if which == "unpack":
        max_length = draw(st.integers(1, 6))
        if max_length < max(lengths):
            bad = bad or "max_length"
        kwargs["max_length"] = max_length

    def run():
        return getattr(packing, which)(ys_value, packed, **kwargs)

    def expect(result):
        if which == "last":
            want = np.stack([a[-1] for a in alone])
        elif which == "first":
            want = np.stack([a[0] for a in alone])
        else:
            want = np.zeros((len(docs), max_length, 2), np.float32)
            for k, a in enumerate(alone):
                want[k, : len(a)] = a
        _close(result, want, f"packing.{which}", rtol=1e-5, atol=1e-6)

    what = (
        f"packing.{which}(lengths={lengths}, row_length={row_length}, {layout}, "
        f"max_length={max_length})"
    )
    return Call(what, run, expect, bad)


# --- text ----------------------------------------------------------------------------------------


@st.composite
def text_calls(draw):
    """`Vocabulary.build`, ``encode`` and ``decode`` with the kinds of things users pass."""
    corpus = [["a", "good", "film"], ["the", "plot", "a"]]
    vocab = text.Vocabulary.build(corpus)
    which = draw(st.sampled_from(["build", "encode", "decode"]))
    if which == "build":
        kind = draw(st.sampled_from(["token lists", "strings", "ints", "tuples"]))
        lists = {
            "token lists": corpus,
            "tuples": [tuple(c) for c in corpus],
            "strings": [" ".join(c) for c in corpus],
            "ints": [[1, 2], [3]],
        }[kind]
        bad = None if kind in ("token lists", "tuples") else "token_lists"

        def run():
            return text.Vocabulary.build(lists)

        def expect(result):
            assert result.tokens == vocab.tokens, (result.tokens, vocab.tokens)

        return Call(f"Vocabulary.build({kind})", run, expect, bad)
    if which == "encode":
        kind = draw(
            st.sampled_from(["tokens", "unknown tokens", "ints", "numpy strings", "floats"])
        )
        tokens = {
            "tokens": ["a", "plot"],
            "unknown tokens": ["zzz", "a"],
            "ints": [4, 5],
            "numpy strings": list(np.asarray(["a", "plot"])),
            "floats": [1.5],
        }[kind]
        bad = "tokens" if kind in ("ints", "floats") else None

        def run():
            return vocab.encode(tokens)

        def expect(result):
            want = [vocab.id(str(t)) for t in tokens]
            assert np.asarray(result).tolist() == want, (result, want)

        return Call(f"encode({kind})", run, expect, bad)
    kind = draw(
        st.sampled_from(
            ["ints", "numpy ints", "floats", "out of range", "negative", "bools", "string"]
        )
    )
    ids = {
        "ints": [4, 5],
        "numpy ints": np.asarray([4, 5], draw(st.sampled_from(NUMPY_INTS))),
        "floats": [4.7],
        "out of range": [len(vocab)],
        "negative": [-1],
        "bools": [True],
        "string": "45",
    }[kind]
    bad = None if kind in ("ints", "numpy ints") else "ids"

    def run():
        return vocab.decode(ids)

    def expect(result):
        assert result == [vocab.tokens[int(i)] for i in ids], result

    return Call(f"decode({kind})", run, expect, bad)


# --- decode --------------------------------------------------------------------------------------


@st.composite
def decode_calls(draw):
    """`decode.select`, `generate` and `beam_search` with hostile logits, temperatures, start
    tokens and carries."""
    vocab = draw(st.integers(2, 6))
    b = draw(st.integers(1, 3))
    logits = np.array(jax.random.normal(jax.random.key(draw(st.integers(0, 5))), (b, vocab)))
    which = draw(st.sampled_from(["select", "generate", "beam"]))
    jit = draw(st.booleans())
    if which == "select":
        kind = draw(st.sampled_from(["finite", "nan", "inf"]))
        if kind == "nan":
            logits[draw(st.integers(0, b - 1)), draw(st.integers(0, vocab - 1))] = np.nan
        if kind == "inf":
            logits[0, 0] = np.inf
        temperature = draw(
            st.sampled_from([0.0, 1.0, 0.5, 1e-40, 1e-30, -1.0, float("nan"), float("inf")])
        )
        top_k = draw(st.sampled_from([None, 1, vocab, vocab + 1, 0]))
        greedy_key = draw(st.booleans())
        bad = ()
        if kind in ("nan", "inf"):  # -inf masks a token; NaN and +inf are no scores
            bad += ("logits",)
        if not (temperature >= 0 and math.isfinite(temperature)):
            bad += ("temperature",)
        if top_k is not None and not 1 <= top_k <= vocab:
            bad += ("top_k",)
        bad = bad or None
        key = None if greedy_key else jax.random.key(1)

        def run():
            return _run_maybe_jitted(
                lambda lg, tp: decode.select(lg, key, temperature=tp, top_k=top_k),
                (logits, np.float32(temperature)),
                jit,
            )

        def expect(result):
            result = np.asarray(result)
            assert result.shape == (b,) and result.dtype == np.int32, result
            assert ((0 <= result) & (result < vocab)).all(), result
            if key is None or temperature == 0 or temperature < 1e-20 or top_k == 1:
                np.testing.assert_array_equal(result, logits.argmax(-1))
            if top_k is not None:
                order = np.argsort(-logits, axis=-1)[:, :top_k]
                assert all(r in o for r, o in zip(result, order, strict=True)), (result, order)

        what = (
            f"select(v={vocab}, logits={kind}, temperature={temperature}, top_k={top_k}, "
            f"key={key is not None}, jit={jit})"
        )
        return Call(what, run, expect, bad)
    table = jnp.asarray(logits[:1].repeat(vocab, 0) + np.eye(vocab, dtype=np.float32) * 0)
    embed = jnp.asarray(np.eye(vocab, dtype=np.float32))

    def step_fn(carry, tokens):
        # a model that reads its token through an embedding row: next = (token + 1) % vocab
        rows = embed[tokens]
        logits = 10.0 * jnp.roll(rows, 1, axis=-1) + 0.0 * table[0]
        return carry + 1, logits

    start_kind = draw(st.sampled_from(["valid", "valid", "outside", "negative", "floats"]))
    first = np.asarray(draw(st.lists(st.integers(0, vocab - 1), min_size=b, max_size=b)), np.int32)
    bad = None
    if start_kind == "outside":
        first[0] = vocab + draw(st.integers(0, 3))
        bad = "first_tokens"
    elif start_kind == "negative":
        first[0] = -1
        bad = "first_tokens"
    elif start_kind == "floats":
        first = first.astype(np.float32)
        bad = "first_tokens"
    if which == "generate":
        length = draw(st.integers(0, 4))

        def run():
            return _run_maybe_jitted(
                lambda c, f: decode.generate(step_fn, c, f, length=length),
                (jnp.zeros(b), first),
                jit,
            )

        def expect(result):
            _, tokens = result
            want = (first.astype(np.int64)[:, None] + 1 + np.arange(length)[None]) % vocab
            np.testing.assert_array_equal(np.asarray(tokens), want)

        return Call(f"generate(v={vocab}, b={b}, start={start_kind}, jit={jit})", run, expect, bad)
    k = draw(st.integers(1, 3))
    carry_rows = draw(st.sampled_from(["b*k", "b*k", "b"]))
    rows = b * k if carry_rows == "b*k" else b
    if carry_rows == "b" and k > 1:
        bad = (bad, "carry") if bad else "carry"

    def run():
        return decode.beam_search(
            step_fn, jnp.zeros(rows), first, beam_size=k, max_length=3, eos_id=vocab - 1
        )

    def expect(result):
        tokens, _, _ = result
        assert np.asarray(tokens).shape == (b, k, 3), np.asarray(tokens).shape
        best = np.asarray(tokens)[:, 0, 0]
        np.testing.assert_array_equal(best, (first.astype(np.int64) + 1) % vocab)

    return Call(
        f"beam_search(v={vocab}, b={b}, k={k}, carry rows={carry_rows}, start={start_kind})",
        run,
        expect,
        bad,
    )


# --- small functions: dropout, cells' hyper-parameters and init, export's specs -------------------


@st.composite
def misc_calls(draw):
    which = draw(st.sampled_from(["dropout", "factory", "init", "arguments", "strategy"]))
    if which == "dropout":
        xs = jnp.ones((2, 3, 4))
        axes = draw(st.sampled_from([(), (1,), (-1,), (0, 2), (5,), (-4,), (1.0,)]))
        key = draw(st.sampled_from(["key", "key", "int"]))
        rate = draw(st.sampled_from([0.0, 0.5, 1.0, -0.1, float("nan")]))
        bad = None
        if key == "int":
            bad = "key"
        elif not 0 <= rate < 1:
            bad = "rate"
        elif any(not isinstance(a, int) or not -3 <= a < 3 for a in axes):
            bad = "shared_axes"
        key_value = 42 if key == "int" else jax.random.key(0)

        def run():
            return jaxrnn.dropout_apply(key_value, xs, rate, shared_axes=axes)

        def expect(result):
            result = np.asarray(result)
            assert result.shape == xs.shape
            shared = {a % 3 for a in axes}
            for a in shared:
                assert (result == result.take([0], axis=a)).all(), f"axis {a} not shared"
            kept = result[result != 0]
            np.testing.assert_allclose(kept, 1 / (1 - rate), rtol=1e-6)

        return Call(f"dropout_apply(key={key}, rate={rate}, shared_axes={axes})", run, expect, bad)
    if which == "factory":
        family = draw(st.sampled_from(["lstm", "mgu", "gru", "elman"]))
        size = draw(st.sampled_from([1, 4, 0, -1, 2.5, True, "4", np.int64(3)]))
        option = draw(st.sampled_from(["none", "nan bias", "inf bias", "str bias"]))
        if family not in ("lstm", "mgu"):
            option = "none"
        bias = {"none": 1.0, "nan bias": float("nan"), "inf bias": float("inf"), "str bias": "1"}[
            option
        ]
        bad = None
        if isinstance(size, (bool, float, str)) or size < 1:
            bad = "hidden_size"
        elif option != "none":
            bad = "forget_bias"
        kwargs = {} if option == "none" else {"forget_bias": bias}

        def run():
            return getattr(jaxrnn, family)(size, **kwargs)

        def expect(result):
            assert result.hidden_size == int(size)

        return Call(f"{family}({size!r}, {option})", run, expect, bad)
    if which == "init":
        cell = jaxrnn.gru(3)
        key = draw(st.sampled_from(["key", "raw", "int"]))
        input_size = draw(st.sampled_from([2, 0, 2.0, np.int32(2)]))
        dtype = draw(st.sampled_from(["float32", jnp.bfloat16, "flaot32", jnp.int32, "bool"]))
        bad = None
        if key == "int":
            bad = "key"
        elif isinstance(input_size, float) or input_size < 1:
            bad = "input_size"
        elif dtype not in ("float32", jnp.bfloat16):
            bad = "dtype"
        key_value = {"key": jax.random.key(0), "raw": jax.random.PRNGKey(0), "int": 0}[key]

        def run():
            return cell.init(key_value, input_size, dtype=dtype)

        def expect(result):
            assert result["w_ih"].shape == (int(input_size), 9)
            assert result["w_ih"].dtype == jnp.dtype(dtype)

        return Call(
            f"gru.init(key={key}, input_size={input_size!r}, dtype={dtype})", run, expect, bad
        )
    if which == "arguments":
        from jaxrnn import export

        shape = draw(
            st.sampled_from(["b, t, 3", "b", "3", "b, -1", "b, 3.5", "b t", "", "b,, 3", "0"])
        )
        dtype = draw(st.sampled_from([jnp.float32, "int32", "flaot32", None]))
        bad = None
        if shape in ("b, -1", "b, 3.5", "b t", "b,, 3"):
            bad = "shape"
        elif dtype in ("flaot32", None):
            bad = "dtype"

        def run():
            return export.arguments((shape, dtype))

        def expect(result):
            (spec,) = result
            parts = [p.strip() for p in shape.split(",") if p.strip()]
            assert len(spec.shape) == len(parts)
            for part, size in zip(parts, spec.shape, strict=True):
                if part.isdigit():
                    assert size == int(part)
            assert spec.dtype == jnp.dtype(dtype)

        return Call(f"export.arguments(({shape!r}, {dtype}))", run, expect, bad)
    field = draw(st.sampled_from(["mode", "unroll", "remat", "fused"]))
    value = draw(
        st.sampled_from(
            {
                "mode": ["sequential", "parallel", "fast", None, 1],
                "unroll": [1, 2, True, 0, -1, 2.5, "2"],
                "remat": [None, 1, 5, 0, 2.5, "3"],
                "fused": [True, False, "False", 0, None],
            }[field]
        )
    )
    valid = {
        "mode": value in ("sequential", "parallel"),
        "unroll": value is True or (type(value) is int and value >= 1),
        "remat": value is None or (type(value) is int and value >= 1),
        "fused": isinstance(value, bool),
    }[field]
    cell = jaxrnn.mingru(2)  # linear: every mode runs it
    params = cell.init(jax.random.key(0), input_size=1)
    xs = jnp.ones((1, 3, 1))

    def run():
        if hasattr(jaxrnn, "Strategy"):
            return jaxrnn.unroll(cell, params, xs, strategy=jaxrnn.Strategy(**{field: value}))
        return jaxrnn.unroll(cell, params, xs, **{field: value})

    def expect(result):
        _close(result, jaxrnn.unroll(cell, params, xs), "strategy")

    return Call(f"strategy {field}={value!r}", run, expect, None if valid else field)


def flax_nnx():
    """flax.nnx, imported (and jaxrnn.nnx with it) before hypothesis watches the random module."""
    from flax import nnx

    import jaxrnn.nnx  # noqa: F401

    return nnx


# --- Flax NNX modules ---------------------------------------------------------------------


@st.composite
def nnx_calls(draw):
    nnx = flax_nnx()

    deterministic = draw(st.sampled_from([None, True, False, "False", 0, "yes"]))
    rngs_kind = draw(st.sampled_from(["none", "rngs", "key"]))
    xs = jnp.ones((2, 4, 2))
    made = []
    bad = None
    if deterministic is not None and not isinstance(deterministic, bool):
        bad = "deterministic"
    elif rngs_kind == "key" and deterministic is not True:
        bad = "rngs"
    kwargs = {}
    if deterministic is not None:
        kwargs["deterministic"] = deterministic
    if rngs_kind == "key":
        kwargs["rngs"] = jax.random.key(5)
    if rngs_kind == "key" and deterministic is True:
        bad = "rngs"  # a key is not a stream, even when it is not drawn from

    def run():
        module = jaxrnn.nnx.RNN(
            jaxrnn.gru(3), in_features=2, recurrent_dropout=0.5, rngs=nnx.Rngs(0)
        )
        made.append(module)
        if rngs_kind == "rngs":
            kwargs["rngs"] = nnx.Rngs(dropout=5)
        return module(xs, **kwargs)

    def expect(result):
        module = made[-1]
        plain = module.layer.apply(module.get_params(), xs)[1]
        if deterministic is True:
            _close(result, plain, "deterministic output")
        else:
            assert not np.allclose(np.asarray(result), np.asarray(plain)), "dropout was off"

    return Call(f"nnx.RNN(deterministic={deterministic!r}, rngs={rngs_kind})", run, expect, bad)


# --- interop -------------------------------------------------------------------------------


class _FakeTorchModule:
    """What a ``torch.nn.LSTM`` looks like to code that does not import torch."""

    def __init__(self, state):
        self._state = state

    def state_dict(self):
        return dict(self._state)

    def parameters(self):
        return iter(self._state.values())


@st.composite
def interop_calls(draw):
    h, i = 2, 3
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    state = {
        "weight_ih_l0": rng.normal(size=(4 * h, i)).astype(np.float32),
        "weight_hh_l0": rng.normal(size=(4 * h, h)).astype(np.float32),
        "bias_ih_l0": rng.normal(size=(4 * h,)).astype(np.float32),
        "bias_hh_l0": rng.normal(size=(4 * h,)).astype(np.float32),
    }
    kind = draw(
        st.sampled_from(["state dict", "module", "float16", "wrong shape", "not a mapping"])
    )
    value: Any = state
    bad = None
    if kind == "module":
        value = _FakeTorchModule(state)
        bad = "state_dict"
    elif kind == "float16":
        value = {k: v.astype(np.float16) for k, v in state.items()}
    elif kind == "wrong shape":
        value = {**state, "weight_hh_l0": state["weight_hh_l0"][:, :1]}
        bad = "weight_hh_l0"
    elif kind == "not a mapping":
        value = list(state.values())
        bad = "state_dict"

    def run():
        return jaxrnn.interop.from_torch(jaxrnn.lstm(h), value)

    def expect(result):
        source = value if isinstance(value, dict) else state
        np.testing.assert_allclose(result["w_ih"], np.asarray(source["weight_ih_l0"], np.float32).T)
        np.testing.assert_allclose(
            result["b"],
            np.asarray(source["bias_ih_l0"], np.float32)
            + np.asarray(source["bias_hh_l0"], np.float32),
            rtol=1e-3,
        )

    return Call(f"interop.from_torch({kind})", run, expect, bad)


TARGETS = {
    "unroll": unroll_calls,
    "heads": head_calls,
    "packing": packing_calls,
    "text": text_calls,
    "decode": decode_calls,
    "misc": misc_calls,
    "nnx": nnx_calls,
    "interop": interop_calls,
}
