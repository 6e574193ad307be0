"""Test-wide settings.

Inside jaxrnn's own tests, implicit dtype and rank promotion are errors, so silent broadcasting
bugs fail loudly (as in equinox's test suite). Tests that drive third-party code that is not
written for strict promotion (optax's optimizers, the experiments) are marked
``allow_promotion`` or live under ``tests/experiments/``.
"""

import os

import jax
import pytest
from hypothesis import settings

settings.register_profile("jaxrnn", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("jaxrnn")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_promotion: run with JAX's standard dtype/rank promotion rules"
    )


# The slowest tests (whole notebooks, 30-60 s each) go first, so that with two pytest-xdist
# workers they overlap with the many short tests instead of leaving one worker idle at the end.
# A module moves as a whole: splitting one would tear down and rebuild its module-scoped
# fixtures (the sentiment and translate modules train a model in theirs).
SLOW_FIRST = (
    "test_notebook_runs_top_to_bottom",
    "test_smoke_run",
    "test_two_and_three_processes",
)


def pytest_collection_modifyitems(config, items):
    del config

    def rank(item):
        slow = [i for i, prefix in enumerate(SLOW_FIRST) if item.name.startswith(prefix)]
        return slow[0] if slow else len(SLOW_FIRST)

    module_rank = {}
    for item in items:
        module_rank[item.path] = min(module_rank.get(item.path, len(SLOW_FIRST)), rank(item))
    # A stable sort: the order within each module is kept.
    items.sort(key=lambda item: module_rank[item.path])


@pytest.fixture(autouse=True)
def strict_promotion(request):
    loose = request.node.get_closest_marker("allow_promotion") or (
        f"{os.sep}experiments{os.sep}" in str(request.node.path)
    )
    if loose:
        yield
        return
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield


@pytest.fixture(scope="session")
def data_dir():
    """The shared data folder from JAXRNN_DATA, or a skip that says how to provide it."""
    path = os.environ.get("JAXRNN_DATA")
    if not path or not os.path.isdir(path):
        pytest.skip(f"real data sets not found: set JAXRNN_DATA to ../shared/data (got {path!r})")
    return path
