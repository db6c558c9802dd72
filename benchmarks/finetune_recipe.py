"""Choosing the fine-tuning recipe after lattice pruning, on the VALIDATION split.

    .venv/bin/python benchmarks/finetune_recipe.py --workers 2

Same parents as benchmarks/lattice_pruning.py (90% torus-regularized LSTM 256, seeds 0-2),
lattice policy at its defaults, the headline's fine-tuning budget. Recipes: the parent's
magnitude masks kept or released (``--release-masks``), with or without distillation from
the parent (``--distill``). The recipe with the best mean validation accuracy is the one the
headline uses; test accuracy is shown for the record, not used to choose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, md_table, mean_sd, torus_parent, write_report

RECIPES = [  # (label, release_masks, distill)
    ("masks kept (default)", False, 0.0),
    ("masks released", True, 0.0),
    ("masks kept + distill", False, 0.9),
    ("masks released + distill", True, 0.9),
]


def job(args: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from compressor.prune import PruneConfig, prune_checkpoint
    from models.checkpoint import load_checkpoint
    from models.tasks import task_from_checkpoint

    parent, out, keep, release, distill, temperature, epochs, lr = args
    summary = Path(out).with_suffix(".json")
    if summary.exists():
        return json.loads(summary.read_text())
    ckpt = load_checkpoint(parent)
    task = task_from_checkpoint(ckpt.task)
    t0 = time.monotonic()
    res = prune_checkpoint(ckpt, PruneConfig(method="lattice", keep=keep, finetune_epochs=epochs, finetune_lr=lr,
                                             release_masks=release, distill=distill, distill_temperature=temperature),
                           task, task.load(), None)
    m = res.checkpoint.metrics
    row = {"keep": keep, "release": release, "distill": distill, "parent": Path(parent).name,
           "val": m["val_accuracy"], "test": m["test_accuracy"], "seconds": time.monotonic() - t0}
    summary.write_text(json.dumps(row))
    print(f"{Path(out).name}: val {row['val']:.4f} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keeps", type=int, nargs="+", default=[64], help="neurons kept (of 256)")
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parents", type=Path, default=ROOT / "runs" / "smnist")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "finetune_recipe")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_recipe.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    jobs = []
    for keep in args.keeps:
        for _, release, distill in RECIPES:
            for s in args.seeds:
                parent = torus_parent(args.parents, args.strength, s)
                name = f"k{keep}-{'rel' if release else 'kept'}-d{distill:g}-T{args.temperature:g}-s{s}.pt"
                jobs.append((str(parent), str(args.work / name), keep, release, distill, args.temperature,
                             args.finetune_epochs, args.finetune_lr))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(job, jobs))

    def cell(vals: list[float]) -> str:
        m, sd = mean_sd(vals)
        return f"{m * 100:.2f} ± {sd * 100:.2f}"

    table = []
    for keep in args.keeps:
        for label, release, distill in RECIPES:
            sel = [r for r in rows if r["keep"] == keep and r["release"] == release and r["distill"] == distill]
            table.append((keep, label, cell([r["val"] for r in sel]), cell([r["test"] for r in sel]),
                          f"{mean_sd([r['seconds'] for r in sel])[0]:.0f}"))
    body = (f"Lattice-pruned (defaults) from the 90% torus-regularized LSTM 256 parents, seeds {args.seeds}; "
            f"{args.finetune_epochs} fine-tuning epochs at lr {args.finetune_lr}; distillation weight 0.9 at "
            f"temperature {args.temperature:g}. Accuracy %, mean ± sd over seeds (**validation** chooses):\n\n"
            + md_table(["kept", "fine-tuning recipe", "val accuracy", "test accuracy", "s per run (1 thread)"],
                       table))
    write_report(args.out, "Choosing the fine-tuning recipe (validation split)", "python " + " ".join(sys.argv),
                 body, time.monotonic() - t0)


if __name__ == "__main__":
    main()
