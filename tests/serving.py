"""A serving process for the export tests: a fresh interpreter that runs a script with JAX
and NumPy, and fails if the script (or anything it imports) pulls in jaxrnn or experiments."""

import os
import subprocess
import sys
import textwrap


def run_without_jaxrnn(script: str, cwd) -> str:
    """Runs ``script`` in a fresh interpreter that must not import jaxrnn or experiments."""
    check = textwrap.dedent(
        """
        import sys
        assert not any(m.split(".")[0] in ("jaxrnn", "experiments") for m in sys.modules), (
            sorted(m for m in sys.modules if m.split(".")[0] in ("jaxrnn", "experiments")))
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script) + check],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
