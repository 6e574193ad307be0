"""The public API imports, and every public function has a docstring with an example."""

import inspect

import jaxrnn


def test_public_api_imports():
    for name in jaxrnn.__all__:
        assert hasattr(jaxrnn, name), name
    assert callable(jaxrnn.unroll) and callable(jaxrnn.lstm)


def test_public_functions_have_docstrings_with_examples():
    missing = []
    for name in jaxrnn.__all__:
        obj = getattr(jaxrnn, name)
        if inspect.isfunction(obj):
            doc = inspect.getdoc(obj) or ""
            if "Example" not in doc or ">>>" not in doc:
                missing.append(name)
    for name in ("from_torch", "from_flax", "to_flax"):
        if ">>>" not in (inspect.getdoc(getattr(jaxrnn.interop, name)) or ""):
            missing.append(f"interop.{name}")
    assert not missing, f"public functions without an example: {missing}"
