"""The quickstart example runs and its loss falls."""

import re

from experiments import quickstart


def test_quickstart_loss_falls(capsys):
    quickstart.main(num_steps=100)
    losses = [float(v) for v in re.findall(r"mse ([0-9.]+)", capsys.readouterr().out)]
    assert len(losses) == 3 and losses[-1] < 0.1 * losses[0]
