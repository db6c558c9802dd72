"""Sequential-MNIST LSTM: dense, and 90% recurrent sparsity under every regularizer.

    .venv/bin/python benchmarks/smnist_moduli.py            # sweep strength, then the table
    .venv/bin/python benchmarks/smnist_moduli.py --strength 10   # no sweep: this strength

The regularizer strength is chosen once, on the validation split, with the torus (the
space under test) at a shorter budget, and then used for every space and control
(penalties are normalised to mean 1, so one strength means the same for all of them).
Checkpoints go to --work (reused when present, so an interrupted run continues).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, SHARED, md_table, train_or_load, write_report

from compressor.magnitude import PruneSchedule
from compressor.moduli import ModuliConfig
from compressor.training import TrainConfig

SPACES = ["torus", "klein", "circle", "sphere", "l1", "permuted", "none"]


def config(args, space: str, strength: float, sparsity: float, epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
        regularizer=ModuliConfig(space=space, strength=strength if space != "none" else 0.0, seed=seed),
        pruning=PruneSchedule(sparsity=sparsity, schedule="cubic"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "mnist"))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--strength", type=float, default=None, help="skip the sweep and use this strength")
    ap.add_argument("--sweep", type=float, nargs="+", default=[0.3, 3.0, 30.0])
    ap.add_argument("--sweep-epochs", type=int, default=4)
    ap.add_argument("--spaces", nargs="+", default=SPACES)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "smnist")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smnist_moduli.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    task = {"data": args.data}
    t_start = time.monotonic()
    body = []

    strength = args.strength
    if strength is None:
        rows = []
        for s in args.sweep:
            ck, sec = train_or_load(args.work / f"sweep-torus-{s:g}.pt", "smnist", task, "lstm", args.hidden, 1,
                                    config(args, "torus", s, args.sparsity, args.sweep_epochs, 0))
            rows.append((s, ck.metrics["val_accuracy"], sec))
        strength = max(rows, key=lambda r: r[1])[0]
        body.append(f"Strength sweep (torus, {args.sparsity:.0%} sparsity, {args.sweep_epochs} epochs, seed 0; "
                    f"chosen on validation accuracy: **{strength:g}**):\n\n"
                    + md_table(["strength", "val accuracy", "wall s"], [(f"{s:g}", f"{v:.4f}", f"{t:.0f}") for s, v, t in rows]))

    rows = []
    runs = [("dense", "none", 0.0)] + [(sp, sp, args.sparsity) for sp in args.spaces]
    for label, space, sparsity in runs:
        accs, vals, secs = [], [], []
        for seed in args.seeds:
            name = f"{label}-s{seed}.pt" if label == "dense" else f"{label}-{sparsity:g}-{strength:g}-s{seed}.pt"
            ck, sec = train_or_load(args.work / name, "smnist", task, "lstm", args.hidden, 1,
                                    config(args, space, strength, sparsity, args.epochs, seed))
            accs.append(ck.metrics["test_accuracy"])
            vals.append(ck.metrics["val_accuracy"])
            secs.append(sec)
            print(f"{label}: seed {seed} test {accs[-1]:.4f}", file=sys.stderr)
        mean = sum(accs) / len(accs)
        spread = f" ± {(max(accs) - min(accs)) / 2 * 100:.2f}" if len(accs) > 1 else ""
        rows.append((label, f"{sparsity:.0%}", f"{mean * 100:.2f}{spread}", f"{sum(vals) / len(vals) * 100:.2f}",
                     len(accs), f"{sum(secs) / len(secs) / 60:.1f}"))
    body.append(f"LSTM hidden {args.hidden}, {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr} "
                f"cosine, cubic magnitude schedule on weight_hh (10%->70% of training), inverted-DoG penalty, "
                f"strength {strength:g}:\n\n"
                + md_table(["regularizer", "recurrent sparsity", "test accuracy %", "val accuracy %", "seeds",
                            "min / run"], rows))
    write_report(args.out, "Sequential MNIST: moduli regularization at 90% recurrent sparsity",
                 "python " + " ".join(sys.argv), "\n\n".join(body), time.monotonic() - t_start)


if __name__ == "__main__":
    main()
