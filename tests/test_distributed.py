"""Data-parallel training on 4 (simulated) devices follows the single-device loss trajectory."""

import numpy as np
import pytest
from simulated_devices import run_check


@pytest.mark.slow
def test_data_parallel_matches_single_device():
    report = run_check("distributed_check.py")
    assert report["devices"] == 4
    single, parallel = report["runs"]["False"], report["runs"]["True"]
    assert len(single["losses"]) == 15
    np.testing.assert_allclose(parallel["losses"], single["losses"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(parallel["params"], single["params"], rtol=1e-4, atol=1e-6)
    assert "NamedSharding" in parallel["sharding"]  # it really ran on the mesh
    assert "leading dimension 17, which does not split evenly over 4 devices" in report["uneven"]
