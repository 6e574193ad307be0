"""The time axis of the linear cells split over devices: same values and gradients."""

import jax
import numpy as np
import pytest
from simulated_devices import run_check

import jaxrnn
from jaxrnn.time_sharding import sharded_linear_scan
from jaxrnn.time_sharding import time_mesh


@pytest.mark.slow
def test_four_devices_give_the_single_device_values_and_gradients():
    report = run_check("time_sharding_check.py")
    assert report["devices"] == 4
    assert len(report["cases"]) == 8  # 4 cells, forward and reversed
    for case, diffs in report["cases"].items():
        for what, diff in diffs.items():
            assert diff < 1e-5, f"{case}: {what} differ by {diff:.2e} (relative)"
    assert report["output_block"] == [3, 10, 8]  # each device holds 10 of the 40 steps


def test_one_device_mesh_equals_the_plain_scan():
    a = jax.random.uniform(jax.random.key(0), (9, 2, 3))
    b = jax.random.normal(jax.random.key(1), (9, 2, 3))
    for reverse in (False, True):
        expected = jaxrnn.linear_scan(a, b, reverse=reverse)
        got = sharded_linear_scan(a, b, time_mesh(), "time", reverse=reverse)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_unroll_with_time_sharding_on_one_device_is_unchanged():
    cell = jaxrnn.mingru(4)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 7, 3))
    carry, ys = jaxrnn.unroll(cell, params, xs, strategy=jaxrnn.Strategy(mode="parallel"))
    sharded = jaxrnn.Strategy(mode="parallel", time_sharding=(time_mesh(), "time"))
    carry2, ys2 = jaxrnn.unroll(cell, params, xs, strategy=sharded)
    np.testing.assert_allclose(ys2, ys, rtol=1e-6)
    np.testing.assert_allclose(carry2, carry, rtol=1e-6)


@pytest.mark.parametrize(
    "cell, options, message",
    [
        (
            jaxrnn.lstm(4),
            dict(),
            "time_sharding must be None with mode='sequential'.* for an LSTM or GRU shard the "
            "batch",
        ),
        (jaxrnn.mingru(4), dict(mode="parallel", bad="mesh"), "must be \\(mesh, axis name\\)"),
        (
            jaxrnn.mingru(4),
            dict(mode="parallel", axis="batch"),
            "time_sharding must be an axis of the mesh, one of \\('time',\\), got 'batch'",
        ),
    ],
)
def test_time_sharding_errors_name_what_was_expected(cell, options, message):

    sharding = (time_mesh(), options.pop("axis", "time"))
    if options.pop("bad", None):
        sharding = time_mesh()
    del cell
    with pytest.raises(ValueError, match=message):
        jaxrnn.Strategy(time_sharding=sharding, **options)
