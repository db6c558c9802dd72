"""Static check of every source folder with pyflakes: unused imports, undefined names,
shadowed definitions. Each is a bug or dead code; the suite keeps them from landing."""

from __future__ import annotations

import io
from pathlib import Path

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["models", "compressor", "exporters", "runtime", "cli", "benchmarks", "examples", "tests"]


def test_no_pyflakes_warnings():
    out, err = io.StringIO(), io.StringIO()
    count = checkRecursive([str(ROOT / f) for f in FOLDERS if (ROOT / f).is_dir()], Reporter(out, err))
    assert count == 0 and not err.getvalue(), out.getvalue() + err.getvalue()
