"""Character-level language modelling (bits per character) and the adding problem (MSE),
dense versus 90% and 98% recurrent sparsity, with and without the torus regularizer.

    .venv/bin/python benchmarks/charlm_adding.py [--text ../shared/datasets/text/kjv.txt.gz]
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
from models.tasks.adding import CONSTANT_PREDICTOR_MSE


def grid(sparsities: list[float]) -> list[tuple[str, float]]:
    out = [("none", 0.0)]
    for sp in sparsities:
        out += [("torus", sp), ("none", sp)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=str(SHARED / "text" / "kjv.txt.gz"))
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.98])
    ap.add_argument("--adding-len", type=int, default=100)
    ap.add_argument("--adding-epochs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "charlm_adding")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "charlm_adding.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    rows = []
    for space, sp in grid(args.sparsities):
        cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=2e-3,
                          regularizer=ModuliConfig(space=space, strength=args.strength if space != "none" else 0.0),
                          pruning=PruneSchedule(sparsity=sp))
        ck, sec = train_or_load(args.work / f"charlm-{space}-{sp:g}.pt", "charlm", {"data": args.text}, "lstm",
                                args.hidden, 1, cfg)
        rows.append(("dense" if sp == 0 else space, f"{sp:.0%}", f"{ck.metrics['test_bpc']:.3f}",
                     f"{ck.metrics['val_bpc']:.3f}", f"{sec / 60:.1f}"))
        print(rows[-1], file=sys.stderr)
    body = [f"charlm on `{Path(args.text).name}` (4.1 M characters, 63 symbols; last 5% test, 5% before it "
            f"validation): LSTM hidden {args.hidden}, embedding 32, windows of 100 characters, batch 64, "
            f"{args.epochs} epochs, Adam lr 2e-3 cosine, cubic magnitude schedule on weight_hh, torus strength "
            f"{args.strength:g}:\n\n"
            + md_table(["regularizer", "recurrent sparsity", "test bpc", "val bpc", "min / run"], rows)]

    rows = []
    for space, sp in grid([0.9]):
        # Constant lr 1e-3: with lr 2e-3 cosine the LSTM sat on the constant predictor's plateau
        # (val MSE 0.159 after 15 epochs); at constant 1e-3 it leaves it around epoch 10.
        cfg = TrainConfig(epochs=args.adding_epochs, batch_size=64, lr=1e-3, lr_schedule="constant",
                          regularizer=ModuliConfig(space=space, strength=args.strength if space != "none" else 0.0),
                          pruning=PruneSchedule(sparsity=sp))
        ck, sec = train_or_load(args.work / f"adding-{space}-{sp:g}.pt", "adding",
                                {"seq_len": args.adding_len, "samples": 20000}, "lstm", 128, 1, cfg)
        rows.append(("dense" if sp == 0 else space, f"{sp:.0%}", f"{ck.metrics['test_mse']:.4f}",
                     f"{sec / 60:.1f}"))
    body.append(f"Adding problem, length {args.adding_len}, 20 000 training sequences: LSTM hidden 128, "
                f"{args.adding_epochs} epochs, batch 64, Adam lr 1e-3 constant (with 2e-3 cosine it stayed on the "
                f"constant predictor's plateau). A constant predictor scores MSE "
                f"{CONSTANT_PREDICTOR_MSE:.3f}:\n\n"
                + md_table(["regularizer", "recurrent sparsity", "test MSE", "min / run"], rows))
    write_report(args.out, "Character LM and the adding problem", "python " + " ".join(sys.argv),
                 "\n\n".join(body), time.monotonic() - t0)


if __name__ == "__main__":
    main()
