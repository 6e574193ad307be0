"""`jaxrnn.slstm`: `unroll` against a Python loop over `step` (values and gradients, lengths,
masks, resets, reverse, remat, initial carries, two batch axes), the stabilised exponential
gates over 10,000 steps, parity with the ``xlstm`` package's sLSTM (its pure-PyTorch "vanilla"
backend, on CPU; optional), and the errors for bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn.cells.slstm import SLSTMCarry
from jaxrnn.cells.slstm import from_xlstm

B, T, I, H, HEADS = 4, 8, 5, 8, 2  # noqa: E741 (I: the input size, as in the legend)


def _problem(seed=0):
    cell = jaxrnn.slstm(H, num_heads=HEADS)
    params = cell.init(jax.random.key(seed), input_size=I)
    keys = jax.random.split(jax.random.key(seed + 1), 3)
    # Larger weights than at init, random biases: after the first step the stabiliser m comes
    # from i~ in about a third of the units and steps, from the forget gate in the rest.
    params = {
        "w_ih": 2.0 * params["w_ih"],
        "w_hh": params["w_hh"] + 0.3 * jax.random.normal(keys[0], params["w_hh"].shape),
        "b": params["b"] + jax.random.normal(keys[1], params["b"].shape),
    }
    xs = jax.random.normal(keys[2], (B, T, I))
    return cell, params, xs


def _loop(cell, params, xs, valid, reverse=False, initial=None):
    """The reference: each sequence alone, one `step` at a time over its valid steps."""
    ys, finals = jnp.zeros((*xs.shape[:2], H)), []
    for n in range(xs.shape[0]):
        if initial is None:
            carry = cell.initial_carry(params)
        else:
            carry = jax.tree.map(lambda c, n=n: c[n], initial)
        steps = [t for t in range(xs.shape[1]) if valid[n, t]]
        for t in reversed(steps) if reverse else steps:
            carry, y = cell.step(params, carry, xs[n, t])
            ys = ys.at[n, t].set(y)
        finals.append(carry)
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *finals), ys


def _loss(carry, ys):
    return jnp.sum(jnp.sin(3 * ys)) + sum(jnp.sum(jnp.sin(leaf)) for leaf in carry)


def _some_carry(seed):
    """A state as a run leaves it: n >= 1, any m."""
    h, c, n, m = jax.random.normal(jax.random.key(seed), (4, B, H))
    return SLSTMCarry(h=jnp.tanh(h), c=c, n=1.0 + jnp.abs(n), m=m)


LENGTHS = np.array([T, 5, 0, 3])
HOLES = np.array(
    [[t % 3 != 1 for t in range(T)], [t < 6 for t in range(T)], [False] * T, [True] * T]
)


@pytest.mark.parametrize(
    "options",
    [
        {"seq_lengths": LENGTHS},
        {"seq_lengths": LENGTHS, "strategy": Strategy(fused=False), "reverse": True},
        {"seq_lengths": LENGTHS, "strategy": Strategy(remat=3), "initial_carry": "given"},
        {"mask": HOLES},
        {"mask": HOLES, "reverse": True, "initial_carry": "given"},
        {"seq_lengths": LENGTHS, "batch_axes": (2, 2)},
    ],
)
def test_slstm_unroll_equals_a_loop_over_step(options):
    cell, params, xs = _problem()
    options = dict(options)
    reverse = options.get("reverse", False)
    lengths = options.get("seq_lengths", np.full(B, T))
    valid = options.get("mask", np.arange(T)[None, :] < lengths[:, None])
    if "mask" in options:
        options["mask"] = jnp.asarray(options["mask"])
    if "seq_lengths" in options:
        options["seq_lengths"] = jnp.asarray(options["seq_lengths"])
    initial = _some_carry(7) if options.pop("initial_carry", None) else None
    poisoned = jnp.where(jnp.asarray(valid)[..., None], xs, jnp.nan)  # padding never counts
    batch = options.pop("batch_axes", (B,))  # (2, 2): the batch as two axes

    def run(params, xs, initial):
        given = {} if initial is None else {"initial_carry": initial}
        if "seq_lengths" in options:
            given["seq_lengths"] = options["seq_lengths"].reshape(batch)
        others = {k: v for k, v in options.items() if k != "seq_lengths"}
        carry, ys = jaxrnn.unroll(cell, params, xs.reshape(*batch, T, I), **given, **others)
        assert carry.m.shape == (*batch, H) and ys.shape == (*batch, T, H)
        carry, ys = jax.tree.map(lambda c: c.reshape(B, H), carry), ys.reshape(B, T, H)
        return _loss(carry, ys), (carry, ys)

    def loop(params, xs, initial):
        carry, ys = _loop(cell, params, xs, valid, reverse, initial)
        return _loss(carry, ys), (carry, ys)

    (value, (carry, ys)), grads = jax.jit(jax.value_and_grad(run, argnums=(0, 1, 2), has_aux=True))(
        params, poisoned, initial
    )
    loop_grad = jax.value_and_grad(loop, argnums=(0, 1, 2), has_aux=True)  # eager: no compile
    (ref_value, (ref_carry, ref_ys)), ref_grads = loop_grad(params, xs, initial)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-5, atol=1e-6)
    for got, want in zip(carry, ref_carry, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(cell.output(carry), carry.h)  # what many_to_one reads


@pytest.mark.parametrize("reverse", [False, True])
def test_slstm_packed_documents_equal_each_document_alone(reverse):
    cell, params, xs = _problem(1)
    row = xs[0]  # documents [0, 3) and [3, 7), then one step of padding
    resets = jnp.zeros((1, T), bool).at[0, 0].set(True).at[0, 3].set(True)

    documents = np.zeros((2, T), bool)  # as two rows of the reference loop
    documents[0, :3], documents[1, 3:7] = True, True

    def packed(params, row):
        _, ys = jaxrnn.unroll(
            cell, params, row[None], resets=resets, seq_lengths=jnp.array([7]), reverse=reverse
        )
        return jnp.sum(jnp.sin(3 * ys)), ys[0]

    def alone(params, row):
        _, ys = _loop(cell, params, jnp.stack([row, row]), documents, reverse)
        return jnp.sum(jnp.sin(3 * ys)), ys[0] + ys[1]

    (value, ys), grads = jax.jit(jax.value_and_grad(packed, (0, 1), has_aux=True))(params, row)
    (ref_value, ref_ys), ref = jax.value_and_grad(alone, (0, 1), has_aux=True)(params, row)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_slstm_stabilised_gates_stay_finite_over_10000_steps():
    # exp(90) overflows float32 (its largest exponent is about 88.7): without the stabiliser
    # the input gate alone would be inf from the first step.
    assert not np.isfinite(np.exp(np.float32(90.0)))
    cell = jaxrnn.slstm(4, num_heads=2)
    params = cell.init(jax.random.key(0), input_size=2)
    xs = jax.random.normal(jax.random.key(1), (2, 10_000, 2))

    def with_biases(i, f):
        b = params["b"].reshape(4, 4).at[0].set(i).at[1].set(f).reshape(-1)
        return {**params, "b": b}

    @jax.jit
    def run(params, xs):
        def loss(params, xs):
            carry, ys = jaxrnn.unroll(cell, params, xs)
            return jnp.sum(ys) + jnp.sum(carry.h), (carry, ys)

        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)

    for i, f in [(90.0, 30.0), (90.0, -30.0), (-90.0, -30.0), (-30.0, 30.0), (30.0, -30.0)]:
        (value, (carry, ys)), grads = run(with_biases(i, f), xs)
        assert np.isfinite(value), (i, f)
        for leaf in [*carry, ys, *jax.tree.leaves(grads)]:
            assert np.all(np.isfinite(leaf)), (i, f)
        assert np.all(np.abs(ys) <= 1.0) and np.all(carry.n >= 1.0), (i, f)  # |c| <= n, n >= 1


def test_slstm_first_step_is_defined_whatever_the_gates():
    # On a first step m = i~, so f' = exp(log sigma(f~) - i~) would be exp(119) = inf for these
    # pre-activations: the clamp keeps it (and its gradient) finite, and n_1 = 1.
    cell, params, xs = _problem()
    params = {**params, "b": params["b"].at[:H].set(-120.0)}

    def loss(params):
        carry, y = cell.step(params, cell.initial_carry(params, (B,)), xs[:, 0])
        return jnp.sum(y), carry

    (_, carry), grads = jax.value_and_grad(loss, has_aux=True)(params)
    np.testing.assert_array_equal(carry.n, 1.0)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_slstm_mixed_precision_keeps_a_float32_carry():
    cell, params, xs = _problem()
    mixed = jaxrnn.slstm(H, num_heads=HEADS, compute_dtype=jnp.bfloat16)

    def loss(params):
        carry, ys = jaxrnn.unroll(mixed, params, xs, seq_lengths=jnp.asarray(LENGTHS))
        return jnp.sum(ys.astype(jnp.float32)), (carry, ys)

    (_, (carry, ys)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert ys.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in carry} == {jnp.dtype(jnp.float32)}
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    full_carry, full_ys = _loop(cell, params, xs, np.arange(T)[None, :] < LENGTHS[:, None])
    np.testing.assert_allclose(ys.astype(jnp.float32), full_ys, atol=5e-2)
    np.testing.assert_allclose(carry.h, full_carry.h, atol=5e-2)


def test_slstm_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"num_heads must be a divisor of hidden_size=10 .*got 4"):
        jaxrnn.slstm(10)
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        jaxrnn.slstm(8, num_heads=0)
    with pytest.raises(TypeError, match="num_heads must be a positive int, got 2.0"):
        jaxrnn.slstm(8, num_heads=2.0)
    cell = jaxrnn.slstm(8, num_heads=2)
    params = cell.init(jax.random.key(0), input_size=3)
    carry, x = cell.initial_carry(params), jnp.ones(3)
    lstm_like = {**params, "w_hh": jnp.zeros((8, 32))}
    with pytest.raises(ValueError, match=r"params\['w_hh'\] must have shape \(2, 4, 16\)"):
        cell.step(lstm_like, carry, x)
    four_heads = jaxrnn.slstm(8, num_heads=4).init(jax.random.key(0), input_size=3)
    with pytest.raises(ValueError, match=r"params\['w_hh'\] .* num_heads=2\).* got \(4, 2, 8\)"):
        jaxrnn.unroll(cell, four_heads, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"params\['b'\] must have shape \(32,\)"):
        cell.step({**params, "b": jnp.zeros(31)}, carry, x)
    with pytest.raises(ValueError, match="params must have keys"):
        cell.step({"w_ih": params["w_ih"], "w_hh": params["w_hh"]}, carry, x)
    with pytest.raises(ValueError, match=r"strategy must be mode='sequential' for jaxrnn\.slstm"):
        jaxrnn.unroll(cell, params, jnp.ones((2, 3)), strategy=Strategy(mode="parallel"))
    with pytest.raises(TypeError, match="module must be an sLSTMLayer or sLSTMCell"):
        from_xlstm({"weights": None})


# --- Parity with the xlstm package (Beck et al.'s own code), vanilla PyTorch backend on CPU ---


def _xlstm():
    torch = pytest.importorskip("torch")
    pytest.importorskip("xlstm")
    from xlstm.blocks.slstm.cell import sLSTMCell
    from xlstm.blocks.slstm.cell import sLSTMCellConfig
    from xlstm.blocks.slstm.layer import sLSTMLayer
    from xlstm.blocks.slstm.layer import sLSTMLayerConfig

    return torch, sLSTMCell, sLSTMCellConfig, sLSTMLayer, sLSTMLayerConfig


def _randomise(torch, cell, generator):
    """Recurrent weights and biases far from xlstm's init (zeros and small): every gate regime."""
    kernel, bias = cell.recurrent_kernel.shape, cell.bias.shape
    cell.recurrent_kernel[...] = 0.5 * torch.randn(kernel, generator=generator)
    cell.bias[...] = 2.0 * torch.randn(bias, generator=generator)


def _sequence_major(torch, y, b, s):
    """xlstm's output ``(b, heads, s, d)`` as ``(b, s, h)``."""
    return y.permute(0, 2, 1, 3).reshape(b, s, -1).detach().numpy()


# Max absolute errors measured (float32, CPU, xlstm 2.0.6, vanilla backend): cell outputs 3.6e-7
# (|y| <= 1.1), final states 9.5e-7 (|c|, |n|, |m| <= 5.6), input gradients 2.9e-6 (<= 9.4);
# layer outputs 2.4e-7, final states 7.2e-7. Both sides do the same float32 operations in
# nearly the same order: the tolerance is a few float32 ulps of values of order 1-10.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.mark.parametrize("start", ["zeros", "given"])
def test_slstm_equals_the_xlstm_vanilla_cell(start):
    torch, sLSTMCell, sLSTMCellConfig, _, _ = _xlstm()
    generator = torch.Generator().manual_seed(0)
    config = sLSTMCellConfig(hidden_size=H, num_heads=HEADS, backend="vanilla", dtype="float32")
    reference = sLSTMCell(config)
    _randomise(torch, reference, generator)
    s = 20
    wx = 2.0 * torch.randn(B, s, 4 * H, generator=generator)
    state = None
    if start == "given":
        carry = _some_carry(3)
        state = torch.tensor(np.stack([np.asarray(leaf) for leaf in carry]))
    wx.requires_grad_(True)
    y, final = reference(wx, state)
    torch.sin(3 * y).sum().backward()

    cell = jaxrnn.slstm(H, num_heads=HEADS)
    params = from_xlstm(reference)
    initial = None if state is None else SLSTMCarry(*map(jnp.asarray, state.numpy()))

    def run(xs):
        carry, ys = jaxrnn.unroll(cell, params, xs, initial_carry=initial)
        return jnp.sum(jnp.sin(3 * ys)), (carry, ys)

    (_, (carry, ys)), grad = jax.jit(jax.value_and_grad(run, has_aux=True))(
        jnp.asarray(wx.detach().numpy())
    )
    np.testing.assert_allclose(ys, _sequence_major(torch, y, B, s), **TOLERANCE)
    for got, want in zip(carry, final.detach().numpy(), strict=True):  # y (= h), c, n, m
        np.testing.assert_allclose(got, want, **TOLERANCE)
    np.testing.assert_allclose(grad, wx.grad.numpy(), **TOLERANCE)


def test_slstm_equals_the_xlstm_layer_through_from_xlstm():
    torch, _, _, sLSTMLayer, sLSTMLayerConfig = _xlstm()
    generator = torch.Generator().manual_seed(1)
    config = sLSTMLayerConfig(
        embedding_dim=H, num_heads=HEADS, conv1d_kernel_size=0, backend="vanilla", dtype="float32"
    )
    layer = sLSTMLayer(config)
    _randomise(torch, layer.slstm_cell, generator)
    for projection in (layer.igate, layer.fgate, layer.zgate, layer.ogate):
        with torch.no_grad():  # distinct gates, so that a swapped pair would show
            projection.weight.copy_(torch.randn(projection.weight.shape, generator=generator))
    captured = []
    layer.slstm_cell.register_forward_hook(lambda module, args, out: captured.append(out))
    s = 16
    x = torch.randn(B, s, H, generator=generator)
    layer(x)
    y, final = captured[0]

    cell = jaxrnn.slstm(H, num_heads=HEADS)
    carry, ys = jaxrnn.unroll(cell, from_xlstm(layer), jnp.asarray(x.numpy()))
    np.testing.assert_allclose(ys, _sequence_major(torch, y, B, s), **TOLERANCE)
    for got, want in zip(carry, final.detach().numpy(), strict=True):
        np.testing.assert_allclose(got, want, **TOLERANCE)

    convolved = sLSTMLayer(
        sLSTMLayerConfig(embedding_dim=H, num_heads=HEADS, backend="vanilla", dtype="float32")
    )
    with pytest.raises(ValueError, match="module must be an sLSTMLayer with conv1d_kernel_size=0"):
        from_xlstm(convolved)
