"""Neuron pruning of the seq-MNIST LSTM: lattice (binary, continuous) vs norm vs random
at the same kept sizes and the same fine-tuning budget, over several seeds; plus `auto`
and a dense LSTM of the pruned size trained from scratch with the same total epochs.

    .venv/bin/python benchmarks/lattice_pruning.py --workers 2

Parents are the 90%-sparse torus-regularized LSTMs of benchmarks/smnist_moduli.py (trained
here if missing). Policies are compared on validation accuracy; test accuracy is reported.
``--methods`` picks the policies, the recipe options those of ``rnncompress prune``
(``--dense-teacher`` adds the dense model of the same seed as a further teacher), and
``--no-auto`` / ``--no-scratch`` drop the auto and from-scratch rows. Pruned models and
from-scratch models (named by their epochs) are reused from ``--work`` when present.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import (ROOT, SHARED, add_recipe_args, md_table, mean_sd, recipe, reuse_note, torus_parent,
                    train_or_load, write_report)

from compressor.prune import PruneConfig
from compressor.selection import kept_count

METHODS = {"lattice-binary": ("lattice", "binary"), "lattice-continuous": ("lattice", "continuous"),
           "norm": ("norm", "binary"), "random": ("random", "binary")}


def parent_config(a: dict, seed: int):
    from compressor.magnitude import PruneSchedule
    from compressor.moduli import ModuliConfig
    from compressor.training import TrainConfig

    return TrainConfig(epochs=a["epochs"], batch_size=128, lr=1e-3, seed=seed,
                       regularizer=ModuliConfig(space="torus", strength=a["strength"], seed=seed),
                       pruning=PruneSchedule(sparsity=0.9, schedule="cubic"))


def train_parent(job: tuple) -> str:
    import torch

    torch.set_num_threads(1)
    path, seed, a = job
    train_or_load(Path(path), "smnist", {"data": a["data"]}, "lstm", a["hidden"], 1, parent_config(a, seed), quiet=True)
    return path


def prune_one(job: tuple) -> dict:
    import json

    import torch

    torch.set_num_threads(1)
    from compressor.prune import PruneConfig, prune_checkpoint
    from models.checkpoint import load_checkpoint
    from models.tasks import task_from_checkpoint

    parent, out, method, variant, centrality, keep, seed, teacher, a = job
    policy = {"quantile": a["quantile"], "centrality": centrality} if method == "lattice" else {}
    out = Path(out)
    summary = out.with_suffix(".json")
    if summary.exists():  # (summaries written before rows named their centrality: it is the file's)
        return {**json.loads(summary.read_text()), "centrality": centrality if method == "lattice" else None,
                "reused": True}
    ckpt = load_checkpoint(parent)
    task = task_from_checkpoint(ckpt.task)
    data = task.load()
    t0 = time.monotonic()
    res = prune_checkpoint(ckpt, PruneConfig(method=method, variant=variant, keep=keep, seed=seed,
                                             finetune_epochs=a["finetune_epochs"], finetune_lr=a["finetune_lr"],
                                             release_masks=a["release_masks"], distill=a["distill"],
                                             distill_temperature=a["distill_temperature"],
                                             finetune_strength=a["finetune_strength"], **policy),
                           task, data, out, teachers=(load_checkpoint(teacher),) if teacher else ())
    m = res.checkpoint.metrics
    row = {"method": method, "variant": variant, "centrality": centrality if method == "lattice" else None,
           "keep": keep, "seed": seed,
           "kept": [l["after"] for l in res.report["layers"]],
           "mi": [l.get("meet_irreducible") for l in res.report["layers"]],
           "test": m["test_accuracy"], "val": m["val_accuracy"], "shrink_only": res.report["test_after_shrink"],
           "seconds": time.monotonic() - t0}
    summary.write_text(json.dumps(row))
    print(f"{out.name}: val {row['val']:.4f} test {row['test']:.4f}", file=sys.stderr, flush=True)
    return row


@functools.lru_cache(maxsize=None)
def kept_neurons(path: str) -> list[set[int]]:
    """Per layer, the parent's neurons a pruned checkpoint kept."""
    from models.checkpoint import load_checkpoint

    return [set(layer["kept_index"]) for layer in load_checkpoint(path).pruning["layers"]]


def scratch_one(job: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from compressor.training import TrainConfig

    path, hidden, seed, a = job
    cfg = TrainConfig(epochs=a["epochs"] + a["finetune_epochs"], batch_size=128, lr=1e-3, seed=seed)
    ck, sec = train_or_load(Path(path), "smnist", {"data": a["data"]}, "lstm", hidden, 1, cfg, quiet=True)
    return {"hidden": hidden, "seed": seed, "test": ck.metrics["test_accuracy"], "val": ck.metrics["val_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "mnist"))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keeps", type=float, nargs="+", default=[0.5, 0.25, 0.125])
    ap.add_argument("--quantile", type=float, default=PruneConfig.quantile,
                    help="lattice relation quantile (default: the library default, chosen by lattice_policy.py)")
    ap.add_argument("--centrality", nargs="+", default=[PruneConfig.centrality],
                    help="centralities of the lattice policy to compare (one row each)")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--finetune-lr", type=float, default=5e-4)
    add_recipe_args(ap, dense_teacher=False)
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    ap.add_argument("--auto", action=argparse.BooleanOptionalAction, default=True,
                    help="also keep exactly the meet-irreducible set (keep=auto)")
    ap.add_argument("--scratch", action=argparse.BooleanOptionalAction, default=True,
                    help="also train dense models of the pruned sizes from scratch (same total epochs)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parents", type=Path, default=ROOT / "runs" / "smnist")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "lattice")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lattice_pruning.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    a = {"data": args.data, "hidden": args.hidden, "epochs": args.epochs, "strength": args.strength,
         "quantile": args.quantile,
         "finetune_epochs": args.finetune_epochs, "finetune_lr": args.finetune_lr,
         "release_masks": args.release_masks, "distill": args.distill, "distill_temperature": args.distill_temperature,
         "finetune_strength": args.finetune_strength}
    recipe_tag, recipe_text = recipe(args)
    t0 = time.monotonic()
    parents = {s: str(torus_parent(args.parents, args.strength, s)) for s in args.seeds}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(train_parent, [(p, s, a) for s, p in parents.items()]))
        jobs = []
        teachers = {s: str(args.parents / f"dense-s{s}.pt") if args.distill and args.dense_teacher else None
                    for s in args.seeds}
        missing = [t for t in teachers.values() if t and not Path(t).exists()]
        if missing:
            sys.exit(f"--dense-teacher needs {missing[0]} (benchmarks/smnist_moduli.py --seeds ...)")
        policies = [(m, v, c if m == "lattice" else None) for key in args.methods for m, v in [METHODS[key]]
                    for c in (args.centrality if m == "lattice" else [None])]
        jobs = []
        for keep in args.keeps:
            for method, variant, c in policies:
                for s in args.seeds:
                    policy = f"-q{args.quantile:g}-{c}" if method == "lattice" else ""
                    name = f"{method}-{variant}{policy}-{keep:g}{recipe_tag}-s{s}.pt"
                    jobs.append((parents[s], str(args.work / name), method, variant, c, keep, s, teachers[s], a))
        c = args.centrality[0]
        for s in args.seeds if args.auto else []:
            jobs.append((parents[s], str(args.work / f"lattice-binary-q{args.quantile:g}-{c}-auto{recipe_tag}-s{s}.pt"),
                         "lattice", "binary", c, "auto", s, teachers[s], a))
        rows = list(pool.map(prune_one, jobs))
        for job, row in zip(jobs, rows):
            row["path"] = job[1]
        sizes = sorted({max(1, kept_count(k, args.hidden)) for k in args.keeps}, reverse=True)
        total = args.epochs + args.finetune_epochs
        scratch = list(pool.map(scratch_one, [(str(args.work / f"scratch-{h}-e{total}-s{s}.pt"), h, s, a)
                                               for h in sizes for s in args.seeds])) if args.scratch else []

    def cell(vals: list[float]) -> str:
        m, _ = mean_sd(vals)
        spread = (max(vals) - min(vals)) / 2 if len(vals) > 1 else 0.0
        return f"{m * 100:.2f} ± {spread * 100:.2f}"

    def shared_with_norm(sel: list[dict]) -> str:
        """Neurons each seed's selection shares with norm's at the same size, e.g. '105/100/104'."""
        out = []
        for r in sel:
            ref = [n for n in rows if n["method"] == "norm" and n["keep"] == r["keep"] and n["seed"] == r["seed"]]
            if r["method"] == "norm" or not ref:
                return "-"
            out.append(str(sum(len(a & b) for a, b in zip(kept_neurons(r["path"]), kept_neurons(ref[0]["path"])))))
        return "/".join(out)

    table = []
    for keep in args.keeps:
        h = max(1, kept_count(keep, args.hidden))
        for method, variant, c in policies:
            sel = [r for r in rows if r["keep"] == keep and r["method"] == method and r["variant"] == variant
                   and r["centrality"] == c]
            label = f"{method} ({variant}, q {args.quantile:g}, {c})" if method == "lattice" else method
            table.append((f"{keep:g} ({h})", label, cell([r["val"] for r in sel]), cell([r["test"] for r in sel]),
                          cell([r["shrink_only"] for r in sel]), shared_with_norm(sel)))
        sc = [r for r in scratch if r["hidden"] == h]
        if sc:
            table.append((f"{keep:g} ({h})", f"dense {h} from scratch ({total} epochs)",
                          cell([r["val"] for r in sc]), cell([r["test"] for r in sc]), "-", "-"))
    auto = [r for r in rows if r["keep"] == "auto"]
    if auto:
        table.append((f"auto ({'/'.join(str(r['kept'][0]) for r in auto)})", "lattice (binary), meet-irreducible set",
                      cell([r["val"] for r in auto]), cell([r["test"] for r in auto]),
                      cell([r["shrink_only"] for r in auto]), "-"))
    body = (f"Parents: LSTM {args.hidden}, torus regularizer (strength {args.strength:g}), 90% recurrent sparsity, "
            f"{args.epochs} epochs, seeds {args.seeds}. Each pruned model: {args.finetune_epochs} fine-tuning epochs "
            f"at lr {args.finetune_lr} ({recipe_text}). Accuracy % as mean ± half-range over seeds:\n\n"
            + reuse_note(rows, args.work, "pruned models")
            + md_table(["kept (neurons)", "policy", "val accuracy", "test accuracy", "test before fine-tuning",
                        "neurons shared with norm (per seed)"], table))
    title = ("Lattice pruning of the seq-MNIST LSTM"
             + (": " + " vs ".join(args.methods) if args.methods != list(METHODS) else "")
             + (f" (fine-tuning: {recipe_text})" if recipe_tag else ""))
    write_report(args.out, title, "python " + " ".join(sys.argv), body,
                 time.monotonic() - t0)


if __name__ == "__main__":
    main()
