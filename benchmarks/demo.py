"""Time the README's main command: the embedded default pipeline, end to end, into a fresh
folder, and record what its check stage measured.

    .venv/bin/python benchmarks/demo.py

This is `make demo` without the set-up: `rnncompress run --out DIR` with no pipeline file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, md_table, write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo.md")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("rnncompress")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        t0 = time.monotonic()
        done = subprocess.run([str(exe), "run", "--out", str(out), "-q"], cwd=ROOT)
        wall = time.monotonic() - t0
        if done.returncode != 0:
            sys.exit(f"rnncompress run exited {done.returncode}")
        checks = json.loads((out / "check" / "check.json").read_text())
    # The columns of the table `rnncompress run` prints (check/check.json holds the same rows).
    rows = []
    for c in checks:
        if c.get("applicable") is False:
            rows.append((c["model"], c["budget"], f"{c['comparison']} {c['limit']:.6g}", "-", "n/a", c.get("note", "")))
        else:
            rows.append((c["model"], c["budget"], f"{c['comparison']} {c['limit']:.6g}", f"{c['measured']:.6g}",
                         "pass" if c["passed"] else "FAIL", c["what"] + (f" ({c['note']})" if c.get("note") else "")))
    body = (f"`rnncompress run` on the embedded default pipeline (= `examples/navigation_torus.toml`): "
            f"train, prune, export, bench, check into a fresh folder took **{wall:.0f} s**. The budget table it "
            "prints (also in `check/check.json`):\n\n"
            + md_table(["model", "budget", "limit", "measured", "result", "what"], rows))
    write_report(args.out, "The main command (`make demo`)", "python benchmarks/demo.py", body, wall)


if __name__ == "__main__":
    main()
