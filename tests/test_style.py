"""House rules that a reader can check by eye, checked by a test so they hold."""

import ast
import pathlib

import jaxrnn

LIMIT = 80  # lines of code in one function, docstring, comments and blank lines excluded
PACKAGE = pathlib.Path(jaxrnn.__file__).parent
# Longer functions the project knows about, and why they stay for now. Shortening one fails
# the test until it leaves this list; a new one fails it until it is shortened or listed.
KNOWN: dict[str, str] = {}


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    """Lines of ``function`` that hold code: not blank, not only a comment, not its docstring
    (nested functions count towards the function that holds them)."""
    skip = set()
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    count = 0
    for number in range(function.lineno, function.end_lineno + 1):
        line = source[number - 1].strip()
        if number in skip or not line or line.startswith("#"):
            continue
        count += 1
    return count


def long_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = code_lines(node, lines)
                if n > LIMIT:
                    found.append(f"{path.relative_to(PACKAGE.parent).as_posix()} {node.name}")
    return found


def test_no_function_in_jaxrnn_is_longer_than_80_lines_of_code():
    assert sorted(long_functions()) == sorted(KNOWN)


def test_the_line_counter_skips_docstrings_comments_and_blank_lines():
    source = 'def f():\n    """Doc.\n\n    More."""\n    # why\n\n    x = 1\n    return x\n'
    (function,) = ast.parse(source).body
    assert code_lines(function, source.splitlines()) == 3  # def, x = 1, return x


def test_the_training_loop_reads_in_under_40_lines():
    # step -> maybe evaluate -> maybe save; everything else is a callback (issue 29).
    path = PACKAGE / "train" / "fit.py"
    source = path.read_text(encoding="utf-8")
    (loop,) = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef) and node.name == "loop"
    ]
    assert code_lines(loop, source.splitlines()) < 40
