"""Classical predictors of the ball's next position, scored on the same windows as the RNNs.

Each takes noisy windows ``(n, w, 3)`` and returns the predicted position ``(n, 3)`` that lies
``horizon`` samples after the window's last one.
"""

import numpy as np

from experiments.ball.data import GRAVITY


def last_position(windows: np.ndarray, horizon: int, dt: float) -> np.ndarray:
    """The ball stays where it was last seen.

    Example:
      >>> import numpy as np
      >>> from experiments.ball.baselines import last_position
      >>> last_position(np.arange(6.0).reshape(1, 2, 3), 1, 0.25).tolist()
      [[3.0, 4.0, 5.0]]
    """
    del horizon, dt
    return windows[:, -1]


def constant_velocity(windows: np.ndarray, horizon: int, dt: float) -> np.ndarray:
    """Extrapolates the velocity of the last two points.

    Example:
      >>> import numpy as np
      >>> from experiments.ball.baselines import constant_velocity
      >>> constant_velocity(np.array([[[0.0, 0, 0], [1, 2, 3]]]), 2, 0.25).tolist()
      [[3.0, 6.0, 9.0]]
    """
    del dt
    return windows[:, -1] + horizon * (windows[:, -1] - windows[:, -2])


def constant_acceleration(windows: np.ndarray, horizon: int, dt: float) -> np.ndarray:
    """A least-squares quadratic in time through every point of the window, per axis.

    Example:
      >>> import numpy as np
      >>> from experiments.ball.baselines import constant_acceleration
      >>> t = np.arange(5.0)
      >>> window = np.stack([t, t**2, 1 - t**2], axis=-1)[None]
      >>> np.round(constant_acceleration(window, 1, 0.25), 9).tolist()
      [[5.0, 25.0, -24.0]]
    """
    del dt
    return np.einsum("w,nwc->nc", _extrapolation_weights(windows.shape[1], horizon, 2), windows)


def physics(windows: np.ndarray, horizon: int, dt: float) -> np.ndarray:
    """Knows gravity: least-squares position and velocity with ``z'' = -g``, ignoring drag.

    x and y are fitted by straight lines in time; z + g t^2 / 2 is fitted by a straight line
    and the gravity term put back at the predicted time. With no drag and no noise it is
    exact, which makes it the strong baseline.

    Example:
      >>> import numpy as np
      >>> from experiments.ball.baselines import physics
      >>> t = 0.25 * np.arange(5.0)
      >>> z = 2 + 10 * t - 0.5 * 9.81 * t**2
      >>> window = np.stack([3 * t, 0 * t, z], axis=-1)[None]
      >>> later = 0.25 * 5
      >>> bool(np.allclose(physics(window, 1, 0.25),
      ...      [[3 * later, 0, 2 + 10 * later - 0.5 * 9.81 * later**2]]))
      True
    """
    width = windows.shape[1]
    weights = _extrapolation_weights(width, horizon, 1)
    seconds = dt * np.arange(width)
    target_seconds = dt * (width - 1 + horizon)
    lifted = windows.copy()
    lifted[..., 2] += 0.5 * GRAVITY * seconds**2
    prediction = np.einsum("w,nwc->nc", weights, lifted)
    prediction[:, 2] -= 0.5 * GRAVITY * target_seconds**2
    return prediction


def _extrapolation_weights(width: int, horizon: int, degree: int) -> np.ndarray:
    """Weights ``(w,)`` such that ``weights @ points`` is the least-squares polynomial of
    ``degree`` through ``points`` at times 0..w-1, evaluated at time ``w - 1 + horizon``."""
    t = np.arange(width, dtype=np.float64)
    design = np.stack([t**p for p in range(degree + 1)], axis=-1)
    at = np.array([(width - 1 + horizon) ** p for p in range(degree + 1)], np.float64)
    return at @ np.linalg.pinv(design)


BASELINES = {
    "last position": last_position,
    "constant velocity": constant_velocity,
    "constant acceleration": constant_acceleration,
    "physics (gravity known)": physics,
}
