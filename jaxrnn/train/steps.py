"""Jitted train and eval steps built from a loss function and an optax optimizer."""

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn.checks import check_number
from jaxrnn.typing import Array
from jaxrnn.typing import Carry
from jaxrnn.typing import Params

LossFn = Callable[..., Any]


class TrainState(NamedTuple):
    """Everything a training run needs to continue exactly where it stopped.

    The data position is ``step``: batches are a pure function of the step (see
    `jaxrnn.train.EpochBatches`), and each step's PRNG key is ``fold_in(rng, step)``.
    """

    step: Array  # () int32, number of updates done
    params: Params
    opt_state: Any
    rng: Array  # (2,) uint32 raw key data of the run's base key (serialisable as is)
    carry: Carry  # RNN state carried across steps (truncated BPTT), or () when unused


def default_optimizer(
    learning_rate: float = 1e-3, clip_norm: float = 1.0
) -> optax.GradientTransformation:
    """Adam after clipping the global gradient norm: the default of `jaxrnn.train.fit`.

    Args:
      learning_rate: Adam's step size.
      clip_norm: the largest global gradient norm let through.

    Returns:
      An ``optax.GradientTransformation``.

    Examples:
      >>> from jaxrnn.train import default_optimizer
      >>> import jax.numpy as jnp
      >>> opt = default_optimizer(1e-3)
      >>> state = opt.init({"w": jnp.zeros(2)})
    """
    for name, value in (("learning_rate", learning_rate), ("clip_norm", clip_norm)):
        check_number(name, value, low=0, low_open=True)
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(learning_rate))


def init_state(
    params: Params, optimizer: optax.GradientTransformation, *, seed: int = 0, carry: Carry = ()
) -> TrainState:
    """A `TrainState` at step 0.

    Args:
      params: the model's params.
      optimizer: an optax optimizer.
      seed: seeds the base PRNG key (dropout and any other randomness of the loss).
      carry: an initial RNN carry for truncated BPTT, or ``()``.

    Returns:
      The state.

    Examples:
      >>> from jaxrnn.train import default_optimizer, init_state
      >>> import jax.numpy as jnp
      >>> state = init_state({"w": jnp.zeros(2)}, default_optimizer())
      >>> int(state.step)
      0
    """
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
        carry=carry,
    )


def step_key(state: TrainState) -> Array:
    """The PRNG key of the step ``state.step``: the same on every run and after a resume."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def split_loss_output(output: Any, with_carry: bool):
    """``loss_fn``'s result as ``(loss, metrics, carry)``; a bare loss gets empty metrics.

    The loss and every metric must be scalars (checked while tracing, before any work)."""
    if with_carry:
        if not (isinstance(output, tuple) and len(output) == 3):
            raise TypeError(
                "with a carry, loss_fn(params, batch, key, carry) must return "
                f"(loss, metrics, carry), got {type(output).__name__}"
            )
        loss, metrics, carry = output
    elif isinstance(output, tuple):
        if len(output) != 2:
            raise TypeError(
                f"loss_fn must return loss or (loss, metrics), got a tuple of {len(output)}"
            )
        (loss, metrics), carry = output, None
    else:
        loss, metrics, carry = output, {}, None
    if jnp.shape(loss) != ():
        raise ValueError(f"loss_fn must return a scalar loss, got shape {jnp.shape(loss)}")
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"loss_fn's metrics must be a dict of scalars, got {type(metrics).__name__}"
        )
    for name, value in metrics.items():
        if name in ("loss", "grad_norm"):
            raise ValueError(f"loss_fn's metrics must not be named {name!r}: fit reports it")
        if jnp.shape(value) != ():
            raise ValueError(
                f"loss_fn's metric {name!r} must be a scalar, got shape {jnp.shape(value)}; "
                "reduce it (e.g. with jnp.mean) inside the loss"
            )
    return loss, metrics, carry


def make_train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation, *, with_carry: bool = False
) -> Callable:
    """Builds ``train_step(state, batch) -> (new_state, metrics, finite)``, jitted.

    ``loss_fn(params, batch, key)`` returns a scalar loss or ``(loss, metrics)``; with
    ``with_carry=True`` it is ``loss_fn(params, batch, key, carry) -> (loss, metrics, carry)``
    and the carry is threaded through the steps (truncated BPTT). ``key`` is a fresh PRNG
    key for each step (for dropout). Gradients are ``jax.grad`` of the loss: BPTT.

    ``finite`` is False when the loss, a gradient, an updated param or the optimizer state is
    NaN or infinite; the caller then keeps the old state (`jaxrnn.train.fit` stops with a
    message naming the step).

    Args:
      loss_fn: see above.
      optimizer: an optax optimizer.
      with_carry: whether the loss threads a carry.

    Returns:
      The jitted step. ``metrics`` holds ``loss``, ``grad_norm`` and the loss's own metrics.

    Examples:
      >>> from jaxrnn.train import default_optimizer, init_state, make_train_step
      >>> import jax.numpy as jnp
      >>> loss_fn = lambda params, batch, key: jnp.sum((params["w"] - batch) ** 2)
      >>> opt = default_optimizer(0.1)
      >>> step = make_train_step(loss_fn, opt)
      >>> state, metrics, finite = step(init_state({"w": jnp.zeros(2)}, opt), jnp.ones(2))
      >>> int(state.step), bool(finite)
      (1, True)
    """

    def train_step(state: TrainState, batch: Any):
        key = step_key(state)

        def objective(params):
            args = (params, batch, key) + ((state.carry,) if with_carry else ())
            loss, metrics, carry = split_loss_output(loss_fn(*args), with_carry)
            return loss, (metrics, carry)

        (loss, (metrics, carry)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_state = TrainState(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            rng=state.rng,
            carry=carry if with_carry else state.carry,
        )
        # What a checkpoint may hold is finite: the updated params and optimizer state too,
        # not only what went into the update (optax.sgd(nan) has finite gradients).
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite(new_state[1:3])
        if with_carry:  # truncated BPTT saves the carry with the checkpoint
            finite = finite & all_finite(new_state.carry)
        return new_state, {"loss": loss, "grad_norm": grad_norm, **metrics}, finite

    return jax.jit(train_step)


def all_finite(tree: Any) -> jax.Array:
    """Whether every floating-point leaf of ``tree`` is finite (a boolean scalar; integer
    leaves, such as optimizer step counts, are not checked).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxrnn.train.steps import all_finite
      >>> bool(all_finite({"w": jnp.ones(2), "count": jnp.int32(3)}))
      True
    """
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def make_eval_step(loss_fn: LossFn) -> Callable:
    """Builds ``eval_step(params, batch) -> metrics``, jitted, with ``key=None`` (no dropout).

    Args:
      loss_fn: as for `make_train_step` (without a carry).

    Returns:
      The jitted step; ``metrics`` holds ``loss`` and the loss's own metrics.

    Examples:
      >>> from jaxrnn.train import make_eval_step
      >>> import jax.numpy as jnp
      >>> loss_fn = lambda params, batch, key: jnp.sum(params["w"] * batch)
      >>> float(make_eval_step(loss_fn)({"w": jnp.ones(2)}, jnp.ones(2))["loss"])
      2.0
    """

    def eval_step(params: Params, batch: Any):
        loss, metrics, _ = split_loss_output(loss_fn(params, batch, None), with_carry=False)
        return {"loss": loss, **metrics}

    return jax.jit(eval_step)


def evaluate(eval_step: Callable, params: Params, batches: Iterable[Any]) -> dict[str, float]:
    """Averages ``eval_step``'s metrics over ``batches``, weighting each batch by its size.

    A batch's weight is ``metrics["weight"]`` if the loss reports one (e.g. the number of
    non-padding tokens), else the leading dimension of the batch's first array.

    Args:
      eval_step: from `make_eval_step`.
      params: the params to evaluate.
      batches: an iterable of batches (e.g. a list).

    Returns:
      ``{name: mean value}`` as Python floats.

    Examples:
      >>> from jaxrnn.train import evaluate, make_eval_step
      >>> import jax.numpy as jnp
      >>> step = make_eval_step(lambda p, b, k: jnp.mean(b))
      >>> evaluate(step, {}, [jnp.zeros(3), jnp.ones(1)])
      {'loss': 0.25}
    """
    totals: dict[str, float] = {}
    total_weight = 0.0
    for batch in batches:
        metrics = jax.device_get(eval_step(params, batch))
        weight = float(metrics.pop("weight", np.shape(jax.tree.leaves(batch)[0])[0]))
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + weight * float(value)
        total_weight += weight
    if total_weight == 0:
        raise ValueError("evaluate got no batches (or batches of total weight 0)")
    return {name: value / total_weight for name, value in totals.items()}


def as_float_dict(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Device scalars to Python floats, for logging."""
    return {name: float(value) for name, value in jax.device_get(dict(metrics)).items()}
