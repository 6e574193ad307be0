"""Figures of the character-level language model."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def learning_curve(path, history) -> None:
    """Training and validation loss (nats/char, bits/char on the right) against time."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
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
    plt.close(fig)
