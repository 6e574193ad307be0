"""The package builds into a wheel and an sdist that PyPI would accept, holding the library only."""

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import jaxrnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    # Build from a copy, so that build/ and *.egg-info never appear in the working tree.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(os.path.join(ROOT, name), source)
    shutil.copytree(
        os.path.join(ROOT, "jaxrnn"),
        source / "jaxrnn",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return out


def test_twine_accepts_the_wheel_and_the_sdist(dist):
    files = sorted(str(p) for p in dist.iterdir())
    assert sorted(os.path.splitext(f)[1] for f in files) == [".gz", ".whl"]
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_wheel_holds_the_typed_library_its_licence_and_lean_dependencies(dist):
    (wheel,) = dist.glob("*.whl")
    info = f"jaxrnn-{jaxrnn.__version__}.dist-info"  # the version is written once, in pyproject
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = email.message_from_bytes(zf.read(f"{info}/METADATA"))
    assert "jaxrnn/py.typed" in names
    assert f"{info}/licenses/LICENSE" in names
    assert {n.split("/")[0] for n in names} == {"jaxrnn", info}
    assert metadata["License-Expression"] == "Apache-2.0"
    required = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    # Only what jaxrnn/ imports: flax and chex are for the tests.
    assert sorted(re.match(r"[\w-]+", r).group(0) for r in required) == [
        "jax",
        "jaxlib",
        "numpy",
        "optax",
        "orbax-checkpoint",
        "tqdm",
    ]


def test_the_sdist_holds_no_tests_that_could_not_run_from_it(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        top = {name.split("/")[1] for name in tf.getnames() if "/" in name}
    assert "tests" not in top and "experiments" not in top
    assert {"jaxrnn", "LICENSE", "README.md", "pyproject.toml"} <= top


def test_the_long_description_has_no_links_that_break_on_pypi():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    relative = re.findall(r"\]\((?!https?://|#)([^)]+)\)", readme)
    assert not relative, f"relative links break on PyPI: {relative}"
