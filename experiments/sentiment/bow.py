"""The bag-of-words models: logistic regression on binary n-gram features, plain or scaled by
naive-Bayes log-count ratios (NBSVM, Wang & Manning 2012, with a logistic loss).

Fitted with L-BFGS on the training split only (its n-gram vocabulary and ratios too), so they
can be run on exactly the same splits as the RNN.
"""

import collections
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

WEIGHTINGS = ("binary", "nb")


def ngrams(tokens: Sequence[str], order: int = 2) -> set[str]:
    """The distinct n-grams of a token list, n = 1 .. ``order``.

    Example:
      >>> from experiments.sentiment.bow import ngrams
      >>> sorted(ngrams(["not", "good"]))
      ['good', 'not', 'not good']
      >>> sorted(ngrams(["not", "very", "good"], order=3))[:3]
      ['good', 'not', 'not very']
    """
    grams = set(tokens)
    for n in range(2, order + 1):
        grams |= {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
    return grams


def nb_ratios(positive: np.ndarray, negative: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Naive-Bayes log-count ratios ``log(p / |p|_1) - log(q / |q|_1)``, with
    ``p = alpha + positive`` and ``q = alpha + negative``.

    Args:
      positive: ``(f,)`` number of positive training documents holding each feature.
      negative: ``(f,)`` the same for negative documents.
      alpha: smoothing count added to every feature.

    Returns:
      ``(f,)`` float64 ratios: positive for features more frequent in positive documents.

    Example:
      >>> import numpy as np
      >>> from experiments.sentiment.bow import nb_ratios
      >>> nb_ratios(np.array([2, 1]), np.array([0, 1])).round(3).tolist()
      [0.588, -0.511]
    """
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if positive.shape != negative.shape:
        raise ValueError(f"count shapes differ: {positive.shape} and {negative.shape}")
    p, q = alpha + positive, alpha + negative
    return np.log(p / p.sum()) - np.log(q / q.sum())


class BagOfWords:
    """Logistic regression over the n-grams (n = 1 .. ``order``) seen in training.

    ``weighting="binary"``: each present n-gram is a feature of value 1. ``"nb"``: its value
    is its naive-Bayes log-count ratio (`nb_ratios`, from the training split), which scales
    the L2 prior of each weight by how one-sided the n-gram is; this is what lifts NBSVM
    above plain logistic regression on short reviews.

    Example:
      >>> import numpy as np
      >>> from experiments.sentiment.bow import BagOfWords
      >>> model = BagOfWords(l2=1e-3).fit([["good"], ["bad"]] * 10, np.array([1, 0] * 10))
      >>> model.predict_proba([["good"], ["bad"], ["unseen"]]).round(1).tolist()
      [1.0, 0.0, 0.5]
      >>> nb = BagOfWords(l2=1e-3, weighting="nb").fit([["good"], ["bad"]] * 10, [1, 0] * 10)
      >>> (nb.predict_proba([["good"], ["bad"]]) > 0.5).tolist()
      [True, False]
    """

    def __init__(self, l2: float = 3e-5, steps: int = 200, weighting: str = "binary", order=2):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        self.l2, self.steps, self.weighting, self.order = l2, steps, weighting, order
        self.features: dict[str, int] = {}
        self.values = None  # (f + 1,) value of each feature when present; id 0 is padding
        self.params = None

    def _encode(self, documents: Sequence[Sequence[str]]) -> jnp.ndarray:
        rows = [
            [self.features[g] for g in ngrams(doc, self.order) if g in self.features]
            for doc in documents
        ]
        width = max(1, max(map(len, rows), default=1))
        ids = np.zeros((len(rows), width), np.int32)  # id 0 is a padding feature of weight 0
        for r, row in enumerate(rows):
            ids[r, : len(row)] = sorted(row)
        return jnp.asarray(ids)

    def fit(self, documents: Sequence[Sequence[str]], labels: np.ndarray) -> "BagOfWords":
        labels = np.asarray(labels)
        if len(labels) != len(documents):
            raise ValueError(f"{len(documents)} documents but {len(labels)} labels")
        counts = collections.Counter(g for doc in documents for g in ngrams(doc, self.order))
        self.features = {g: i + 1 for i, g in enumerate(sorted(counts))}
        ids, y = self._encode(documents), jnp.asarray(labels, jnp.float32)
        values = np.ones(len(self.features) + 1)
        if self.weighting == "nb":
            counts = np.zeros((2, len(self.features) + 1))
            np.add.at(counts, (np.asarray(labels == 1, int)[:, None], np.asarray(ids)), 1.0)
            values[1:] = nb_ratios(counts[1, 1:], counts[0, 1:])  # id 0 pads the rows
        values[0] = 0.0
        self.values = jnp.asarray(values, jnp.float32)
        params = {"w": jnp.zeros(len(self.features) + 1), "b": jnp.zeros(())}
        l2, x = self.l2, self.values[ids]

        def loss(p):
            logit = (p["w"][ids] * x).sum(axis=1) + p["b"]
            return optax.sigmoid_binary_cross_entropy(logit, y).mean() + 0.5 * l2 * jnp.sum(
                p["w"] ** 2
            )

        solver = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)

        @jax.jit
        def step(p, state):
            value, grad = value_and_grad(p, state=state)
            updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=loss)
            return optax.apply_updates(p, updates), state

        state = solver.init(params)
        for _ in range(self.steps):
            params, state = step(params, state)
        self.params = params
        return self

    def predict_proba(self, documents: Sequence[Sequence[str]]) -> np.ndarray:
        """Probability of the positive class, ``(n,)``."""
        ids = self._encode(documents)
        logit = (self.params["w"][ids] * self.values[ids]).sum(axis=1) + self.params["b"]
        return np.asarray(jax.nn.sigmoid(logit))


def save(model: BagOfWords, directory: str) -> None:
    """Writes the n-gram list and settings (JSON) and the weights and feature values (.npy,
    no pickle) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    names = sorted(model.features, key=model.features.get)
    with open(os.path.join(directory, "features.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"l2": model.l2, "weighting": model.weighting, "order": model.order, "features": names},
            f,
            ensure_ascii=False,
        )
    weights = np.concatenate([np.asarray(model.params["w"]), np.asarray(model.params["b"])[None]])
    np.save(os.path.join(directory, "weights.npy"), weights, allow_pickle=False)
    np.save(os.path.join(directory, "values.npy"), np.asarray(model.values), allow_pickle=False)


def _read_array(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: damaged or not a saved array ({error})") from None


def load(directory: str) -> BagOfWords:
    """Reads a model written by `save` (one written before feature values were saved has
    binary features)."""
    with open(os.path.join(directory, "features.json"), encoding="utf-8") as f:
        payload = json.load(f)
    weights = _read_array(os.path.join(directory, "weights.npy"))
    model = BagOfWords(
        l2=payload["l2"],
        weighting=payload.get("weighting", "binary"),
        order=payload.get("order", 2),
    )
    model.features = {g: i + 1 for i, g in enumerate(payload["features"])}
    if len(weights) != len(model.features) + 2:
        raise ValueError(f"{directory}: {len(weights)} weights for {len(model.features)} features")
    values_path = os.path.join(directory, "values.npy")
    if os.path.exists(values_path):
        values = _read_array(values_path)
    else:
        values = np.ones(len(model.features) + 1, np.float32)
        values[0] = 0.0
    if len(values) != len(model.features) + 1:
        raise ValueError(
            f"{values_path}: {len(values)} feature values for {len(model.features)} features"
        )
    model.values = jnp.asarray(values)
    model.params = {"w": jnp.asarray(weights[:-1]), "b": jnp.asarray(weights[-1])}
    return model
