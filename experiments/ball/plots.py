"""Figures of the ball experiment: trajectories in 3-D, training curves, error vs noise."""

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from experiments.ball import baselines
from experiments.ball import data


def write_all(workdir, config, splits, predictors, histories, results, best_model) -> None:
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
    m2m = predictors.get(("many_to_many", 1))
    if m2m is not None:
        rollouts(
            os.path.join(workdir, "rollout.png"),
            splits,
            m2m.rollout,
            results["rollout"]["observed_positions"],
        )
    if results["noise_sweep"]:
        error_vs_noise(
            os.path.join(workdir, "error_vs_noise.png"), results["noise_sweep"], config.noise_sigma
        )
    print(f"plots: {workdir}/{{trajectories_3d,training_curves,error_vs_noise,rollout}}.png")


def rollouts(path, splits, rollout, observed, count=4) -> None:
    """One-to-many: whole trajectories drawn by the model from their first few positions."""
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    for n, color in zip(range(count), colormaps["tab10"].colors, strict=False):
        clean, noisy = splits.test.clean[n], splits.test.noisy[n]
        drawn = np.concatenate([noisy[:observed], rollout(noisy[:observed], len(clean) - observed)])
        horizontal = np.linalg.norm(clean[:, :2] - clean[0, :2], axis=-1)
        drawn_horizontal = np.linalg.norm(drawn[:, :2] - clean[0, :2], axis=-1)
        t = 0.25 * np.arange(len(clean))
        axes[0].plot(horizontal, clean[:, 2], "-", color=color, lw=1.5)
        axes[0].plot(drawn_horizontal, drawn[:, 2], "--o", color=color, ms=3)
        axes[0].plot(horizontal[:observed], noisy[:observed, 2], "ks", ms=5)
        axes[1].plot(t, np.linalg.norm(drawn - clean, axis=-1), "-o", color=color, ms=3)
    axes[0].set_xlabel("horizontal distance from launch (m)")
    axes[0].set_ylabel("height (m)")
    axes[0].set_title(
        f"solid: truth; dashed: drawn by the model from {observed} positions (squares)"
    )
    axes[0].title.set_fontsize(9)
    axes[1].set_xlabel("time (s)")
    axes[1].set_ylabel("distance to the true position (m)")
    axes[1].set_title("error of the drawn trajectory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def trajectories_3d(path, config, splits, predict, model_name, count=3) -> None:
    """A few test throws: truth, measurements, and 1-step predictions of the RNN and physics."""
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    colors = colormaps["tab10"].colors
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
        ax.scatter(*noisy.T, color=c, s=8, alpha=0.5, label="measured" if n == 0 else None)
        ax.scatter(
            *rnn.T, color=c, marker="x", s=40, label=f"{model_name} prediction" if n == 0 else None
        )
        ax.scatter(*phys.T, color="k", marker="+", s=30, label="physics fit" if n == 0 else None)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    ax.set_title("Test throws: next position (0.25 s) predicted from the last 5")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def training_curves(path, histories) -> None:
    """Train and validation loss (normalised MSE) of every model against the step."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for (name, history), color in zip(histories.items(), colormaps["tab10"].colors, strict=False):
        for split, style in (("train", "-"), ("val", "--")):
            points = [(r["step"], r["loss"]) for r in history if r["split"] == split]
            if points:
                steps, losses = zip(*points, strict=True)
                ax.plot(
                    steps,
                    losses,
                    style,
                    color=color,
                    label=f"{name} ({split})",
                    lw=1.2 if split == "train" else 1.8,
                )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE of normalised targets)")
    ax.set_title("Training curves")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def error_vs_noise(path, sweep, trained_sigma) -> None:
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
    ax.set_ylabel("test RMSE, 0.25 s ahead (m)")
    ax.set_title("Error vs noise")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
