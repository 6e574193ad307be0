"""A pytest plugin (``-p tests.fresh_doctests`` in pyproject.toml): every doctest starts from an
empty namespace.

A docstring example must run when pasted into a fresh interpreter, so it may not lean on its
module's imports; pytest's default hands each doctest a copy of the module's globals. A plugin
rather than a conftest hook, because conftest hooks only reach the tests below their folder
and the doctests live in jaxrnn/ and experiments/.
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    dtest = getattr(item, "dtest", None)
    if dtest is not None:
        keep = ("__name__", "__file__")
        dtest.globs = {name: dtest.globs[name] for name in keep if name in dtest.globs}
