"""Plots: importing an experiment never changes the user's matplotlib backend (notebooks keep
their inline plots), and the figures carry what a reader needs to read them."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from experiments.ball import data as ball_data
from experiments.ball import plots as ball_plots
from experiments.translate import plots as translate_plots


def test_importing_experiments_leaves_the_matplotlib_backend_alone():
    code = (
        "import matplotlib; matplotlib.use('svg'); import importlib\n"
        "for name in ('ball', 'stock', 'sentiment', 'charlm', 'translate'):\n"
        "    importlib.import_module(f'experiments.{name}.plots')\n"
        "    importlib.import_module(f'experiments.{name}.train')\n"
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "svg"


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions save, instead of files."""
    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kwargs: saved.append(fig))
    return saved


def legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_attention_maps_have_a_colour_bar(figures):
    translate_plots.attention("a.png", np.full((3, 4), 0.25), list("abcd"), list("xyz"))
    (fig,) = figures
    assert len(fig.axes) == 2  # the map and its colour bar
    assert "attention" in fig.axes[1].get_ylabel()


def test_ball_training_curves_keep_the_many_to_many_loss_on_its_own_axis(figures):
    history = [
        {"step": s, "split": split, "loss": 1.0 / s} for s in (10, 20) for split in ("train", "val")
    ]
    # In the order the experiment trains them: the many-to-many model after the first horizon.
    histories = {
        **{f"{c} many-to-one, 0.25 s": history for c in ("elman", "lstm")},
        "gru many-to-many": history,
        **{f"{c} many-to-one, 0.5 s": history for c in ("elman", "lstm")},
    }
    ball_plots.training_curves("c.png", histories)
    (fig,) = figures
    assert len(fig.axes) == 3
    legends = [legend_texts(ax) for ax in fig.axes]
    assert legends == [["elman many-to-one", "lstm many-to-one"]] * 2 + [["gru many-to-many"]]
    assert "many-to-many" in fig.axes[2].get_title()


def test_ball_rollout_plot_explains_both_panels(figures):
    throws = ball_data.simulate(4, seed=0)
    splits = SimpleNamespace(test=throws)
    drift = lambda observed, steps: observed[-1] + 0.1 * np.arange(1, steps + 1)[:, None]
    ball_plots.rollouts("r.png", splits, drift, 3, 0.25)
    (fig,) = figures
    left, right = fig.axes
    assert len(legend_texts(left)) == 3 and len(legend_texts(right)) == 5
    # The error panel starts where the prediction starts: no error drawn at the given points.
    first_error_time = min(line.get_xdata()[0] for line in right.get_lines())
    assert first_error_time == 3 * 0.25


def test_accuracy_bars_start_at_zero_so_none_is_hidden(figures):
    from experiments.sentiment import plots as sentiment_plots

    rng = np.random.default_rng(0)
    n = 60
    pooled = {"labels": rng.integers(0, 2, n), "lengths": rng.integers(1, 30, n)}
    pooled |= {name: rng.random(n) for name in sentiment_plots.NAMES}
    sentiment_plots.accuracy_vs_length("a.png", pooled, (0, 10, 20, 30), "demo")
    (fig,) = figures
    assert fig.axes[0].get_ylim()[0] == 0.0
