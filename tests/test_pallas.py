"""`jaxrnn.pallas`: the Pallas kernel of ``h_t = a_t h_{t-1} + b_t`` equals the loop scan in
values and gradients (interpreted on CPU, both blockings), runs `jaxrnn.unroll`'s parallel mode,
and lowers for TPU (Mosaic) and GPU (Triton) on this CPU-only install."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import jaxrnn
from jaxrnn.pallas import pallas_linear_scan
from jaxrnn.parallel import linear_scan
from jaxrnn.portable import portable

# Shapes that are not whole blocks. "uneven": 13 steps in 4 blocks of 4 on TPU (the last one
# runs 3 steps past the end), 3 loop iterations of 4 and 1 step on GPU; 21 lanes in 3 GPU blocks
# of 8. "wide": 1200 lanes are 10 rows of 128 on TPU, in blocks of 8 rows, and 5 GPU blocks of
# 256 (the defaults); 7 steps in 2 blocks of 4.
CASES = {
    "uneven": ((13, 3, 7), {"block_t": 4, "block_n": 8}),
    "wide": ((7, 1200), {"block_t": 4}),
    "one step": ((1, 3), {}),
}
# A real loss of the states: for complex states Re(sum(w h)), whose cotangent is w in JAX's
# convention (the transpose, not the adjoint), the one the loop scan's backward pass follows.
LOSS = lambda h, w: jnp.sum(jnp.real(w * h.astype(w.dtype)))


@functools.cache
def operands(shape, dtype):
    """``a`` in (0.5, 1) (a magnitude below one: a stable recurrence, as the cells make it),
    ``b``, and the loss weights ``w``, all of ``dtype`` (complex: with random phases)."""
    ka, kb, kp, kw = jax.random.split(jax.random.key(0), 4)
    a = jax.random.uniform(ka, shape, minval=0.5, maxval=1.0)
    b = jax.random.normal(kb, shape)
    w = jax.random.normal(kw, shape)
    if dtype == "complex64":
        turn = lambda r, phase: jax.lax.complex(r * jnp.cos(phase), r * jnp.sin(phase))
        a = turn(a, jax.random.uniform(kp, shape, minval=-1.0, maxval=1.0))
        b = turn(b, jax.random.uniform(kw, shape, minval=-3.0, maxval=3.0))
        w = jax.lax.complex(w, -w)
    return a.astype(dtype), b.astype(dtype), w


def values_and_gradients(scan, a, b, w):
    """The states of ``scan`` and the gradients of ``LOSS`` with respect to ``a`` and ``b``."""

    def both(a, b):
        states, pullback = jax.vjp(scan, a, b)
        return states, pullback(jax.grad(LOSS)(states, w))

    return jax.jit(both)(a, b)


@functools.cache
def loop_reference(shape, dtype, reverse):
    """`values_and_gradients` of the loop scan, once for both blockings."""
    loop = functools.partial(linear_scan, reverse=reverse, method="loop")
    return values_and_gradients(loop, *operands(shape, dtype))


def relative(x, y):
    x, y = np.asarray(x, np.complex128), np.asarray(y, np.complex128)
    return np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-12)


@pytest.mark.parametrize("platform", ["tpu", "gpu"])
@pytest.mark.parametrize(
    ("case", "dtype", "reverse"),
    [
        ("uneven", "float32", False),
        ("uneven", "float32", True),
        ("wide", "float32", True),  # reversed: the ragged last block is read first
        ("one step", "float32", False),
        ("uneven", "complex64", False),
        ("uneven", "complex64", True),
    ],
)
def test_the_kernel_equals_the_loop_in_values_and_gradients(platform, reverse, case, dtype):
    # Given a shape that is not whole blocks, when the kernel runs interpreted,
    shape, blocks = CASES[case]
    a, b, w = operands(shape, dtype)
    kernel = functools.partial(pallas_linear_scan, reverse=reverse, platform=platform, **blocks)
    states, grads = values_and_gradients(kernel, a, b, w)
    # then its states and gradients are the loop's up to float32 rounding.
    ref_states, ref_grads = loop_reference(shape, dtype, reverse)
    assert states.dtype == a.dtype and states.shape == a.shape
    assert relative(states, ref_states) < 1e-6
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        assert grad.dtype == a.dtype
        assert relative(grad, ref_grad) < 1e-6


@pytest.mark.parametrize(
    ("dtype", "platform"), [("bfloat16", "tpu"), ("bfloat16", "gpu"), ("float16", "tpu")]
)
def test_16_bit_inputs_are_accumulated_in_float32(platform, dtype):
    # Given 16-bit coefficients over 13 steps, with a decay near one (errors add up),
    a, b, w = operands(CASES["uneven"][0], dtype)
    a = (0.9 + 0.1 * a.astype(jnp.float32)).astype(dtype)
    wide = lambda x: x.astype(jnp.float32)
    kernel = functools.partial(pallas_linear_scan, platform=platform, **CASES["uneven"][1])
    loop = functools.partial(linear_scan, method="loop")
    # when the kernel and a 16-bit loop run, against a float32 loop on the same inputs,
    states, grads = values_and_gradients(kernel, a, b, w)
    narrow, narrow_grads = values_and_gradients(loop, a, b, w)
    ref, ref_grads = values_and_gradients(loop, wide(a), wide(b), w)
    # then the kernel's states are rounded once (half an ulp of the 16-bit type), the loop's at
    # every step, and its gradients are within a few roundings of float32.
    ulp = float(jnp.finfo(dtype).eps)
    assert states.dtype == a.dtype
    assert relative(states, ref) < ulp and relative(states, ref) < relative(narrow, ref)
    for grad, narrow_grad, ref_grad in zip(grads, narrow_grads, ref_grads, strict=True):
        assert grad.dtype == a.dtype
        assert relative(grad, ref_grad) < 2 * ulp
        assert relative(grad, ref_grad) < relative(narrow_grad, ref_grad)


def test_by_default_cpu_interprets_and_linear_scan_dispatches_to_the_kernel():
    a, b, _ = operands((6, 5), "float32")
    expected = linear_scan(a, b, reverse=True, method="loop")
    by_method = jax.jit(lambda a, b: linear_scan(a, b, reverse=True, method="pallas"))
    np.testing.assert_allclose(by_method(a, b), expected, rtol=1e-6)
    assert jax.jit(pallas_linear_scan)(a[:, :0], b[:, :0]).shape == (6, 0)


def test_bad_operands_are_named():
    a = jnp.ones((4, 3))
    with pytest.raises(
        TypeError, match=r"a must be a floating-point or complex array, got dtype int32"
    ):
        pallas_linear_scan(a.astype(jnp.int32), a.astype(jnp.int32))
    with pytest.raises(ValueError, match=r"b must be of the shape and dtype of a"):
        pallas_linear_scan(a, a[:2])
    with pytest.raises(ValueError, match="block_t must be a positive int, got 0"):
        pallas_linear_scan(a, a, block_t=0)
    with pytest.raises(ValueError, match="platform must be 'tpu', 'gpu' or None, got 'cpu'"):
        pallas_linear_scan(a, a, platform="cpu")


# --- jaxrnn.unroll's parallel mode ------------------------------------------------------------

B, T, F = 3, 9, 4
CELLS = {
    "mingru": (lambda: jaxrnn.mingru(6), F),
    "lru": (lambda: jaxrnn.lru(5, state_size=6), F),  # complex64 coefficients
    "rg_lru": (lambda: jaxrnn.rg_lru(8, num_heads=2), 8),  # gates its input elementwise
}


@pytest.mark.parametrize(
    ("name", "reverse"), [("mingru", False), ("mingru", True), ("lru", True), ("rg_lru", True)]
)
def test_unroll_with_pallas_equals_the_sequential_scan(name, reverse):
    # Given a linear cell, lengths with padding and a row of two packed documents,
    make, inputs = CELLS[name]
    cell = make()
    params = cell.init(jax.random.key(0), input_size=inputs)
    xs = jax.random.normal(jax.random.key(1), (B, T, inputs))
    lengths = jnp.array([T, 6, 0])
    resets = jnp.zeros((B, T), bool).at[0, 4].set(True)
    carry0 = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (B,)))

    def loss(params, strategy):
        carry, ys = jaxrnn.unroll(
            cell,
            params,
            xs,
            initial_carry=carry0,
            seq_lengths=lengths,
            resets=resets,
            reverse=reverse,
            strategy=strategy,
        )
        return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.abs(carry) ** 2), ys

    run = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    # when it runs through the Pallas kernel and through the sequential scan,
    (value, ys), grads = run(params, jaxrnn.Strategy(mode="parallel", scan_method="pallas"))
    (ref_value, ref_ys), ref_grads = run(params, jaxrnn.Strategy())
    # then the outputs and the gradients with respect to every param agree.
    assert relative(ys, ref_ys) < 1e-5
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-4, atol=1e-5)


# --- lowering for TPU and GPU on a CPU-only install --------------------------------------------

# JAX exports Triton kernels only when asked to: their IR has no compatibility guarantee
# across jaxlib versions (a Mosaic TPU call has one), so an artifact with this kernel for
# CUDA runs only on the jaxlib that made it.
TRITON = (export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton"),)
CALLS = {"tpu": "tpu_custom_call", "cuda": "__gpu$xla.gpu.triton"}


def exported(function, platform, *args):
    checks = TRITON if platform == "cuda" else ()
    module = export.export(jax.jit(function), platforms=(platform,), disabled_checks=checks)
    return module(*args).mlir_module()


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "complex64"])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_compiled_kernel_and_its_gradient_lower(platform, dtype, reverse):
    # Given ragged blocks in time (13 steps in blocks of 4) and lanes (1200: 10 TPU rows in
    # blocks of 8, 5 GPU blocks of 256),
    a, b, w = operands((13, 1200), dtype)
    scan = functools.partial(pallas_linear_scan, reverse=reverse, interpret=False, block_t=4)

    def both(a, b):
        return scan(a, b), jax.grad(lambda a, b: LOSS(scan(a, b), w), argnums=(0, 1))(a, b)

    # when exported, then the kernel is there, for that platform's compiler only.
    text = exported(both, platform, a, b)
    other = CALLS["cuda" if platform == "tpu" else "tpu"]
    assert CALLS[platform] in text and other not in text


def test_without_the_safety_check_off_triton_is_what_stops_the_cuda_export():
    a, b, _ = operands((5, 3), "float32")
    scan = functools.partial(pallas_linear_scan, interpret=False)
    with pytest.raises(ValueError, match=r"custom calls whose targets have no compatibility"):
        export.export(jax.jit(scan), platforms=("cuda",))(a, b)


def test_unroll_with_pallas_lowers_for_tpu_and_gpu():
    # Given the LRU (complex64 coefficients) with lengths, through the parallel mode,
    cell = jaxrnn.lru(5, state_size=6)
    params = cell.init(jax.random.key(0), input_size=F)
    xs = jnp.ones((B, T, F))
    lengths = jnp.array([T, 6, 0])
    strategy = jaxrnn.Strategy(mode="parallel", scan_method="pallas")

    def apply(params):
        return jaxrnn.unroll(cell, params, xs, seq_lengths=lengths, strategy=strategy)[1]

    def both(params):
        return apply(params), jax.grad(lambda p: jnp.sum(jnp.abs(apply(p))))(params)

    # when exported from this CPU-only machine (portable: without the host callbacks of the
    # run-time checks), then the compiled kernel, not the interpreter, is in each artifact.
    with portable():
        for platform in CALLS:
            assert CALLS[platform] in exported(both, platform, params)
