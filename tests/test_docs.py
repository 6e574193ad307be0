"""The documentation site builds in strict mode and documents every public name."""

import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = (
    "jaxrnn",
    "jaxrnn.train",
    "jaxrnn.text",
    "jaxrnn.decode",
    "jaxrnn.distributed",
    "jaxrnn.time_sharding",
    "jaxrnn.launch",
    "jaxrnn.nnx",
    "jaxrnn.linen",
    "jaxrnn.export",
    "jaxrnn.portable",
    "jaxrnn.strategy",
    "jaxrnn.steps",
    "jaxrnn.parallel",
    "jaxrnn.checks",
    "jaxrnn.files",
)


def public_names(module_name):
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if not inspect.ismodule(obj):
            yield name, obj
    if module_name == "jaxrnn":
        for name in ("from_torch", "from_flax", "to_flax"):
            yield f"interop.{name}", getattr(module.interop, name)


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring_and_every_function_an_example(module_name):
    missing = []
    for name, obj in public_names(module_name):
        doc = inspect.getdoc(obj) or ""
        if not doc or (inspect.isfunction(obj) and ("Examples:" not in doc or ">>>" not in doc)):
            missing.append(name)
    assert not missing, f"{module_name}: without a docstring or an example: {missing}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return site_dir


def test_the_site_builds_in_strict_mode_with_every_page(site):
    pages = {p.relative_to(site).parent.as_posix() for p in site.rglob("index.html")}
    for page in ("api/cells", "api/train", "guide", "benchmarks", "notebooks/05_seq2seq"):
        assert page in pages, sorted(pages)


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_an_entry_in_the_api_reference(site, module_name):
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("index.html"))
    ids = set(re.findall(r'id="(jaxrnn[\w.]*)"', html))
    documented = {anchor.rsplit(".", 1)[-1] for anchor in ids}
    absent = [
        name for name, _ in public_names(module_name) if name.split(".")[-1] not in documented
    ]
    assert not absent, f"not in the API reference: {absent}"
