"""The project's own physics simulator of a ball in the air, and the windows models learn from.

Physics: gravity plus quadratic air drag, ``a = -g e_z - k |v| v`` with a drag coefficient
``k`` drawn per trajectory, integrated with RK4 at 100 Hz and captured every
``sample_interval`` seconds with Gaussian measurement noise. A trajectory ends when the ball
reaches the ground (z = 0). Coordinates are metres, z up.
"""

import dataclasses

import numpy as np

GRAVITY = 9.81  # m/s^2
SUBSTEPS = 25  # RK4 steps per captured sample (0.01 s at the default 0.25 s)


@dataclasses.dataclass(frozen=True)
class Trajectories:
    """A set of simulated throws, ragged: trajectory n has ``lengths[n]`` samples."""

    clean: list[np.ndarray]  # each (t_n, 3): true positions at the capture times
    noisy: list[np.ndarray]  # each (t_n, 3): what a camera measures
    drag: np.ndarray  # (n,) drag coefficient k of each throw
    velocity0: np.ndarray  # (n, 3) launch velocity

    def __len__(self) -> int:
        return len(self.clean)

    def with_noise(self, sigma: float, seed: int) -> "Trajectories":
        """The same throws measured again with noise ``sigma``."""
        rng = np.random.default_rng(seed)
        noisy = [p + sigma * rng.standard_normal(p.shape) for p in self.clean]
        return dataclasses.replace(self, noisy=noisy)


def simulate(
    num: int,
    *,
    seed: int,
    sample_interval: float = 0.25,
    noise_sigma: float = 0.03,
    drag_range: tuple[float, float] = (0.0, 0.002),
    speed_range: tuple[float, float] = (8.0, 25.0),
    min_samples: int = 7,
) -> Trajectories:
    """Simulates ``num`` throws from random launch positions, speeds and directions.

    Launch position: x, y uniform in [-5, 5] m, z in [0.5, 2] m. Speed uniform in
    ``speed_range``; elevation 25–70 degrees; azimuth uniform. Throws with fewer than
    ``min_samples`` captures are drawn again, so every trajectory can feed a window.

    Args:
      num: number of throws.
      seed: seeds everything.
      sample_interval: seconds between captures.
      noise_sigma: measurement noise per coordinate (m).
      drag_range: range of the drag coefficient k (1/m).
      speed_range: range of launch speeds (m/s).
      min_samples: the shortest trajectory kept.

    Returns:
      `Trajectories`.

    Example:
      >>> from experiments.ball.data import simulate
      >>> trajectories = simulate(3, seed=0)
      >>> len(trajectories), trajectories.clean[0].shape[1]
      (3, 3)
    """
    rng = np.random.default_rng(seed)
    clean: list[np.ndarray] = []
    drags, velocities = [], []
    while len(clean) < num:
        draw = num - len(clean) + 8
        position = np.stack(
            [rng.uniform(-5, 5, draw), rng.uniform(-5, 5, draw), rng.uniform(0.5, 2.0, draw)], -1
        )
        speed = rng.uniform(*speed_range, draw)
        elevation = np.radians(rng.uniform(25, 70, draw))
        azimuth = rng.uniform(0, 2 * np.pi, draw)
        velocity = speed[:, None] * np.stack(
            [
                np.cos(elevation) * np.cos(azimuth),
                np.cos(elevation) * np.sin(azimuth),
                np.sin(elevation),
            ],
            axis=-1,
        )
        drag = rng.uniform(*drag_range, draw)
        for path, k, v in zip(
            integrate(position, velocity, drag, sample_interval), drag, velocity, strict=True
        ):
            if len(path) >= min_samples and len(clean) < num:
                clean.append(path)
                drags.append(k)
                velocities.append(v)
    noisy = [p + noise_sigma * rng.standard_normal(p.shape) for p in clean]
    return Trajectories(clean, noisy, np.array(drags), np.array(velocities))


def integrate(
    position: np.ndarray,
    velocity: np.ndarray,
    drag: np.ndarray,
    sample_interval: float,
    *,
    max_seconds: float = 30.0,
) -> list[np.ndarray]:
    """Flies ``n`` balls at once; returns each one's captured positions ``(t_n, 3)``.

    Captures are every ``sample_interval`` s from launch until the ball is below the ground
    (z < 0); the capture below the ground is not kept.

    Args:
      position: ``(n, 3)`` launch positions.
      velocity: ``(n, 3)`` launch velocities.
      drag: ``(n,)`` drag coefficients.
      sample_interval: seconds between captures.
      max_seconds: the longest flight simulated.

    Returns:
      A list of ``n`` arrays ``(t_n, 3)``.

    Example:
      >>> import numpy as np
      >>> from experiments.ball.data import integrate
      >>> paths = integrate(np.array([[0.0, 0, 1]]), np.array([[0.0, 0, 5]]), np.zeros(1), 0.25)
      >>> paths[0].shape[1], bool(paths[0][:, 2].min() >= 0)
      (3, True)
    """
    h = sample_interval / SUBSTEPS
    state = np.concatenate([position, velocity], axis=-1).astype(np.float64)
    drag = np.asarray(drag, np.float64)[:, None]
    samples = [state[:, :3].copy()]
    for _ in range(int(max_seconds / sample_interval)):
        for _ in range(SUBSTEPS):
            state = _rk4(state, drag, h)
        samples.append(state[:, :3].copy())
        if np.all(state[:, 2] < 0):
            break
    captured = np.stack(samples, axis=1)  # (n, t, 3)
    below = captured[:, :, 2] < 0
    ends = np.where(below.any(axis=1), below.argmax(axis=1), captured.shape[1])
    return [captured[n, :end] for n, end in enumerate(ends)]


def _derivative(state: np.ndarray, drag: np.ndarray) -> np.ndarray:
    velocity = state[:, 3:]
    acceleration = -drag * np.linalg.norm(velocity, axis=-1, keepdims=True) * velocity
    acceleration[:, 2] -= GRAVITY
    return np.concatenate([velocity, acceleration], axis=-1)


def _rk4(state: np.ndarray, drag: np.ndarray, h: float) -> np.ndarray:
    k1 = _derivative(state, drag)
    k2 = _derivative(state + 0.5 * h * k1, drag)
    k3 = _derivative(state + 0.5 * h * k2, drag)
    k4 = _derivative(state + h * k3, drag)
    return state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@dataclasses.dataclass(frozen=True)
class Windows:
    """Every window of ``window`` noisy positions and the position ``horizon`` steps later."""

    inputs: np.ndarray  # (n, window, 3) noisy positions
    target_noisy: np.ndarray  # (n, 3) the measured position `horizon` steps after the window
    target_clean: np.ndarray  # (n, 3) the true position there (what the test RMSE is against)
    trajectory: np.ndarray  # (n,) which trajectory the window comes from
    start: np.ndarray  # (n,) index of the window's first sample in that trajectory


def make_windows(trajectories: Trajectories, window: int, horizon: int) -> Windows:
    """All windows of all trajectories, in order.

    Example:
      >>> from experiments.ball.data import make_windows, simulate
      >>> w = make_windows(simulate(2, seed=0), window=5, horizon=1)
      >>> w.inputs.shape[1:], w.target_clean.shape[1:]
      ((5, 3), (3,))
    """
    inputs, noisy, clean, which, starts = [], [], [], [], []
    for n, (p_clean, p_noisy) in enumerate(
        zip(trajectories.clean, trajectories.noisy, strict=True)
    ):
        for s in range(len(p_clean) - window - horizon + 1):
            inputs.append(p_noisy[s : s + window])
            noisy.append(p_noisy[s + window - 1 + horizon])
            clean.append(p_clean[s + window - 1 + horizon])
            which.append(n)
            starts.append(s)
    return Windows(
        inputs=np.asarray(inputs, np.float64).reshape(-1, window, 3),
        target_noisy=np.asarray(noisy, np.float64).reshape(-1, 3),
        target_clean=np.asarray(clean, np.float64).reshape(-1, 3),
        trajectory=np.asarray(which, np.int64),
        start=np.asarray(starts, np.int64),
    )


@dataclasses.dataclass(frozen=True)
class Scaler:
    """Maps windows to model inputs and back; fitted on the training windows only.

    Inputs are positions relative to the window's last position (the answer does not depend
    on where the throw happens), divided by ``input_scale``; the model predicts the
    displacement from the last position divided by ``target_scale``.
    """

    input_scale: np.ndarray  # (3,) metres
    target_scale: np.ndarray  # (3,) metres

    @classmethod
    def fit(cls, windows: Windows) -> "Scaler":
        relative = windows.inputs - windows.inputs[:, -1:]
        displacement = windows.target_noisy - windows.inputs[:, -1]
        return cls(
            input_scale=relative[:, 0].std(axis=0) + 1e-6,
            target_scale=displacement.std(axis=0) + 1e-6,
        )

    def inputs(self, windows_inputs: np.ndarray) -> np.ndarray:
        """``(n, w, 3)`` noisy positions -> ``(n, w, 3)`` float32 model inputs."""
        relative = windows_inputs - windows_inputs[:, -1:]
        return (relative / self.input_scale).astype(np.float32)

    def targets(self, windows_inputs: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``(n, 3)`` positions -> ``(n, 3)`` float32 model targets."""
        return ((positions - windows_inputs[:, -1]) / self.target_scale).astype(np.float32)

    def positions(self, windows_inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Model outputs ``(n, 3)`` -> predicted positions ``(n, 3)`` in metres."""
        return windows_inputs[:, -1] + np.asarray(outputs, np.float64) * self.target_scale


def pad_trajectories(positions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads ragged ``(t_n, 3)`` trajectories to ``(n, t_max, 3)``, with their lengths.

    Example:
      >>> import numpy as np
      >>> from experiments.ball.data import pad_trajectories
      >>> padded, lengths = pad_trajectories([np.ones((2, 3)), np.ones((4, 3))])
      >>> padded.shape, lengths.tolist()
      ((2, 4, 3), [2, 4])
    """
    lengths = np.array([len(p) for p in positions])
    padded = np.zeros((len(positions), lengths.max(), 3))
    for n, p in enumerate(positions):
        padded[n, : len(p)] = p
    return padded, lengths
