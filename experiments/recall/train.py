"""Training the recall models: `run` one model on one number of pairs, `curve` the accuracy of
several models as the number of pairs grows.

Sized for a CPU: a model of width 32-64 learns small tasks in a few hundred updates. Every
run of `curve` for one model has the same shapes, so its update and its scoring compile once
and serve every number of pairs.
"""

import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import optim
from experiments.recall import data
from experiments.recall import model as models

EVAL_SEED = 2**31  # the held-out sequences come from (EVAL_SEED, seed): never a training seed


class Settings(NamedTuple):
    """Sizes and training of a recall run (the defaults fit a CPU notebook)."""

    d_model: int = 64
    """The Transformer's width, which sets every model's parameter budget."""
    seq_len: int = 64
    """Tokens per sequence."""
    num_keys: int = 32
    """Key vocabulary."""
    num_values: int = 32
    """Value vocabulary."""
    batch_size: int = 64
    """Sequences per update."""
    learning_rate: float = 1e-3
    """Peak Adam learning rate (warm-up, then cosine decay)."""
    eval_size: int = 512
    """Held-out sequences the accuracy is measured on."""
    paired: bool = False
    """Each pair at one position (`data.Task`'s ``paired``)."""


DEFAULT = Settings()


class Training(NamedTuple):
    """The compiled update and scoring of one model (shared by all numbers of pairs)."""

    model: models.RecallModel
    train: Callable[[int, Callable[[int], dict]], Any]
    """``train(seed, batches) -> params`` with ``batches(step) -> batch``."""
    accuracy: Callable[[Any, dict], float]
    """``accuracy(params, batch) -> fraction of its queries answered right``."""


def training(name: str, steps: int, settings: Settings = DEFAULT) -> Training:
    """The model ``name`` matched to ``settings.d_model``, and its jitted training."""
    check_count("steps", steps)
    for field in ("d_model", "seq_len", "num_keys", "num_values", "batch_size", "eval_size"):
        check_count(field, getattr(settings, field))
    if not settings.learning_rate > 0:
        raise ValueError(f"learning_rate must be above 0, got {settings.learning_rate}")
    vocab = 1 + settings.num_keys + settings.num_values
    m = models.matched(name, settings.d_model, vocab, seq_len=settings.seq_len)
    opt = optim.optimizer(settings.learning_rate, steps, end_fraction=0.1)

    def loss_fn(params, batch):
        logits = m.apply(params, batch["inputs"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        mask = batch["mask"].astype(losses.dtype)
        return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)

    @jax.jit
    def update(params, opt_state, batch):
        grads = jax.grad(loss_fn)(params, batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def correct(params, batch):
        right = jnp.argmax(m.apply(params, batch["inputs"]), axis=-1) == batch["targets"]
        return jnp.sum(right & batch["mask"]), jnp.sum(batch["mask"])

    def train(seed, batches):
        params = m.init(jax.random.key(seed))
        opt_state = opt.init(params)
        for step in range(steps):
            params, opt_state = update(params, opt_state, batches(step))
        return params

    def accuracy(params, batch):
        right, total = correct(params, batch)
        return float(right) / float(total)

    return Training(m, train, accuracy)


def task_of(num_pairs: int, settings: Settings) -> data.Task:
    return data.Task(
        num_pairs=num_pairs,
        seq_len=settings.seq_len,
        num_keys=settings.num_keys,
        num_values=settings.num_values,
        paired=settings.paired,
    ).check()


def fit_and_score(trained: Training, num_pairs: int, seed: int, settings: Settings) -> float:
    """Trains ``trained.model`` on ``num_pairs`` pairs; its accuracy on held-out sequences."""
    task = task_of(num_pairs, settings)
    batches = lambda step: data.batch(task, settings.batch_size, (seed, step))
    params = trained.train(seed, batches)
    return trained.accuracy(params, data.batch(task, settings.eval_size, (EVAL_SEED, seed)))


def run(
    model_name: str, num_pairs: int, steps: int, seed: int = 0, settings: Settings = DEFAULT
) -> float:
    """Trains ``model_name`` for ``steps`` updates on recall with ``num_pairs`` pairs; returns
    its accuracy at the queries of held-out sequences (chance: ``1 / num_pairs`` for a model
    that guesses among the values it was shown).

    Example:
      >>> from experiments.recall.train import Settings, run
      >>> tiny = Settings(d_model=16, seq_len=12, num_keys=4, num_values=4, eval_size=8)
      >>> 0 <= run("gru", 2, steps=2, settings=tiny) <= 1
      True
    """
    models.check_name(model_name)
    check_count("num_pairs", num_pairs)
    check_seed(seed)
    task_of(num_pairs, settings)  # before compiling anything
    return fit_and_score(training(model_name, steps, settings), num_pairs, seed, settings)


def curve(
    model_names: Sequence[str],
    pair_counts: Sequence[int],
    steps: int,
    seed: int = 0,
    settings: Settings = DEFAULT,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Accuracy against the number of pairs for each model: the data of the Zoology plot.

    Returns:
      ``{"pairs": [K, ...], "accuracy": {model: [accuracy per K]}, "parameters": {model: n},
      "width": {model: w}, "seconds": {model: s}, "chance": [1 / K, ...]}``.

    Example:
      >>> from experiments.recall.train import Settings, curve
      >>> tiny = Settings(d_model=16, seq_len=12, num_keys=4, num_values=4, eval_size=8)
      >>> result = curve(["gru"], [1, 2], steps=2, settings=tiny, log=None)
      >>> result["pairs"], len(result["accuracy"]["gru"])
      ([1, 2], 2)
    """
    if isinstance(model_names, str) or not model_names:
        raise ValueError(f"model_names must be a non-empty list of names, got {model_names!r}")
    for name in model_names:
        models.check_name(name)
    if isinstance(pair_counts, (str, int)) or not pair_counts:
        raise ValueError(f"pair_counts must be a non-empty list of integers, got {pair_counts!r}")
    for k in pair_counts:
        check_count("pair_counts entry", k)
        task_of(k, settings)  # every task checked before the first compilation
    check_seed(seed)
    result: dict[str, Any] = {
        "pairs": list(pair_counts),
        "accuracy": {},
        "parameters": {},
        "width": {},
        "seconds": {},
        "chance": [1 / k for k in pair_counts],
    }
    for name in model_names:
        started = time.perf_counter()
        trained = training(name, steps, settings)
        scores = [fit_and_score(trained, k, seed, settings) for k in pair_counts]
        result["accuracy"][name] = scores
        result["parameters"][name] = models.num_params(trained.model)
        result["width"][name] = trained.model.width
        result["seconds"][name] = round(time.perf_counter() - started, 1)
        if log is not None:
            shown = "  ".join(f"K={k}: {a:.2f}" for k, a in zip(pair_counts, scores, strict=True))
            log(
                f"{name:12s} w={trained.model.width:<4d} "
                f"{result['parameters'][name]:>8,} params  {shown}  "
                f"({result['seconds'][name]:.1f} s)"
            )
    return result


def check_count(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_seed(seed: Any) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)
