"""`jaxrnn.mamba`, the S6 selective scan: sequential and parallel runs (every scan method) against
a Python loop over `step`, in values and gradients, with lengths, masks, resets, reverse,
initial carries and two batch axes; parity with mambapy's `selective_scan` and
`selective_scan_seq`; long sequences; mixed precision; errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn.cells.mamba import from_mambapy

H, N, T = 4, 3, 8

STRATEGIES = {
    "sequential": Strategy(),
    "loop": Strategy(mode="parallel", scan_method="loop"),
    "associative": Strategy(mode="parallel", scan_method="associative"),
    "pallas": Strategy(mode="parallel", scan_method="pallas"),  # interpreted on CPU
}


def _problem(batch_shape=(3,), seed=0):
    """A cell with faster dynamics than its init (larger steps, random A), and inputs."""
    cell = jaxrnn.mamba(H, state_size=N, dt_rank=2)
    params = cell.init(jax.random.key(seed), input_size=H)
    keys = jax.random.split(jax.random.key(seed + 1), 3)
    params = {
        **params,
        "dt_bias": params["dt_bias"] + 1.5,
        "A_log": jax.random.normal(keys[0], (H, N)) * 0.5,
        "D": jax.random.normal(keys[1], (H,)),
    }
    xs = jax.random.normal(keys[2], (*batch_shape, T, H))
    return cell, params, xs


def _reference(cell, params, xs, valid, resets, reverse, initial):
    """One `step` at a time in reading order, every row at once: a reset puts a row's carry back
    to its initial one before a document's first step read (masked or not), a masked step
    leaves the carry as it is and outputs zeros. ``xs (n, t, i)``, ``valid``, ``resets (n, t)``."""
    carry, ys = initial, [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        # Reading backwards, a document starts (is first read) at the step before a start.
        starts = (
            (resets[:, t + 1] if t + 1 < T else np.zeros(len(xs), bool))
            if reverse
            else resets[:, t]
        )
        carry = jnp.where(starts[:, None, None], initial, carry)
        new, y = cell.step(params, carry, xs[:, t])
        carry = jnp.where(valid[:, t, None, None], new, carry)
        ys[t] = jnp.where(valid[:, t, None], y, jnp.zeros_like(y))
    return carry, jnp.stack(ys, axis=1)


def _loss(carry, ys):
    return jnp.sum(jnp.sin(3 * ys)) + jnp.sum(jnp.cos(2 * carry))


# Each case: the keywords of `unroll` and how the reference reads them.
CASES = ("lengths", "mask", "resets", "reverse", "initial_carry", "two_batch_axes")


def _case(name):
    """``(batch_shape, kwargs of unroll, valid (n, t), resets (n, t), reverse, initial?)``."""
    batch = (2, 2) if name == "two_batch_axes" else (3,)
    n = int(np.prod(batch))
    lengths = np.array([T, 5, 0, 3][:n])
    valid = np.arange(T)[None] < lengths[:, None]
    resets = np.zeros((n, T), bool)
    kwargs = {"seq_lengths": jnp.asarray(lengths.reshape(batch))}
    if name == "mask":
        holes = np.ones((n, T), bool)
        holes[0, [1, 2, 6]] = holes[1, 0] = False
        kwargs["mask"] = jnp.asarray(holes)
        valid = valid & holes
    if name in ("resets", "reverse"):
        resets[0, [3, 4]] = resets[1, 2] = resets[2, 1] = True
        kwargs["resets"] = jnp.asarray(resets)
    return batch, kwargs, valid, resets, name == "reverse", name in ("initial_carry", "reverse")


def _inputs(case):
    """The case's problem: ``xs`` with NaN in every step that does not run, and an initial carry
    (or None)."""
    batch, _, valid, _, _, with_initial = _case(case)
    cell, params, xs = _problem(batch)
    n = int(np.prod(batch))
    poisoned = jnp.where(jnp.asarray(valid)[..., None], xs.reshape(n, T, H), jnp.nan)
    initial = jax.random.normal(jax.random.key(7), (*batch, H, N)) if with_initial else None
    return cell, params, poisoned.reshape(xs.shape), initial


@functools.cache
def _expected(case):
    """The loss of `_reference` and its gradients, once per case (every strategy reads them)."""
    batch, _, valid, resets, reverse, with_initial = _case(case)
    cell, params, poisoned, initial = _inputs(case)
    n = int(np.prod(batch))

    def reference(params, xs, initial):
        start = jnp.zeros((n, H, N)) if initial is None else initial.reshape(n, H, N)
        carry, ys = _reference(cell, params, xs.reshape(n, T, H), valid, resets, reverse, start)
        return _loss(carry, ys)

    clean = jnp.where(jnp.isnan(poisoned), 0.0, poisoned)
    argnums = (0, 1, 2) if with_initial else (0, 1)
    return jax.jit(jax.value_and_grad(reference, argnums=argnums))(params, clean, initial)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_mamba_equals_a_loop_over_step_in_values_and_gradients(strategy, case):
    # Given a batch whose steps that do not run hold NaN, and this case's keywords
    _, kwargs, valid, _, reverse, with_initial = _case(case)
    cell, params, poisoned, initial = _inputs(case)

    def run(params, xs, initial):
        carry, ys = jaxrnn.unroll(
            cell,
            params,
            xs,
            initial_carry=initial,
            reverse=reverse,
            strategy=STRATEGIES[strategy],
            **kwargs,
        )
        return _loss(carry, ys)

    # When it runs, with gradients for params, inputs and the initial carry
    argnums = (0, 1, 2) if with_initial else (0, 1)
    value, grads = jax.jit(jax.value_and_grad(run, argnums=argnums))(params, poisoned, initial)
    # Then it equals the loop over `step`, and the steps that do not run get zero gradients
    ref_value, ref_grads = _expected(case)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert bool(jnp.all(grads[1].reshape(-1, T, H)[~valid] == 0))


def test_the_final_carry_and_outputs_have_the_shapes_of_the_legend():
    cell, params, xs = _problem((2, 3))
    carry, ys = jaxrnn.unroll(cell, params, xs)
    assert carry.shape == (2, 3, H, N) and carry.dtype == jnp.float32
    assert ys.shape == (2, 3, T, H)
    time_major = jnp.moveaxis(xs, 2, 0)
    carry_t, ys_t = jaxrnn.unroll(cell, params, time_major, time_major=True)
    np.testing.assert_allclose(carry_t, carry, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jnp.moveaxis(ys_t, 0, 2), ys, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Parity with mambapy (https://github.com/alxndrTL/mamba.py), the PyTorch reference.

# float32 on both sides; mambapy's pscan reorders the sums of its Blelloch scan. Measured max
# absolute error on outputs of size ~1: 7.2e-7 against both selective_scan_seq and selective_scan.
PARITY_ATOL = 1e-5


@functools.lru_cache(maxsize=1)
def _mambapy_block():
    torch = pytest.importorskip("torch")
    mamba_module = pytest.importorskip("mambapy.mamba")
    torch.manual_seed(0)
    config = mamba_module.MambaConfig(d_model=8, n_layers=1, d_state=5, expand_factor=2)
    block = mamba_module.MambaBlock(config)
    with torch.no_grad():  # faster dynamics than the init, and a random A
        block.dt_proj.bias.add_(2.0)
        block.A_log.copy_(torch.randn_like(block.A_log) * 0.5)
        block.D.copy_(torch.randn_like(block.D))
    return torch, block, config


def _mambapy_inputs(torch, block, config, length):
    """``x`` and mambapy's own Δ, A, B, C, D for it (as in ``MambaBlock.ssm``)."""
    x = torch.randn(2, length, config.d_inner, generator=torch.Generator().manual_seed(1))
    r, n = config.dt_rank, config.d_state
    with torch.no_grad():
        delta, b, c = torch.split(block.x_proj(x), [r, n, n], dim=-1)
        delta = torch.nn.functional.softplus(delta @ block.dt_proj.weight.T + block.dt_proj.bias)
        a = -torch.exp(block.A_log.float())
    return x, (x, delta, a, b, c, block.D.float())


@pytest.mark.parametrize("function", ["selective_scan", "selective_scan_seq"])
@pytest.mark.parametrize("strategy", ["sequential", "associative"])
def test_mamba_equals_mambapy(function, strategy):
    # Given a mambapy MambaBlock and its S6 weights converted
    torch, block, config = _mambapy_block()
    cell = jaxrnn.mamba(config.d_inner, state_size=config.d_state, dt_rank=config.dt_rank)
    params = jax.tree.map(jnp.asarray, from_mambapy(block.state_dict()))
    x, operands = _mambapy_inputs(torch, block, config, length=32)  # pscan: a power of two
    # When mambapy's selective scan and jaxrnn run the same sequence
    with torch.no_grad():
        want = getattr(block, function)(*operands).numpy()
    _, got = jaxrnn.unroll(cell, params, jnp.asarray(x.numpy()), strategy=STRATEGIES[strategy])
    # Then the outputs agree to float32 rounding
    error = float(np.max(np.abs(np.asarray(got) - want)))
    print(f"max |jaxrnn - mambapy.{function}| = {error:.2e} ({strategy})")
    assert error < PARITY_ATOL


def test_mamba_steps_like_mambapy_ssm_step():
    torch, block, config = _mambapy_block()
    cell = jaxrnn.mamba(config.d_inner, state_size=config.d_state, dt_rank=config.dt_rank)
    params = jax.tree.map(jnp.asarray, from_mambapy(block.state_dict()))
    x, _ = _mambapy_inputs(torch, block, config, length=6)
    h_torch, carry = None, cell.initial_carry(params, (2,))
    for t in range(6):
        with torch.no_grad():
            y_torch, h_torch = block.ssm_step(x[:, t], h_torch)
        carry, y = cell.step(params, carry, jnp.asarray(x[:, t].numpy()))
        np.testing.assert_allclose(y, y_torch.numpy(), atol=PARITY_ATOL)
    np.testing.assert_allclose(carry, h_torch.numpy(), atol=PARITY_ATOL)


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sequential", "loop", "associative"])
def test_ten_thousand_steps_stay_finite(strategy):
    cell = jaxrnn.mamba(16, state_size=8)
    params = cell.init(jax.random.key(0), input_size=16)
    xs = 3.0 * jax.random.normal(jax.random.key(1), (2, 10_000, 16))

    def loss(params, xs):
        carry, ys = jaxrnn.unroll(cell, params, xs, strategy=STRATEGIES[strategy])
        return jnp.mean(ys**2) + jnp.mean(carry**2), (carry, ys)

    (value, (carry, ys)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, xs)
    assert bool(jnp.isfinite(value)) and bool(jnp.all(jnp.isfinite(ys)))
    # exp(Δ A) < 1: the state stays bounded by the inputs it sums.
    assert float(jnp.max(jnp.abs(carry))) < 1e3
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_init_follows_mambapy():
    cell = jaxrnn.mamba(32, state_size=6)
    params = cell.init(jax.random.key(0), input_size=32)
    np.testing.assert_allclose(params["A_log"], np.log(np.tile(np.arange(1, 7), (32, 1))))
    np.testing.assert_array_equal(params["D"], np.ones(32))
    dt = jax.nn.softplus(params["dt_bias"])  # the initial steps, log-uniform in [1e-3, 1e-1]
    assert float(dt.min()) >= 1e-3 * 0.999 and float(dt.max()) <= 0.1 * 1.001
    assert params["dt_proj"].shape == (2, 32)  # dt_rank = ceil(32 / 16)
    assert float(jnp.max(jnp.abs(params["dt_proj"]))) <= 2**-0.5
    assert params["x_proj"].shape == (32, 2 + 2 * 6)
    assert {p.dtype for p in cell.init(jax.random.key(0), 32, dtype=jnp.bfloat16).values()} == {
        jnp.dtype(jnp.bfloat16)
    }


def test_mixed_precision_keeps_the_rule():
    cell = jaxrnn.mamba(8, state_size=4, compute_dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), 8)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 8))
    for strategy in (Strategy(), Strategy(mode="parallel")):
        carry, ys = jaxrnn.unroll(
            cell, params, xs, seq_lengths=jnp.array([6, 3]), strategy=strategy
        )
        assert ys.dtype == jnp.bfloat16 and carry.dtype == jnp.float32

    def loss(params):
        return jnp.sum(jaxrnn.unroll(cell, params, xs)[1].astype(jnp.float32) ** 2)

    grads = jax.grad(loss)(params)
    assert {g.dtype for g in grads.values()} == {jnp.dtype(jnp.float32)}
    reference = jaxrnn.unroll(jaxrnn.mamba(8, state_size=4), params, xs)[1]
    _, ys = jaxrnn.unroll(cell, params, xs)
    assert float(jnp.max(jnp.abs(ys.astype(jnp.float32) - reference))) < 5e-2


def test_mamba_is_a_family():
    from jaxrnn.cells import FAMILIES
    from jaxrnn.cells import by_name

    assert FAMILIES["mamba"].make is jaxrnn.mamba
    assert by_name("mamba", 4, state_size=2).name == "mamba"
    assert repr(jaxrnn.mamba(4)) == "jaxrnn.mamba(hidden_size=4)"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="input_size must be 4, the hidden_size of mamba"):
        jaxrnn.mamba(4).init(jax.random.key(0), input_size=3)
    with pytest.raises(ValueError, match="jaxrnn.mamba_block"):
        jaxrnn.mamba(4).init(jax.random.key(0), input_size=3)
    with pytest.raises(ValueError, match="state_size"):
        jaxrnn.mamba(4, state_size=0)
    with pytest.raises(ValueError, match="dt_rank"):
        jaxrnn.mamba(4, dt_rank=-1)
    with pytest.raises(ValueError, match="hidden_size"):
        jaxrnn.mamba(0)
    cell, params, xs = _problem()
    with pytest.raises(ValueError, match=r"xs must be an array of shape .* input_size=4"):
        jaxrnn.unroll(cell, params, xs[..., :3])
    other = jaxrnn.mamba(4, state_size=N + 1).init(jax.random.key(0), 4)
    with pytest.raises(ValueError, match=r"params\['x_proj'\] must have shape"):
        jaxrnn.unroll(cell, other, xs)
    with pytest.raises(ValueError, match="params must have keys"):
        jaxrnn.unroll(cell, jaxrnn.gru(4).init(jax.random.key(0), 4), xs)
    with pytest.raises(ValueError, match="initial_carry"):
        jaxrnn.unroll(cell, params, xs, initial_carry=jnp.zeros((3, H)))
    with pytest.raises(ValueError, match="with the key 'dt_proj.weight'"):
        from_mambapy({"x_proj.weight": np.zeros((7, 4))})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        from_mambapy([1, 2])
