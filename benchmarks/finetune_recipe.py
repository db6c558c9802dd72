"""Choosing the fine-tuning recipe after lattice pruning, on the VALIDATION split.

    .venv/bin/python benchmarks/finetune_recipe.py --workers 2
    .venv/bin/python benchmarks/finetune_recipe.py --task navigation

seq-MNIST: the parents of benchmarks/lattice_pruning.py (90% torus-regularized LSTM 256,
seeds 0-2), the headline's fine-tuning budget. navigation: the 90% torus-regularized RNN-256
parents of benchmarks/navigation.py (seeds 0-2), the default pipeline's budget. Lattice
policy at its defaults. Recipes: the parent's
magnitude masks kept or released (``--release-masks``), with or without distillation from
the parent (``--distill``), with the parent's regularizer strength or none
(``--finetune-strength 0``), and (``--recipes rel+d2 ...``) the dense model of the same
seed as a further teacher (``--teacher``). The recipe with the best mean validation metric is the one the
headline (seq-MNIST) and the default pipeline (navigation) use; the test metric is shown for
the record, not used to choose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, md_table, mean_sd, reuse_note, torus_parent, write_report

TASKS = {  # task -> (parents, torus strength of the parents, neurons kept, display scale, unit)
    "smnist": (ROOT / "runs" / "smnist", 3.0, 64, 100.0, "accuracy %"),
    "navigation": (ROOT / "runs" / "navigation", 30.0, 64, 1.0, "position error cm"),
}

RECIPES = {  # key -> (label, release_masks, distill, fine-tuning regularizer strength (None = the parent's),
    #                 the dense model of the same seed as a further teacher)
    "kept": ("masks kept (default)", False, 0.0, None, False),
    "rel": ("masks released", True, 0.0, None, False),
    "kept+d": ("masks kept + distill", False, 0.9, None, False),
    "rel+d": ("masks released + distill", True, 0.9, None, False),
    "kept+off": ("masks kept, regularizer off", False, 0.0, 0.0, False),
    "rel+off": ("masks released, regularizer off", True, 0.0, 0.0, False),
    "rel+d+off": ("masks released + distill, regularizer off", True, 0.9, 0.0, False),
    "rel+d2": ("masks released + distill from parent and dense model", True, 0.9, None, True),
    "rel+d2+off": ("masks released + distill from parent and dense model, regularizer off", True, 0.9, 0.0, True),
}
DEFAULT_RECIPES = ["kept", "rel", "kept+d", "rel+d", "rel+off", "rel+d+off"]


def job(args: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from compressor.prune import PruneConfig, prune_checkpoint
    from models.checkpoint import load_checkpoint
    from models.tasks import task_from_checkpoint

    parent, out, keep, release, distill, temperature, strength, dense_teacher, epochs, lr = args
    summary = Path(out).with_suffix(".json")
    if summary.exists():
        return {**json.loads(summary.read_text()), "reused": True}
    ckpt = load_checkpoint(parent)
    teachers = (load_checkpoint(dense_teacher),) if dense_teacher else ()
    task = task_from_checkpoint(ckpt.task)
    t0 = time.monotonic()
    res = prune_checkpoint(ckpt, PruneConfig(method="lattice", keep=keep, finetune_epochs=epochs, finetune_lr=lr,
                                             release_masks=release, distill=distill, distill_temperature=temperature,
                                             finetune_strength=strength),
                           task, task.load(), None, teachers=teachers)
    m = res.checkpoint.metrics
    row = {"keep": keep, "release": release, "distill": distill, "strength": strength,
           "dense_teacher": bool(dense_teacher), "parent": Path(parent).name,
           "metric": m["metric"], "higher_is_better": m["higher_is_better"],
           "val": m[f"val_{m['metric']}"], "test": m[f"test_{m['metric']}"], "seconds": time.monotonic() - t0}
    summary.write_text(json.dumps(row))
    print(f"{Path(out).name}: val {row['metric']} {row['val']:.4f} ({row['seconds']:.0f} s)", file=sys.stderr,
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--task", choices=sorted(TASKS), default="smnist")
    ap.add_argument("--keeps", type=int, nargs="+", default=None, help="neurons kept (of 256; default 64)")
    ap.add_argument("--strength", type=float, default=None, help="torus strength of the parents (default: the "
                                                                  "one their benchmark chose)")
    ap.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=DEFAULT_RECIPES,
                    help="recipes to run (the +d2 ones need dense-sSEED.pt beside the parents)")
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parents", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    parents, strength, keep, scale, unit = TASKS[args.task]
    suffix = "" if args.task == "smnist" else f"_{args.task}"
    args.parents = args.parents or parents
    args.strength = strength if args.strength is None else args.strength
    args.keeps = args.keeps or [keep]
    args.work = args.work or ROOT / "runs" / f"finetune_recipe{suffix}"
    args.out = args.out or ROOT / "benchmarks" / "results" / f"finetune_recipe{suffix}.md"
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    jobs = []
    for keep in args.keeps:
        for key in args.recipes:
            _, release, distill, strength, dense = RECIPES[key]
            for s in args.seeds:
                parent = torus_parent(args.parents, args.strength, s)
                teacher = args.parents / f"dense-s{s}.pt" if dense else None
                if teacher is not None and not teacher.exists():
                    sys.exit(f"recipe {key} needs the dense model {teacher} (benchmarks/smnist_moduli.py --seeds ...)")
                reg = "" if strength is None else f"-str{strength:g}"
                tag = f"{reg}{'-dense' if dense else ''}"
                name = f"k{keep}-{'rel' if release else 'kept'}-d{distill:g}-T{args.temperature:g}{tag}-s{s}.pt"
                jobs.append((str(parent), str(args.work / name), keep, release, distill, args.temperature, strength,
                             str(teacher) if teacher else None, args.finetune_epochs, args.finetune_lr))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(job, jobs))

    def cell(vals: list[float]) -> str:
        m, sd = mean_sd(vals)
        return f"{m * scale:.2f} ± {sd * scale:.2f}"

    table = []
    for keep in args.keeps:
        for key in args.recipes:
            label, release, distill, strength, dense = RECIPES[key]
            sel = [r for r in rows if r["keep"] == keep and r["release"] == release and r["distill"] == distill
                   and r.get("strength") == strength and r.get("dense_teacher", False) == dense]
            table.append((keep, label, cell([r["val"] for r in sel]), cell([r["test"] for r in sel]),
                          f"{mean_sd([r['seconds'] for r in sel])[0]:.0f}"))
    model = "LSTM 256" if args.task == "smnist" else "RNN 256"
    body = (f"Lattice-pruned (defaults) from the 90% torus-regularized (strength {args.strength:g}) {model} "
            f"parents, seeds {args.seeds}; {args.finetune_epochs} fine-tuning epochs at lr {args.finetune_lr}; "
            f"distillation weight 0.9 at temperature {args.temperature:g}; regularizer off = strength 0 while "
            f"fine-tuning (`--finetune-strength 0`), otherwise the parent's; \"parent and dense model\": the "
            f"dense model of the same seed as a further teacher (`--teacher`), the target the mean of both "
            f"models' logits. {unit[0].upper() + unit[1:]}, "
            f"mean ± sd over seeds (**validation** chooses):\n\n"
            + reuse_note(rows, args.work)
            + md_table(["kept", "fine-tuning recipe", f"val {unit}", f"test {unit}", "s per run (1 thread)"],
                       table))
    kept = " and ".join(str(k) for k in args.keeps)
    task = {"smnist": "seq-MNIST"}.get(args.task, args.task)
    title = f"Choosing the fine-tuning recipe (validation split): {task}, {kept} of 256 neurons kept"
    write_report(args.out, title, "python " + " ".join(sys.argv), body, time.monotonic() - t0)


if __name__ == "__main__":
    main()
