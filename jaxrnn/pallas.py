"""A Pallas kernel for the linear recurrence ``h_t = a_t * h_{t-1} + b_t``: `pallas_linear_scan`,
which `jaxrnn.linear_scan` runs for ``method="pallas"``.

The recurrence does two flops per element, so memory bandwidth is its limit: the kernel reads
``a`` and ``b`` once, writes the states once, and keeps the running state on chip in float32
whatever the input dtype. The trailing axes are flattened to ``n`` lanes, which are independent;
time is the one sequential axis. Each compiler gets its own blocking, picked when the call is
lowered (`jax.lax.platform_dependent`), so one traced function serves both:

- TPU (Mosaic): the lanes as ``(n / 128, 128)`` tiles (one step of a block is whole vector
  registers), a grid of (lane blocks, time blocks) whose time axis is the sequential
  ("arbitrary") one, and the state of a lane block in a VMEM scratch buffer that carries it from
  one time block to the next.
- GPU (Triton): one program per block of lanes, which runs over all steps with the state in
  registers, ``block_t`` steps per loop iteration whose loads are issued before the state
  needs them. Triton runs programs in no set order, so time cannot be a grid axis there.

Neither compiler has a complex type: complex64 runs as its real and imaginary parts. The
backward pass is the same kernel run the other way (`jaxrnn.parallel.backward_coefficients`).
`jax.export` for ``"tpu"`` takes the kernel as it is; for ``"cuda"`` only with
``disabled_checks=[jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]``, as a
Triton kernel's IR has no compatibility guarantee across jaxlib versions.
No GPU or TPU run has measured this kernel yet; the block sizes are reasoned, not tuned.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as pltriton

from jaxrnn.checks import check_choice
from jaxrnn.checks import check_flag
from jaxrnn.checks import check_size
from jaxrnn.checks import fail
from jaxrnn.checks import said
from jaxrnn.parallel import backward_coefficients
from jaxrnn.parallel import check_operands
from jaxrnn.typing import Array

DTYPES = ("float32", "bfloat16", "float16", "complex64")
PLATFORMS = ("tpu", "gpu")
# Unmeasured defaults, per platform: (steps per block, lanes per block).
TPU_BLOCKS = (128, 1024)  # 128 x (8, 128) float32 tiles: 512 KiB of VMEM per array and block
GPU_BLOCKS = (8, 256)
LANES = 128  # the lane width of a TPU vector register


def pallas_linear_scan(
    a: Array,
    b: Array,
    *,
    reverse: bool = False,
    interpret: bool | None = None,
    block_t: int | None = None,
    block_n: int | None = None,
    platform: str | None = None,
) -> Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` from ``h_{-1} = 0``, by a Pallas kernel.

    The state is accumulated in float32 (complex64 for complex inputs) and each state is
    rounded to the input dtype only when it is written, so bfloat16 and float16 inputs lose
    precision once per step, not cumulatively. Gradients (a `jax.custom_vjp`) run the same
    kernel the other way: ``g_t = dh_t + a_{t+1} g_{t+1}``, ``da_t = g_t h_{t-1}``,
    ``db_t = g_t``.

    Args:
      a: ``(t, ...)`` multipliers: float32, bfloat16, float16 or complex64.
      b: ``(t, ...)`` inputs, same shape and dtype.
      reverse: run from the last step to the first.
      interpret: run in Pallas's interpreter (on any backend, slowly). None: interpreted where
        the call is lowered for CPU (Pallas compiles only for TPU and GPU), compiled where it
        is lowered for TPU or GPU, so that `jax.export` from a CPU-only machine for
        ``platforms=("tpu",)`` gets the compiled kernel.
      block_t: steps per block: per grid step on TPU (default 128, evened out over ``t``), per
        loop iteration on GPU (default 8).
      block_n: lanes per block, rounded up to whole ``(8, 128)`` tiles (``(16, 128)`` for
        16-bit dtypes) on TPU (default 1024) and to a power of two on GPU (default 256), and
        never more than there are.
      platform: whose blocking to run, ``"tpu"`` (Mosaic) or ``"gpu"`` (Triton); None: the
        one of the platform the call is lowered for, the TPU one on CPU. Compiled, each runs
        only on its own platform; interpreted, both run anywhere.

    Returns:
      ``(t, ...)`` states ``h_t``, in the dtype of ``b``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.pallas import pallas_linear_scan
      >>> pallas_linear_scan(jnp.full(4, 0.5), jnp.ones(4))  # interpreted on CPU
      Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
      >>> pallas_linear_scan(jnp.full(3, 0.5), jnp.ones(3), reverse=True, platform="gpu")
      Array([1.75, 1.5 , 1.  ], dtype=float32)
    """
    _check_operands(a, b)
    check_flag("reverse", reverse)
    check_choice("platform", platform, (*PLATFORMS, None))
    for name, size in (("block_t", block_t), ("block_n", block_n)):
        if size is not None:
            check_size(name, size)
    if interpret is not None:
        check_flag("interpret", interpret)
    if a.size == 0:
        return jnp.zeros_like(b)
    return _scan(a, b, reverse, _Blocks(block_t, block_n, platform, interpret))


def _check_operands(a, b):
    check_operands(a, b)
    if str(a.dtype) not in DTYPES:
        words = ", ".join(DTYPES[:-1]) + f" or {DTYPES[-1]}"
        fail("a", f"{words} (accumulated in float32)", said(f"dtype {a.dtype}"), TypeError)


class _Blocks(NamedTuple):
    """How a call is blocked and run: hashable, a static argument of the custom VJP."""

    block_t: int | None  # steps per block; None: the platform's default
    block_n: int | None  # lanes per block; None: the platform's default
    platform: str | None  # "tpu", "gpu", or None: by the platform lowered for
    interpret: bool | None  # None: when lowered for CPU


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _scan(a, b, reverse, blocks):
    return _states(a, b, reverse, blocks, b.dtype)


def _scan_fwd(a, b, reverse, blocks):
    states = _states(a, b, reverse, blocks, b.dtype)
    return states, (a, states)


def _scan_bwd(reverse, blocks, residuals, d_states):
    a, states = residuals
    a_next, previous = backward_coefficients(a, states, reverse=reverse)
    # g in float32 (complex64), so that da = g * h_{t-1} is rounded once, not twice.
    wide = jnp.complex64 if jnp.iscomplexobj(a) else jnp.float32
    g = _states(a_next, d_states, not reverse, blocks, wide)
    return (g * previous.astype(wide)).astype(a.dtype), g.astype(d_states.dtype)


_scan.defvjp(_scan_fwd, _scan_bwd)


def _states(a, b, reverse, blocks, out_dtype):
    """The kernel's states of ``(t, ...)`` ``a``, ``b`` as ``out_dtype``."""
    shape, steps = a.shape, a.shape[0]
    if jnp.iscomplexobj(a):  # as real and imaginary parts: no complex type in the kernels
        a_parts = (a.real.reshape(steps, -1), a.imag.reshape(steps, -1))
        b_parts = (b.real.reshape(steps, -1), b.imag.reshape(steps, -1))
        part_dtype = jnp.float32
    else:
        a_parts, b_parts, part_dtype = (a.reshape(steps, -1),), (b.reshape(steps, -1),), out_dtype
    run = functools.partial(_blocking, reverse=reverse, blocks=blocks, out_dtype=part_dtype)
    if blocks.interpret:
        parts = run(blocks.platform or "tpu", True)(a_parts, b_parts)
    else:  # picked when lowering: interpreted for CPU, each compiler's own blocking elsewhere
        gpu = run(blocks.platform or "gpu", False)
        parts = jax.lax.platform_dependent(
            a_parts,
            b_parts,
            cpu=run(blocks.platform or "tpu", blocks.interpret is None),
            tpu=run(blocks.platform or "tpu", False),
            cuda=gpu,
            rocm=gpu,
        )
    states = parts[0] if len(parts) == 1 else jax.lax.complex(*parts)
    return states.reshape(shape).astype(out_dtype)


def _blocking(platform, interpret, **options):
    """``platform``'s blocking, ``(a parts, b parts) -> states parts``."""
    run = _mosaic if platform == "tpu" else _triton
    return functools.partial(run, interpret=interpret, **options)


def _step(a, b, h):
    """One step of the recurrence on tuples of float32 parts: (value,) or (real, imaginary)."""
    if len(h) == 1:
        return (a[0] * h[0] + b[0],)
    (ar, ai), (br, bi), (hr, hi) = a, b, h
    return (ar * hr - ai * hi + br, ar * hi + ai * hr + bi)


def _mosaic(a_parts, b_parts, *, reverse, blocks, out_dtype, interpret):
    """The TPU blocking: ``(t, n)`` parts -> ``(t, n)`` states."""
    steps, lanes = a_parts[0].shape
    padded = -(-lanes // LANES) * LANES  # whole 128-lane rows (the padding is cut below)
    tiles = lambda x: jnp.pad(x, ((0, 0), (0, padded - lanes))).reshape(steps, -1, LANES)
    rows = padded // LANES
    # A tile is (8, 128) for 32-bit dtypes and (16, 128) for 16-bit ones.
    narrowest = min(jnp.dtype(d).itemsize for d in (a_parts[0].dtype, out_dtype))
    sublanes = 16 if narrowest == 2 else 8
    block_t = blocks.block_t or TPU_BLOCKS[0]
    block_n = blocks.block_n or TPU_BLOCKS[1]
    block_rows = min(rows, -(-block_n // (LANES * sublanes)) * sublanes)
    time_blocks = -(-steps // block_t)
    block_t = -(-steps // time_blocks)  # evened out: at most time_blocks - 1 steps of padding

    def index(i, j):  # grid (lane blocks, time blocks); time runs backwards when reversed
        return (time_blocks - 1 - j if reverse else j, i, 0)

    spec = pl.BlockSpec((block_t, block_rows, LANES), index)
    count = len(a_parts)
    outs = pl.pallas_call(
        functools.partial(_mosaic_kernel, count=count, steps=steps, reverse=reverse),
        out_shape=[jax.ShapeDtypeStruct((steps, rows, LANES), out_dtype)] * count,
        grid=(pl.cdiv(rows, block_rows), time_blocks),
        in_specs=[spec] * (2 * count),
        out_specs=[spec] * count,
        scratch_shapes=[pltpu.VMEM((block_rows, LANES), jnp.float32)] * count,
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
        interpret=interpret,
        name="linear_scan_tpu",
    )(*map(tiles, a_parts), *map(tiles, b_parts))
    return tuple(out.reshape(steps, padded)[:, :lanes] for out in outs)


def _mosaic_kernel(*refs, count, steps, reverse):
    """One (lane block, time block): ``count`` refs each of a, b, states and state scratch."""
    a_refs, b_refs = refs[:count], refs[count : 2 * count]
    out_refs, state_refs = refs[2 * count : 3 * count], refs[3 * count :]
    block = a_refs[0].shape[0]
    # Reversed, the last block is read first, and if it runs past the end its first steps hold
    # whatever lies past the array: they must leave the state as it is.
    ragged = reverse and steps % block != 0
    start = (pl.num_programs(1) - 1 - pl.program_id(1)) * block  # (used only when reversed)

    @pl.when(pl.program_id(1) == 0)
    def _():  # a new lane block starts from h_{-1} = 0
        for ref in state_refs:
            ref[...] = jnp.zeros(ref.shape, ref.dtype)

    def body(i, h):
        k = block - 1 - i if reverse else i
        a_k = tuple(ref[k].astype(jnp.float32) for ref in a_refs)
        b_k = tuple(ref[k].astype(jnp.float32) for ref in b_refs)
        new = _step(a_k, b_k, h)
        if ragged:
            inside = start + k < steps
            new = tuple(jnp.where(inside, x, x_old) for x, x_old in zip(new, h, strict=True))
        for ref, x in zip(out_refs, new, strict=True):
            ref[k] = x.astype(ref.dtype)
        return new

    h = jax.lax.fori_loop(0, block, body, tuple(ref[...] for ref in state_refs))
    for ref, x in zip(state_refs, h, strict=True):
        ref[...] = x


def _triton(a_parts, b_parts, *, reverse, blocks, out_dtype, interpret):
    """The GPU blocking: ``(t, n)`` parts -> ``(t, n)`` states."""
    steps, lanes = a_parts[0].shape
    block_n = min(pl.next_power_of_2(blocks.block_n or GPU_BLOCKS[1]), pl.next_power_of_2(lanes))
    unroll = min(blocks.block_t or GPU_BLOCKS[0], steps)
    spec = pl.BlockSpec((steps, block_n), lambda i: (0, i))
    count = len(a_parts)
    kernel = functools.partial(
        _triton_kernel, count=count, steps=steps, lanes=lanes, unroll=unroll, reverse=reverse
    )
    outs = pl.pallas_call(
        kernel,
        out_shape=[jax.ShapeDtypeStruct((steps, lanes), out_dtype)] * count,
        grid=(pl.cdiv(lanes, block_n),),
        in_specs=[spec] * (2 * count),
        out_specs=[spec] * count,
        # Triton rather than Mosaic GPU: it runs on every CUDA GPU and on ROCm. About four
        # lanes per thread.
        compiler_params=pltriton.CompilerParams(num_warps=min(max(block_n // 128, 1), 8)),
        interpret=interpret,
        name="linear_scan_gpu",
    )(*a_parts, *b_parts)
    return tuple(outs)


def _triton_kernel(*refs, count, steps, lanes, unroll, reverse):
    """One block of lanes over all steps: ``count`` refs each of a, b and states."""
    a_refs, b_refs, out_refs = refs[:count], refs[count : 2 * count], refs[2 * count :]
    block = a_refs[0].shape[1]
    mask = None
    if lanes % block:  # the last program's block runs past the lanes: no loads or stores there
        mask = pl.program_id(0) * block + jnp.arange(block) < lanes

    def load(ref, k):
        x = ref[k] if mask is None else pltriton.load(ref.at[k], mask=mask, other=0)
        return x.astype(jnp.float32)

    def store(ref, k, x):
        if mask is None:
            ref[k] = x.astype(ref.dtype)
        else:
            pltriton.store(ref.at[k], x.astype(ref.dtype), mask=mask)

    def run(first, length, h):  # `length` (static) steps from scan position `first`
        ks = [steps - 1 - (first + s) if reverse else first + s for s in range(length)]
        ks = [jnp.asarray(k, jnp.int32) for k in ks]  # the interpreter's masked loads need arrays
        # All loads first: they do not wait for the state, so their latencies overlap.
        a_ks = [tuple(load(ref, k) for ref in a_refs) for k in ks]
        b_ks = [tuple(load(ref, k) for ref in b_refs) for k in ks]
        for k, a_k, b_k in zip(ks, a_ks, b_ks, strict=True):
            h = _step(a_k, b_k, h)
            for ref, x in zip(out_refs, h, strict=True):
                store(ref, k, x)
        return h

    h = tuple(jnp.zeros((block,), jnp.float32) for _ in range(count))
    h = jax.lax.fori_loop(0, steps // unroll, lambda c, h: run(c * unroll, unroll, h), h)
    run(steps - steps % unroll, steps % unroll, h)


__all__ = ("pallas_linear_scan",)
