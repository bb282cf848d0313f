"""The code stays readable: no function of the library, the dashboard helpers or the pages is
longer than a screen, except the Numba kernels (whose loops stay whole for the compiler)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60


def _long_functions():
    for path in sorted([*REPO.glob("ljvae_core/*.py"), *REPO.glob("ljvae_ui/*.py"),
                        *REPO.glob("app_pages/*.py"), REPO / "app.py"]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            kernel = any("njit" in ast.unparse(d) for d in node.decorator_list)
            length = node.end_lineno - node.lineno + 1
            if length > MAX_LINES and not kernel:
                yield f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)"


def test_no_function_is_longer_than_a_screen():
    assert list(_long_functions()) == []
