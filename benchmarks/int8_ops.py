"""When does int8 pay at batch 1? The evidence behind ``INT8_FLOAT_BELOW``.

    .venv/bin/python benchmarks/int8_ops.py

onnxruntime's dynamic quantization turns one float MatMul into five nodes: quantize the
activation (DynamicQuantizeLinear), MatMulInteger, Cast, and two Muls for the scales. Each
node has a fixed cost per call, so on one row (batch 1, once per call: a last-step head,
every MatMul of a step model) the int8 arithmetic has to save more than that. Part 1 times
a single MatMul + bias, float against int8, over weight shapes and rows per call (1: once
per call; 28 and 100: over every step of a sequence), interleaved in one run per shape.
Part 2 does the same for one LSTM step (a step model's layer): float, onnxruntime's
DynamicQuantizeLSTM, and weight-only int8 (W and R stored int8, dequantized once at load).
Part 3 exports the headline's int8 models both ways -- a small once-per-call head left
float and a small step LSTM weight-only (the default) and everything quantized
(``--int8-float-below 0``) -- and benches
them in one interleaved run, full sequence and streaming step, with their accuracy in
onnxruntime and file size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, add_headline_model_args, headline_shrunk, md_table, write_report
from onnx import TensorProto, helper, numpy_helper

from exporters.export import ExportOptions, export_checkpoint
from exporters.graph import IR_VERSION, OPSET
from exporters.passes import INT8_FLOAT_BELOW, AddMetadata, QuantizeDynamic, StoreRecurrentWeightsInt8
from exporters.verify import SESSION_CONFIG_KEY, make_session
from models.checkpoint import load_checkpoint
from runtime.bench import BenchConfig, bench
from runtime.environment import environment
from runtime.latency import measure_interleaved

SHAPES = [(28, 64), (64, 10), (128, 10), (256, 10), (64, 64), (128, 128), (256, 256), (512, 512), (256, 1024),
          (1024, 1024)]


def matmul_model(k: int, n: int, rows: int):
    """y = x @ W + b with x [rows, k]; weights seeded."""
    rng = np.random.default_rng(k * 10007 + n)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"), helper.make_node("Add", ["xw", "B"], ["y"])],
        "matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def part_matmul(rows_list: list[int], runs: int, warmup: int) -> tuple[str, str]:
    """The table, and what it says about one row per call."""
    table, one_row = [], []
    for rows in rows_list:
        for k, n in SHAPES:
            fp32 = matmul_model(k, n, rows)
            int8 = QuantizeDynamic()(fp32).model
            x = np.random.default_rng(1).standard_normal((rows, k)).astype(np.float32)
            sf, sq = make_session(fp32), make_session(int8)
            ms = measure_interleaved({"f": lambda: sf.run(None, {"x": x}), "q": lambda: sq.run(None, {"x": x})},
                                     warmup, runs)
            f, q = (float(np.median(ms[m])) * 1000 for m in ("f", "q"))
            table.append((rows, f"{k} x {n}", f"{k * n:,}", f"{f:.1f}", f"{q:.1f}", f"{q / f:.2f}",
                          "int8" if q < f else "float"))
            if rows == 1:
                one_row.append((k * n, q < f))
            print(f"rows {rows}, {k} x {n}: float {f:.1f} us, int8 {q:.1f} us", file=sys.stderr)
    float_wins = [w for w, int8_faster in one_row if not int8_faster]
    int8_wins = [w for w, int8_faster in one_row if int8_faster]
    verdict = (f"At one row per call, float was faster for {len(float_wins)} of {len(one_row)} shapes "
               f"(largest: {max(float_wins, default=0):,} weights) and int8 for {len(int8_wins)} (smallest: "
               f"{min(int8_wins, default=0):,} weights)." if one_row else "")
    return verdict, md_table(["rows per call", "weight k x n", "weights", "float p50 µs", "int8 p50 µs", "int8 / float",
                     "faster"], table)


def lstm_step_model(hidden: int, features: int):
    """One LSTM step: x [1, 1, F], h, c [1, 1, H] -> h', c'; weights seeded, scaled 1/sqrt(H)."""
    rng = np.random.default_rng(hidden)
    scale = 1 / np.sqrt(hidden)
    inits = [numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
             for name, shape in (("W", (1, 4 * hidden, features)), ("R", (1, 4 * hidden, hidden)),
                                 ("B", (1, 8 * hidden)))]
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "h", "c"], ["", "h_out", "c_out"], name="lstm",
                            hidden_size=hidden)
    state = [1, 1, hidden]
    graph = helper.make_graph(
        [node], "lstm_step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, features]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, state),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, state)],
        [helper.make_tensor_value_info("h_out", TensorProto.FLOAT, state),
         helper.make_tensor_value_info("c_out", TensorProto.FLOAT, state)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def part_lstm(hiddens: list[int], features: int, runs: int, warmup: int) -> tuple[str, str]:
    table, verdict = [], []
    fold = AddMetadata({SESSION_CONFIG_KEY: '{"session.disable_quant_qdq": "1"}'})
    for hidden in hiddens:
        fp32 = lstm_step_model(hidden, features)
        sessions = {"float": make_session(fp32), "DynamicQuantizeLSTM": make_session(QuantizeDynamic()(fp32).model),
                    "weight-only int8": make_session(fold(StoreRecurrentWeightsInt8()(fp32).model).model)}
        rng = np.random.default_rng(1)
        feeds = {"x": rng.standard_normal((1, 1, features)).astype(np.float32),
                 "h": rng.standard_normal((1, 1, hidden)).astype(np.float32),
                 "c": rng.standard_normal((1, 1, hidden)).astype(np.float32)}
        ms = measure_interleaved({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}, warmup, runs)
        us = {k: float(np.median(v)) * 1000 for k, v in ms.items()}
        weights = 4 * hidden * (features + hidden)
        table.append((hidden, f"{weights:,}", *(f"{us[k]:.1f}" for k in sessions),
                      f"{us['DynamicQuantizeLSTM'] / us['float']:.2f}",
                      f"{us['weight-only int8'] / us['float']:.2f}"))
        verdict.append((weights, us["DynamicQuantizeLSTM"] < us["float"]))
        print(f"LSTM {hidden}: " + ", ".join(f"{k} {v:.1f} us" for k, v in us.items()), file=sys.stderr)
    slower = [w for w, faster in verdict if not faster]
    faster = [w for w, f in verdict if f]
    text = (f"DynamicQuantizeLSTM was slower than float for {len(slower)} of {len(verdict)} sizes (largest: "
            f"{max(slower, default=0):,} weights) and faster for {len(faster)} (smallest: "
            f"{min(faster, default=0):,} weights).")
    return text, md_table(["hidden", "weights (W + R)", "float p50 µs", "DynamicQuantizeLSTM p50 µs",
                           "weight-only int8 p50 µs", "dynamic / float", "weight-only / float"], table)


def part_models(args, runs: int, warmup: int) -> str:
    if not args.dense.exists():
        sys.exit(f"{args.dense} is missing: run benchmarks/smnist_moduli.py first")
    models = {"dense 256": args.dense, **{f"shrunk {keep}": headline_shrunk(args, keep) for keep in args.keep}}
    onnx = args.work / "onnx"
    paths, names = [], []
    for label, ckpt_path in models.items():
        ckpt = load_checkpoint(ckpt_path)
        for how, below in (("default", INT8_FLOAT_BELOW), ("everything int8", 0)):
            stem = f"{label.replace(' ', '')}-{below}"
            export_checkpoint(ckpt, "int8,step+int8", onnx, name=stem, force=True,
                              options=ExportOptions(int8_float_below=below))
            paths += [onnx / f"{stem}.int8.onnx", onnx / f"{stem}.step.int8.onnx"]
            names += [f"{label} int8, {how}", f"{label} int8, {how} [step]"]
    config = BenchConfig(threads=1, warmup=warmup, runs=runs, torch_reference=False)
    report = bench([args.dense, *paths], baseline=args.dense, config=config, names=["dense 256 fp32", *names])
    by = {m["name"]: m for m in report["models"]}
    table = []
    for name in names[::2]:
        full, step = by[name], by[name + " [step]"]
        table.append((name, f"{full['metric']['onnxruntime'] * 100:.2f}", f"{full['latency_ms']['full']['p50'] * 1000:.1f}",
                      f"{step['latency_ms']['step']['p50'] * 1000:.1f}", f"{full['ratio_to_baseline']['p50']:.3f}",
                      f"{step['ratio_to_baseline']['step_p50']:.3f}", f"{full['size_bytes'] / 1024:.1f}"))
    return (f"{warmup} warm-up + {runs} timed rounds, all {len(paths) + 1} models interleaved; ratios to the "
            f"dense LSTM-256 in fp32 measured in the same run. Accuracy: seq-MNIST test set from onnxruntime's "
            f"outputs.\n\n"
            + md_table(["model", "test acc % (ORT)", "p50 µs (28 steps)", "p50 per step µs", "latency ratio",
                        "step ratio", "file KB"], table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 28, 100])
    ap.add_argument("--runs", type=int, default=3000, help="timed rounds per shape (part 1)")
    ap.add_argument("--hiddens", type=int, nargs="+", default=[32, 64, 96, 128, 192, 256, 512],
                    help="LSTM sizes (part 2)")
    ap.add_argument("--model-runs", type=int, default=1000, help="timed rounds (parts 2 and 3)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--dense", type=Path, default=ROOT / "runs/smnist/dense-s0.pt")
    ap.add_argument("--keep", type=int, nargs="+", default=[64, 128], help="the headline's shrunk models")
    add_headline_model_args(ap)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "int8_ops")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8_ops.md")
    args = ap.parse_args()
    t0 = time.monotonic()
    env = environment(threads=1)
    verdict, table = part_matmul(args.rows, args.runs, args.warmup)
    body = (f"onnxruntime {env.get('onnxruntime')}, 1 intra-op thread, graph optimizations on.\n\n"
            f"**1. One MatMul + bias**, float vs onnxruntime dynamic int8 (per-column scales), p50 of {args.runs} "
            f"calls each, the two interleaved:\n\n" + table + f"\n\n{verdict} The export default is "
            f"`--int8-float-below {INT8_FLOAT_BELOW}`: a MatMul on one row per batch item (rank-2 activation) with "
            f"fewer weights stays float; MatMuls over every time step (rank 3) are always quantized.\n\n")
    verdict, table = part_lstm(args.hiddens, 28, args.model_runs, args.warmup)
    body += (f"**2. One LSTM step** (28 inputs, a step model's layer), p50 of {args.model_runs} calls each, the three "
             f"interleaved:\n\n" + table + f"\n\n{verdict} The same default applies: a step model's LSTM with fewer "
             f"than {INT8_FLOAT_BELOW:,} weights (W + R) is not given DynamicQuantizeLSTM; its weights are stored "
             f"int8 (weight-only, dequantized once at load): the file keeps the int8 size, the arithmetic is float.\n\n"
             f"**3. The headline's int8 models**, exported with the default and with everything quantized "
             f"(`--int8-float-below 0`):\n\n" + part_models(args, args.model_runs, args.warmup))
    write_report(args.out, "int8 at batch 1: which ops to quantize", "python " + " ".join(sys.argv), body,
                 time.monotonic() - t0)


if __name__ == "__main__":
    main()
