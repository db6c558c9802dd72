"""Character-level language modelling (bits per character) and the adding problem (MSE),
dense versus 90% and 98% recurrent sparsity, with and without the torus regularizer.

    .venv/bin/python benchmarks/charlm_adding.py [--text ../shared/datasets/text/kjv.txt.gz]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, SHARED, md_table, mean_sd, reuse_note, train_or_load, write_report

from compressor.magnitude import PruneSchedule
from compressor.moduli import ModuliConfig
from compressor.training import TrainConfig
from models.tasks.adding import CONSTANT_PREDICTOR_MSE


def grid(sparsities: list[float]) -> list[tuple[str, float]]:
    out = [("none", 0.0)]
    for sp in sparsities:
        out += [("torus", sp), ("none", sp)]
    return out


def run_one(job: tuple) -> tuple:
    """Train (or reuse) one run in a worker of one thread; returns its key, metrics and time."""
    import torch

    torch.set_num_threads(1)
    task, path, space, sp, seed, a = job
    reg = ModuliConfig(space=space, strength=a["strength"] if space != "none" else 0.0, seed=seed)
    if task == "charlm":
        cfg = TrainConfig(epochs=a["epochs"], batch_size=64, lr=2e-3, seed=seed, regularizer=reg,
                          pruning=PruneSchedule(sparsity=sp))
        params = {"data": a["text"]}
    else:
        # Constant lr 1e-3: with lr 2e-3 cosine the LSTM sat on the constant predictor's plateau
        # (val MSE 0.159 after 15 epochs); at constant 1e-3 it leaves it around epoch 10.
        cfg = TrainConfig(epochs=a["adding_epochs"], batch_size=64, lr=1e-3, lr_schedule="constant", seed=seed,
                          regularizer=reg, pruning=PruneSchedule(sparsity=sp))
        params = {"seq_len": a["adding_len"], "samples": 20000}
    ck, sec = train_or_load(Path(path), task, params, "lstm", a["hidden"], 1, cfg, quiet=True)
    metric = "bpc" if task == "charlm" else "mse"
    test, val = ck.metrics[f"test_{metric}"], ck.metrics[f"val_{metric}"]
    print(f"{Path(path).name}: test {metric} {test:.4f} ({sec / 60:.1f} min)", file=sys.stderr, flush=True)
    return task, space, sp, seed, test, val, sec


def rows_of(results: list[tuple], task: str, digits: int) -> list[tuple]:
    by: dict[tuple, list] = {}
    for t, space, sp, seed, test, val, sec in results:
        if t == task:
            by.setdefault(("dense" if sp == 0 else space, sp), []).append((test, val, sec))
    rows = []
    for (label, sp), vals in by.items():
        (tm, ts), (vm, vs) = mean_sd([v[0] for v in vals]), mean_sd([v[1] for v in vals])
        rows.append((label, f"{sp:.0%}", f"{tm:.{digits}f} ± {ts:.{digits}f}",
                     " / ".join(f"{v[0]:.{digits}f}" for v in vals), f"{vm:.{digits}f} ± {vs:.{digits}f}",
                     f"{sum(v[2] for v in vals) / len(vals) / 60:.1f}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=str(SHARED / "text" / "kjv.txt.gz"))
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.98])
    ap.add_argument("--adding-len", type=int, default=100)
    ap.add_argument("--adding-epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2, help="parallel runs, one thread each")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "charlm_adding")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "charlm_adding.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    a = {"text": args.text, "hidden": args.hidden, "epochs": args.epochs, "strength": args.strength,
         "adding_len": args.adding_len, "adding_epochs": args.adding_epochs}
    jobs = []
    for task, sparsities in (("charlm", args.sparsities), ("adding", [0.9])):
        for space, sp in grid(sparsities):
            for seed in args.seeds:
                name = f"{task}-{space}-{sp:g}" + (f"-s{seed}" if seed else "") + ".pt"
                jobs.append((task, str(args.work / name), space, sp, seed, a))
    reused = [Path(j[1]).exists() for j in jobs]  # train_or_load reuses a finished checkpoint
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run_one, jobs))
    runs = [{"reused": r, **({"seconds": res[-1]} if math.isfinite(res[-1]) else {})}
            for r, res in zip(reused, results)]
    seeds = f"mean ± sd over seeds {args.seeds}"
    body = [reuse_note(runs, args.work).rstrip()] if any(reused) else []
    body += [f"charlm on `{Path(args.text).name}` (4.1 M characters, 63 symbols; last 5% test, 5% before it "
            f"validation): LSTM hidden {args.hidden}, embedding 32, windows of 100 characters, batch 64, "
            f"{args.epochs} epochs, Adam lr 2e-3 cosine, cubic magnitude schedule on weight_hh, torus strength "
            f"{args.strength:g}; bits per character, {seeds}:\n\n"
            + md_table(["regularizer", "recurrent sparsity", "test bpc", "per seed", "val bpc", "min / run"],
                       rows_of(results, "charlm", 3))]
    body.append(f"Adding problem, length {args.adding_len}, 20 000 training sequences: LSTM hidden {args.hidden}, "
                f"{args.adding_epochs} epochs, batch 64, Adam lr 1e-3 constant (with 2e-3 cosine it stayed on the "
                f"constant predictor's plateau). A constant predictor scores MSE "
                f"{CONSTANT_PREDICTOR_MSE:.3f}; {seeds}:\n\n"
                + md_table(["regularizer", "recurrent sparsity", "test MSE", "per seed", "val MSE", "min / run"],
                           rows_of(results, "adding", 4)))
    write_report(args.out, "Character LM and the adding problem", "python " + " ".join(sys.argv),
                 "\n\n".join(body), time.monotonic() - t0)


if __name__ == "__main__":
    main()
