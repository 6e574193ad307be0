"""Every public path compiles for GPU and TPU, proven on a CPU-only install.

`jax.export` lowers a function for platforms it cannot run on. Each case here is exported for
``cuda`` and ``tpu`` inside `jaxrnn.portable`, the path jaxrnn has for artifacts that leave
Python: host callbacks (run-time checks of lengths, token ids and logits) cannot be lowered for
another platform, so `portable` traces without them. One test shows that without it the
callback is what stops the lowering, and names it.
"""

import jax
import jax.numpy as jnp
import optax
import pytest
from jax import export

import jaxrnn
from jaxrnn import decode
from jaxrnn import train
from jaxrnn.portable import portable

pytestmark = pytest.mark.allow_promotion  # optax is not written for strict dtype promotion

PLATFORMS = ("cuda", "tpu")
KEY = jax.random.key(0)
B, T, IN, H, V = 2, 7, 3, 4, 11
LENGTHS = jnp.array([7, 4])
XS = jnp.linspace(-1.0, 1.0, B * T * IN).reshape(B, T, IN)


def lowers(function, *args):
    """Exports ``function(*args)`` for every platform; returns the exported modules."""
    with portable():
        return [export.export(jax.jit(function), platforms=(p,))(*args) for p in PLATFORMS]


def output_and_grad(apply, params, *args):
    """``apply``'s output and the gradient of its sum with respect to ``params``."""

    def both(params, *args):
        return apply(params, *args), jax.grad(lambda p: jnp.sum(apply(p, *args)))(params)

    return both, (params, *args)


CELLS = {
    "elman": (jaxrnn.elman(H), IN),
    "lstm": (jaxrnn.lstm(H), IN),
    "gru": (jaxrnn.gru(H), IN),
    "mgu": (jaxrnn.mgu(H), IN),
    "mingru": (jaxrnn.mingru(H), IN),
    "minlstm": (jaxrnn.minlstm(H), IN),
    "lru": (jaxrnn.lru(H), IN),
    "rg_lru": (jaxrnn.rg_lru(H), H),  # gates its input elementwise: input_size = hidden
}
LINEAR = ("mingru", "minlstm", "lru", "rg_lru")
STRATEGIES = {
    "sequential": jaxrnn.Strategy(),
    "unfused": jaxrnn.Strategy(fused=False),
    "remat": jaxrnn.Strategy(remat=4),
    "unrolled": jaxrnn.Strategy(unroll=2),
    "parallel": jaxrnn.Strategy(mode="parallel"),
}
UNROLL_CASES = [
    (cell, strategy)
    for cell in CELLS
    for strategy in STRATEGIES
    if strategy != "parallel" or cell in LINEAR
]


@pytest.mark.parametrize(("cell_name", "strategy"), UNROLL_CASES)
def test_unroll_and_its_gradient_lower_for_gpu_and_tpu(cell_name, strategy):
    cell, inputs = CELLS[cell_name]
    params = cell.init(KEY, input_size=inputs)
    xs = jnp.ones((B, T, inputs))
    resets = jnp.zeros((B, T), bool).at[0, 3].set(True)

    def apply(params, xs, lengths, resets):
        kwargs = {"strategy": STRATEGIES[strategy], "seq_lengths": lengths}
        if strategy != "parallel" or cell_name != "rg_lru":
            kwargs["resets"] = resets  # packed documents
        return jaxrnn.unroll(cell, params, xs, **kwargs)[1]

    function, args = output_and_grad(apply, params, xs, LENGTHS, resets)
    assert len(lowers(function, *args)) == len(PLATFORMS)


MIXED = {
    "lstm fused": (jaxrnn.lstm(H, compute_dtype=jnp.bfloat16), jaxrnn.Strategy()),
    "gru unfused": (jaxrnn.gru(H, compute_dtype=jnp.bfloat16), jaxrnn.Strategy(fused=False)),
    "mingru parallel": (
        jaxrnn.mingru(H, compute_dtype=jnp.bfloat16),
        jaxrnn.Strategy(mode="parallel"),
    ),
}


@pytest.mark.parametrize("case", sorted(MIXED))
def test_mixed_precision_lowers_for_gpu_and_tpu(case):
    cell, strategy = MIXED[case]
    params = cell.init(KEY, input_size=IN)

    def apply(params, xs, lengths):
        ys = jaxrnn.unroll(cell, params, xs, seq_lengths=lengths, strategy=strategy)[1]
        return ys.astype(jnp.float32)

    function, args = output_and_grad(apply, params, XS, LENGTHS)
    for exported in lowers(function, *args):
        assert "bf16" in exported.mlir_module()  # the products really are bfloat16


def test_masks_reverse_and_several_batch_axes_lower():
    cell = jaxrnn.gru(H)
    params = cell.init(KEY, input_size=IN)
    mask = jnp.ones((B, T), bool).at[1, 5:].set(False)

    def apply(params, xs, mask):
        ys = jaxrnn.unroll(cell, params, xs, mask=mask, reverse=True)[1]
        deep = jaxrnn.unroll(cell, params, jnp.stack([xs, xs]))[1]
        return jnp.sum(ys) + jnp.sum(deep)

    function, args = output_and_grad(apply, params, XS, mask)
    lowers(function, *args)


def test_layers_and_heads_lower():
    layer = jaxrnn.stacked([jaxrnn.bidirectional(jaxrnn.lstm(H)), jaxrnn.rnn(jaxrnn.gru(H))])
    params = layer.init(KEY, input_size=IN)

    def apply(params, xs, lengths):
        last = jaxrnn.many_to_one(layer, params, xs, seq_lengths=lengths)
        mean = jaxrnn.many_to_one(layer, params, xs, seq_lengths=lengths, method="mean")
        every = jaxrnn.many_to_many(layer, params, xs, seq_lengths=lengths)
        return jnp.sum(last) + jnp.sum(mean) + jnp.sum(every)

    function, args = output_and_grad(apply, params, XS, LENGTHS)
    lowers(function, *args)


def language_model():
    cell = jaxrnn.lstm(H)
    params = {
        "embed": jax.random.normal(KEY, (V, IN)),
        "rnn": cell.init(KEY, input_size=IN),
        "out": jax.random.normal(KEY, (H, V)),
    }

    def step_fn(params, carry, tokens):
        carry, h = cell.step(params["rnn"], carry, params["embed"][tokens])
        return carry, h @ params["out"]

    return cell, params, step_fn


def test_sampling_and_beam_search_lower():
    cell, params, step_fn = language_model()

    def sample(params, key, first):
        carry = cell.initial_carry(params["rnn"], (B,))
        step = lambda carry, tokens: step_fn(params, carry, tokens)
        return decode.generate(step, carry, first, length=5, key=key, temperature=0.8, top_k=3)

    def beams(params, first):
        carry = cell.initial_carry(params["rnn"], (B * 3,))
        step = lambda carry, tokens: step_fn(params, carry, tokens)
        return decode.beam_search(step, carry, first, beam_size=3, max_length=5, eos_id=1)

    first = jnp.array([2, 3])
    lowers(sample, params, KEY, first)
    lowers(beams, params, first)


def test_a_training_step_of_fit_lowers():
    cell = jaxrnn.lstm(H)
    params = {"rnn": cell.init(KEY, input_size=IN), "head": jnp.ones((H, 1))}

    def loss_fn(params, batch, key):
        xs, ys = batch
        last = jaxrnn.many_to_one(cell, params["rnn"], xs)
        last = jaxrnn.dropout_apply(key, last, 0.1)
        return jnp.mean((last @ params["head"] - ys) ** 2)

    optimizer = optax.adam(1e-3)
    step = train.make_train_step(loss_fn, optimizer)
    state = train.init_state(params, optimizer)
    lowers(step, state, (XS, jnp.ones((B, 1))))


@pytest.mark.parametrize("module", ["RNN", "Stacked", "Bidirectional"])
def test_the_nnx_modules_lower(module):
    from flax import nnx

    make = {
        "RNN": lambda rngs: jaxrnn.nnx.RNN(jaxrnn.lstm(H), in_features=IN, rngs=rngs),
        "Stacked": lambda rngs: jaxrnn.nnx.Stacked(
            [jaxrnn.gru(H), jaxrnn.lstm(H)], in_features=IN, rngs=rngs, dropout=0.1
        ),
        "Bidirectional": lambda rngs: jaxrnn.nnx.Bidirectional(
            jaxrnn.lstm(H), jaxrnn.gru(H), in_features=IN, rngs=rngs
        ),
    }
    model = make[module](nnx.Rngs(0))
    model.eval()  # serving: no dropout
    graph, state = nnx.split(model)

    def apply(state, xs, lengths):
        return nnx.merge(graph, state)(xs, seq_lengths=lengths)

    lowers(apply, state, XS, LENGTHS)


def test_outside_portable_the_run_time_checks_are_what_stops_the_lowering():
    cell = jaxrnn.gru(H)
    params = cell.init(KEY, input_size=IN)
    apply = lambda params, xs, lengths: jaxrnn.unroll(cell, params, xs, seq_lengths=lengths)[1]
    with pytest.raises(ValueError, match="lowering platform cuda") as caught:
        export.export(jax.jit(apply), platforms=("cuda",))(params, XS, LENGTHS)
    # JAX's message does not say why; the frames do: the lowering of jaxrnn's host callback.
    assert any(entry.name == "debug_callback_lowering" for entry in caught.traceback)
