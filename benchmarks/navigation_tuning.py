"""Navigation: why the place cells are Gaussian by default. The moduli paper's
difference-of-Gaussians (DoG) target code against softmax-normalised Gaussian cells, for
the dense RNN of benchmarks/navigation.py (same size, epochs and learning rate; no
regularizer, no pruning), over several seeds; with each code's mean entropy on the test
positions, next to the largest possible (ln of the number of cells).

    .venv/bin/python benchmarks/navigation_tuning.py --workers 2

Runs are single-threaded and ``--workers`` run side by side; checkpoints are reused.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, add_navigation_args, md_table, mean_sd, reuse_note, train_navigation, write_report
from models.tasks import make_task

TUNINGS = ["dog", "gauss"]


def run_one(job: tuple) -> dict:
    path, tuning, seed, a = job
    reused = Path(path).exists()
    ck, sec = train_navigation(path, a, seed, {"tuning": tuning})
    return {"tuning": tuning, "seed": seed, "test": ck.metrics["test_position_error_cm"],
            "val": ck.metrics["val_position_error_cm"], "seconds": sec, "reused": reused}


def code_entropy(tuning: str) -> tuple[float, float, int]:
    """Mean entropy (nats) of the target code over the test positions, its largest possible
    value, and the number of place cells."""
    task = make_task("navigation", {"tuning": tuning})
    code = task.cells.code(task.load().test.y)
    entropy = -(code * code.clamp_min(1e-30).log()).sum(-1).mean()
    n = code.shape[-1]
    return float(entropy), math.log(n), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_navigation_args(ap)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "navigation_tuning")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "navigation_tuning.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    a = {"epochs": args.epochs, "lr": args.lr, "hidden": args.hidden}
    jobs = [(str(args.work / f"{t}-h{args.hidden}-e{args.epochs}-s{s}.pt"), t, s, a)
            for t in TUNINGS for s in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(run_one, jobs))
    table = []
    for t in TUNINGS:
        mine = [r for r in runs if r["tuning"] == t]
        entropy, top, n = code_entropy(t)
        test_m, test_sd = mean_sd([r["test"] for r in mine])
        val_m, _ = mean_sd([r["val"] for r in mine])
        table.append((t, f"{entropy:.2f} of {top:.2f}", f"{val_m:.2f}", f"{test_m:.2f} ± {test_sd:.2f}",
                      " / ".join(f"{r['test']:.2f}" for r in mine)))
    p = make_task("navigation").params
    body = (f"Dense RNN-{args.hidden} (relu, no bias, as navigation), {args.epochs} epochs of the {p.samples:,} seeded "
            f"walks ({p.seq_len} steps, {n} place cells), batch 200, lr {args.lr:g}, no regularizer and no pruning; seeds "
            f"{', '.join(map(str, args.seeds))}. Entropy: the target code's mean over the test positions, in nats, "
            f"of the largest possible (ln {n}: a uniform code).\n\n"
            + reuse_note(runs, args.work)
            + md_table(["place cells", "code entropy (nats)", "val error cm", "test error cm (mean ± sd)",
                        "test per seed"], table))
    write_report(args.out, "Navigation: Gaussian vs difference-of-Gaussians place cells",
                 "python " + " ".join(sys.argv), body, time.monotonic() - t0)


if __name__ == "__main__":
    main()
