"""Data-parallel training on 4 (simulated) devices follows the single-device loss trajectory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_data_parallel_matches_single_device():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)]),
    }
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "distributed_check.py")],
        capture_output=True,
        text=True,
        timeout=1800,  # only stops a hang: a busy machine is slow
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    single, parallel = report["runs"]["False"], report["runs"]["True"]
    assert len(single["losses"]) == 15
    np.testing.assert_allclose(parallel["losses"], single["losses"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(parallel["params"], single["params"], rtol=1e-4, atol=1e-6)
    assert "NamedSharding" in parallel["sharding"]  # it really ran on the mesh
    assert "leading dimension 17, which does not split evenly over 4 devices" in report["uneven"]
