"""Running a check script in a fresh process with simulated CPU devices.

JAX fixes the device count when it starts, so a test that needs several devices runs a script
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and reads the JSON report that the
script prints as its last line.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_check(script: str, devices: int = 4) -> dict:
    """The JSON report of ``tests/<script>`` run on ``devices`` simulated CPU devices."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)]),
    }
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, script)],
        capture_output=True,
        text=True,
        timeout=1800,  # only stops a hang: a busy machine is slow
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
