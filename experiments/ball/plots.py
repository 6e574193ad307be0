"""Figures of the ball experiment: trajectories in 3-D, training curves, error vs noise."""

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from experiments.ball import baselines
from experiments.ball import data


def write_all(workdir, config, splits, predictors, rollout, histories, results, best_model) -> None:
    """Writes trajectories_3d.png, training_curves.png and error_vs_noise.png into workdir."""
    if best_model is not None:
        trajectories_3d(
            os.path.join(workdir, "trajectories_3d.png"),
            config,
            splits,
            predictors[(best_model, 1)],
            best_model,
        )
    training_curves(os.path.join(workdir, "training_curves.png"), histories)
    if rollout is not None:
        rollouts(
            os.path.join(workdir, "rollout.png"),
            splits,
            rollout,
            results["rollout"]["observed_positions"],
            config.sample_interval,
        )
    if results["noise_sweep"]:
        error_vs_noise(
            os.path.join(workdir, "error_vs_noise.png"),
            results["noise_sweep"],
            config.noise_sigma,
            config.sample_interval,
        )
    print(f"plots: {workdir}/{{trajectories_3d,training_curves,error_vs_noise,rollout}}.png")


def rollouts(path, splits, rollout, observed, sample_interval, count=4) -> None:
    """One-to-many: whole trajectories drawn by the model from their first few positions."""
    fig = Figure(figsize=(12, 5))
    axes = fig.subplots(1, 2)
    for n, color in zip(range(count), colormaps["tab10"].colors, strict=False):
        clean, noisy = splits.test.clean[n], splits.test.noisy[n]
        drawn = rollout(noisy[:observed], len(clean) - observed)
        horizontal = np.linalg.norm(clean[:, :2] - clean[0, :2], axis=-1)
        drawn_horizontal = np.linalg.norm(drawn[:, :2] - clean[0, :2], axis=-1)
        t = sample_interval * np.arange(len(clean))
        axes[0].plot(horizontal, clean[:, 2], "-", color=color, lw=1.5)
        axes[0].plot(drawn_horizontal, drawn[:, 2], "--o", color=color, ms=3)
        given = np.linalg.norm(noisy[:observed, :2] - clean[0, :2], axis=-1)
        axes[0].plot(given, noisy[:observed, 2], "ks", ms=5)
        error = np.linalg.norm(drawn - clean[observed:], axis=-1)
        axes[1].plot(t[observed:], error, "-o", color=color, ms=3, label=f"test throw {n + 1}")
    axes[0].plot([], [], "k-", label="true path")
    axes[0].plot([], [], "k--o", ms=3, label="drawn by the model")
    axes[0].plot([], [], "ks", ms=5, label=f"the {observed} measured positions it is given")
    # Below the axes: inside, any corner hides part of some throw.
    axes[0].legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    axes[0].set_xlabel("horizontal distance from launch (m)")
    axes[0].set_ylabel("height (m)")
    axes[0].set_title("One-to-many: the rest of each throw drawn from its start")
    axes[1].axvspan(0, t[observed - 1], color="0.9", label="given (no prediction)")
    axes[1].set_xlim(left=0)
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=9, loc="upper left")
    axes[1].set_xlabel("time since launch (s)")
    axes[1].set_ylabel("distance to the true position (m)")
    axes[1].set_title("Error of the drawn positions grows with the horizon")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def trajectories_3d(path, config, splits, predict, model_name, count=3) -> None:
    """A few test throws: truth, measurements, and 1-step predictions of the RNN and physics."""
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    colors = colormaps["tab10"].colors
    # Predictions sit within centimetres of the truth at metre scale: small hollow markers for
    # physics and crosses for the RNN, so that the three stay distinguishable.
    for n in range(count):
        clean, noisy = splits.test.clean[n], splits.test.noisy[n]
        single = data.Trajectories(
            [clean], [noisy], splits.test.drag[n : n + 1], splits.test.velocity0[n : n + 1]
        )
        windows = data.make_windows(single, config.window, 1)
        rnn = predict(windows.inputs)
        phys = baselines.physics(windows.inputs, 1, config.sample_interval)
        c = colors[n]
        ax.plot(*clean.T, color=c, lw=1.5, label="truth" if n == 0 else None)
        ax.scatter(*noisy.T, color=c, s=4, alpha=0.4, label="measured" if n == 0 else None)
        ax.scatter(
            *rnn.T, color=c, marker="x", s=45, lw=1.5, label=f"{model_name}" if n == 0 else None
        )
        ax.scatter(
            *phys.T,
            facecolors="none",
            edgecolors="k",
            marker="o",
            s=80,
            lw=0.8,
            label="physics fit" if n == 0 else None,
        )
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    ax.set_title(
        f"Test throws: next position ({config.sample_interval:g} s ahead) from the last "
        f"{config.window}"
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def training_curves(path, histories) -> None:
    """Validation loss (normalised MSE) of every model against the step, one panel per task.

    The many-to-many model's loss is averaged over every step of a throw, most of them with
    little history, so it is a different quantity: it gets its own panel rather than a shared
    axis on which it would look 100x worse than the models it beats on test RMSE.
    """
    panels = {}
    for name, history in histories.items():
        task = name.split(", ", 1)[1] if ", " in name else "every step (many-to-many)"
        panels.setdefault(task, []).append((name.split(", ", 1)[0], history))
    # The many-to-many panel last, after the horizons of the many-to-one models.
    panels = dict(sorted(panels.items(), key=lambda item: "many-to-many" in item[0]))
    fig = Figure(figsize=(4.2 * len(panels), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (task, runs) in zip(axes, panels.items(), strict=True):
        for (model, history), color in zip(runs, colormaps["tab10"].colors, strict=False):
            for split, style, width in (("train", "-", 0.8), ("val", "-", 2.0)):
                points = [(r["step"], r["loss"]) for r in history if r["split"] == split]
                if points:
                    steps, losses = zip(*points, strict=True)
                    alpha = 0.35 if split == "train" else 1.0
                    label = model if split == "val" else None
                    ax.plot(steps, losses, style, color=color, lw=width, alpha=alpha, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(task if "many-to-many" in task else f"next position, {task} ahead")
        ax.legend(fontsize=8, title="validation (thin: train)", title_fontsize=8)
    axes[0].set_ylabel("loss (MSE of normalised targets)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def error_vs_noise(path, sweep, trained_sigma, sample_interval) -> None:
    """1-step test RMSE against the measurement noise, for baselines and the best RNN."""
    sigmas = np.array([entry["sigma"] for entry in sweep])
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name in [k for k in sweep[0] if k != "sigma"]:
        ax.plot(sigmas, [entry[name] for entry in sweep], "o-", label=name)
    ax.axvline(trained_sigma, color="grey", ls=":", label=f"RNN trained at sigma={trained_sigma}")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(left=0)
    ax.set_yscale("log")
    ax.set_xlabel("measurement noise sigma (m)")
    ax.set_ylabel(f"test RMSE, {sample_interval:g} s ahead (m)")
    ax.set_title("Error vs noise")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
