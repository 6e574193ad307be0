"""Figures of the character-level language model."""

import math

from matplotlib.figure import Figure


def learning_curve(path, history) -> None:
    """Training and validation loss (nats/char, bits/char on the right) against time."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for split, style in (("train", "-"), ("val", "o-")):
        points = [(r["wall_time"] / 60, r["loss"]) for r in history if r["split"] == split]
        if points:
            ax.plot(*zip(*points, strict=True), style, ms=4, label=split)
    ax.axhline(1.5, color="grey", ls=":", label="1.50 nats/char")
    ax.set_xlabel("training time (minutes, 2 CPU cores)")
    ax.set_ylabel("loss (nats/char)")
    right = ax.secondary_yaxis(
        "right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2))
    )
    right.set_ylabel("bits/char")
    ax.set_ylim(top=min(3.0, ax.get_ylim()[1]))
    ax.legend()
    ax.set_title("Character-level LM: learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def compare(path, runs: dict, target: float | None = None) -> None:
    """Validation loss against training time for several runs (left), and training next to
    validation loss for each (right): what a change bought, and whether it was fitting or
    overfitting.

    Args:
      path: the PNG to write.
      runs: ``{label: history}``, each history the records of a run's ``metrics.jsonl``.
      target: a loss to draw as a dashed line.

    Example:
      >>> import os, tempfile
      >>> from experiments.charlm.plots import compare
      >>> history = [{"split": s, "step": n, "loss": 2.0 / n, "wall_time": 60.0 * n}
      ...            for n in (1, 2) for s in ("train", "val")]
      >>> path = os.path.join(tempfile.mkdtemp(), "runs.png")
      >>> compare(path, {"a": history}, target=1.42)
      >>> os.path.getsize(path) > 0
      True
    """
    fig = Figure(figsize=(12, 4.5))
    left, right = fig.subplots(1, 2)
    for label, history in runs.items():
        val = [(r["wall_time"] / 60, r["loss"]) for r in history if r["split"] == "val"]
        train = [(r["wall_time"] / 60, r["loss"]) for r in history if r["split"] == "train"]
        (line,) = left.plot(*zip(*val, strict=True), "o-", ms=3, label=label)
        right.plot(*zip(*val, strict=True), color=line.get_color(), label=f"{label}: val")
        right.plot(*zip(*train, strict=True), color=line.get_color(), alpha=0.35, lw=0.8)
    for ax in (left, right):
        if target is not None:
            ax.axhline(target, color="grey", ls="--", lw=0.8, label=f"target {target}")
        ax.set_xlabel("training time (minutes, 2 CPU cores)")
        ax.set_ylabel("loss (nats/char)")
        ax.grid(alpha=0.3)
    left.set_ylim(1.40, 1.60)
    left.set_title("validation loss")
    right.set_ylim(1.10, 1.70)
    right.set_title("validation (dark) and training (light, with dropout)")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
