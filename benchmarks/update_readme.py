"""Copy the tables the benchmark scripts wrote (benchmarks/results/NAME.md) into README.md,
between the markers ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``, so every
number in the README comes from a script's output file.

    .venv/bin/python benchmarks/update_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    results = ROOT / "benchmarks" / "results"
    for name in re.findall(r"<!-- results:([a-z0-9_]+) -->", text):
        src = results / f"{name}.md"
        if not src.exists():
            print(f"no {src.relative_to(ROOT)} yet; leaving {name} as is", file=sys.stderr)
            continue
        body = src.read_text().strip()
        block = f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"
        pattern = re.compile(rf"<!-- results:{name} -->.*?<!-- /results:{name} -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text = text.replace(f"<!-- results:{name} -->", block)
    readme.write_text(text)


if __name__ == "__main__":
    main()
