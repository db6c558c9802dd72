"""The headline's accuracy comparison over several seeds: is the lattice-shrunk (+ int8)
seq-MNIST LSTM as accurate as onnxruntime's int8 quantization of the dense model, which is
what a user would pick instead?

    .venv/bin/python benchmarks/headline_seeds.py

The headline table (benchmarks/headline.py) measures latency and accuracy in one run of one
seed; latency does not depend on the seed (same shapes, same kernels), accuracy does. Here,
for every seed: the dense LSTM-256 and the 90% torus-regularized LSTM-256 of
benchmarks/smnist_moduli.py (trained if missing), the int8-only model of the dense one, and
the lattice-shrunk models of the sparse one (same policy and fine-tuning recipe as the
headline), each exported with verification and scored on the seq-MNIST test set from
onnxruntime's outputs. Seed 0 reuses the headline's checkpoints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from common import (HEADLINE_CENTRALITY, HEADLINE_RECIPE, ROOT, SHARED, add_recipe_args, md_table, recipe,
                    shrink_config, shrink_teachers, shrunk_path, torus_parent, train_or_load, write_report)
from smnist_moduli import config as smnist_config

from compressor.prune import prune_checkpoint
from exporters.export import export_checkpoint
from exporters.verify import evaluate_onnx, make_session
from models.checkpoint import load_checkpoint
from models.progress import Progress
from models.tasks import task_from_checkpoint


def onnx_accuracy(path: Path, task, test) -> float:
    return evaluate_onnx(make_session(path), task, test)["accuracy"]


def cell(values: list[float]) -> str:
    """Mean ± half-range in percent."""
    mean = statistics.fmean(values) * 100
    return f"{mean:.2f} ± {(max(values) - min(values)) / 2 * 100:.2f}" if len(values) > 1 else f"{mean:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--keep", type=int, nargs="+", default=[64, 128], help="neurons kept by the lattice policy")
    ap.add_argument("--strength", type=float, default=3.0, help="torus strength of the sparse parents")
    ap.add_argument("--epochs", type=int, default=12, help="training epochs of the parents")
    ap.add_argument("--centrality", default=HEADLINE_CENTRALITY)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    add_recipe_args(ap, **HEADLINE_RECIPE)
    ap.add_argument("--parents", type=Path, default=ROOT / "runs" / "smnist")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "headline")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "headline_seeds.md")
    args = ap.parse_args()
    t0 = time.monotonic()
    onnx_dir = args.work / "seeds-onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    recipe_tag, recipe_text = recipe(args)
    train_args = argparse.Namespace(batch_size=128, lr=1e-3)  # benchmarks/smnist_moduli.py's defaults
    columns = {"dense LSTM-256 (fp32)": [], "int8 only": []}
    for keep in args.keep:
        columns[f"shrunk to {keep}"] = []
        columns[f"shrunk to {keep} + int8"] = []
    mnist = {"data": str(SHARED / "mnist")}  # as benchmarks/smnist_moduli.py trains them
    val: dict[int, list[float]] = {keep: [] for keep in args.keep}  # shrunk models' validation accuracy
    task = data = test = None

    def parent(path: Path, space: str, sparsity: float, seed: int):
        """An LSTM-256 parent of benchmarks/smnist_moduli.py, trained here if missing."""
        config = smnist_config(train_args, space, args.strength, sparsity, args.epochs, seed)
        return train_or_load(path, "smnist", mnist, "lstm", 256, 1, config)[0]

    for seed in args.seeds:
        dense = parent(args.parents / f"dense-s{seed}.pt", "none", 0.0, seed)
        sparse = parent(torus_parent(args.parents, args.strength, seed), "torus", 0.9, seed)
        if task is None:
            task = task_from_checkpoint(sparse.task)
            data = task.load()
            test = data.test
        export_checkpoint(dense, "int8", onnx_dir, name=f"dense-s{seed}", force=True)
        columns["dense LSTM-256 (fp32)"].append(dense.metrics["test_accuracy"])
        columns["int8 only"].append(onnx_accuracy(onnx_dir / f"dense-s{seed}.int8.onnx", task, test))
        for keep in args.keep:
            path = shrunk_path(args.work, keep, args.centrality, args.finetune_epochs, recipe_tag, seed)
            if not path.exists():
                prune_checkpoint(sparse, shrink_config(args, keep), task, data, path, Progress(interval=30.0),
                                 teachers=shrink_teachers(args, dense))
            shrunk = load_checkpoint(path)
            val[keep].append(shrunk.metrics["val_accuracy"])
            stem = f"shrunk{keep}-s{seed}"
            export_checkpoint(shrunk, "dense,int8", onnx_dir, name=stem, force=True)
            columns[f"shrunk to {keep}"].append(onnx_accuracy(onnx_dir / f"{stem}.onnx", task, test))
            columns[f"shrunk to {keep} + int8"].append(onnx_accuracy(onnx_dir / f"{stem}.int8.onnx", task, test))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1] * 100:.2f}" for k, v in columns.items()), file=sys.stderr)

    base = columns["int8 only"]
    rows = []
    for name, values in columns.items():
        diffs = [v - b for v, b in zip(values, base)]
        rows.append((name, *(f"{v * 100:.2f}" for v in values), cell(values),
                     "-" if name == "int8 only" else f"{statistics.fmean(diffs) * 100:+.2f} "
                     f"({sum(d >= 0 for d in diffs)} of {len(diffs)})"))
    body = (f"Test accuracy % on seq-MNIST (10 000 images) from onnxruntime's outputs (the fp32 dense row: torch). "
            f"Parents: LSTM-256 trained {args.epochs} epochs per seed, dense and 90% torus-regularized (strength "
            f"{args.strength:g}). Shrunk: lattice policy ({args.centrality} centrality) on the sparse parent, "
            f"{args.finetune_epochs} fine-tuning epochs at lr {args.finetune_lr} ({recipe_text}). Last column: mean "
            f"difference to int8-only over seeds, and in how many seeds the model is at least as accurate. The "
            f"latency of each row is the headline table's (it does not depend on the seed).\n\n"
            + md_table(["model", *(f"seed {s}" for s in args.seeds), "mean ± half-range", "vs int8 only"], rows)
            + "\n\nValidation accuracy % of the shrunk models (torch; what a choice of recipe may look at): "
            + "; ".join(f"{keep} neurons {cell(v)}" for keep, v in val.items()) + ".")
    write_report(args.out, "Headline accuracy over seeds: shrunk (+ int8) vs int8-only",
                 "python " + " ".join(sys.argv), body, time.monotonic() - t0)


if __name__ == "__main__":
    main()
