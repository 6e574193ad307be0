"""How a sequence is run: one `Strategy` value, made and checked once, passed through untouched.

`jaxrnn.unroll`, the layers (`jaxrnn.rnn`, `jaxrnn.stacked`, `jaxrnn.bidirectional`), the heads
(`jaxrnn.many_to_one`, `jaxrnn.many_to_many`) and the Flax modules (`jaxrnn.nnx`,
`jaxrnn.linen`) all take ``strategy=`` and hand the same value down to `jaxrnn.unroll`; none of
them lists its fields again. A combination that cannot run is refused when the value is made,
naming both options (as recurrentgemma's ``ScanType`` is one value resolved in one place).

Until 0.2 the fields may still be passed one by one as keywords (``unroll(..., mode=
"parallel")``): `resolve` turns them into a `Strategy` and warns once per call site.
"""

import dataclasses
from typing import Any

from jax.sharding import Mesh

from jaxrnn.checks import check_choice
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_size
from jaxrnn.checks import fail
from jaxrnn.checks import show
from jaxrnn.checks import warn
from jaxrnn.time_sharding import check_time_sharding

MODES = ("sequential", "parallel", "chunkwise")
DEFAULT_CHUNK_SIZE = 64
# The cells each mode runs, as the errors name them; tests/test_strategy.py checks them
# against the families' own fields (``linear``, ``parallel_form``).
LINEAR_CELLS = "jaxrnn.mingru, jaxrnn.minlstm, jaxrnn.lru, jaxrnn.rg_lru, jaxrnn.mamba"
PARALLEL_CELLS = f"{LINEAR_CELLS}, jaxrnn.mlstm"
CHUNKWISE_CELLS = "jaxrnn.mlstm"
SCAN_METHODS = ("loop", "associative", "pallas")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """How `jaxrnn.unroll` runs a cell over time. Hashable, so it can be a static argument.

    Attributes:
      mode: ``"sequential"`` (a `jax.lax.scan` of the step, for every cell) or ``"parallel"``
        (for cells whose recurrence is linear: `jaxrnn.mingru`, `jaxrnn.minlstm`,
        `jaxrnn.lru`, `jaxrnn.rg_lru`): the gates of all steps are computed at once, then the
        recurrence runs over them with `jaxrnn.linear_scan` (an associative scan on GPU/TPU, a
        minimal loop on CPU). Both give the same numbers up to float rounding; the parallel
        one accumulates in float32 or wider. `jaxrnn.mlstm` runs ``"parallel"`` as its
        quadratic form (every step attends to every earlier one, ``O(t^2)`` memory) and
        ``"chunkwise"`` (mLSTM only) as its chunkwise form: the quadratic form within chunks of
        ``chunk_size`` steps, the recurrent state between them.
      unroll: steps per loop iteration of the `jax.lax.scan` (``True``: all of them).
      remat: checkpoint the scan in segments of this many steps (sequential mode): the
        backward pass keeps only the carries between segments and recomputes each segment, so
        memory grows like ``t / remat + remat`` steps instead of ``t``; ``remat ≈ sqrt(t)``
        is the usual choice for very long sequences.
      fused: use the cell's hand-written sequence backward pass when it has one (LSTM, GRU:
        faster training, identical numbers); False differentiates the scan with JAX autodiff.
      time_sharding: ``(mesh, axis name)``: split the time axis over that mesh axis, each
        device holding ``t / devices`` steps (`jaxrnn.time_sharding`; ``mode="parallel"``
        only, as only a linear recurrence can be cut into blocks).
      scan_method: how ``mode="parallel"`` runs the recurrence, as ``method`` of
        `jaxrnn.linear_scan`: ``"loop"``, ``"associative"``, ``"pallas"`` (a blocked kernel
        for GPU and TPU; interpreted, slowly, on CPU) or None (by backend).
      cudnn: run an LSTM through cuDNN (`jax.experimental.rnn.lstm`) on an NVIDIA GPU. Where
        cuDNN cannot run the call (another backend, another cell, a mask that is not a
        length, resets, a compute dtype other than float32: `jaxrnn.cudnn.why_not` says
        which), `jaxrnn.unroll` runs the default path instead and warns with the reason
        (`jaxrnn.cudnn.CudnnFallbackWarning`). Opt-in until a GPU run has measured it.
      chunk_size: the steps per chunk of ``mode="chunkwise"`` (None: 64); the last chunk may
        be shorter.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.mingru(8)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> parallel = jaxrnn.Strategy(mode="parallel")
      >>> _, ys = jaxrnn.unroll(cell, params, jnp.ones((2, 5, 3)), strategy=parallel)
      >>> ys.shape
      (2, 5, 8)
      >>> jaxrnn.Strategy(mode="parallel", remat=10)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: remat must be None with mode='parallel' (...), got 10
    """

    mode: str = "sequential"
    unroll: int | bool = 1
    remat: int | None = None
    fused: bool = True
    time_sharding: tuple[Mesh, str] | None = None
    scan_method: str | None = None
    cudnn: bool = False
    chunk_size: int | None = None

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        if self.unroll is not True:
            check_size("unroll", self.unroll)
        if self.remat is not None:
            check_size("remat", self.remat)
        check_flag("fused", self.fused)
        if self.time_sharding is not None:
            check_time_sharding(self.time_sharding)
        check_choice("scan_method", self.scan_method, (*SCAN_METHODS, None))
        check_flag("cudnn", self.cudnn)
        if self.chunk_size is not None:
            check_size("chunk_size", self.chunk_size)
        # The rules between options, all here.
        if self.remat is not None and self.mode != "sequential":
            fail(
                "remat",
                f"None with mode={self.mode!r} (the parallel forms keep no per-step residuals "
                "of the recurrence to checkpoint)",
                self.remat,
            )
        if self.chunk_size is not None and self.mode != "chunkwise":
            fail(
                "chunk_size",
                f"None with mode={self.mode!r} (it sizes the chunks of mode='chunkwise')",
                self.chunk_size,
            )
        if self.time_sharding is not None and self.mode != "parallel":
            fail(
                "time_sharding",
                f"None with mode={self.mode!r}: only an elementwise linear recurrence can be "
                f"cut into blocks that run at once (use mode='parallel' with a linear cell: "
                f"{LINEAR_CELLS}; for an LSTM or GRU shard the batch instead, "
                "jaxrnn.distributed)",
                self.time_sharding,
            )
        if self.scan_method is not None and self.mode != "parallel":
            fail(
                "scan_method",
                f"None with mode={self.mode!r} (it chooses how mode='parallel' runs the "
                "linear recurrence)",
                self.scan_method,
            )
        if self.scan_method is not None and self.time_sharding is not None:
            fail(
                "scan_method",
                "None with time_sharding (each device's block runs jaxrnn.linear_scan's default)",
                self.scan_method,
            )
        if self.cudnn:
            clashes = {
                "mode": (self.mode, "sequential"),
                "remat": (self.remat, None),
                "unroll": (self.unroll, 1),
                "fused": (self.fused, True),
            }
            for name, (value, needed) in clashes.items():
                if value != needed or type(value) is not type(needed):
                    fail(
                        name,
                        f"{needed!r} with cudnn=True (cuDNN runs the whole sequence as one "
                        "kernel with its own backward pass)",
                        value,
                    )


# The fields that were keywords of their own before `Strategy` (accepted until 0.2).
DEPRECATED_FIELDS = ("mode", "unroll", "remat", "fused", "time_sharding")


def resolve(strategy: Any, keywords: dict[str, Any], caller: str) -> Strategy:
    """The `Strategy` of a call: ``strategy`` itself, the default one for None, or one made
    from the deprecated per-field ``keywords`` (with a `DeprecationWarning` naming
    ``caller``). Any other keyword is a `TypeError`, as Python gives for an unknown one.

    Examples:
      >>> from jaxrnn.strategy import Strategy, resolve
      >>> resolve(None, {}, "unroll") == Strategy()
      True
    """
    unknown = sorted(set(keywords) - set(DEPRECATED_FIELDS))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if keywords:
        if strategy is not None:
            raise TypeError(
                f"{caller}() got strategy= and the keywords {sorted(keywords)}, which are "
                "fields of the strategy: put them in the Strategy"
            )
        spelled = ", ".join(f"{k}={show(v)}" for k, v in keywords.items())
        warn(
            f"{caller}({spelled}) is deprecated and will stop working in jaxrnn 0.2; pass "
            f"strategy=jaxrnn.Strategy({spelled}) instead",
            DeprecationWarning,
        )
        return Strategy(**keywords)
    if strategy is None:
        return Strategy()
    if not isinstance(strategy, Strategy):
        fail(
            "strategy",
            "a jaxrnn.Strategy such as jaxrnn.Strategy(mode='parallel')",
            strategy,
            TypeError,
        )
    return strategy


__all__ = (
    "Strategy",
    "resolve",
)
