"""Parity with flax.linen cells and, when installed, torch.nn.RNN/LSTM/GRU via converted weights."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

B, T, F, H = 3, 6, 4, 5
FLAX_CELLS = {
    "elman": (jaxrnn.elman, [nn.SimpleCell]),
    "lstm": (jaxrnn.lstm, [nn.LSTMCell, nn.OptimizedLSTMCell]),
    "gru": (jaxrnn.gru, [nn.GRUCell]),
    "mgu": (jaxrnn.mgu, [nn.MGUCell]),
}


def flax_unroll(flax_cell, variables, xs, carry):
    ys = []
    for t in range(xs.shape[1]):
        carry, y = flax_cell.apply(variables, carry, xs[:, t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


def to_flax_carry(name, carry):
    return (carry.c, carry.h) if name == "lstm" else carry


@pytest.mark.parametrize("name", FLAX_CELLS)
def test_from_flax_and_to_flax_give_the_same_outputs(name):
    factory, flax_classes = FLAX_CELLS[name]
    cell = factory(H)
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    for flax_class in flax_classes:
        flax_cell = flax_class(features=H)
        variables = flax_cell.init(
            jax.random.key(0), flax_cell.initialize_carry(jax.random.key(0), (B, F)), xs[:, 0]
        )
        # Flax initialises biases at zero: give them values so that they are tested too.
        variables = jax.tree.map(
            lambda v: v + 0.05 * jnp.sin(jnp.arange(v.size, dtype=v.dtype).reshape(v.shape)),
            variables,
        )
        carry0 = cell.initial_carry(cell.init(jax.random.key(0), F), (B,))
        params = jaxrnn.interop.from_flax(cell, variables)
        carry, ys = jaxrnn.unroll(cell, params, xs)
        flax_carry, flax_ys = flax_unroll(flax_cell, variables, xs, to_flax_carry(name, carry0))
        np.testing.assert_allclose(ys, flax_ys, atol=1e-5)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
            to_flax_carry(name, carry),
            flax_carry,
        )
        # And back: jaxrnn params run by flax give jaxrnn's outputs.
        params = cell.init(jax.random.key(2), F)
        params = jax.tree.map(lambda p: p + 0.05, params)
        _, ys = jaxrnn.unroll(cell, params, xs)
        _, flax_ys = flax_unroll(
            flax_cell, jaxrnn.interop.to_flax(cell, params), xs, to_flax_carry(name, carry0)
        )
        np.testing.assert_allclose(ys, flax_ys, atol=1e-5)


def test_from_flax_errors():
    with pytest.raises(
        ValueError,
        match=r"variables do not look like those of the flax cell "
        r"matching jaxrnn.lstm\(hidden_size=5\)",
    ):
        jaxrnn.interop.from_flax(jaxrnn.lstm(H), {"params": {"i": {}, "h": {}}})
    with pytest.raises(
        TypeError,
        match="cell must be jaxrnn.elman, jaxrnn.lstm, jaxrnn.gru, jaxrnn.mgu, .*conv_lstm",
    ):
        jaxrnn.interop.to_flax(jaxrnn.stacked([jaxrnn.lstm(2)]), {})


TORCH_MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}


@pytest.mark.parametrize("name", TORCH_MODULES)
def test_from_torch_parity(name):
    torch = pytest.importorskip("torch", reason="torch is not installed (optional extra)")
    torch.manual_seed(0)
    module = getattr(torch.nn, TORCH_MODULES[name])(
        F, H, num_layers=2, batch_first=True, bidirectional=True
    )
    xs = np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)
    with torch.no_grad():
        torch_ys, torch_state = module(torch.from_numpy(xs))
    state_dict = module.state_dict()
    cell = getattr(jaxrnn, name)(H)
    model = jaxrnn.stacked([jaxrnn.bidirectional(cell), jaxrnn.bidirectional(cell)])
    params = tuple(
        {
            "forward": jaxrnn.interop.from_torch(cell, state_dict, layer=layer),
            "backward": jaxrnn.interop.from_torch(cell, state_dict, layer=layer, reverse=True),
        }
        for layer in range(2)
    )
    carries, ys = model.apply(params, jnp.asarray(xs))
    np.testing.assert_allclose(ys, torch_ys.numpy(), atol=1e-5)
    # torch's final state: (num_layers * 2, b, h), ordered layer0-fwd, layer0-bwd, layer1-...
    h_n = (torch_state[0] if name == "lstm" else torch_state).numpy()
    hidden = lambda carry: carry.h if name == "lstm" else carry
    ours = [hidden(c) for layer in carries for c in (layer.forward, layer.backward)]
    np.testing.assert_allclose(np.stack(ours), h_n, atol=1e-5)
    if name == "lstm":
        ours_c = [c.c for layer in carries for c in (layer.forward, layer.backward)]
        np.testing.assert_allclose(np.stack(ours_c), torch_state[1].numpy(), atol=1e-5)


def test_from_torch_errors():
    h = 4
    state = {"weight_ih_l0": np.zeros((3 * h, 2)), "weight_hh_l0": np.zeros((3 * h, h))}
    with pytest.raises(
        ValueError,
        match=r"state_dict\['weight_hh_l0'\] must have shape \(16, 4\) "
        r"for jaxrnn.lstm\(hidden_size=4\).*got \(12, 4\)",
    ):
        jaxrnn.interop.from_torch(jaxrnn.lstm(h), state)
    with pytest.raises(ValueError, match=r"state_dict has no 'weight_ih_l1'.*weight keys are"):
        jaxrnn.interop.from_torch(jaxrnn.gru(h), state, layer=1)
    params = jaxrnn.interop.from_torch(jaxrnn.gru(h), state)  # bias=False: zero biases
    assert float(jnp.abs(params["b_hh"]).sum()) == 0.0


@pytest.mark.parametrize("present", ["bias_ih_l0", "bias_hh_l0"])
def test_from_torch_refuses_one_bias_without_the_other(present):
    h = 4
    state = {
        "weight_ih_l0": np.zeros((4 * h, 2)),
        "weight_hh_l0": np.zeros((4 * h, h)),
        present: np.ones(4 * h),
    }
    missing = "bias_hh_l0" if present == "bias_ih_l0" else "bias_ih_l0"
    with pytest.raises(ValueError, match=rf"has '{present}' but no '{missing}'"):
        jaxrnn.interop.from_torch(jaxrnn.lstm(h), state)


def test_mgu_gradients_equal_flax_mgucell_on_converted_weights():
    flax_cell = nn.MGUCell(features=H)
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    variables = flax_cell.init(jax.random.key(0), jnp.zeros((B, H)), xs[:, 0])
    variables = jax.tree.map(
        lambda v: v + 0.05 * jnp.cos(jnp.arange(v.size)).reshape(v.shape), variables
    )
    cell = jaxrnn.mgu(H)
    params = jaxrnn.interop.from_flax(cell, variables)
    ours = lambda xs: jnp.sum(jnp.sin(jaxrnn.unroll(cell, params, xs)[1]))
    theirs = lambda xs: jnp.sum(
        jnp.sin(flax_unroll(flax_cell, variables, xs, jnp.zeros((B, H)))[1])
    )
    np.testing.assert_allclose(jax.grad(ours)(xs), jax.grad(theirs)(xs), rtol=1e-5, atol=1e-6)
    # Its init follows Flax's: forget bias 1, the rest 0.
    fresh = cell.init(jax.random.key(3), F)
    np.testing.assert_array_equal(fresh["b_ih"], jnp.r_[jnp.ones(H), jnp.zeros(H)])


def _projected_torch_state(h, p, i, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "weight_ih_l0": rng.standard_normal((4 * h, i)).astype(np.float32) / 2,
        "weight_hh_l0": rng.standard_normal((4 * h, p)).astype(np.float32) / 2,
        "bias_ih_l0": rng.standard_normal(4 * h).astype(np.float32) / 4,
        "bias_hh_l0": rng.standard_normal(4 * h).astype(np.float32) / 4,
        "weight_hr_l0": rng.standard_normal((p, h)).astype(np.float32) / 2,
    }


def test_lstm_with_a_projection_follows_torchs_equations():
    # PyTorch's documented proj_size LSTM, written out in NumPy: h_t = W_hr (o * tanh(c_t)).
    h, p, i = 6, 3, 4
    state = _projected_torch_state(h, p, i)
    cell = jaxrnn.lstm(h, proj_size=p)
    params = jaxrnn.interop.from_torch(cell, state)
    xs = np.random.default_rng(1).standard_normal((B, T, i)).astype(np.float32)
    sig = lambda v: 1 / (1 + np.exp(-v))
    hh, cc, ys = np.zeros((B, p)), np.zeros((B, h)), []
    for t in range(T):
        z = (
            xs[:, t] @ state["weight_ih_l0"].T
            + state["bias_ih_l0"]
            + hh @ state["weight_hh_l0"].T
            + state["bias_hh_l0"]
        )
        gi, gf, gg, go = np.split(z, 4, axis=-1)
        cc = sig(gf) * cc + sig(gi) * np.tanh(gg)
        hh = (sig(go) * np.tanh(cc)) @ state["weight_hr_l0"].T
        ys.append(hh)
    carry, out = jaxrnn.unroll(cell, params, jnp.asarray(xs))
    np.testing.assert_allclose(out, np.stack(ys, 1), atol=1e-5)
    np.testing.assert_allclose(carry.c, cc, atol=1e-5)
    assert cell.fused is None and cell.hidden_size == p
    # Through the layers, reversed, with lengths, under grad: the scan's autodiff.
    model = jaxrnn.stacked([jaxrnn.bidirectional(cell), jaxrnn.lstm(5)])
    model_params = model.init(jax.random.key(0), input_size=i)
    loss = lambda prm: jnp.sum(
        model.apply(prm, jnp.asarray(xs), seq_lengths=jnp.array([6, 3, 1]))[1]
    )
    grads = jax.grad(loss)(model_params)
    assert grads[0]["forward"]["w_hr"].shape == (h, p)


def test_from_torch_projection_errors_say_how_to_build_the_cell():
    state = _projected_torch_state(6, 3, 4)
    with pytest.raises(ValueError, match=r"proj_size=3\): build the cell as jaxrnn.lstm\(6, "):
        jaxrnn.interop.from_torch(jaxrnn.lstm(6), state)
    del state["weight_hr_l0"]
    with pytest.raises(ValueError, match=r"has a projection.*no 'weight_hr_l0'"):
        jaxrnn.interop.from_torch(jaxrnn.lstm(6, proj_size=3), state)
    with pytest.raises(ValueError, match=r"proj_size must be smaller than hidden_size=6"):
        jaxrnn.lstm(6, proj_size=6)


def test_from_torch_projection_parity():
    torch = pytest.importorskip("torch", reason="torch is not installed (optional extra)")
    torch.manual_seed(0)
    module = torch.nn.LSTM(F, H, proj_size=2, batch_first=True, bidirectional=True)
    xs = np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)
    with torch.no_grad():
        torch_ys, (h_n, c_n) = module(torch.from_numpy(xs))
    cell = jaxrnn.lstm(H, proj_size=2)
    state_dict = module.state_dict()
    params = {
        "forward": jaxrnn.interop.from_torch(cell, state_dict),
        "backward": jaxrnn.interop.from_torch(cell, state_dict, reverse=True),
    }
    carry, ys = jaxrnn.bidirectional(cell).apply(params, jnp.asarray(xs))
    np.testing.assert_allclose(ys, torch_ys.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.stack([carry.forward.h, carry.backward.h]), h_n, atol=1e-5)
    np.testing.assert_allclose(np.stack([carry.forward.c, carry.backward.c]), c_n, atol=1e-5)
