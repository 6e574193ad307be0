"""jaxrnn.nnx and jaxrnn.linen: thin Flax modules over jaxrnn layers, and the Equinox pattern.

Parity with Flax's own RNNs on converted weights (values and gradients), dropout driven by
nnx.Rngs and linen rng collections, training with nnx.Optimizer, the NNX transforms, orbax
round trips, and jaxrnn checkpoints loaded into a module.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn

nnx = pytest.importorskip("flax.nnx", reason="flax is not installed (the [flax] extra)")
nn = pytest.importorskip("flax.linen", reason="flax is not installed (the [flax] extra)")

B, T, F, H = 3, 6, 4, 5


def inputs(seed=0, shape=(B, T, F)):
    return jax.random.normal(jax.random.key(seed), shape)


# --- parity with Flax's own RNNs -------------------------------------------------------------


@pytest.mark.parametrize(
    "make_flax, make_cell",
    [
        (nnx.OptimizedLSTMCell, jaxrnn.lstm),
        (nnx.LSTMCell, jaxrnn.lstm),
        (nnx.GRUCell, jaxrnn.gru),
        (nnx.SimpleCell, jaxrnn.elman),
    ],
)
def test_nnx_module_equals_nnx_rnn_on_converted_weights(make_flax, make_cell):
    reference = nnx.RNN(make_flax(F, H, rngs=nnx.Rngs(0)))
    ours = jaxrnn.nnx.RNN(make_cell(H), in_features=F, rngs=nnx.Rngs(1))
    ours.set_params(jaxrnn.interop.from_flax(make_cell(H), reference.cell))
    xs, lengths = inputs(), jnp.array([T, 3, 1])
    np.testing.assert_allclose(ours(xs), reference(xs), atol=1e-5)
    # nnx.RNN's padded outputs are whatever the carry gives; compare the valid steps only.
    valid = (jnp.arange(T)[None] < lengths[:, None])[..., None]
    np.testing.assert_allclose(
        jnp.where(valid, ours(xs, seq_lengths=lengths), 0),
        jnp.where(valid, reference(xs, seq_lengths=lengths), 0),
        atol=1e-5,
    )

    def loss(model, xs):
        return jnp.sum(jnp.sin(model(xs)))

    dxs_ours = nnx.grad(loss, argnums=1)(ours, xs)
    dxs_ref = nnx.grad(loss, argnums=1)(reference, xs)
    np.testing.assert_allclose(dxs_ours, dxs_ref, atol=1e-5)
    # The weight gradients map like the weights (the converters are linear).
    d_ours = nnx.grad(loss)(ours, xs)
    d_ref = nnx.grad(loss)(reference, xs)
    converted = jaxrnn.interop.from_flax(make_cell(H), d_ref.cell)
    for name in ("w_ih", "w_hh"):
        np.testing.assert_allclose(d_ours.params[name][...], converted[name], atol=1e-5)


@pytest.mark.parametrize(
    "make_flax, make_cell",
    [(nn.OptimizedLSTMCell, jaxrnn.lstm), (nn.GRUCell, jaxrnn.gru)],
)
def test_linen_module_equals_linen_rnn_on_converted_weights(make_flax, make_cell):
    reference = nn.RNN(make_flax(H))
    xs = inputs()
    ref_vars = reference.init(jax.random.key(0), xs)
    ours = jaxrnn.linen.RNN(make_cell(H))
    params = jaxrnn.interop.from_flax(make_cell(H), ref_vars["params"]["cell"])
    variables = {"params": {"layer": params}}
    np.testing.assert_allclose(ours.apply(variables, xs), reference.apply(ref_vars, xs), atol=1e-5)

    def loss(apply, variables, xs):
        return jnp.sum(jnp.sin(apply(variables, xs)))

    d_ours = jax.grad(loss, argnums=(1, 2))(ours.apply, variables, xs)
    d_ref = jax.grad(loss, argnums=(1, 2))(reference.apply, ref_vars, xs)
    np.testing.assert_allclose(d_ours[1], d_ref[1], atol=1e-5)
    converted = jaxrnn.interop.from_flax(make_cell(H), d_ref[0]["params"]["cell"])
    for name in ("w_ih", "w_hh"):
        np.testing.assert_allclose(d_ours[0]["params"]["layer"][name], converted[name], atol=1e-5)


# --- the module is the layer -----------------------------------------------------------------


def test_nnx_modules_run_the_jaxrnn_layer_with_every_option():
    xs, lengths = inputs(), jnp.array([T, 4, 0])
    mask = jax.random.bernoulli(jax.random.key(5), 0.7, (B, T))
    resets = jnp.zeros((B, T), bool).at[:, 3].set(True)
    cases = [
        (
            jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=F, rngs=nnx.Rngs(0), reverse=True),
            jaxrnn.rnn(jaxrnn.lstm(H), reverse=True),
        ),
        (
            jaxrnn.nnx.RNN(
                jaxrnn.mingru(H),
                in_features=F,
                rngs=nnx.Rngs(0),
                strategy=jaxrnn.Strategy(mode="parallel"),
            ),
            jaxrnn.rnn(jaxrnn.mingru(H)),
        ),
        (
            jaxrnn.nnx.RNN(
                jaxrnn.gru(H), in_features=F, rngs=nnx.Rngs(0), strategy=jaxrnn.Strategy(remat=2)
            ),
            jaxrnn.rnn(jaxrnn.gru(H)),
        ),
        (
            jaxrnn.nnx.Stacked([jaxrnn.lstm(H), jaxrnn.gru(3)], in_features=F, rngs=nnx.Rngs(0)),
            jaxrnn.stacked([jaxrnn.lstm(H), jaxrnn.gru(3)]),
        ),
        (
            jaxrnn.nnx.Bidirectional(jaxrnn.gru(H), in_features=F, rngs=nnx.Rngs(0)),
            jaxrnn.bidirectional(jaxrnn.gru(H)),
        ),
    ]
    for module, layer in cases:
        params = module.get_params()
        chex.assert_trees_all_equal_shapes(params, layer.init(jax.random.key(0), F))
        for kwargs in (
            {},
            {"seq_lengths": lengths, "mask": mask, "resets": resets, "reverse": True},
        ):
            expected = layer.apply(params, xs, **kwargs)
            got = module(xs, return_carry=True, **kwargs)
            chex.assert_trees_all_close(got, expected, atol=1e-6)


def test_linen_modules_run_the_jaxrnn_layer():
    xs, lengths = inputs(), jnp.array([T, 4, 0])
    cases = [
        (jaxrnn.linen.RNN(jaxrnn.gru(H), reverse=True), jaxrnn.rnn(jaxrnn.gru(H), reverse=True)),
        (
            jaxrnn.linen.Stacked((jaxrnn.lstm(H), jaxrnn.gru(3))),
            jaxrnn.stacked([jaxrnn.lstm(H), jaxrnn.gru(3)]),
        ),
        (
            jaxrnn.linen.Bidirectional(jaxrnn.lstm(H), merge="sum"),
            jaxrnn.bidirectional(jaxrnn.lstm(H), merge="sum"),
        ),
    ]
    for module, layer in cases:
        variables = module.init(jax.random.key(0), xs)
        params = variables["params"]["layer"]
        chex.assert_trees_all_equal_shapes(params, layer.init(jax.random.key(0), F))
        got = module.apply(variables, xs, seq_lengths=lengths, return_carry=True)
        chex.assert_trees_all_close(got, layer.apply(params, xs, seq_lengths=lengths), atol=1e-6)
        jitted = jax.jit(lambda v, xs, m=module: m.apply(v, xs, seq_lengths=lengths))
        np.testing.assert_allclose(jitted(variables, xs), got[1], atol=1e-6)


def test_nnx_module_with_several_batch_axes_and_an_initial_carry():
    module = jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=F, rngs=nnx.Rngs(0))
    xs = inputs(shape=(2, B, T, F))
    carry0 = jax.tree.map(lambda c: c + 0.3, module.initial_carry((2, B)))
    carry, ys = module(xs, initial_carry=carry0, return_carry=True)
    flat_carry, flat = module(
        xs.reshape(2 * B, T, F),
        initial_carry=jax.tree.map(lambda c: c.reshape(2 * B, H), carry0),
        return_carry=True,
    )
    np.testing.assert_allclose(ys, flat.reshape(2, B, T, H), atol=1e-6)
    np.testing.assert_allclose(carry.c, flat_carry.c.reshape(2, B, H), atol=1e-6)


def test_a_sequence_fed_in_pieces_equals_one_call():
    # Streaming: carry out of one piece, carry into the next.
    module = jaxrnn.nnx.Stacked(
        [jaxrnn.lstm(H), jaxrnn.gru(3)], in_features=F, rngs=nnx.Rngs(0), return_carry=True
    )
    xs = inputs(shape=(B, 12, F))
    whole_carry, whole = module(xs)
    carry, pieces = None, []
    for start, stop in ((0, 5), (5, 6), (6, 12)):
        carry, ys = module(xs[:, start:stop], initial_carry=carry)
        pieces.append(ys)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, atol=1e-6)
    chex.assert_trees_all_close(carry, whole_carry, atol=1e-6)


# --- dropout ---------------------------------------------------------------------------------


def test_nnx_dropout_follows_train_eval_and_the_rngs():
    def build(seed):
        return jaxrnn.nnx.Stacked(
            [jaxrnn.lstm(H), jaxrnn.lstm(H)],
            in_features=F,
            dropout=0.3,
            recurrent_dropout=0.2,
            rngs=nnx.Rngs(params=0, dropout=seed),
        )

    xs = inputs()
    model = build(seed=1)
    plain = model.layer.apply(model.get_params(), xs)[1]
    first, second = model(xs), model(xs)
    assert not np.allclose(first, plain)
    assert not np.allclose(first, second)  # the stream moves on between calls
    np.testing.assert_array_equal(build(seed=1)(xs), first)  # the same seed, the same masks
    assert not np.allclose(build(seed=2)(xs), first)
    # The module's draw is exactly the layer's with the key the stream gives.
    key = nnx.Rngs(params=0, dropout=1)["dropout"].fork()()
    np.testing.assert_allclose(first, model.layer.apply(model.get_params(), xs, dropout_key=key)[1])
    model.eval()
    np.testing.assert_array_equal(model(xs), plain)
    np.testing.assert_array_equal(model(xs, deterministic=False) == plain, False)
    model.train()
    assert not np.allclose(model(xs), plain)
    np.testing.assert_array_equal(model(xs, deterministic=True), plain)


def test_nnx_module_without_dropout_needs_no_rngs_stream():
    model = jaxrnn.nnx.RNN(jaxrnn.gru(H), in_features=F, rngs=nnx.Rngs(0))
    assert model.rngs is None
    np.testing.assert_array_equal(model(inputs()), model(inputs()))


def test_linen_dropout_uses_the_dropout_collection():
    model = jaxrnn.linen.Stacked((jaxrnn.lstm(H), jaxrnn.lstm(H)), dropout=0.3)
    xs = inputs()
    variables = model.init(jax.random.key(0), xs, deterministic=True)
    plain = model.apply(variables, xs, deterministic=True)
    a = model.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})
    b = model.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain)
    with pytest.raises(ValueError, match="deterministic"):
        model.apply(variables, xs)  # dropout and no word on it: as nn.Dropout


# --- NNX training, transforms, checkpoints ---------------------------------------------------


class Classifier(nnx.Module):
    """Embedding -> jaxrnn.nnx.Stacked of LSTMs -> the last valid output -> a linear head."""

    def __init__(self, vocab, *, rngs):
        self.embed = nnx.Embed(vocab, 8, rngs=rngs)
        self.rnn = jaxrnn.nnx.Stacked(
            [jaxrnn.lstm(16), jaxrnn.lstm(16)], in_features=8, dropout=0.1, rngs=rngs
        )
        self.head = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, ids, lengths):
        ys = self.rnn(self.embed(ids), seq_lengths=lengths)
        return self.head(jaxrnn.pool(ys, lengths))


def toy_batch(seed, b=32, t=10, vocab=6):
    """Label: whether token 1 occurs within the valid prefix."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab, (b, t))
    lengths = rng.integers(3, t + 1, b)
    has = rng.random(b) < 0.5
    where = (rng.random(b) * lengths).astype(int)
    ids[has, where[has]] = 1
    return jnp.asarray(ids), jnp.asarray(lengths), jnp.asarray(has.astype(np.int32))


@pytest.mark.allow_promotion  # optax's Adam
def test_an_nnx_model_trains_with_nnx_optimizer_and_optax():
    model = Classifier(6, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, ids, lengths, labels):
        def loss_fn(model):
            logits = model(ids, lengths)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, *toy_batch(step))) for step in range(150)]
    model.eval()
    ids, lengths, labels = toy_batch(10_000, b=256)
    accuracy = float(jnp.mean(jnp.argmax(model(ids, lengths), -1) == labels))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses[::10]
    assert accuracy > 0.9, accuracy


def test_nnx_split_merge_and_jit():
    model = Classifier(6, rngs=nnx.Rngs(0))
    model.eval()
    ids, lengths, _ = toy_batch(0)
    graphdef, state = nnx.split(model)
    again = nnx.merge(graphdef, state)
    np.testing.assert_array_equal(again(ids, lengths), model(ids, lengths))
    jitted = nnx.jit(lambda m, ids, lengths: m(ids, lengths))
    np.testing.assert_allclose(jitted(model, ids, lengths), model(ids, lengths), atol=1e-6)
    params = nnx.state(model, nnx.Param)
    paths = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(params)}
    assert "rnn/params/0/w_ih" in paths and "rnn/params/1/w_hh" in paths, sorted(paths)


def test_nnx_state_through_orbax_into_a_fresh_module(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    model = Classifier(6, rngs=nnx.Rngs(0))
    model.eval()
    ids, lengths, _ = toy_batch(0)
    _, state = nnx.split(model)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "state", state)
    checkpointer.wait_until_finished()
    fresh = Classifier(6, rngs=nnx.Rngs(99))
    fresh.eval()
    assert not np.allclose(fresh(ids, lengths), model(ids, lengths))
    _, abstract = nnx.split(nnx.eval_shape(lambda: Classifier(6, rngs=nnx.Rngs(0))))
    restored = checkpointer.restore(tmp_path / "state", abstract)
    nnx.update(fresh, restored)
    np.testing.assert_array_equal(fresh(ids, lengths), model(ids, lengths))


def test_a_jaxrnn_checkpoint_loads_into_the_module(tmp_path):
    from jaxrnn import train

    layer = jaxrnn.stacked([jaxrnn.lstm(H), jaxrnn.lstm(H)])
    params = {"encoder": layer.init(jax.random.key(3), F), "w": jnp.ones((H, 1))}
    checkpoints = train.Checkpointer(tmp_path / "checkpoints")
    checkpoints.save(train.init_state(params, train.default_optimizer()), meta={})
    restored = checkpoints.restore_params(params, "latest")
    checkpoints.close()
    module = jaxrnn.nnx.Stacked([jaxrnn.lstm(H), jaxrnn.lstm(H)], in_features=F, rngs=nnx.Rngs(0))
    module.set_params(restored["encoder"])
    xs = inputs()
    np.testing.assert_array_equal(module(xs), layer.apply(params["encoder"], xs)[1])
    with pytest.raises(
        ValueError, match=r"params must be a pytree of arrays matching .*in_features=4"
    ):
        module.set_params(restored["encoder"][:1])
    with pytest.raises(ValueError, match=r"matching .*\(4, 20\) float32.*got .*\(5, 20\)"):
        module.set_params(jaxrnn.stacked([jaxrnn.lstm(H)] * 2).init(jax.random.key(0), H))


def test_nnx_module_refuses_bad_arguments():
    with pytest.raises(TypeError, match=r"rngs must be a flax.nnx.Rngs"):
        jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=F, rngs=0)
    with pytest.raises(TypeError, match="return_carry must be True or False"):
        jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=F, rngs=nnx.Rngs(0), return_carry=1)
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\)"):
        jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=F, rngs=nnx.Rngs(0), recurrent_dropout=1.0)
    module = jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=F, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"xs must be an array of shape .*input_size=4"):
        module(inputs(shape=(B, T, F + 1)))


# --- Equinox ---------------------------------------------------------------------------------


@pytest.mark.allow_promotion  # optax's Adam
def test_equinox_holds_jaxrnn_params_as_they_are():
    eqx = pytest.importorskip("equinox", reason="equinox is not installed")

    # The pattern (docs/guide.md): jaxrnn params are a pytree of arrays, which is what an
    # eqx.Module field holds; the layer (pure functions) is a static field.
    class Encoder(eqx.Module):
        params: dict
        layer: jaxrnn.Layer = eqx.field(static=True)

        def __call__(self, xs, seq_lengths=None):
            return self.layer.apply(self.params, xs, seq_lengths=seq_lengths)[1]

    layer = jaxrnn.rnn(jaxrnn.lstm(H))
    model = Encoder(layer.init(jax.random.key(0), F), layer)
    xs, targets = inputs(), inputs(1, (B, T, H))
    np.testing.assert_array_equal(model(xs), layer.apply(model.params, xs)[1])

    @eqx.filter_jit
    def step(model, opt_state):
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((m(xs) - targets) ** 2))(model)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    grads = eqx.filter_grad(lambda m: jnp.sum(m(xs) ** 2))(model)
    expected = jax.grad(lambda p: jnp.sum(layer.apply(p, xs)[1] ** 2))(model.params)
    chex.assert_trees_all_close(grads.params, expected, atol=1e-6)
    losses = []
    for _ in range(30):
        model, opt_state, loss = step(model, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.9 * losses[0], losses
