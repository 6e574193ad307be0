"""Figures of the sentiment experiment."""

import itertools

import numpy as np
from matplotlib.figure import Figure

NAMES = {"bow": "bag-of-words", "rnn": "RNN ensemble", "final": "final model"}


def accuracy_vs_length(path, pooled, bins, dataset) -> None:
    """Test accuracy per sentence-length bin (pooled over all test splits), with counts."""
    labels, centers, counts = [], [], []
    accuracy = {name: [] for name in NAMES}
    for lo, hi in itertools.pairwise(bins):
        rows = (pooled["lengths"] > lo) & (pooled["lengths"] <= hi)
        if not rows.any():
            continue
        labels.append(f"{lo + 1}-{hi}" if hi < 1000 else f">{lo}")
        counts.append(int(rows.sum()))
        for name in NAMES:
            accuracy[name].append(np.mean((pooled[name][rows] > 0.5) == pooled["labels"][rows]))
        centers.append(len(centers))
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    width = 0.8 / len(NAMES)
    for n, (name, title) in enumerate(NAMES.items()):
        bars = ax.bar(np.asarray(centers) + (n - 1) * width, accuracy[name], width, label=title)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(centers, [f"{lab}\n(n={c})" for lab, c in zip(labels, counts, strict=True)])
    # Bars grow from 0: an axis starting at chance (0.5) hid every bar below it.
    ax.set_ylim(0.0, 1.08)
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    ax.set_xlabel("sentence length (tokens)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: accuracy vs sentence length")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def confusion(path, matrix, labels) -> None:
    """The confusion matrix of the final model as a heat map with counts."""
    fig = Figure(figsize=(4, 3.5))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > matrix.max() / 2 else "black",
        )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
