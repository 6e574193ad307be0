"""`jaxrnn.Strategy`: made and checked once, passed untouched by every layer, head and module;
the old per-field keywords still work, with a DeprecationWarning, until 0.2."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import Strategy
from jaxrnn import layers

B, T, F, H = 2, 5, 3, 4

# unroll's keyword options, read from its signature: a new one fails this module until every
# layer, head and Flax module passes it on.
UNROLL_OPTIONS = [
    name
    for name, p in inspect.signature(jaxrnn.unroll).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
]
PER_CALL = [name for name in UNROLL_OPTIONS if name != "strategy"]


def test_unroll_options_are_the_per_call_ones_and_one_strategy():
    assert set(UNROLL_OPTIONS) == {
        "initial_carry",
        "seq_lengths",
        "mask",
        "resets",
        "reverse",
        "time_major",
        "strategy",
    }


def per_call_values(cell, params):
    """A value for each per-call option of unroll, time-major, all different from defaults."""
    return dict(
        initial_carry=jax.tree.map(lambda c: c + 0.5, cell.initial_carry(params, (B,))),
        seq_lengths=jnp.array([T, 2]),
        mask=jnp.ones((T, B), bool).at[1, 0].set(False),
        resets=jnp.zeros((T, B), bool).at[3, 1].set(True),
        reverse=True,
        time_major=True,
    )


def modules(strategy):
    """(name, build(cell) -> object with .params and a call(xs, **options)) for every layer,
    head and Flax module; each is given ``strategy`` where it is built."""

    def layer(make):
        def build(cell):
            model = make(cell)
            params = model.init(jax.random.key(0), F)
            return params, lambda xs, **o: model.apply(params, xs, **o)

        return build

    def head(fn):
        def build(cell):
            params = cell.init(jax.random.key(0), F)
            return params, lambda xs, **o: fn(cell, params, xs, strategy=strategy, **o)

        return build

    found = {
        "rnn": layer(lambda c: jaxrnn.rnn(c, strategy=strategy)),
        "stacked": layer(lambda c: jaxrnn.stacked([c], strategy=strategy)),
        "bidirectional": layer(lambda c: jaxrnn.bidirectional(c, c, strategy=strategy)),
        "many_to_many": head(jaxrnn.many_to_many),
        "many_to_one": head(jaxrnn.many_to_one),
    }
    try:
        from flax import nnx
    except ImportError:
        return found

    def nnx_module(make):
        def build(cell):
            module = make(cell)
            return module.get_params(), lambda xs, **o: module(xs, **o)

        return build

    def linen_module(make, time_major):
        def build(cell):
            module = make(cell, time_major)
            xs0 = jnp.zeros((T, B, F) if time_major else (B, T, F))
            variables = module.init(jax.random.key(0), xs0)
            return variables["params"]["layer"], lambda xs, **o: module.apply(variables, xs, **o)

        return build

    rngs = lambda: nnx.Rngs(0)
    found.update(
        {
            "nnx.RNN": lambda time_major: nnx_module(
                lambda c: jaxrnn.nnx.RNN(
                    c, in_features=F, rngs=rngs(), strategy=strategy, time_major=time_major
                )
            ),
            "nnx.Stacked": lambda time_major: nnx_module(
                lambda c: jaxrnn.nnx.Stacked(
                    [c], in_features=F, rngs=rngs(), strategy=strategy, time_major=time_major
                )
            ),
            "nnx.Bidirectional": lambda time_major: nnx_module(
                lambda c: jaxrnn.nnx.Bidirectional(
                    c, c, in_features=F, rngs=rngs(), strategy=strategy, time_major=time_major
                )
            ),
            "linen.RNN": lambda time_major: linen_module(
                lambda c, tm: jaxrnn.linen.RNN(c, strategy=strategy, time_major=tm), time_major
            ),
            "linen.Stacked": lambda time_major: linen_module(
                lambda c, tm: jaxrnn.linen.Stacked((c,), strategy=strategy, time_major=tm),
                time_major,
            ),
            "linen.Bidirectional": lambda time_major: linen_module(
                lambda c, tm: jaxrnn.linen.Bidirectional(c, c, strategy=strategy, time_major=tm),
                time_major,
            ),
        }
    )
    return found


MODULES = sorted(modules(Strategy()))


@pytest.mark.parametrize("name", MODULES)
def test_every_module_passes_every_unroll_option_through(name, monkeypatch):
    cell = jaxrnn.gru(H)
    strategy = Strategy(unroll=2, fused=False)
    seen = []
    real_unroll = jaxrnn.scan.unroll

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_unroll(*args, **kwargs)

    monkeypatch.setattr(layers, "unroll", spy)
    build = modules(strategy)[name]
    module_level = name.startswith(("nnx.", "linen."))
    if module_level:  # time_major is the module's attribute, fixed when it is built
        build = build(True)
    params, call = build(cell)
    carry_params = params[0] if name.endswith("Stacked") or name == "stacked" else params
    if isinstance(carry_params, dict) and "forward" in carry_params:
        carry_params = carry_params["forward"]
    options = per_call_values(cell, carry_params)
    if module_level:
        del options["time_major"]
    if "Stacked" in name or name == "stacked":
        options["initial_carry"] = (options["initial_carry"],)
    if "Bidirectional" in name or name == "bidirectional":
        options["initial_carry"] = jaxrnn.BidirectionalCarry(options["initial_carry"], None)
    built = len(seen)  # a linen module's init runs unroll too
    call(jnp.ones((T, B, F)), **options)
    assert len(seen) > built, f"{name} never called unroll"
    first = seen[built]
    assert first["strategy"] is strategy, f"{name} lost the strategy: {first['strategy']}"
    for option in PER_CALL:
        if option not in options and not (module_level and option == "time_major"):
            continue
        got = first[option]
        want = True if option == "time_major" else options[option]
        if option == "initial_carry" and not isinstance(want, jax.Array):
            want = (
                jax.tree.leaves(want)[0]
                if "Bidirectional" in name or name == "bidirectional"
                else want[0]
            )
        if option == "reverse":
            assert got is True, f"{name} dropped reverse"
            continue
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(g, w, err_msg=f"{name} changed {option}")


def test_a_bad_combination_is_refused_where_the_strategy_is_made_naming_both():
    with pytest.raises(ValueError, match=r"remat must be None with mode='parallel'"):
        Strategy(mode="parallel", remat=4)
    with pytest.raises(ValueError, match=r"time_sharding must be None with mode='sequential'"):
        Strategy(time_sharding=(jaxrnn.time_sharding.time_mesh(), "time"))


def test_a_strategy_a_cell_cannot_run_is_refused_when_the_layer_is_built():
    with pytest.raises(ValueError, match=r"strategy must be mode='sequential' for jaxrnn.lstm"):
        jaxrnn.rnn(jaxrnn.lstm(H), strategy=Strategy(mode="parallel"))
    with pytest.raises(ValueError, match="recurrent_dropout must be 0 with mode='parallel'"):
        jaxrnn.rnn(jaxrnn.mingru(H), recurrent_dropout=0.1, strategy=Strategy(mode="parallel"))


def test_a_layer_given_to_a_head_keeps_its_strategy():
    layer = jaxrnn.rnn(jaxrnn.gru(H))
    params = layer.init(jax.random.key(0), F)
    with pytest.raises(ValueError, match="strategy must be None for a jaxrnn.Layer"):
        jaxrnn.many_to_one(layer, params, jnp.ones((B, T, F)), strategy=Strategy(unroll=2))


def test_strategy_is_hashable_and_a_static_jit_argument():
    cell = jaxrnn.mingru(H)
    params = cell.init(jax.random.key(0), F)
    run = jax.jit(lambda p, xs, s: jaxrnn.unroll(cell, p, xs, strategy=s)[1], static_argnums=2)
    xs = jnp.ones((B, T, F))
    np.testing.assert_allclose(
        run(params, xs, Strategy(mode="parallel")), run(params, xs, Strategy()), rtol=1e-6
    )
    assert hash(Strategy(remat=3)) == hash(Strategy(remat=3))


@pytest.mark.parametrize(
    "call",
    [
        lambda cell, p, xs: jaxrnn.unroll(cell, p, xs, fused=False),
        lambda cell, p, xs: jaxrnn.unroll(cell, p, xs, remat=2, unroll=2),
        lambda cell, p, xs: jaxrnn.rnn(cell, fused=False).apply(p, xs),
    ],
)
def test_the_old_keywords_still_work_with_a_deprecation_warning(call):
    cell = jaxrnn.lstm(H)
    params = cell.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    with pytest.warns(
        DeprecationWarning,
        match=r"will stop working in jaxrnn 0.2; pass strategy=jaxrnn.Strategy\(",
    ):
        old = call(cell, params, xs)
    np.testing.assert_allclose(old[1], jaxrnn.unroll(cell, params, xs)[1], rtol=1e-5, atol=1e-7)


def test_the_old_keywords_of_the_flax_modules_still_work():
    pytest.importorskip("flax")
    from flax import nnx

    with pytest.warns(DeprecationWarning, match="jaxrnn.nnx.RNN"):
        jaxrnn.nnx.RNN(jaxrnn.mingru(H), in_features=F, rngs=nnx.Rngs(0), mode="parallel")
    module = jaxrnn.linen.RNN(jaxrnn.mingru(H), mode="parallel")
    with pytest.warns(DeprecationWarning, match="jaxrnn.linen.RNN"):
        module.init(jax.random.key(0), jnp.ones((B, T, F)))


def test_old_keywords_and_a_strategy_together_are_refused():
    cell = jaxrnn.lstm(H)
    params = cell.init(jax.random.key(0), F)
    with pytest.raises(TypeError, match=r"unroll\(\) got strategy= and the keywords \['fused'\]"):
        jaxrnn.unroll(cell, params, jnp.ones((B, T, F)), strategy=Strategy(), fused=False)
    with pytest.raises(TypeError, match=r"unroll\(\) got an unexpected keyword argument 'speed'"):
        jaxrnn.unroll(cell, params, jnp.ones((B, T, F)), speed=2)


def test_deprecation_warnings_point_at_the_users_line_however_deep():
    # A linen module resolves its deprecated fields inside Flax's init, a jitted function
    # inside JAX's trace: Python shows a DeprecationWarning only at the user's own line.
    cell, xs = jaxrnn.gru(4), jnp.ones((1, 3, 2))
    with pytest.warns(DeprecationWarning) as caught:
        jaxrnn.linen.RNN(cell, fused=False).init(jax.random.key(0), xs)
    params = cell.init(jax.random.key(0), 2)
    with pytest.warns(DeprecationWarning) as traced:
        jax.jit(lambda xs: jaxrnn.unroll(cell, params, xs, fused=False)[1])(xs)
    assert {w.filename for w in [*caught, *traced]} == {__file__}


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"mode": "parallel", "chunk_size": 8}, r"chunk_size must be None with mode='parallel'"),
        ({"chunk_size": 8}, r"chunk_size must be None with mode='sequential'"),
        ({"mode": "chunkwise", "remat": 4}, r"remat must be None with mode='chunkwise'"),
        ({"mode": "chunkwise", "chunk_size": 0}, r"chunk_size must be a positive int, got 0"),
        ({"mode": "chunkwise", "scan_method": "loop"}, r"scan_method must be None with mode="),
        ({"mode": "chunkwise", "cudnn": True}, r"mode must be 'sequential' with cudnn=True"),
    ],
)
def test_chunkwise_options_are_checked_where_the_strategy_is_made(fields, match):
    with pytest.raises(ValueError, match=match):
        Strategy(**fields)


def _family_cell(family):
    try:
        return family.make(8)
    except TypeError:  # a family with more required options (conv_lstm)
        return None


def test_the_cells_named_in_the_mode_errors_are_the_ones_that_run_those_modes():
    from jaxrnn.cells import FAMILIES
    from jaxrnn.strategy import CHUNKWISE_CELLS
    from jaxrnn.strategy import LINEAR_CELLS
    from jaxrnn.strategy import PARALLEL_CELLS

    cells = {name: _family_cell(family) for name, family in FAMILIES.items()}
    parallel = {f"jaxrnn.{n}" for n, c in cells.items() if c is not None and c.linear is not None}
    formed = {f"jaxrnn.{n}" for n, c in cells.items() if c is not None and c.parallel_form}
    assert set(LINEAR_CELLS.split(", ")) == parallel
    assert set(PARALLEL_CELLS.split(", ")) == parallel | formed
    assert set(CHUNKWISE_CELLS.split(", ")) == formed


@pytest.mark.parametrize("mode", ["parallel", "chunkwise"])
def test_a_mode_a_cell_cannot_run_names_the_cells_that_can(mode):
    cell = jaxrnn.gru(4)
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"mode='sequential' for jaxrnn.gru.*jaxrnn.mlstm"):
        jaxrnn.unroll(cell, params, jnp.zeros((1, 3, 2)), strategy=Strategy(mode=mode))
    linear = jaxrnn.mingru(4)
    params = linear.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"mode='sequential' or 'parallel' for jaxrnn.mingru"):
        jaxrnn.unroll(linear, params, jnp.zeros((1, 3, 2)), strategy=Strategy(mode="chunkwise"))
