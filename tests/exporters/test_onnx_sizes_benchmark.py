"""benchmarks/onnx_sizes.py runs on tiny checkpoints and prints the size table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_onnx_sizes_table(make_model, make_checkpoint, tmp_path):
    dense = make_checkpoint(make_model("lstm", (24,), 0.0), name="dense")
    sparse = make_checkpoint(make_model("lstm", (24,), 0.9), name="sparse")
    shrunk = make_checkpoint(make_model("lstm", (8,), 0.9), name="shrunk")
    out = tmp_path / "sizes.md"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "onnx_sizes.py"), "--dense", str(dense),
                        "--sparse", str(sparse), "--shrunk", str(shrunk), "--quiet", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "| checkpoint | model |" in text and "Machine:" in text
    assert text.count("| dense (`dense.pt`)") == 1 and "shrunk (`shrunk.pt`)" in text
    assert "Goal (shrunk + sparse/int8 at most 1/20 of dense)" in text
