"""`jaxrnn.mlstm`: its whole-sequence forms (fully parallel and chunkwise) against a Python
loop over `step` (values and gradients, lengths, masks with holes, resets, reverse, initial
carries, chunk sizes that do and do not divide t), the stabiliser under huge input gates, and
parity with NX-AI's ``mlstm_kernels`` native PyTorch kernels where they are installed."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn.cells.mlstm import MLSTMCarry
from jaxrnn.cells.mlstm import mlstm_heads
from jaxrnn.cells.mlstm import mlstm_heads_step
from jaxrnn.cells.mlstm import split_projection

H, HEADS, IN, N, T = 8, 2, 3, 6, 12
RTOL = 2e-5  # float32: the largest difference over the largest magnitude of each leaf
ATOL = 1e-5  # the gradient with respect to an initial m of zero memory is eps-sized: the
# difference of O(1) terms (the stabilised c and n both scale with exp(-m)), so all rounding
FORMS = (None, 4, 5)  # fully parallel; chunks that divide t = 12 and that do not (padded)


@pytest.fixture(autouse=True, scope="module")
def _quick_compiles():
    """XLA's optimisations cost most of these small tests' time (on 2 cores, a loop of 12
    steps with its gradient compiles in 35 s with them, 3 s without) and change no result
    beyond rounding."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def _problem(seed=0, t=T, n=N):
    """A cell with random gate weights and biases (the init's are too tame to move m)."""
    cell = jaxrnn.mlstm(H, num_heads=HEADS)
    k = jax.random.split(jax.random.key(seed), 3)
    width = 4 * H + 2 * HEADS
    params = {
        "w_ih": 0.7 * jax.random.normal(k[0], (IN, width)),
        "b": jax.random.normal(k[1], (width,)).at[-2 * HEADS :].add(jnp.array([1.0, -2, 2, 3])),
    }
    xs = jax.random.normal(k[2], (t, n, IN))  # time-major
    return cell, params, xs


def _random_carry(seed, n=N):
    k = jax.random.split(jax.random.key(seed), 3)
    d = H // HEADS
    return MLSTMCarry(
        c=jax.random.normal(k[0], (n, HEADS, d, d)),
        n=jax.random.normal(k[1], (n, HEADS, d)),
        m=jax.random.normal(k[2], (n, HEADS)),
    )


def _grid(t=T):
    """One batch whose rows are the cases: ``(valid, resets, carry)`` for rows that run every
    step from zeros; a prefix of t - 5 steps; none; holes from a random carry; resets from a
    random carry; holes and resets (one reset on a masked step) from a random carry."""
    time = jnp.arange(t)
    holes = jax.random.bernoulli(jax.random.key(3), 0.6, (t,)).at[0].set(False)
    resets = jax.random.bernoulli(jax.random.key(4), 0.3, (t,)).at[t // 2].set(True)
    valid = jnp.stack([time >= 0, time < t - 5, time < 0, holes, time >= 0, holes], axis=1)
    no_resets = jnp.zeros((t,), bool)
    resets = jnp.stack([no_resets] * 4 + [resets, resets | ~holes], axis=1)
    random = _random_carry(5)
    from_zeros = jnp.array([True, True, False, False, False, False])
    carry = jax.tree.map(
        lambda r: jnp.where(from_zeros.reshape((N,) + (1,) * (r.ndim - 1)), 0.0, r), random
    )
    return valid, resets, carry


@functools.cache
def _jitted_step(cell):
    return jax.jit(cell.step)


def _loop(cell, params, xs, carry, valid, reverse, resets):
    """The reference: `cell.step` one time step at a time, as `_scan_with_resets` reads it."""
    initial, ys, step = carry, [None] * xs.shape[0], _jitted_step(cell)
    for s in reversed(range(xs.shape[0])) if reverse else range(xs.shape[0]):
        if resets is not None:
            carry = jax.tree.map(functools.partial(_where, resets[s]), initial, carry)
        new, y = step(params, carry, xs[s])
        if valid is not None:
            new = jax.tree.map(functools.partial(_where, valid[s]), new, carry)
            y = _where(valid[s], y, jnp.zeros_like(y))
        carry, ys[s] = new, y
    return carry, jnp.stack(ys)


def _where(ok, a, b):
    return jnp.where(ok.reshape(ok.shape + (1,) * (a.ndim - 1)), a, b)


@functools.cache
def _form(chunk_size):
    def run(cell, params, xs, carry, valid, reverse, resets):
        px = cell.project(params, xs)
        return cell.parallel_form(params, px, carry, valid, reverse, resets, chunk_size)

    return run


def _value_and_grads(run, cell, params, xs, carry, valid, reverse, resets):
    """The outputs, the final carry, and the gradients of a fixed random mix of both with
    respect to params, xs and the initial carry."""
    weights = jax.random.normal(jax.random.key(9), (xs.shape[0], xs.shape[1], H))

    def loss(params, xs, carry):
        final, ys = run(cell, params, xs, carry, valid, reverse, resets)
        mixed = jnp.sum(weights * ys) + jnp.sum(jnp.sin(final.c)) + jnp.sum(jnp.cos(final.n))
        return mixed + jnp.sum(final.m**2), (final, ys)

    grads, (final, ys) = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(params, xs, carry)
    return (final, ys), grads


# The forms compile as one program each; the loop runs eagerly around its jitted step (a
# jitted loop of 12 steps compiles several times slower than it runs).
_jitted_value_and_grads = jax.jit(_value_and_grads, static_argnums=(0, 1, 6))


def _assert_close(got, want, rtol=RTOL, what=""):
    leaves = jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got), jax.tree.leaves(want)
    for path, g, w in zip(*leaves, strict=True):
        assert bool(jnp.all(jnp.isfinite(g))), f"{what}{jax.tree_util.keystr(path[0])}"
        scale = float(jnp.max(jnp.abs(w))) + 1e-6
        error = float(jnp.max(jnp.abs(g - w)))
        assert error <= rtol * scale + ATOL, (
            f"{what}{jax.tree_util.keystr(path[0])}: {error / scale}"
        )


@pytest.mark.parametrize("reverse", [False, True])
def test_every_form_equals_the_step_loop_in_values_and_gradients(reverse):
    # Given a random mLSTM and a batch whose rows are the cases: lengths (0 too), masks with
    # holes, resets, an initial carry
    cell, params, xs = _problem()
    valid, resets, carry = _grid()
    args = (cell, params, xs, carry, valid, reverse, resets)
    # When the fully parallel and chunkwise forms run it
    want = _value_and_grads(_loop, *args)
    for chunk_size in FORMS if not reverse else (5,):  # reverse flips, whatever the form
        got = _jitted_value_and_grads(_form(chunk_size), *args)
        # Then they match the loop, values and gradients (params, xs, initial carry)
        _assert_close(got, want, what=f"chunk_size={chunk_size} ")
        # the stabiliser itself is the same, not only c * exp(m)
        np.testing.assert_allclose(got[0][0].m, want[0][0].m, rtol=1e-6, atol=1e-6)
    assert bool(jnp.all(want[0][1][:, 2] == 0))  # a row of no valid steps outputs zeros


def test_one_step_without_masks_or_resets():
    cell, params, xs = _problem(seed=1, t=1)
    args = (cell, params, xs, _random_carry(2), None, False, None)
    want = _value_and_grads(_loop, *args)
    for chunk_size in (4,):  # a chunk longer than t: one chunk of t, the fully parallel form
        _assert_close(_jitted_value_and_grads(_form(chunk_size), *args), want)


def test_unroll_runs_the_forms_with_lengths_masks_and_resets():
    # Given batch-major inputs with lengths, a mask with holes and resets, read in reverse
    cell, params, xs = _problem(seed=2, n=3)
    xs = jnp.moveaxis(xs, 0, 1)  # (3, T, IN)
    options = dict(
        seq_lengths=jnp.array([T, 7, 0]),
        mask=jax.random.bernoulli(jax.random.key(2), 0.8, (3, T)),
        resets=jax.random.bernoulli(jax.random.key(3), 0.2, (3, T)),
        reverse=True,
    )

    @functools.partial(jax.jit, static_argnums=2)
    def value_and_grads(params, xs, strategy):
        def loss(params, xs):
            carry, ys = jaxrnn.unroll(cell, params, xs, strategy=strategy, **options)
            return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(carry.c) + jnp.sum(carry.m), (carry, ys)

        grads, out = jax.grad(loss, argnums=(0, 1), has_aux=True)(params, xs)
        return out, grads

    # When unroll runs it sequentially and chunkwise
    want = value_and_grads(params, xs, jaxrnn.Strategy())
    # (mode="parallel" runs the same parallel_form: see the mixed-precision test)
    strategy = jaxrnn.Strategy(mode="chunkwise", chunk_size=5)
    # Then the strategies give the same numbers
    _assert_close(value_and_grads(params, xs, strategy), want, what=f"{strategy} ")
    assert bool(jnp.all(want[0][1][2] == 0))  # a length of 0 gives zeros


def test_huge_input_gates_stay_finite_in_every_form():
    # Given input-gate pre-activations near +100, where exp alone overflows float32 (> 88.7),
    # and forget gates near 1, so the memory sums ten thousand steps
    cell = jaxrnn.mlstm(4, num_heads=1)
    params = cell.init(jax.random.key(0), input_size=2)
    params = {**params, "b": params["b"].at[-2].set(100.0).at[-1].set(10.0)}
    xs = jax.random.normal(jax.random.key(1), (1, 10_000, 2))

    def run(params, xs, strategy):
        carry, ys = jaxrnn.unroll(cell, params, xs, strategy=strategy)
        return jnp.sum(ys) + jnp.sum(carry.c), (carry, ys)

    grad = jax.jit(jax.grad(run, argnums=(0, 1), has_aux=True), static_argnums=2)
    # The fully parallel form holds a (t, t) matrix per head: 2,048 steps of it (16 MiB) test
    # the same arithmetic as 10,000 (400 MiB) would.
    results = {}
    for strategy, steps in [
        (jaxrnn.Strategy(), 10_000),
        (jaxrnn.Strategy(mode="chunkwise", chunk_size=64), 10_000),
        (jaxrnn.Strategy(mode="parallel"), 2_048),
    ]:
        grads, (carry, ys) = grad(params, xs[:, :steps], strategy)
        # Then the values and the gradients are finite
        for leaf in jax.tree.leaves((grads, carry, ys)):
            assert bool(jnp.all(jnp.isfinite(leaf))), strategy
        assert float(jnp.min(carry.m)) > 88.7  # the stabiliser took the overflow
        results[strategy.mode] = ys
    # and the forms agree as far as float32 allows with m near 100: each step's
    # exp(log f + m_{t-1} - m_t) is off by ~|m| * 6e-8, over ten thousand steps (measured:
    # 1.7e-3 of the largest output between the sequential and chunkwise forms)
    sequential = results["sequential"]
    scale = float(jnp.max(jnp.abs(sequential)))
    assert float(jnp.max(jnp.abs(results["chunkwise"] - sequential))) < 1e-2 * scale
    assert float(jnp.max(jnp.abs(results["parallel"] - sequential[:, :2_048]))) < 1e-2 * scale


def test_the_step_is_the_recurrence_written_in_the_docstring():
    # Given one head of known q, k, v and gates from a zero carry
    carry = MLSTMCarry(jnp.zeros((1, 2, 2)), jnp.zeros((1, 2)), jnp.zeros(1))
    q, k, v = jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0]]), jnp.array([[3.0, 4.0]])
    i, f = jnp.array([1.5]), jnp.array([0.0])
    carry, h = mlstm_heads_step(carry, q, k, v, i, f)
    # Then m = max(log f + 0, i) = i, C = k v^T, n = k, h = C^T q' / max(|n q'|, e^-m)
    np.testing.assert_allclose(carry.m, [1.5])
    np.testing.assert_allclose(carry.c[0], [[6.0, 8.0], [0.0, 0.0]])
    q_scaled = 2**-0.5
    np.testing.assert_allclose(h[0], np.array([6.0, 8.0]) * q_scaled / (2 * q_scaled + 1e-6))


def test_mixed_precision_runs_every_form_with_a_float32_carry():
    cell = jaxrnn.mlstm(H, num_heads=HEADS, compute_dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), input_size=IN)
    xs = jax.random.normal(jax.random.key(1), (2, T, IN))
    outs = [
        jaxrnn.unroll(cell, params, xs, strategy=jaxrnn.Strategy(mode=mode, **extra))
        for mode, extra in [("sequential", {}), ("parallel", {})]
    ]
    for carry, ys in outs:
        assert ys.dtype == jnp.bfloat16
        assert {leaf.dtype for leaf in jax.tree.leaves(carry)} == {jnp.dtype(jnp.float32)}
        np.testing.assert_allclose(
            ys.astype(jnp.float32), outs[0][1].astype(jnp.float32), rtol=2e-2, atol=2e-2
        )


def test_init_carry_and_registration():
    cell = jaxrnn.mlstm(8)  # four heads of 2
    params = cell.init(jax.random.key(0), input_size=5)
    assert params["w_ih"].shape == (5, 4 * 8 + 2 * 4) and params["b"].shape == (40,)
    np.testing.assert_allclose(params["b"][-4:], [3.0, 4.0, 5.0, 6.0])  # forget gates, xLSTM's
    carry = cell.initial_carry(params, (3,))
    assert carry.c.shape == (3, 4, 2, 2) and carry.n.shape == (3, 4, 2) and carry.m.shape == (3, 4)
    assert cell.output is None and cell.parallel_form is not None
    assert jaxrnn.cells.FAMILIES["mlstm"].make is jaxrnn.mlstm
    assert jaxrnn.cells.by_name("mlstm", 8).name == "mlstm"
    assert jaxrnn.mlstm(8, num_heads=2).remake(compute_dtype=jnp.bfloat16).compute_dtype == (
        jnp.bfloat16
    )


def test_bad_arguments_give_errors_that_name_them():
    with pytest.raises(ValueError, match=r"num_heads must be a divisor of hidden_size=6"):
        jaxrnn.mlstm(6)  # four heads by default
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        jaxrnn.mlstm(8, num_heads=0)
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        jaxrnn.mlstm(0)
    cell = jaxrnn.mlstm(8, num_heads=2)
    params = cell.init(jax.random.key(0), input_size=3)
    xs = jnp.zeros((2, 4, 3))
    wrong_heads = jaxrnn.mlstm(8, num_heads=4).init(jax.random.key(0), input_size=3)
    with pytest.raises(ValueError, match=r"params\['w_ih'\] must have shape \(3, 36\) for "):
        jaxrnn.unroll(cell, wrong_heads, xs)
    with pytest.raises(ValueError, match=r"params\['b'\] must have shape \(36,\)"):
        jaxrnn.unroll(cell, {**params, "b": params["b"][:-1]}, xs)
    with pytest.raises(ValueError, match=r"params must have keys \['b', 'w_ih'\]"):
        cell.step(params | {"w_hh": params["b"]}, cell.initial_carry(params), xs[0, 0])
    with pytest.raises(ValueError, match=r"xs must be .* input_size=3"):
        jaxrnn.unroll(cell, params, jnp.zeros((2, 4, 5)))


# ---- parity with NX-AI's mlstm_kernels (PyTorch, CPU) ----------------------------------------

B, NH, S, D = 2, 3, 24, 4
PARITY_RTOL = 2e-5  # float32 against float32 PyTorch, over the largest magnitude


def _kernel_inputs(seed=0):
    """q, k, v (B, NH, S, D) and the gates' pre-activations (B, NH, S), as numpy float32:
    input gates spread over [-6, 6] so that m moves, forget gates mostly near 1."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((B, NH, S, D)).astype(np.float32) for _ in range(3))
    i = (3 * rng.standard_normal((B, NH, S))).astype(np.float32)
    f = (2 + 2 * rng.standard_normal((B, NH, S))).astype(np.float32)
    state = (
        rng.standard_normal((B, NH, D, D)).astype(np.float32),
        rng.standard_normal((B, NH, D)).astype(np.float32),
        rng.standard_normal((B, NH)).astype(np.float32),
    )
    return (q, k, v, i, f), state


def _ours(inputs, state=None, chunk_size=None):
    """`mlstm_heads` on the kernels' layout: (B, NH, S, ...) in, (B, NH, S, D) out."""
    q, k, v, i, f = (jnp.moveaxis(jnp.asarray(a), 2, 0) for a in inputs)
    zeros = MLSTMCarry(jnp.zeros((B, NH, D, D)), jnp.zeros((B, NH, D)), jnp.zeros((B, NH)))
    carry = zeros if state is None else MLSTMCarry(*map(jnp.asarray, state))
    final, h = _jitted_heads(q, k, v, i, f, carry, chunk_size)
    return np.asarray(jnp.moveaxis(h, 0, 2)), final


@functools.partial(jax.jit, static_argnums=6)
def _jitted_heads(q, k, v, i, f, carry, chunk_size):
    return mlstm_heads(q, k, v, i, f, carry, chunk_size=chunk_size)


def _relative(got, want):
    return float(np.max(np.abs(np.asarray(got) - np.asarray(want))) / np.max(np.abs(want)))


def _torch_state(state, torch):
    c, n, m = (torch.from_numpy(a) for a in state)
    return {"c_initial": c, "n_initial": n, "m_initial": m[..., None]}


def test_parity_with_the_mlstm_kernels_recurrent_kernel():
    torch = pytest.importorskip("torch")
    native = pytest.importorskip("mlstm_kernels.torch.recurrent.native_sequence")
    inputs, state = _kernel_inputs()
    errors = {}
    for with_state in (False, True):
        extra = _torch_state(state, torch) if with_state else {}
        h_t, (c_t, n_t, m_t) = native.mlstm_recurrent_sequence__native_fw(
            *map(torch.from_numpy, inputs), return_last_states=True, **extra
        )
        for chunk_size in (None, 5) if with_state else (None,):
            h, final = _ours(inputs, state if with_state else None, chunk_size)
            key = f"state={with_state}, chunk_size={chunk_size}"
            errors[key] = max(
                _relative(h, h_t.numpy()),
                _relative(final.c, c_t.numpy()),
                _relative(final.n, n_t.numpy()),
                _relative(final.m, m_t.numpy()[..., 0]),
            )
    # and the step itself, scanned
    q, k, v, i, f = (jnp.moveaxis(jnp.asarray(a), 2, 0) for a in inputs)
    carry = MLSTMCarry(*map(jnp.asarray, state))
    scan = jax.jit(lambda c, a: jax.lax.scan(lambda c, a: mlstm_heads_step(c, *a), c, a))
    final, h = scan(carry, (q, k, v, i, f))
    errors["mlstm_heads_step"] = max(
        _relative(jnp.moveaxis(h, 0, 2), h_t.numpy()), _relative(final.c, c_t.numpy())
    )
    print("max relative error vs mlstm_recurrent_sequence__native_fw:", errors)
    assert max(errors.values()) < PARITY_RTOL, errors


def test_parity_with_the_mlstm_kernels_parallel_and_chunkwise_kernels():
    torch = pytest.importorskip("torch")
    pytest.importorskip("einops")
    parallel = pytest.importorskip("mlstm_kernels.torch.parallel.native.fw")
    chunkwise = pytest.importorskip("mlstm_kernels.torch.chunkwise.native.fw")
    inputs, state = _kernel_inputs(seed=1)
    tensors = tuple(map(torch.from_numpy, inputs))
    h_par = parallel.mlstm_parallel_fw(*tensors)[0].numpy()
    errors = {"mlstm_parallel_fw": _relative(_ours(inputs)[0], h_par)}
    for chunk_size in (8,):  # three chunks (the kernel wants chunks that divide S)
        h_t, _, _, (c_t, n_t, m_t), _ = chunkwise.mlstm_chunkwise_fw(
            *tensors,
            **_renamed(_torch_state(state, torch)),
            return_last_states=True,
            chunk_size=chunk_size,
        )
        h, final = _ours(inputs, state, chunk_size)
        errors[f"mlstm_chunkwise_fw(chunk_size={chunk_size})"] = max(
            _relative(h, h_t.numpy()),
            _relative(final.c, c_t.numpy()),
            _relative(final.n, n_t.numpy()),
            _relative(final.m, m_t.numpy()[..., 0]),
        )
    print("max relative error vs mlstm_kernels parallel/chunkwise native:", errors)
    assert max(errors.values()) < PARITY_RTOL, errors


def _renamed(state):
    return {
        "matC_initial": state["c_initial"],
        "vecN_initial": state["n_initial"],
        "scaM_initial": state["m_initial"],
    }


def test_parity_of_the_whole_cell_with_the_recurrent_kernel():
    # Given the cell's own projection split into the kernel's q, k, v, i, f and output gate
    torch = pytest.importorskip("torch")
    native = pytest.importorskip("mlstm_kernels.torch.recurrent.native_sequence")
    cell, params, xs = _problem(seed=2)
    _, ys = jaxrnn.unroll(cell, params, xs, time_major=True)
    q, k, v, o, i, f = split_projection(cell.project(params, xs), HEADS)
    to_torch = lambda a: torch.from_numpy(np.array(jnp.moveaxis(a, 0, 2)))
    h = native.mlstm_recurrent_sequence__native_fw(*map(to_torch, (q, k, v, i, f)))
    # Then sigmoid(o) times the kernel's heads side by side is the cell's output
    h = jnp.moveaxis(jnp.asarray(h.numpy()), 2, 0).reshape((T, N, H))
    error = _relative(jax.nn.sigmoid(o) * h, ys)
    print("max relative error of the cell vs the recurrent kernel:", error)
    assert error < PARITY_RTOL


@pytest.mark.parametrize(
    "strategy",
    [Strategy(), Strategy(mode="parallel"), Strategy(mode="chunkwise", chunk_size=5)],
    ids=["sequential", "parallel", "chunkwise"],
)
def test_gates_shut_for_long_keep_the_gradients_finite(strategy):
    # i~ = -100 and f~ = -10 drive the stabiliser m below -88, where exp(-m) overflows float32:
    # the outputs stayed 0 but the gradients were NaN (0 * inf) in every form.
    cell = jaxrnn.mlstm(8, num_heads=2)
    params = cell.init(jax.random.key(0), 3)
    width = params["b"].shape[0]
    params["b"] = params["b"].at[width - 4 : width - 2].set(-100.0).at[width - 2 :].set(-10.0)
    xs = jax.random.normal(jax.random.key(1), (2, 12, 3))
    grads = jax.grad(lambda p: jaxrnn.unroll(cell, p, xs, strategy=strategy)[1].sum())(params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
