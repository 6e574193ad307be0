"""jaxrnn's LSTM params map onto cuDNN's packed weights (issue 30, point 3, the CPU half).

`jax.experimental.rnn.lstm` runs cuDNN and lowers only on an NVIDIA GPU; its reference,
`lstm_ref`, runs anywhere and reads the same packed vector through `unpack_lstm_weights`. So
the conversion is proven here: jaxrnn params -> `to_cudnn` -> unpack -> `lstm_ref` equals
`jaxrnn`'s own stacked and bidirectional LSTM, in values and gradients, with lengths.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.cells.lstm import to_cudnn

rnn_reference = pytest.importorskip("jax.experimental.rnn")

B, T, IN, H = 3, 6, 5, 4
XS = jax.random.normal(jax.random.key(1), (B, T, IN))
LENGTHS = jnp.array([6, 4, 1], jnp.int32)


def through_cudnn_layout(layers, xs, lengths, bidirectional):
    """``lstm_ref`` on the packed weights: outputs (b, t, h * directions)."""
    directions = 2 if bidirectional else 1
    weights = to_cudnn(layers)
    w_ih, w_hh, b_ih, b_hh = rnn_reference.unpack_lstm_weights(
        weights, IN, H, len(layers), bidirectional
    )
    zeros = jnp.zeros((len(layers) * directions, B, H))
    ys, _, _ = rnn_reference.lstm_ref(
        xs, zeros, zeros, w_ih, w_hh, b_ih, b_hh, lengths, IN, H, len(layers), 0.0, bidirectional
    )
    return ys


def valid(ys, lengths):
    return jnp.where((jnp.arange(T)[None, :] < lengths[:, None])[..., None], ys, 0.0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_jaxrnn_params_run_the_same_through_cudnns_layout(bidirectional, num_layers):
    make = (lambda: jaxrnn.bidirectional(jaxrnn.lstm(H))) if bidirectional else None
    layer = jaxrnn.stacked(
        [make() if make else jaxrnn.lstm(H, forget_bias=0.5) for _ in range(num_layers)]
    )
    params = layer.init(jax.random.key(0), input_size=IN)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias everywhere

    def ours(params):
        return valid(jaxrnn.many_to_many(layer, params, XS, seq_lengths=LENGTHS), LENGTHS)

    def theirs(params):
        return valid(through_cudnn_layout(list(params), XS, LENGTHS, bidirectional), LENGTHS)

    np.testing.assert_allclose(theirs(params), ours(params), rtol=1e-5, atol=1e-6)
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
    got, want = jax.grad(loss(theirs))(params), jax.grad(loss(ours))(params)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_the_packed_size_is_cudnns():
    params = jaxrnn.bidirectional(jaxrnn.lstm(H)).init(jax.random.key(0), input_size=IN)
    layers = [params, jaxrnn.bidirectional(jaxrnn.lstm(H)).init(jax.random.key(1), 2 * H)]
    size = rnn_reference.get_num_params_in_lstm(IN, H, 2, True)
    assert to_cudnn(layers).shape == (size,)


def test_what_cudnn_cannot_hold_is_named():
    projected = jaxrnn.lstm(H, proj_size=2).init(jax.random.key(0), input_size=IN)
    with pytest.raises(TypeError, match=r"layers\[0\] must be LSTM params without a projection"):
        to_cudnn([projected])
    one = jaxrnn.lstm(H).init(jax.random.key(0), input_size=IN)
    two = jaxrnn.bidirectional(jaxrnn.lstm(H)).init(jax.random.key(0), input_size=H)
    with pytest.raises(TypeError, match="all bidirectional or all one-directional"):
        to_cudnn([one, two])
