"""Backpropagation through time made visible: a hand-written Elman BPTT and gradient norms.

jaxrnn trains with ``jax.grad`` through `jaxrnn.unroll`; the functions here show what that
computes. `elman_bptt` is the backward pass of the lecture written out as a reverse-time
`jax.lax.scan` (and a test oracle for ``jax.grad``); `gradient_norms` measures how large
dL/dh_t is at every step, which is how vanishing and exploding gradients show themselves.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import add_bias
from jaxrnn.cells.base import hidden_state
from jaxrnn.cells.base import replace_step
from jaxrnn.cells.base import with_hidden_state
from jaxrnn.scan import unroll
from jaxrnn.typing import Activation
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params


def elman_bptt(
    params: Params,
    xs: Array,
    dys: Array,
    *,
    initial_carry: Array | None = None,
    dcarry: Array | None = None,
    activation: Activation = jnp.tanh,
) -> tuple[Params, Array, Array]:
    r"""Gradients of an Elman RNN by backpropagation through time, written out by hand.

    Forward, for t = 1..T: :math:`a_t = x_t W_{ih} + h_{t-1} W_{hh} + b`,
    :math:`h_t = \mathrm{act}(a_t)`. Backward, for t = T..1, carrying
    :math:`\delta h` (the gradient flowing in from the future):

    $$
    \begin{aligned}
    \bar h_t &= \partial L / \partial y_t + \delta h_{t} \\
    \bar a_t &= \bar h_t \odot \mathrm{act}'(a_t) \\
    \bar W_{hh} \mathrel{+}= h_{t-1}^\top \bar a_t, \quad
    \bar W_{ih} &\mathrel{+}= x_t^\top \bar a_t, \quad \bar b \mathrel{+}= \sum \bar a_t \\
    \bar x_t = \bar a_t W_{ih}^\top, \quad \delta h_{t-1} &= \bar a_t W_{hh}^\top
    \end{aligned}
    $$

    The gradient of step ``t`` needs that of step ``t + 1`` first: this is why BPTT runs
    backwards in time. It returns what ``jax.grad`` through `jaxrnn.unroll` returns.

    Args:
      params: params of ``jaxrnn.elman(h, activation=activation)``.
      xs: inputs ``(b, t, i)``.
      dys: ``dL/dys``, the gradient of the loss with respect to the outputs ``(b, t, h)``.
      initial_carry: ``h_0`` ``(b, h)``; zeros if None.
      dcarry: ``dL/dh_T`` for a loss that also reads the final carry ``(b, h)``; zeros if None.
      activation: the cell's elementwise activation.

    Returns:
      ``(grads, dxs, dh0)``: gradients with respect to params (same structure), to ``xs``
      ``(b, t, i)`` and to ``h_0`` ``(b, h)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.elman(4)
      >>> params = cell.init(jax.random.key(0), input_size=3)
      >>> xs = jnp.ones((2, 5, 3))
      >>> grads, dxs, dh0 = jaxrnn.elman_bptt(params, xs, dys=jnp.ones((2, 5, 4)))
      >>> auto = jax.grad(lambda p: jaxrnn.unroll(cell, p, xs)[1].sum())(params)
      >>> bool(jnp.allclose(grads["w_hh"], auto["w_hh"], atol=1e-5))
      True
    """
    w_ih, w_hh, b = params["w_ih"], params["w_hh"], params["b"]
    xs_t = jnp.swapaxes(xs, 0, 1)  # (t, b, i)
    dys_t = jnp.swapaxes(dys, 0, 1)  # (t, b, h)
    h0 = (
        jnp.zeros(xs.shape[:1] + w_hh.shape[:1], xs.dtype)
        if initial_carry is None
        else (initial_carry)
    )

    # Forward: keep every pre-activation a_t and every h_{t-1}; the backward pass needs both.
    def forward(h_prev, x):
        a = add_bias(x @ w_ih + h_prev @ w_hh, b)
        return activation(a), (a, h_prev)

    h_last, (pre, h_prevs) = jax.lax.scan(forward, h0, xs_t)

    def act_derivative(a):
        return jax.jvp(activation, (a,), (jnp.ones_like(a),))[1]  # elementwise act'(a)

    # Backward, t = T..1: carry dL/dh_t from the future and the accumulated weight gradients.
    def backward(carry, inputs):
        dh_future, dw_ih, dw_hh, db = carry
        x, dy, a, h_prev = inputs
        dh = dy + dh_future
        da = dh * act_derivative(a)
        dw_ih = dw_ih + x.T @ da
        dw_hh = dw_hh + h_prev.T @ da
        db = db + da.sum(axis=0)
        return (da @ w_hh.T, dw_ih, dw_hh, db), da @ w_ih.T

    dh_last = jnp.zeros_like(h_last) if dcarry is None else dcarry
    zeros = (jnp.zeros_like(w_ih), jnp.zeros_like(w_hh), jnp.zeros_like(b))
    (dh0, dw_ih, dw_hh, db), dxs_t = jax.lax.scan(
        backward, (dh_last, *zeros), (xs_t, dys_t, pre, h_prevs), reverse=True
    )
    grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b": db}
    return grads, jnp.swapaxes(dxs_t, 0, 1), dh0


def gradient_norms(
    cell: Cell,
    params: Params,
    xs: Array,
    loss_fn: Callable[[Carry, Array], Array],
    *,
    seq_lengths: Array | None = None,
) -> dict[str, Array]:
    """How much the loss depends on each time step: norms of dL/dh_t, dL/d(carry_t), dL/dx_t.

    ``dL/dh_t`` is the total derivative through everything after step ``t`` (its output and
    all later steps), measured by adding a zero perturbation to the carry inside the scan and
    differentiating with respect to it. If these norms shrink quickly going back in time, the
    early steps receive almost no learning signal: the vanishing gradient of the Elman RNN.
    For an LSTM, ``"carry"`` also counts the memory cell ``c``, the path its gradient takes.

    Args:
      cell: a cell whose output is its hidden state (elman, lstm, gru, ...).
      params: its params.
      xs: inputs ``(b, t, i)``.
      loss_fn: ``loss_fn(final_carry, ys) -> scalar`` with ``ys`` ``(b, t, h)``.
      seq_lengths: ``(b,)`` valid lengths, or None.

    Returns:
      ``{"hidden": (t,), "carry": (t,), "input": (t,)}``: at each step, the norm over batch and
      features of dL/dh_t, of dL/d(all carry leaves)_t, and of dL/dx_t.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrnn
      >>> cell = jaxrnn.elman(8)
      >>> params = cell.init(jax.random.key(0), input_size=2)
      >>> loss = lambda carry, ys: jnp.sum(ys[:, -1] ** 2)
      >>> norms = jaxrnn.gradient_norms(cell, params, jnp.ones((4, 20, 2)), loss)
      >>> norms["hidden"].shape
      (20,)
    """
    carry0 = jax.eval_shape(lambda p: cell.initial_carry(p, xs.shape[:1]), params)
    leaves = jax.tree.leaves(carry0)
    if hidden_state(carry0).shape != (xs.shape[0], cell.hidden_size) or any(
        leaf.shape != (xs.shape[0], cell.hidden_size) for leaf in leaves
    ):
        raise ValueError(
            f"gradient_norms needs a cell whose output is its hidden state; "
            f"{cell!r} has a carry of shapes {jax.tree.map(jnp.shape, carry0)}"
        )
    perturbed = _perturbed_cell(cell, len(leaves))

    def loss_of(perturbation, xs):
        # The perturbation rides along as extra input features of the perturbed cell.
        inputs = jnp.concatenate([xs, perturbation], axis=-1)
        carry, ys = unroll(perturbed, params, inputs, seq_lengths=seq_lengths)
        loss = loss_fn(carry, ys)
        if jnp.shape(loss) != ():
            raise ValueError(
                f"loss_fn(final_carry, ys) must return a scalar, got shape {jnp.shape(loss)}"
            )
        return loss

    zeros = jnp.zeros((*xs.shape[:2], len(leaves) * cell.hidden_size), xs.dtype)
    d_carry, d_inputs = jax.grad(loss_of, argnums=(0, 1))(zeros, xs)
    # Which chunk of the perturbation is h: mark the hidden leaf and find it among the leaves.
    marked = jax.tree.leaves(with_hidden_state(jax.tree.map(lambda _: 0, carry0), 1))
    h_index = marked.index(1)
    d_hidden = jnp.split(d_carry, len(leaves), axis=-1)[h_index]
    norm = lambda g: jnp.sqrt(jnp.sum(g**2, axis=(0, 2)))
    return {"hidden": norm(d_hidden), "carry": norm(d_carry), "input": norm(d_inputs)}


def _perturbed_cell(cell: Cell, num_leaves: int) -> Cell:
    """``cell`` reading ``[x, e]`` and adding ``e`` (one chunk per carry leaf) to its new carry;
    its output is the perturbed hidden state."""
    width = num_leaves * cell.hidden_size

    def step(params, carry, x_and_e):
        x, e = x_and_e[..., :-width], x_and_e[..., -width:]
        carry, _ = cell.step(params, carry, x)
        treedef = jax.tree.structure(carry)
        chunks = jnp.split(e, num_leaves, axis=-1)
        carry = jax.tree.unflatten(
            treedef,
            [
                leaf + chunk.astype(leaf.dtype)  # the input may be in the compute dtype
                for leaf, chunk in zip(jax.tree.leaves(carry), chunks, strict=True)
            ],
        )
        return carry, hidden_state(carry)

    def check_params(params: Any) -> int:
        return cell.check_params(params) + width

    return replace_step(
        cell,
        step,
        project=lambda params, xs: xs,
        check_params=check_params,
        name=f"perturbed_{cell.name}",
    )
