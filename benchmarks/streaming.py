"""Streaming cost per step: the step model (one call per step) against the chunk model
(k steps per call) for k = 1 .. T, for the dense and the lattice-shrunk seq-MNIST LSTM.

    .venv/bin/python benchmarks/streaming.py

The headline shows that most of a small model's streaming step is onnxruntime's fixed cost
per call (the call floor). A chunk model pays it once per k buffered steps. For each k, one
`rnncompress bench` run interleaves the five models (the shrunk chunk model also in int8)
with the dense step model as baseline and reports latency per step (a chunk call / k) with
each model's call floor. The exports are verified against torch as always (the chunk model
fed whole and in uneven chunks), so the fp32 rows compute the same outputs; only the cost
per step differs. Buffering k steps
delays the first of them by k - 1 frame periods: that, not compute, is the price of a
large k.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, add_headline_model_args, headline_shrunk, md_table, write_report

from exporters.export import export_checkpoint
from models.checkpoint import load_checkpoint
from runtime.bench import BenchConfig, bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", type=Path, default=ROOT / "runs/smnist/dense-s0.pt")
    ap.add_argument("--keep", type=int, default=64, help="the headline's shrunk model of this many neurons")
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4, 7, 14, 28])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    add_headline_model_args(ap)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "streaming")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "streaming.md")
    args = ap.parse_args()
    t0 = time.monotonic()
    shrunk = headline_shrunk(args, args.keep)
    onnx = args.work / "onnx"
    models = {}
    for label, ckpt in (("dense 256", args.dense), (f"shrunk {args.keep}", shrunk)):
        stem = label.replace(" ", "")
        small = ckpt == shrunk
        export_checkpoint(load_checkpoint(ckpt), "step,chunk" + (",chunk+int8" if small else ""), onnx, name=stem,
                          force=True)
        models[f"{label} step"] = onnx / f"{stem}.step.onnx"
        models[f"{label} chunk"] = onnx / f"{stem}.chunk.onnx"
        if small:  # int8 only pays once a call carries enough steps: where?
            models[f"{label} chunk int8"] = onnx / f"{stem}.chunk.int8.onnx"
    names, paths = list(models), list(models.values())
    rows = []
    env = None
    for k in args.chunks:
        config = BenchConfig(threads=1, warmup=args.warmup, runs=args.runs, torch_reference=False, accuracy=False,
                             chunk=k)
        report = bench(paths, baseline=paths[0], config=config, names=names)
        env = report["environment"]
        by = {m["name"]: m for m in report["models"]}

        def us(name: str, table: str = "latency_ms") -> float:
            return by[name][table]["step"]["p50"] * 1000

        def ratio(name: str) -> float:
            return 1.0 if name == names[0] else by[name]["ratio_to_baseline"]["step_p50"]

        steps = by[names[1]]["inputs"].get("steps_per_call", k)
        rows.append((steps, *(f"{us(n):.1f}" for n in names),
                     f"{us(names[1], 'call_floor_ms'):.1f}", f"{us(names[3], 'call_floor_ms'):.1f}",
                     f"{ratio(names[3]):.3f}", f"{ratio(names[3]) / ratio(names[2]):.3f}",
                     f"{ratio(names[4]) / ratio(names[3]):.3f}"))
        print(f"k={steps}: " + ", ".join(f"{n} {us(n):.1f} us" for n in names), file=sys.stderr)
    body = (f"onnxruntime {env.get('onnxruntime')}, batch 1, 1 intra-op thread; per k one run of {args.warmup} "
            f"warm-up + {args.runs} timed rounds, the five models interleaved. Latency per step, p50 in µs (a chunk "
            f"call divided by k; a step call as is, so the step columns repeat across k as repeated measurements). "
            f"Models: the dense LSTM-256 (`{args.dense.relative_to(ROOT)}`) and the headline's lattice-shrunk "
            f"{args.keep}-neuron LSTM (`{shrunk.relative_to(ROOT)}`), fp32, and the latter's chunk model in int8 "
            f"(DynamicQuantizeLSTM: the chunk's steps are not known when exporting, so it is always quantized).\n\n"
            + md_table(["k (steps per call)", *(f"{n} µs/step" for n in names), "dense chunk floor µs/step",
                        "shrunk chunk floor µs/step", "shrunk chunk / dense step", "shrunk chunk / shrunk step",
                        "shrunk chunk int8 / fp32"],
                       rows))
    write_report(args.out, "Streaming: one step per call vs k steps per call", "python " + " ".join(sys.argv),
                 body, time.monotonic() - t0)


if __name__ == "__main__":
    main()
