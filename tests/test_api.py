"""The public API imports, and every public function has a docstring with an example."""

import inspect
import subprocess
import sys

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


def test_submodules_are_attributes_of_a_fresh_import():
    # `import jaxrnn; jaxrnn.train.fit(...)` as the README writes it, in a fresh interpreter
    # (in this process another test may already have imported the submodules).
    code = (
        "import jaxrnn\n"
        "print(jaxrnn.train.fit.__name__, jaxrnn.text.Vocabulary.__name__,"
        " jaxrnn.decode.generate.__name__, jaxrnn.distributed.__name__,"
        " jaxrnn.interop.from_torch.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "fit",
        "Vocabulary",
        "generate",
        "jaxrnn.distributed",
        "from_torch",
    ]
    assert "train" in dir(jaxrnn) and "decode" in dir(jaxrnn)


def test_the_scan_module_and_the_unroll_function_have_different_names():
    # The module used to be jaxrnn/unroll.py, shadowed by the function jaxrnn.unroll, so
    # jaxrnn.unroll.linear_scan (as the README wrote it) could not be reached.
    import jaxrnn.scan

    assert inspect.ismodule(jaxrnn.scan) and inspect.isfunction(jaxrnn.unroll)
    assert jaxrnn.linear_scan is jaxrnn.scan.linear_scan
    assert jaxrnn.unroll is jaxrnn.scan.unroll
