"""Mixed precision: float32 params, bfloat16 products and gates, float32 carries and sums.

The rule, for every cell family and every way of running it: outputs in the compute dtype,
carries in the wider of the params' and the compute dtype, gradients in the params' dtype; and
the numbers closer to float32 than running everything in bfloat16.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxrnn
from jaxrnn.cells import FAMILIES
from jaxrnn.cells.base import replace_step
from jaxrnn.cells.base import with_compute_dtype

BF16 = jnp.bfloat16
SEQUENTIAL_FAMILIES = sorted(set(FAMILIES) - {"conv_lstm", "gru_reset_before"})


def make(name, hidden=8, **options):
    return FAMILIES[name].make(hidden, **options)


def wide(tree):
    """Every leaf as float32 (complex64 for complex leaves), to compare across dtypes."""
    return jax.tree.map(
        lambda a: a.astype(jnp.complex64 if jnp.iscomplexobj(a) else jnp.float32), tree
    )


def relative_error(got, reference):
    pairs = zip(jax.tree.leaves(wide(got)), jax.tree.leaves(wide(reference)), strict=True)
    return max(float(jnp.max(jnp.abs(g - r)) / (jnp.max(jnp.abs(r)) + 1e-12)) for g, r in pairs)


def dtypes(tree):
    return {a.dtype for a in jax.tree.leaves(tree)}


def to_bf16(tree):
    return jax.tree.map(lambda a: a.astype(BF16), tree)


@pytest.mark.parametrize("name", SEQUENTIAL_FAMILIES)
def test_every_family_keeps_the_rule(name):
    cell = make(name, compute_dtype=BF16)
    params = cell.init(jax.random.key(0), 8)  # the RG-LRU's input size is its hidden size
    xs = jax.random.normal(jax.random.key(1), (2, 6, 8))
    carry, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=jnp.array([6, 3]))
    assert ys.dtype == BF16
    wide_carry = {jnp.dtype(jnp.float32), jnp.dtype(jnp.complex64)}
    assert dtypes(carry) <= wide_carry
    assert dtypes(carry) == dtypes(cell.initial_carry(params, (2,)))

    def loss(params):
        return jnp.sum(jaxrnn.unroll(cell, params, xs)[1].astype(jnp.float32) ** 2)

    grads = jax.grad(loss)(params)
    assert dtypes(grads) == {jnp.dtype(jnp.float32)}
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # One step at a time gives the same as the scan.
    step_carry = cell.initial_carry(params, (2,))
    for t in range(6):
        step_carry, y = cell.step(params, step_carry, xs[:, t])
        assert y.dtype == BF16
    full = jaxrnn.unroll(cell, params, xs)
    # XLA fuses bfloat16 ops in the scan; the sLSTM's stabiliser m = max(., i~) moves by a
    # whole bfloat16 ulp of the gate (2^-6 near 3) when i~ rounds the other way.
    tolerance = 2e-2 if name == "slstm" else 1e-2
    assert relative_error(step_carry, full[0]) < tolerance


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("store_gates", [False, True])
def test_the_fused_backward_matches_autodiff_in_mixed_precision(name, store_gates):
    cell = make(name, 16, compute_dtype=BF16, store_gates=store_gates)
    params = cell.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (3, 40, 4))
    lengths = jnp.array([40, 17, 0])

    def loss(params, xs, strategy):
        carry, ys = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths, strategy=strategy)
        leaves = [ys, *jax.tree.leaves(carry)]
        return sum(jnp.sum(jnp.sin(a.astype(jnp.float32))) for a in leaves)

    fused = jax.grad(loss, argnums=(0, 1))(params, xs, jaxrnn.Strategy())
    plain = jax.grad(loss, argnums=(0, 1))(params, xs, jaxrnn.Strategy(fused=False))
    assert dtypes(fused[0]) == {jnp.dtype(jnp.float32)}
    assert fused[1].dtype == xs.dtype
    # The fused pass sums its gradients in float32; autodiff of the scan in bfloat16.
    assert relative_error(fused, plain) < 3e-2


@pytest.mark.parametrize("name", ["mingru", "minlstm", "lru", "rg_lru"])
def test_parallel_equals_sequential_in_mixed_precision(name):
    cell = make(name, compute_dtype=BF16)
    params = cell.init(jax.random.key(0), 8)
    xs = jax.random.normal(jax.random.key(1), (2, 30, 8))
    resets = jnp.zeros((2, 30), bool).at[0, 11].set(True)
    run = lambda strategy: jaxrnn.unroll(cell, params, xs, resets=resets, strategy=strategy)
    parallel, sequential = run(jaxrnn.Strategy(mode="parallel")), run(jaxrnn.Strategy())
    assert parallel[1].dtype == sequential[1].dtype == BF16
    assert relative_error(parallel[0], sequential[0]) < 1e-5
    assert relative_error(parallel[1], sequential[1]) < 1e-2  # one bfloat16 rounding apart


LONG = 2000
# Relative error of the final carry after 2,000 steps against float32 (measured about 1e-2;
# stated with headroom): bfloat16 gates round at every step, and the float32 carry keeps that
# noise from compounding further.
TOLERANCE = 3e-2


def long_run(name):
    cell32, mixed = make(name, 32), make(name, 32, compute_dtype=BF16)
    params = cell32.init(jax.random.key(0), 32)
    xs = jax.random.normal(jax.random.key(1), (8, LONG, 32))
    run = lambda cell: jax.jit(lambda p, x: jaxrnn.unroll(cell, p, x)[0])
    reference = run(cell32)(params, xs)
    return (
        reference,
        run(mixed)(params, xs),
        run(cell32)(to_bf16(params), xs.astype(BF16)),  # everything in bfloat16
    )


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_a_float32_carry_stays_closer_to_float32_over_2000_steps(name):
    reference, mixed, all_bf16 = long_run(name)
    assert dtypes(mixed) == {jnp.dtype(jnp.float32)}
    assert dtypes(all_bf16) == {jnp.dtype(BF16)}
    mixed_error = relative_error(mixed, reference)
    assert mixed_error < TOLERANCE
    assert mixed_error < relative_error(all_bf16, reference)


def test_the_mingru_accumulated_in_float32_already():
    # Its carry has always been float32, even with bfloat16 params: over 2,000 steps mixed
    # precision gives the same values as all-bfloat16 and both stay within the tolerance.
    # What mixed precision adds for it is float32 training (the next test).
    reference, mixed, all_bf16 = long_run("mingru")
    assert relative_error(mixed, reference) < TOLERANCE
    np.testing.assert_array_equal(mixed, all_bf16)


def sgd_trajectory(cell, params, xs, targets, steps=30, rate=1e-3):
    optimizer = optax.sgd(rate)
    state = optimizer.init(params)

    def loss(params):
        ys = jaxrnn.unroll(cell, params, xs)[1].astype(jnp.float32)
        return jnp.mean((ys[..., 0] - targets) ** 2)

    @jax.jit
    def update(params, state):
        grads = jax.grad(loss)(params)
        changes, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, changes), state

    for _ in range(steps):
        params, state = update(params, state)
    return params


@pytest.mark.allow_promotion  # optax's updates mix dtypes
@pytest.mark.parametrize("name", ["lstm", "gru", "mingru"])
def test_training_with_float32_params_stays_closer_to_float32(name):
    # Small updates vanish when added to bfloat16 params (2**-8 relative spacing); float32
    # params keep them, so after 30 SGD steps mixed precision is closer to float32 training.
    cell32, mixed = make(name, 16), make(name, 16, compute_dtype=BF16)
    params = cell32.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (8, 50, 4))
    targets = jnp.cumsum(xs[..., 0], axis=1) / 10
    reference = sgd_trajectory(cell32, params, xs, targets)
    trained_mixed = sgd_trajectory(mixed, params, xs, targets)
    trained_bf16 = sgd_trajectory(cell32, to_bf16(params), xs.astype(BF16), targets)
    moved = lambda trained: jax.tree.map(lambda a, p: a.astype(jnp.float32) - p, trained, params)
    error_mixed = relative_error(moved(trained_mixed), moved(reference))
    error_bf16 = relative_error(moved(trained_bf16), moved(reference))
    assert error_mixed < 0.1
    assert error_mixed < error_bf16 / 2


def adding_problem(key, batch, length=100):
    values_key, first_key, second_key = jax.random.split(key, 3)
    values = jax.random.uniform(values_key, (batch, length))
    first = jax.random.randint(first_key, (batch,), 0, length // 2)
    second = jax.random.randint(second_key, (batch,), length // 2, length)
    marks = jnp.zeros((batch, length)).at[jnp.arange(batch), first].set(1.0)
    marks = marks.at[jnp.arange(batch), second].set(1.0)
    return jnp.stack([values, marks], axis=-1), jnp.sum(values * marks, axis=1)


def train_adding(cell, steps=600):
    head = jaxrnn.many_to_one
    params = {
        "rnn": cell.init(jax.random.key(0), 2),
        "w": jnp.zeros((cell.hidden_size, 1)),
        "b": jnp.ones((1,)),
    }
    optimizer = optax.adam(1e-2)
    state = optimizer.init(params)

    def loss(params, xs, targets):
        last = head(cell, params["rnn"], xs).astype(jnp.float32)
        return jnp.mean(((last @ params["w"] + params["b"])[:, 0] - targets) ** 2)

    @jax.jit
    def update(params, state, key):
        xs, targets = adding_problem(key, 64)
        value, grads = jax.value_and_grad(loss)(params, xs, targets)
        changes, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, changes), state, value

    for key in jax.random.split(jax.random.key(1), steps):
        params, state, _ = update(params, state, key)
    xs, targets = adding_problem(jax.random.key(2), 512)
    return float(loss(params, xs, targets))


@pytest.mark.allow_promotion
def test_the_adding_problem_trains_as_well_in_mixed_precision():
    # Predicting the mean scores about 0.17; 600 Adam steps take the LSTM to about 0.002.
    float32 = train_adding(jaxrnn.lstm(32))
    mixed = train_adding(jaxrnn.lstm(32, compute_dtype=BF16))
    assert float32 < 0.02
    assert mixed < 0.02
    assert mixed < 3 * float32 + 0.005


def test_layers_nnx_and_linen_run_in_mixed_precision():
    xs = jnp.ones((2, 5, 3))
    stacked = jaxrnn.stacked([jaxrnn.lstm(8, compute_dtype=BF16), jaxrnn.gru(8)])
    params = stacked.init(jax.random.key(0), 3)
    assert stacked.apply(params, xs)[1].dtype == jnp.float32  # the top layer computes in f32
    module = jaxrnn.nnx.RNN(
        jaxrnn.lstm(8), in_features=3, rngs=nnx.Rngs(0), dtype=BF16, param_dtype=jnp.float32
    )
    assert module(xs).dtype == BF16
    assert dtypes(module.get_params()) == {jnp.dtype(jnp.float32)}
    both = jaxrnn.nnx.Bidirectional(
        jaxrnn.gru(4), in_features=3, rngs=nnx.Rngs(0), dtype=BF16, param_dtype=jnp.float32
    )
    assert both(xs).dtype == BF16
    linen = jaxrnn.linen.RNN(jaxrnn.mingru(8), dtype=BF16)
    variables = linen.init(jax.random.key(0), xs)
    assert linen.apply(variables, xs).dtype == BF16
    assert dtypes(variables) == {jnp.dtype(jnp.float32)}


def test_nnx_dtype_alone_keeps_its_old_meaning_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"param_dtype=jnp.bfloat16"):
        module = jaxrnn.nnx.RNN(jaxrnn.gru(4), in_features=3, rngs=nnx.Rngs(0), dtype=BF16)
    assert dtypes(module.get_params()) == {jnp.dtype(BF16)}


def test_generation_runs_in_mixed_precision():
    cell = jaxrnn.gru(8, compute_dtype=BF16)
    params = {"cell": cell.init(jax.random.key(0), 5), "w": jnp.ones((8, 5)) / 8}

    def step(carry, tokens):
        carry, y = cell.step(params["cell"], carry, jax.nn.one_hot(tokens, 5))
        return carry, y.astype(jnp.float32) @ params["w"]

    carry = cell.initial_carry(params["cell"], (2,))
    out = jaxrnn.decode.generate(step, carry, jnp.array([1, 2]), length=4)
    assert out.tokens.shape == (2, 4)
    assert dtypes(out.carry) == {jnp.dtype(jnp.float32)}


def test_bad_compute_dtypes_are_named():
    with pytest.raises(TypeError, match="compute_dtype must be a real floating-point type"):
        jaxrnn.lstm(4, compute_dtype="bfloat61")
    with pytest.raises(TypeError, match="compute_dtype must be a real floating-point type"):
        jaxrnn.gru(4, compute_dtype=jnp.int8)
    with pytest.raises(TypeError, match="dtype must be None for a layer given whole"):
        jaxrnn.linen.Stacked([jaxrnn.rnn(jaxrnn.gru(4))], dtype=BF16).init(
            jax.random.key(0), jnp.ones((1, 2, 3))
        )


def test_a_cell_is_made_again_with_another_compute_dtype():
    cell = jaxrnn.lstm(4, forget_bias=2.0)
    mixed = with_compute_dtype(cell, BF16)
    assert mixed.compute_dtype == BF16 and cell.compute_dtype is None
    params = mixed.init(jax.random.key(0), 3)
    assert float(params["b"][4]) == 2.0  # the factory's other options are kept
    wrapped = jaxrnn.with_recurrent_dropout(cell, jnp.ones(4))
    with pytest.raises(TypeError, match="cell must be a cell made by a jaxrnn factory"):
        with_compute_dtype(wrapped, BF16)


def test_mixed_precision_inputs_of_any_float_dtype_are_cast():
    cell = jaxrnn.gru(4, compute_dtype=BF16)
    params = cell.init(jax.random.key(0), 3)
    xs = jnp.ones((2, 5, 3))
    _, from_f32 = jaxrnn.unroll(cell, params, xs)
    _, from_bf16 = jaxrnn.unroll(cell, params, xs.astype(BF16))
    np.testing.assert_array_equal(from_f32, from_bf16)


@pytest.mark.allow_promotion  # optax's updates mix dtypes
def test_fit_trains_and_checkpoints_a_mixed_precision_model(tmp_path):
    cell = jaxrnn.gru(8, compute_dtype=BF16)
    xs = jax.random.normal(jax.random.key(1), (32, 10, 2))
    targets = jnp.sum(xs[..., 0], axis=1, keepdims=True)
    params = {"rnn": cell.init(jax.random.key(0), 2), "head": jnp.zeros((8, 1))}

    def loss(params, batch, key):
        xs, targets = batch
        last = jaxrnn.many_to_one(cell, params["rnn"], xs).astype(jnp.float32)
        return jnp.mean((last @ params["head"] - targets) ** 2)

    def run():  # a second run on the same workdir resumes from its float32 checkpoint
        return jaxrnn.train.fit(
            loss,
            params,
            jaxrnn.train.EpochBatches((xs, targets), batch_size=8),
            num_steps=40,
            optimizer=optax.adam(1e-2),
            workdir=tmp_path / "run",
            progress=False,
        )

    result = run()
    assert dtypes(result.params) == {jnp.dtype(jnp.float32)}
    losses = [r["loss"] for r in result.history if r["split"] == "train"]
    assert losses[-1] < losses[0]
    again = run()
    for got, want in zip(
        jax.tree.leaves(again.params), jax.tree.leaves(result.params), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_a_wrapper_calling_a_mixed_cells_step_runs():
    # gradient_norms perturbs each step through a replace_step wrapper that calls cell.step.
    cell = jaxrnn.elman(4, compute_dtype=BF16)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 2))
    norms = jaxrnn.gradient_norms(
        cell, params, xs, lambda carry, ys: jnp.sum(ys[:, -1].astype(jnp.float32) ** 2)
    )
    assert sorted(norms) == ["carry", "hidden", "input"]
    assert all(bool(jnp.all(jnp.isfinite(n))) and n.shape == (5,) for n in norms.values())
    wrapped = replace_step(cell, lambda p, c, px: cell.step_projected(p, c, px))
    assert wrapped.compute_dtype == BF16
    _, ys = jaxrnn.unroll(wrapped, params, xs)
    np.testing.assert_array_equal(ys, jaxrnn.unroll(cell, params, xs)[1])


def test_compute_dtypes_that_would_not_compute_as_asked_are_refused():
    with pytest.raises(TypeError, match="compute_dtype must be a real floating-point type"):
        jaxrnn.lstm(4, compute_dtype=jnp.float8_e4m3fn)
    if not jax.config.jax_enable_x64:  # float64 would silently be float32
        with pytest.raises(TypeError, match="jax_enable_x64"):
            jaxrnn.gru(4, compute_dtype=jnp.float64)


def test_the_new_modules_are_attributes_of_the_package():
    import importlib
    import subprocess
    import sys

    code = (
        "import jaxrnn; print(jaxrnn.cudnn.CudnnFallbackWarning.__name__, jaxrnn.pallas.DTYPES[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["CudnnFallbackWarning", "float32"]
    assert importlib.import_module("jaxrnn").cudnn is importlib.import_module("jaxrnn.cudnn")


def test_directions_in_different_dtypes_merge_in_the_wider():
    layer = jaxrnn.bidirectional(jaxrnn.gru(3, compute_dtype=BF16), jaxrnn.gru(3))
    params = layer.init(jax.random.key(0), 2)
    _, ys = layer.apply(params, jnp.ones((2, 4, 2)))
    assert ys.dtype == jnp.float32 and ys.shape == (2, 4, 6)


def test_the_nnx_dtype_warning_points_at_the_callers_line():
    with pytest.warns(DeprecationWarning) as caught:
        jaxrnn.nnx.RNN(jaxrnn.gru(4), in_features=3, rngs=nnx.Rngs(0), dtype=BF16)
    assert caught[0].filename == __file__


def test_linen_names_its_own_dtype_arguments():
    xs = jnp.ones((1, 2, 3))
    with pytest.raises(TypeError, match="^dtype must be"):
        jaxrnn.linen.RNN(jaxrnn.gru(4), dtype="bf16").init(jax.random.key(0), xs)
    with pytest.raises(TypeError, match="^param_dtype must be"):
        jaxrnn.linen.RNN(jaxrnn.gru(4), param_dtype="bf16").init(jax.random.key(0), xs)


def test_pallas_names_the_strategy_for_a_recurrence_it_cannot_take():
    with jax.enable_x64(True):
        cell = jaxrnn.mingru(4)
        params = cell.init(jax.random.key(0), 2, dtype=jnp.float64)
        strategy = jaxrnn.Strategy(mode="parallel", scan_method="pallas")
        with pytest.raises(TypeError, match="strategy must be a scan_method other than 'pallas'"):
            jaxrnn.unroll(cell, params, jnp.ones((1, 3, 2), jnp.float64), strategy=strategy)
