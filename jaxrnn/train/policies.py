"""The two policy values of `jaxrnn.train.fit`: when to evaluate and what "best" means
(`Evaluation`), and when to save and what to keep (`Checkpoints`).

Each is checked once, where it is written, so a bad value is refused before any work.
"""

import dataclasses
import math
from typing import Any

from jaxrnn.checks import check_choice
from jaxrnn.checks import check_int
from jaxrnn.checks import fail
from jaxrnn.checks import show
from jaxrnn.checks import warn


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """When `fit` evaluates ``val_data``, and which validation metric is best.

    Attributes:
      every: evaluate every this many steps and at the end; None: a tenth of the run.
      best_metric: the validation metric that picks the best checkpoint (and that
        `EarlyStopping` watches by default).
      best_mode: ``"min"`` or ``"max"``. NaN and infinite values are never best.

    Examples:
      >>> from jaxrnn.train import Evaluation
      >>> Evaluation(every=50, best_metric="accuracy", best_mode="max").every
      50
    """

    every: int | None = None
    best_metric: str = "loss"
    best_mode: str = "min"

    def __post_init__(self):
        if self.every is not None:
            check_int("Evaluation.every", self.every, low=1)
        if not isinstance(self.best_metric, str) or not self.best_metric:
            fail("Evaluation.best_metric", "the name of a validation metric", self.best_metric)
        check_choice("Evaluation.best_mode", self.best_mode, ("min", "max"))

    def score(self, metrics: dict[str, Any] | None) -> float | None:
        """How good ``metrics`` are, higher is better: None when ``best_metric`` is missing,
        NaN or infinite (such an evaluation never wins).

        Examples:
          >>> from jaxrnn.train import Evaluation
          >>> Evaluation().score({"loss": 0.5}), Evaluation().score({"loss": float("nan")})
          (-0.5, None)
        """
        value = (metrics or {}).get(self.best_metric)
        if value is None or not math.isfinite(float(value)):
            return None
        return float(value) if self.best_mode == "max" else -float(value)


@dataclasses.dataclass(frozen=True)
class Checkpoints:
    """When `fit` saves to ``<workdir>/checkpoints`` and which checkpoints it keeps.

    Attributes:
      every: save every this many steps and at the end; None: at every evaluation.
      keep_last: the newest checkpoints kept besides the best one.

    Examples:
      >>> from jaxrnn.train import Checkpoints
      >>> Checkpoints(every=100, keep_last=2)
      Checkpoints(every=100, keep_last=2)
    """

    every: int | None = None
    keep_last: int = 3

    def __post_init__(self):
        if self.every is not None:
            check_int("Checkpoints.every", self.every, low=1)
        check_int("Checkpoints.keep_last", self.keep_last, low=1)


# fit's keywords before 0.1.2 -> (policy, field).
DEPRECATED = {
    "eval_every": ("evaluation", "every"),
    "best_metric": ("evaluation", "best_metric"),
    "best_mode": ("evaluation", "best_mode"),
    "checkpoint_every": ("checkpoints", "every"),
    "keep_last": ("checkpoints", "keep_last"),
}


def resolve(evaluation: Any, checkpoints: Any, keywords: dict[str, Any]):
    """``(Evaluation, Checkpoints)`` of a `fit` call, from the policy values or from the
    deprecated keywords (with a `DeprecationWarning` that spells the new form).

    Examples:
      >>> from jaxrnn.train.policies import resolve
      >>> evaluation, checkpoints = resolve(None, None, {})
      >>> evaluation.best_metric, checkpoints.keep_last
      ('loss', 3)
    """
    unknown = sorted(set(keywords) - set(DEPRECATED))
    if unknown:
        raise TypeError(f"fit() got an unexpected keyword argument {unknown[0]!r}")
    given = {"evaluation": evaluation, "checkpoints": checkpoints}
    for name, kind in (("evaluation", Evaluation), ("checkpoints", Checkpoints)):
        if given[name] is not None and not isinstance(given[name], kind):
            fail(name, f"a jaxrnn.train.{kind.__name__}(...)", given[name], TypeError)
    fields: dict[str, dict[str, Any]] = {"evaluation": {}, "checkpoints": {}}
    for keyword, value in keywords.items():
        policy, field = DEPRECATED[keyword]
        if given[policy] is not None:
            raise TypeError(f"fit() got {policy}= and {keyword}=: put {field} in the {policy}")
        fields[policy][field] = value
    for policy, values in fields.items():
        if values:
            kind = Evaluation if policy == "evaluation" else Checkpoints
            spelled = ", ".join(f"{k}={show(v)}" for k, v in values.items())
            old = ", ".join(f"{k}=" for k in keywords if DEPRECATED[k][0] == policy)
            warn(
                f"fit({old}...) is deprecated and will stop working in jaxrnn 0.2; pass "
                f"{policy}=jaxrnn.train.{kind.__name__}({spelled}) instead",
                DeprecationWarning,
            )
            given[policy] = kind(**values)
    return given["evaluation"] or Evaluation(), given["checkpoints"] or Checkpoints()
