"""Ball experiment: simulator physics, baselines on hand-computed cases, and a smoke run."""

import json
import os

import numpy as np
import pytest

from experiments.ball import baselines
from experiments.ball import data
from experiments.ball import main as ball_main
from experiments.ball.configs.default import Config
from experiments.ball.train import train_and_evaluate


def test_no_drag_gives_the_exact_parabola():
    position = np.array([[1.0, -2.0, 1.5]])
    velocity = np.array([[3.0, 4.0, 12.0]])
    (path,) = data.integrate(position, velocity, np.zeros(1), 0.25)
    t = 0.25 * np.arange(len(path))[:, None]
    exact = position + velocity * t - 0.5 * np.array([0, 0, data.GRAVITY]) * t**2
    np.testing.assert_allclose(path, exact, atol=1e-9)
    # It ends at the last capture above the ground.
    t_ground = (12 + np.sqrt(12**2 + 2 * data.GRAVITY * 1.5)) / data.GRAVITY
    assert len(path) == int(t_ground / 0.25) + 1


def test_drag_makes_energy_decrease():
    position = np.array([[0.0, 0.0, 1.0]])
    velocity = np.array([[10.0, 0.0, 15.0]])
    (path,) = data.integrate(position, velocity, np.array([0.01]), 0.05)
    v = np.diff(path, axis=0) / 0.05  # mean velocity between captures
    mid_z = 0.5 * (path[1:, 2] + path[:-1, 2])
    energy = 0.5 * np.sum(v**2, axis=1) + data.GRAVITY * mid_z
    assert np.all(np.diff(energy) < 0)
    (free,) = data.integrate(position, velocity, np.array([0.0]), 0.05)
    assert len(path) < len(free)  # drag shortens the flight


def test_simulate_is_seeded_and_keeps_long_enough_throws():
    a = data.simulate(20, seed=5, min_samples=8)
    b = data.simulate(20, seed=5, min_samples=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.noisy, b.noisy, strict=True))
    assert min(len(p) for p in a.clean) >= 8
    assert np.all(np.concatenate(a.clean)[:, 2] >= 0)
    noise = np.concatenate(a.noisy) - np.concatenate(a.clean)
    assert 0.02 < noise.std() < 0.04  # default sigma 0.03 m


def test_baselines_on_hand_computed_cases():
    # Points (0,0,0), (1,1,1), (2,4,8), (3,9,27), (4,16,64) at t = 0..4 (in samples).
    t = np.arange(5.0)
    window = np.stack([t, t**2, t**3], axis=-1)[None]
    np.testing.assert_allclose(baselines.last_position(window, 1, 0.25), [[4, 16, 64]])
    np.testing.assert_allclose(baselines.constant_velocity(window, 1, 0.25), [[5, 23, 101]])
    np.testing.assert_allclose(baselines.constant_velocity(window, 2, 0.25), [[6, 30, 138]])
    # Least squares: exact for the line and the parabola; the cubic has a known fit.
    quad = baselines.constant_acceleration(window, 1, 0.25)
    np.testing.assert_allclose(quad[0, :2], [5, 25], atol=1e-9)
    # LS quadratic through t^3 at 0..4 is 6t^2 - 6.8t + 0.6 ... evaluated at t=5: 116.6
    coeffs = np.polyfit(t, t**3, 2)
    np.testing.assert_allclose(quad[0, 2], np.polyval(coeffs, 5.0), atol=1e-9)


def test_physics_baseline_is_exact_without_drag_or_noise():
    trajectories = data.simulate(30, seed=1, noise_sigma=0.0, drag_range=(0.0, 0.0))
    windows = data.make_windows(trajectories, 5, 2)
    predicted = baselines.physics(windows.inputs, 2, 0.25)
    np.testing.assert_allclose(predicted, windows.target_clean, atol=1e-8)


def test_scaler_round_trips():
    windows = data.make_windows(data.simulate(10, seed=2), 5, 1)
    scaler = data.Scaler.fit(windows)
    targets = scaler.targets(windows.inputs, windows.target_noisy)
    np.testing.assert_allclose(
        scaler.positions(windows.inputs, targets), windows.target_noisy, atol=1e-4
    )


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        ball_main.main(["--help"])
    text = capsys.readouterr().out
    for field in Config.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in text, field


@pytest.mark.slow
def test_smoke_run_writes_results_and_plots(tmp_path):
    config = Config(
        num_train=80,
        num_val=20,
        num_test=20,
        num_steps=30,
        hidden_size=8,
        batch_size=32,
        cells=("elman", "lstm"),
        horizons=(1, 2),
        many_to_many_cell="gru",
        noise_sweep=(0.0, 0.03),
    )
    results = train_and_evaluate(config, str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert set(on_disk["horizons"]) == {"0.25s", "0.5s"}
    one_step = on_disk["horizons"]["0.25s"]
    for name in [
        "physics (gravity known)",
        "constant acceleration",
        "lstm many-to-one",
        "gru many-to-many",
    ]:
        assert np.isfinite(one_step[name]["rmse"]) and one_step[name]["rmse"] > 0
    assert results["noise_sweep"][0]["sigma"] == 0.0
    assert np.isfinite(on_disk["rollout"]["rmse_all_points"])
    for png in ["trajectories_3d.png", "training_curves.png", "error_vs_noise.png", "rollout.png"]:
        assert os.path.getsize(tmp_path / png) > 10_000
    assert (tmp_path / "lstm_h1" / "metrics.jsonl").exists()
