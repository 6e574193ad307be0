"""The bag-of-words baseline: logistic regression on binary unigram + bigram features.

Fitted with L-BFGS on the training split only (its n-gram vocabulary too), so it can be run on
exactly the same splits as the RNN.
"""

import collections
import itertools
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def ngrams(tokens: Sequence[str]) -> set[str]:
    """Unigrams and bigrams of a token list.

    Example:
      >>> from experiments.sentiment.bow import ngrams
      >>> sorted(ngrams(["not", "good"]))
      ['good', 'not', 'not good']
    """
    return set(tokens) | {f"{a} {b}" for a, b in itertools.pairwise(tokens)}


class BagOfWords:
    """Logistic regression over the n-grams seen in training.

    Example:
      >>> import numpy as np
      >>> from experiments.sentiment.bow import BagOfWords
      >>> model = BagOfWords(l2=1e-3).fit([["good"], ["bad"]] * 10, np.array([1, 0] * 10))
      >>> model.predict_proba([["good"], ["bad"], ["unseen"]]).round(1).tolist()
      [1.0, 0.0, 0.5]
    """

    def __init__(self, l2: float = 3e-5, steps: int = 200):
        self.l2, self.steps = l2, steps
        self.features: dict[str, int] = {}
        self.params = None

    def _encode(self, documents: Sequence[Sequence[str]]) -> jnp.ndarray:
        rows = [[self.features[g] for g in ngrams(doc) if g in self.features] for doc in documents]
        width = max(1, max(map(len, rows), default=1))
        ids = np.zeros((len(rows), width), np.int32)  # id 0 is a padding feature of weight 0
        for r, row in enumerate(rows):
            ids[r, : len(row)] = sorted(row)
        return jnp.asarray(ids)

    def fit(self, documents: Sequence[Sequence[str]], labels: np.ndarray) -> "BagOfWords":
        counts = collections.Counter(g for doc in documents for g in ngrams(doc))
        self.features = {g: i + 1 for i, g in enumerate(sorted(counts))}
        ids, y = self._encode(documents), jnp.asarray(labels, jnp.float32)
        params = {"w": jnp.zeros(len(self.features) + 1), "b": jnp.zeros(())}
        l2 = self.l2

        def loss(p):
            logit = p["w"].at[0].set(0.0)[ids].sum(axis=1) + p["b"]
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
        w = self.params["w"].at[0].set(0.0)
        return np.asarray(jax.nn.sigmoid(w[ids].sum(axis=1) + self.params["b"]))


def save(model: BagOfWords, directory: str) -> None:
    """Writes the n-gram list (JSON) and the weights (.npy, no pickle) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    names = sorted(model.features, key=model.features.get)
    with open(os.path.join(directory, "features.json"), "w", encoding="utf-8") as f:
        json.dump({"l2": model.l2, "features": names}, f, ensure_ascii=False)
    weights = np.concatenate([np.asarray(model.params["w"]), np.asarray(model.params["b"])[None]])
    np.save(os.path.join(directory, "weights.npy"), weights, allow_pickle=False)


def load(directory: str) -> BagOfWords:
    """Reads a model written by `save`."""
    with open(os.path.join(directory, "features.json"), encoding="utf-8") as f:
        payload = json.load(f)
    weights = np.load(os.path.join(directory, "weights.npy"), allow_pickle=False)
    model = BagOfWords(l2=payload["l2"])
    model.features = {g: i + 1 for i, g in enumerate(payload["features"])}
    if len(weights) != len(model.features) + 2:
        raise ValueError(f"{directory}: {len(weights)} weights for {len(model.features)} features")
    model.params = {"w": jnp.asarray(weights[:-1]), "b": jnp.asarray(weights[-1])}
    return model
