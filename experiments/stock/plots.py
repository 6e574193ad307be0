"""Figures of the stock experiment."""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure


def predictions(path, test, predicted, title) -> None:
    """Actual vs predicted close on the test span, and each model's cumulative squared-error
    advantage over persistence (below zero: the model is ahead)."""
    fig = Figure(figsize=(10, 7))
    (top, bottom) = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    dates = test.dates.astype("datetime64[D]").astype(object)
    top.plot(dates, test.next_close, color="k", lw=1.5, label="actual close")
    reference = (predicted["persistence"] - test.next_close) ** 2
    for name, values in predicted.items():
        if name == "persistence":
            continue
        top.plot(dates, values, lw=0.9, alpha=0.8, label=name)
        gain = np.cumsum((values - test.next_close) ** 2 - reference)
        bottom.plot(dates, gain, lw=1.2, label=name)
    bottom.axhline(0, color="k", lw=0.8)
    top.set_ylabel("close")
    top.set_title(f"{title}: next-day close on the test span")
    top.legend(fontsize=8)
    bottom.set_ylabel("cumulative sq. error\nminus persistence's")
    bottom.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def training_curves(path, histories) -> None:
    """Train and validation loss (MSE of normalised returns) per model."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for (name, history), color in zip(histories.items(), colormaps["tab10"].colors, strict=False):
        for split, style in (("train", "-"), ("val", "--")):
            points = [(r["step"], r["loss"]) for r in history if r["split"] == split]
            if points:
                ax.plot(*zip(*points, strict=True), style, color=color, label=f"{name} ({split})")
    ax.axhline(1.0, color="grey", ls=":", label="predicting the mean")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE of normalised next-day return")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
