"""The folders are the architecture: models -> compressor -> exporters -> runtime, cli on top.
A lower package never imports a higher one (also not lazily, inside a function), so each
layer can be used and tested without the ones above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["models", "compressor", "exporters", "runtime", "cli"]


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_no_package_imports_a_higher_one(package: str) -> None:
    higher = set(LAYERS[LAYERS.index(package) + 1:])
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    wrong = [f"{f.relative_to(ROOT)}:{line} imports {module}" for f in files
             for line, module in _imports(f) if module.split(".")[0] in higher]
    assert not wrong, "\n".join(wrong)
