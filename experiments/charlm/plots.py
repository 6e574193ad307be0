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
