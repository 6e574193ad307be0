"""`jaxrnn.mamba_block` and `jaxrnn.xlstm_block`: parity with mambapy's ResidualBlock (whole
sequences and its one-token `step`), a stream in pieces equals one call, lengths, masks, resets
and reverse equal each document run alone, finite gradients, Flax modules, export and errors."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn.blocks import causal_conv
from jaxrnn.blocks import from_mambapy_block

D, T = 8, 9
PARALLEL = Strategy(mode="parallel")


def _mamba(**options):
    block = jaxrnn.mamba_block(D, state_size=4, **options)
    params = block.init(jax.random.key(0), D)
    ssm = params["ssm"]  # faster dynamics than the init, so that every step matters
    params["ssm"] = {**ssm, "dt_bias": ssm["dt_bias"] + 1.5, "A_log": 0.5 * ssm["A_log"]}
    return block, params


BLOCKS = {
    "mamba": lambda: _mamba(),
    "mamba_parallel": lambda: _mamba(strategy=PARALLEL),
    "mlstm": lambda: _xlstm("mlstm"),
    "slstm": lambda: _xlstm("slstm"),
}


def _xlstm(cell, **options):
    block = jaxrnn.xlstm_block(D, cell=cell, num_heads=2, **options)
    return block, block.init(jax.random.key(0), D)


def _xs(shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


# ----------------------------------------------------------------------------------------------
# Parity with mambapy's ResidualBlock (RMSNorm, MambaBlock, residual).

# float32 on both sides: convolutions, projections and scans sum in different orders.
# Measured max absolute error on outputs of size ~1: 2.4e-7 (whole sequences).
PARITY_ATOL = 1e-5


@functools.cache
def _mambapy():
    torch = pytest.importorskip("torch")
    mamba_module = pytest.importorskip("mambapy.mamba")
    torch.manual_seed(0)
    config = mamba_module.MambaConfig(d_model=D, n_layers=1, d_state=4, expand_factor=2)
    block = mamba_module.ResidualBlock(config)
    with torch.no_grad():
        block.mixer.dt_proj.bias.add_(1.5)
        block.mixer.A_log.mul_(0.5)
        block.norm.weight.copy_(1 + 0.1 * torch.randn(D))
    ours = jaxrnn.mamba_block(D, state_size=4, dt_rank=config.dt_rank)
    params = jax.tree.map(jnp.asarray, from_mambapy_block(block.state_dict()))
    return torch, block, ours, params


@pytest.mark.parametrize("strategy", [None, PARALLEL])
def test_mamba_block_equals_mambapy_residual_block(strategy):
    torch, block, _, params = _mambapy()
    ours = jaxrnn.mamba_block(D, state_size=4, dt_rank=1, strategy=strategy)
    x = torch.randn(3, 16, D, generator=torch.Generator().manual_seed(2))  # pscan: 2^k steps
    with torch.no_grad():
        want = block(x).numpy()
    _, got = ours.apply(params, jnp.asarray(x.numpy()))
    error = float(np.max(np.abs(np.asarray(got) - want)))
    print(f"max |mamba_block - mambapy ResidualBlock| = {error:.2e}")
    assert error < PARITY_ATOL


def test_mamba_block_one_token_at_a_time_equals_mambapy_step():
    torch, block, ours, params = _mambapy()
    x = torch.randn(2, 7, D, generator=torch.Generator().manual_seed(3))
    e, k = block.mixer.config.d_inner, block.mixer.config.d_conv
    cache = (None, torch.zeros(2, e, k - 1))
    carry = ours.initial_carry(params, (2,))
    for t in range(7):
        with torch.no_grad():
            want, cache = block.step(x[:, t], cache)
        carry, got = ours.apply(params, jnp.asarray(x[:, t : t + 1].numpy()), initial_carry=carry)
        np.testing.assert_allclose(got[:, 0], want.numpy(), atol=PARITY_ATOL)
    np.testing.assert_allclose(carry.ssm, cache[0].numpy(), atol=PARITY_ATOL)
    np.testing.assert_allclose(jnp.swapaxes(carry.conv, 1, 2), cache[1].numpy(), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Streams, lengths, masks, resets and reverse.


@pytest.mark.parametrize("name", list(BLOCKS))
def test_a_stream_in_pieces_equals_one_call(name):
    block, params = BLOCKS[name]()
    xs = _xs((2, 11, D))
    carry, whole = block.apply(params, xs)
    pieces, state = [], block.initial_carry(params, (2,))
    for a, b in ((0, 1), (1, 2), (2, 6), (6, 11)):  # one token at a time, then longer pieces
        state, ys = block.apply(params, xs[:, a:b], initial_carry=state)
        pieces.append(ys)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, rtol=1e-5, atol=1e-5)
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(carry), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _documents(valid_row, resets_row):
    """The positions of each document of a row: the steps that run, split before each step
    with a reset since the step that ran before it."""
    positions = [t for t in range(len(valid_row)) if valid_row[t]]
    documents = []
    for j, t in enumerate(positions):
        if j == 0 or resets_row[positions[j - 1] + 1 : t + 1].any():
            documents.append([])
        documents[-1].append(t)
    return documents


def _alone(block, params, xs, valid, resets, reverse, initial):
    """Each document of each row run alone from ``initial`` (its steps that run, gathered)."""
    ys, finals = np.zeros(xs.shape, np.float32), []
    for n in range(xs.shape[0]):
        start = jax.tree.map(lambda c, n=n: c[n : n + 1], initial)
        final = start
        documents = _documents(valid[n], resets[n])
        for document in documents[::-1] if reverse else documents:
            final, out = block.apply(
                params, xs[n : n + 1, np.array(document)], initial_carry=start, reverse=reverse
            )
            ys[n, document] = out[0]
        finals.append(final)
    return jax.tree.map(lambda *rows: jnp.concatenate(rows), *finals), ys


def _steps_case(case):
    """``(unroll keywords, valid (b, t), resets (b, t), reverse)`` for a batch of 4 rows."""
    lengths = np.array([T, 6, 0, 4])
    valid = np.arange(T)[None] < lengths[:, None]
    resets = np.zeros((4, T), bool)
    kwargs = {"seq_lengths": jnp.asarray(lengths)}
    if case in ("mask", "mask_resets"):
        holes = np.ones((4, T), bool)
        holes[0, [1, 2, 6]] = holes[1, [0, 4]] = holes[3, 1] = False
        kwargs["mask"] = jnp.asarray(holes)
        valid = valid & holes
    if case in ("resets", "reverse_resets", "mask_resets"):
        resets[0, [3, 5, 8]] = resets[1, 4] = resets[3, 2] = True  # 1, 4: a masked step
        kwargs["resets"] = jnp.asarray(resets)
    return kwargs, valid, resets, case.startswith("reverse")


STEP_CASES = ("lengths", "mask", "resets", "reverse", "reverse_resets", "mask_resets")


@pytest.mark.parametrize("case", STEP_CASES)
@pytest.mark.parametrize("name", list(BLOCKS))
def test_lengths_masks_resets_and_reverse_equal_each_document_alone(name, case):
    # Given a block, a batch whose steps that do not run hold NaN, and an initial carry
    block, params = BLOCKS[name]()
    kwargs, valid, resets, reverse = _steps_case(case)
    xs = _xs((4, T, D))
    poisoned = jnp.where(jnp.asarray(valid)[..., None], xs, jnp.nan)
    initial = block.initial_carry(params, (4,))
    if name.startswith("mamba"):  # (the xLSTM carries' stabilisers have rules of their own)
        leaves, tree = jax.tree.flatten(initial)
        initial = tree.unflatten([_xs(leaf.shape, seed=5 + i) for i, leaf in enumerate(leaves)])
    # When the batch runs, and each document alone
    carry, ys = block.apply(params, poisoned, initial_carry=initial, reverse=reverse, **kwargs)
    ref_carry, ref_ys = _alone(block, params, np.asarray(xs), valid, resets, reverse, initial)
    # Then they agree, and the steps that do not run output zeros
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-4, atol=1e-5)
    assert bool(jnp.all(ys[~valid] == 0))
    for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(ref_carry), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_gradients_are_finite_and_padding_gets_none(name):
    block, params = BLOCKS[name]()
    kwargs, valid, _, _ = _steps_case("mask_resets")
    xs = jnp.where(jnp.asarray(valid)[..., None], _xs((4, T, D)), jnp.nan)

    def loss(params, xs):
        carry, ys = block.apply(params, xs, **kwargs)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert bool(jnp.all(grads[1][~valid] == 0))


def test_two_batch_axes_and_time_major_equal_one_batch_axis():
    block, params = _mamba()
    xs = _xs((2, 3, T, D))
    lengths = jnp.array([[T, 2, 0], [5, 1, T]])
    carry, ys = block.apply(params, xs, seq_lengths=lengths)
    flat_carry, flat = block.apply(params, xs.reshape(6, T, D), seq_lengths=lengths.reshape(6))
    np.testing.assert_allclose(ys.reshape(6, T, D), flat, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(carry.ssm.reshape(flat_carry.ssm.shape), flat_carry.ssm)
    _, time_major = block.apply(
        params, jnp.moveaxis(xs, 2, 0), seq_lengths=lengths, time_major=True
    )
    np.testing.assert_allclose(jnp.moveaxis(time_major, 0, 2), ys, rtol=1e-6, atol=1e-6)
    _, one = block.apply(params, xs[1, 2])  # a single unbatched sequence
    np.testing.assert_allclose(one, ys[1, 2], rtol=1e-6, atol=1e-6)


def test_causal_conv_reads_only_the_steps_that_run():
    u = jnp.arange(1.0, 7.0).reshape(6, 1, 1)  # steps 1..6
    valid = jnp.array([True, False, True, True, False, True]).reshape(6, 1)
    starts = jnp.zeros((6, 1), bool).at[3].set(True)
    window = jnp.full((1, 2, 1), 10.0)
    c, new = causal_conv(u, window, jnp.array([[100.0], [10.0], [1.0]]), jnp.zeros(1), valid,
                         starts, holes=True)  # fmt: skip
    # Step 3 reads 10, 10 before it; step 4 reads 1 and 10 (skips 2); after the start at
    # step 4 (position 3) the window is back to 10, 10.
    assert c[:, 0, 0].tolist()[0] == 1 + 10 * 10 + 100 * 10
    assert c[2, 0, 0] == 3 + 10 * 1 + 100 * 10
    assert c[3, 0, 0] == 4 + 10 * 10 + 100 * 10
    assert c[5, 0, 0] == 6 + 10 * 4 + 100 * 10
    assert new[0, :, 0].tolist() == [4.0, 6.0]


# ----------------------------------------------------------------------------------------------
# Stacks, Flax, export.


def test_blocks_stack_into_a_model():
    model = jaxrnn.stacked(
        [jaxrnn.mamba_block(D, state_size=4), jaxrnn.xlstm_block(D, cell="slstm", num_heads=2)]
    )
    params = model.init(jax.random.key(0), D)
    carries, ys = model.apply(params, _xs((2, 5, D)), seq_lengths=jnp.array([5, 3]))
    assert ys.shape == (2, 5, D) and len(carries) == 2


def test_flax_modules_run_blocks():
    nnx = pytest.importorskip("flax.nnx")
    block, _ = _mamba()
    xs = _xs((2, 5, D))
    module = jaxrnn.nnx.Module(block, in_features=D, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(module(xs), block.apply(module.get_params(), xs)[1], atol=1e-6)
    model = jaxrnn.linen.Stacked((block, jaxrnn.xlstm_block(D, num_heads=2)))
    variables = model.init(jax.random.key(0), xs)
    assert model.apply(variables, xs, seq_lengths=jnp.array([5, 2])).shape == (2, 5, D)


@pytest.mark.parametrize("name", ["mamba", "mamba_parallel", "mlstm", "slstm"])
def test_jax_export_round_trip(name, tmp_path):
    from jaxrnn import export

    block, params = BLOCKS[name]()
    fn = jax.jit(lambda xs, lengths: block.apply(params, xs, seq_lengths=lengths)[1])
    args = export.arguments(("b, t, 8", jnp.float32), ("b", jnp.int32))
    export.save(fn, args, tmp_path / "block.jax")
    served = export.load(tmp_path / "block.jax")
    xs, lengths = _xs((3, 7, D)), jnp.array([7, 3, 0])
    np.testing.assert_allclose(served.call(xs, lengths), fn(xs, lengths), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mamba", "mamba_parallel", "mlstm", "slstm"])
def test_onnx_export_runs_in_onnxruntime(name, tmp_path):
    pytest.importorskip("jax2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from jaxrnn import export

    block, params = BLOCKS[name]()

    def fn(xs, mask):  # a mask: the general path of the convolution
        return block.apply(params, xs, mask=mask)[1]

    args = export.arguments(("b, t, 8", jnp.float32), ("b, t", jnp.bool_))
    path = export.save_onnx(fn, args, os.fspath(tmp_path / "block.onnx"), input_names=["x", "m"])
    session = onnxruntime.InferenceSession(path)
    xs = np.asarray(_xs((3, 7, D)))
    mask = np.arange(7)[None] < np.array([7, 3, 0])[:, None]
    mask[0, 2] = False
    got = session.run(None, {"x": xs, "m": mask})[0]
    np.testing.assert_allclose(got, fn(xs, mask), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------


def test_bad_arguments_are_named():
    block, params = _mamba()
    with pytest.raises(ValueError, match="input_size must be 8, the d_model of mamba_block"):
        block.init(jax.random.key(0), 5)
    with pytest.raises(ValueError, match=r"xs must be an array of shape \(\*batch, time, 8\)"):
        block.apply(params, jnp.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="params must be a pytree of arrays matching"):
        block.apply(jaxrnn.mamba_block(D, state_size=5).init(jax.random.key(0), D), _xs((1, 2, D)))
    with pytest.raises(ValueError, match="initial_carry must be a pytree"):
        block.apply(params, _xs((2, 3, D)), initial_carry=block.initial_carry(params, (3,)))
    with pytest.raises(ValueError, match="seq_lengths"):
        block.apply(params, _xs((2, 3, D)), seq_lengths=jnp.array([1, 2, 3]))
    with pytest.raises(TypeError, match="xs must be a floating-point array"):
        block.apply(params, jnp.ones((1, 2, D), jnp.int32))
    for options, word in (({"conv_size": 0}, "conv_size"), ({"expand": 0}, "expand")):
        with pytest.raises(ValueError, match=word):
            jaxrnn.mamba_block(D, **options)
    with pytest.raises(ValueError, match="cell must be 'mlstm' or 'slstm', got 'gru'"):
        jaxrnn.xlstm_block(D, cell="gru")
    with pytest.raises(ValueError, match="proj_factor"):
        jaxrnn.xlstm_block(D, proj_factor=-1)
    with pytest.raises(ValueError, match="num_heads"):
        jaxrnn.xlstm_block(D, num_heads=3)
    with pytest.raises(ValueError, match="strategy"):
        jaxrnn.xlstm_block(D, cell="slstm", num_heads=2, strategy=PARALLEL).apply(
            _xlstm("slstm")[1], _xs((1, 2, D))
        )
    with pytest.raises(ValueError, match="bias=False"):
        from_mambapy_block({"mixer.in_proj.bias": np.zeros(3), "mixer.conv1d.weight": 0})


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: jaxrnn.mamba_block(8, strategy="parallel"), TypeError, "strategy must be"),
        (
            lambda: jaxrnn.mamba_block(8, strategy=jaxrnn.Strategy(mode="chunkwise")),
            ValueError,
            "mode='sequential' or 'parallel' for jaxrnn.mamba",
        ),
        (
            lambda: jaxrnn.xlstm_block(8, cell="slstm", strategy=jaxrnn.Strategy(mode="parallel")),
            ValueError,
            "mode='sequential' for jaxrnn.slstm",
        ),
        (
            lambda: jaxrnn.xlstm_block(8, num_heads=3),
            ValueError,
            r"num_heads must be a divisor of round\(proj_factor \* d_model\)=16",
        ),
        (
            lambda: jaxrnn.xlstm_block(8, cell="slstm", num_heads=3),
            ValueError,
            "num_heads must be a divisor of d_model=8",
        ),
    ],
)
def test_a_block_refuses_what_it_cannot_run_when_it_is_made(make, error, match):
    # They were accepted and failed at apply, naming the inner cell's width.
    with pytest.raises(error, match=match):
        make()
