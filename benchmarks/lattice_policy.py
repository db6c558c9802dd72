"""Choosing the lattice selection policy by measurement, on the VALIDATION split.

    .venv/bin/python benchmarks/lattice_policy.py --workers 2

Same parents, kept sizes and fine-tuning budget as benchmarks/lattice_pruning.py; each
candidate policy (relation quantile x centrality) is scored by mean validation accuracy
over seeds. The winner becomes the default; the test set is not looked at here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, md_table, mean_sd, torus_parent, write_report

CANDIDATES = [  # (quantile, centrality)
    (0.5, "degree"), (0.5, "out"), (0.5, "flow"), (0.9, "degree"), (0.97, "degree"), (0.97, "flow"),
    (0.5, "degree-norm"), (0.97, "degree-norm"),
]


def job(args: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from compressor.prune import PruneConfig, prune_checkpoint
    from models.checkpoint import load_checkpoint
    from models.tasks import task_from_checkpoint

    parent, out, q, centrality, keep, epochs, lr = args
    summary = Path(out).with_suffix(".json")
    if summary.exists():
        return json.loads(summary.read_text())
    ckpt = load_checkpoint(parent)
    task = task_from_checkpoint(ckpt.task)
    res = prune_checkpoint(ckpt, PruneConfig(method="lattice", keep=keep, quantile=q, centrality=centrality,
                                             finetune_epochs=epochs, finetune_lr=lr), task, task.load(), None)
    row = {"q": q, "centrality": centrality, "keep": keep, "parent": Path(parent).name,
           "val": res.checkpoint.metrics["val_accuracy"], "mi": res.report["layers"][0]["meet_irreducible"]}
    summary.write_text(json.dumps(row))
    print(f"{Path(out).name}: val {row['val']:.4f}", file=sys.stderr, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keeps", type=float, nargs="+", default=[0.25, 0.125])
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--finetune-lr", type=float, default=5e-4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parents", type=Path, default=ROOT / "runs" / "smnist")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "lattice_policy")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lattice_policy.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    jobs = []
    for keep in args.keeps:
        for q, c in CANDIDATES:
            for s in args.seeds:
                parent = torus_parent(args.parents, args.strength, s)
                jobs.append((str(parent), str(args.work / f"q{q:g}-{c}-{keep:g}-s{s}.pt"), q, c, keep,
                             args.finetune_epochs, args.finetune_lr))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(job, jobs))
    table = []
    for q, c in CANDIDATES:
        cells = []
        for keep in args.keeps:
            vals = [r["val"] for r in rows if r["q"] == q and r["centrality"] == c and r["keep"] == keep]
            m, sd = mean_sd(vals)
            cells.append(f"{m * 100:.2f} ± {sd * 100:.2f}")
        mi = sorted({r["mi"] for r in rows if r["q"] == q})
        table.append((f"{q:g}", c, f"{min(mi)}-{max(mi)}", *cells))
    body = (f"Lattice policy candidates on the parents of benchmarks/lattice_pruning.py (seeds {args.seeds}), "
            f"{args.finetune_epochs} fine-tuning epochs at lr {args.finetune_lr}; **validation** accuracy %, "
            f"mean ± sd over seeds:\n\n"
            + md_table(["relation quantile", "centrality", "meet-irreducible of 256",
                        *[f"keep {k:g}" for k in args.keeps]], table))
    write_report(args.out, "Choosing the lattice policy (validation split)", "python " + " ".join(sys.argv), body,
                 time.monotonic() - t0)


if __name__ == "__main__":
    main()
