"""ONNX file sizes: dense, sparse, int8 and the best combination, per checkpoint.

    .venv/bin/python benchmarks/onnx_sizes.py --dense runs/smnist/dense.pt \\
        --sparse runs/smnist/torus90.pt --shrunk runs/smnist/torus90-shrunk.pt --out benchmarks/results/onnx_sizes.md

Any subset of --dense / --sparse / --shrunk (or --extra LABEL=PATH, repeatable). Each
checkpoint is exported (and verified, as ``rnncompress export`` does) to dense, sparse,
int8 and int8+sparse in a temporary directory; the table gives the bytes of each, the
smallest, and its ratio to the dense checkpoint's dense file (or to the checkpoint's own
dense file when --dense is not given). The README goal: shrunk + sparse (+ int8) at most
1/20 of the dense file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import md_table, machine, write_report

from exporters.export import ExportOptions, export_checkpoint
from models.checkpoint import load_checkpoint
from models.progress import Progress
from models.sequence import count_parameters

FORMATS = ["dense", "sparse", "int8", "int8+sparse"]
GOAL = 20


def measure(label: str, path: Path, verify_data: str, quiet: bool) -> dict:
    ckpt = load_checkpoint(path)
    model = ckpt.build_model()
    with tempfile.TemporaryDirectory(prefix="onnx-sizes-") as d:
        results = export_checkpoint(ckpt, FORMATS, d, name=label, options=ExportOptions(verify_data=verify_data),
                                    progress=Progress(enabled=not quiet))
    sizes = {r.format: r.bytes for r in results}
    best = min(sizes, key=lambda f: (sizes[f], FORMATS.index(f)))
    int8 = next(r for r in results if r.format == "int8")
    return {"label": label, "path": path, "config": ckpt.config, "params": count_parameters(model),
            "nonzero": count_parameters(model, nonzero=True), "sizes": sizes, "best": best,
            "int8_metric": int8.parity.detail or int8.parity.describe()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", type=Path, help="the dense (unpruned) checkpoint: the size reference")
    ap.add_argument("--sparse", type=Path, help="a magnitude-pruned (e.g. 90%% moduli-sparse) checkpoint")
    ap.add_argument("--shrunk", type=Path, help="a lattice-shrunk checkpoint")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=PATH", help="more checkpoints")
    ap.add_argument("--verify-data", choices=["task", "random"], default="task",
                    help="verify on the task's test data (default) or on random inputs only")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    runs = [(label, p) for label, p in (("dense", args.dense), ("sparse", args.sparse), ("shrunk", args.shrunk)) if p]
    for item in args.extra:
        label, sep, p = item.partition("=")
        if not sep or not label or not p:
            ap.error(f"--extra must be LABEL=PATH. Got {item!r} instead.")
        runs.append((label, Path(p)))
    if not runs:
        ap.error("give at least one of --dense, --sparse, --shrunk, --extra")
    t0 = time.monotonic()
    rows_data = [measure(label, path, args.verify_data, args.quiet) for label, path in runs]
    reference = next((r["sizes"]["dense"] for r in rows_data if r["label"] == "dense"), None)
    header = ["checkpoint", "model", "params (nonzero)", "dense", "sparse", "int8", "int8+sparse", "best",
              "best / dense", "int8 metric (vs torch)"]
    rows = []
    for r in rows_data:
        c, s = r["config"], r["sizes"]
        ref = reference or s["dense"]
        model = f"{c.cell} {'x'.join(str(h) for h in c.hidden_sizes)}"
        rows.append([f"{r['label']} (`{r['path'].name}`)", model, f"{r['params']:,} ({r['nonzero']:,})",
                     f"{s['dense']:,}", f"{s['sparse']:,}", f"{s['int8']:,}", f"{s['int8+sparse']:,}",
                     f"{r['best']} {s[r['best']]:,}", f"1/{ref / s[r['best']]:.1f}", r["int8_metric"]])
    notes = [f"Bytes of each ONNX file (opset 17, IR 8), every file verified against torch "
             f"({'task test data + random inputs' if args.verify_data == 'task' else 'random inputs only'}). "
             f"Ratios are to the {'dense checkpoint' if reference else 'same checkpoint'}'s dense file."]
    shrunk = next((r for r in rows_data if r["label"] == "shrunk"), None)
    if shrunk and reference:
        ratio = reference / shrunk["sizes"][shrunk["best"]]
        verdict = "met" if ratio >= GOAL else "not met"
        notes.append(f"Goal (shrunk + sparse/int8 at most 1/{GOAL} of dense): {verdict} (1/{ratio:.1f}).")
    body = md_table(header, rows) + "\n\n" + "\n".join(notes)
    wall = time.monotonic() - t0
    command = "python benchmarks/onnx_sizes.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.out:
        write_report(args.out, "ONNX file sizes", command, body, wall)
    else:
        print(f"## ONNX file sizes\n\n`{command}`\n\nMachine: {machine()}.\n\n{body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
