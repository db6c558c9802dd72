"""The headline table: what compression buys for real-time (batch 1, streaming) CPU inference
of the seq-MNIST LSTM, every row measured in ONE interleaved onnxruntime run.

    .venv/bin/python benchmarks/headline.py

Rows: the dense LSTM (baseline); onnxruntime int8 of it (what a user would pick instead);
the 90% moduli + magnitude sparse model; the lattice-shrunk model; shrunk + int8; and a
dense LSTM of the shrunk shape trained from scratch with the same total epochs. The dense and
sparse parents are the checkpoints of benchmarks/smnist_moduli.py; the shrunk models are pruned
here from the sparse parent (lattice policy, each of ``--keep`` neurons, ``--finetune-epochs``),
so several sizes show the accuracy / latency trade-off.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import (HEADLINE_CENTRALITY, HEADLINE_RECIPE, ROOT, add_recipe_args, md_table, recipe, shrink_config,
                    shrink_teachers, shrunk_path, train_or_load, write_report)

from compressor.prune import prune_checkpoint
from compressor.training import TrainConfig
from exporters.export import export_checkpoint
from models.checkpoint import load_checkpoint
from models.tasks import task_from_checkpoint
from runtime.bench import BenchConfig, bench
from runtime.report import write_report as write_bench_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", type=Path, default=ROOT / "runs/smnist/dense-s0.pt")
    ap.add_argument("--sparse", type=Path, default=ROOT / "runs/smnist/torus-0.9-3-s0.pt")
    ap.add_argument("--keep", type=int, nargs="+", default=[64, 96, 128], help="neurons kept by the lattice policy")
    ap.add_argument("--centrality", default=HEADLINE_CENTRALITY)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    add_recipe_args(ap, **HEADLINE_RECIPE)
    ap.add_argument("--prepare-only", action="store_true",
                    help="train/prune the inputs and stop (run the timing later on a quiet machine)")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "headline")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "headline.md")
    args = ap.parse_args()
    t0 = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)
    parent, dense = load_checkpoint(args.sparse), load_checkpoint(args.dense)
    task = task_from_checkpoint(parent.task)
    total_epochs = parent.training["epochs"] + args.finetune_epochs
    shrunk, scratch = {}, {}
    recipe_tag, recipe_text = recipe(args)
    data = None  # loaded once, and only if some shrunk model is not cached yet
    for keep in args.keep:
        shrunk[keep] = shrunk_path(args.work, keep, args.centrality, args.finetune_epochs, recipe_tag)
        if not shrunk[keep].exists():
            if data is None:
                data = task.load()
            prune_checkpoint(parent, shrink_config(args, keep), task, data, shrunk[keep],
                             teachers=shrink_teachers(args, dense))
        scratch[keep] = args.work / f"scratch-{keep}-e{total_epochs}.pt"
        train_or_load(scratch[keep], "smnist", parent.task["params"], "lstm", keep, 1,
                      TrainConfig(epochs=total_epochs, batch_size=128, lr=1e-3, seed=0))
    if args.prepare_only:
        return
    onnx = args.work / "onnx"
    onnx.mkdir(parents=True, exist_ok=True)
    export_checkpoint(dense, "int8,int8+sparse,step+int8", onnx, name="dense", force=True)
    moduli_full, moduli_step = (r.path for r in export_checkpoint(parent, "sparse,step+sparse", onnx, name="moduli",
                                                                  force=True))
    # name -> (full-sequence input, step input, file whose size is reported if smaller than the timed one's)
    rows = {
        "dense LSTM (baseline)": (args.dense, None, None),
        "int8 only (onnxruntime dynamic quantization)": (onnx / "dense.int8.onnx", onnx / "dense.step.int8.onnx",
                                                         onnx / "dense.int8.sparse.onnx"),
        # the sparse-stored file itself is timed: sparse storage buys file size, not latency
        "moduli + magnitude sparse (90%)": (moduli_full, moduli_step, None),
    }
    for keep in args.keep:
        stem = f"shrunk{keep}"
        export_checkpoint(load_checkpoint(shrunk[keep]), "sparse,int8,int8+sparse,step+int8", onnx, name=stem,
                          force=True)
        rows[f"lattice-shrunk to {keep}"] = (shrunk[keep], None, onnx / f"{stem}.sparse.onnx")
        rows[f"shrunk to {keep} + int8"] = (onnx / f"{stem}.int8.onnx", onnx / f"{stem}.step.int8.onnx",
                                           onnx / f"{stem}.int8.sparse.onnx")
        rows[f"dense {keep} from scratch ({total_epochs} epochs)"] = (scratch[keep], None, None)
    paths, names = [], []
    for name, (full, step, _) in rows.items():
        paths.append(full)
        names.append(name)
        if step is not None:
            paths.append(step)
            names.append(name + " [step]")
    config = BenchConfig(threads=1, warmup=args.warmup, runs=args.runs, torch_reference=False)
    report = bench(paths, baseline=args.dense, config=config, names=names)
    write_bench_report(report, args.work / "bench")
    by = {m["name"]: m for m in report["models"]}
    base = by["dense LSTM (baseline)"]
    table = []
    for name, (full, step, size_file) in rows.items():
        m = by[name]
        s = by.get(name + " [step]", m)
        size = size_file.stat().st_size if size_file else m["size_bytes"]
        best_size = min(size, m["size_bytes"])
        acc = m["metric"]["onnxruntime"]
        step_p50 = s["latency_ms"]["step"]["p50"]
        floor_p50 = s["call_floor_ms"]["step"]["p50"]
        ratio = m["ratio_to_baseline"]["p50"] if m is not base else 1.0
        step_ratio = s["ratio_to_baseline"]["step_p50"] if s is not base else 1.0
        hidden = "/".join(str(h) for h in m.get("hidden_sizes") or [])
        table.append((name, hidden, f"{acc * 100:.2f}", f"{m['latency_ms']['full']['p50']:.3f}",
                      f"{m['latency_ms']['full']['p99']:.3f}", f"{step_p50 * 1000:.1f}",
                      f"{floor_p50 * 1000:.1f}", f"{ratio:.3f}",
                      f"{step_ratio:.3f}", f"{best_size / 1024:.1f}", f"{base['size_bytes'] / best_size:.1f}x"))
    env = report["environment"]
    body = (f"onnxruntime {env.get('onnxruntime')}, batch 1, 1 intra-op thread, {args.warmup} warm-up + {args.runs} "
            f"timed rounds, all rows interleaved in one run (seeded shuffled order each round). Accuracy: seq-MNIST "
            f"test set (10 000 images) computed from onnxruntime outputs. Call floor: the same step calls, in the "
            f"same run, on a graph with the step model's inputs and outputs that only copies them (onnxruntime's "
            f"fixed cost per call from Python, which no compression removes). Size: the smallest verified file of that "
            f"model (sparse and/or int8 storage where it is smaller); the sparse row times the sparse-stored files themselves "
            f"(onnxruntime densifies them at load). Shrunk: lattice policy ({args.centrality} "
            f"centrality) keeping {' or '.join(map(str, args.keep))} of 256 neurons of the 90% torus-regularized LSTM, then "
            f"{args.finetune_epochs} fine-tuning epochs at lr {args.finetune_lr} ({recipe_text}; the recipe chosen on "
            f"the validation split by benchmarks/finetune_recipe.py).\n\n"
            + md_table(["model", "hidden", "test acc % (ORT)", "p50 ms (28 steps)", "p99 ms", "p50 per step µs",
                        "of which call floor µs", "latency ratio", "step ratio", "file KB", "smaller by"], table)
            + "\n\nFull report: `runs/headline/bench/report.md` (not committed); inputs: "
            + ", ".join(f"`{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}`"
                        for p in (args.dense, args.sparse, *shrunk.values(), *scratch.values())))
    write_report(args.out, "Headline: seq-MNIST LSTM in onnxruntime", "python " + " ".join(sys.argv), body,
                 time.monotonic() - t0)
    (args.work / "headline.json").write_text(json.dumps(table))


if __name__ == "__main__":
    main()
