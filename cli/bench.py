"""``rnncompress bench``: latency, size and accuracy in onnxruntime, as a report."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import PathArg, data_option, echo_json, handle_errors, progress_for, quiet_option, refuse_inapplicable
from runtime.bench import BenchConfig, bench as run_bench
from runtime.report import check_out_dir, markdown, write_report


@click.command()
@click.argument("paths", nargs=-1, required=True, type=PathArg(path_type=Path), metavar="MODEL...")
@click.option("--baseline", type=PathArg(path_type=Path), default=None,
              help="Model the ratios are relative to (checkpoint or .onnx), timed in the same interleaved loop. "
                   "Default: the dense model of the first checkpoint given (else the first MODEL).")
@click.option("--name", "names", multiple=True,
              help="Report name of each MODEL, in order (repeat once per MODEL; default: the file names).")
@click.option("--out-dir", type=PathArg(path_type=Path), required=True,
              help="Directory for report.json, report.md and the PNG plots (created if missing).")
@click.option("--threads", type=int, default=BenchConfig.threads, show_default=True,
              help="onnxruntime intra-op threads (and torch threads for the reference line), 1 to 256: "
                   "latency is measured at a fixed count, so there is no 0 (library default) here.")
@click.option("--runs", type=int, default=BenchConfig.runs, show_default=True,
              help="Timed rounds; each round calls every model once, in a seeded shuffled order "
                   "(p99 needs a few hundred).")
@click.option("--warmup", type=int, default=BenchConfig.warmup, show_default=True, help="Untimed rounds first.")
@click.option("--no-step", is_flag=True,
              help="Do not measure the streaming step model of checkpoints (.step.onnx files given are still "
                   "measured per step).")
@click.option("--no-torch", is_flag=True, help="Do not time the torch eager reference line.")
@click.option("--no-call-floor", is_flag=True,
              help="Do not time the call floor: for every model, the same calls on a graph with the same inputs "
                   "and outputs that only copies them -- onnxruntime's fixed cost per call, which bounds what "
                   "any compression can save per streaming step.")
@click.option("--no-accuracy", is_flag=True, help="Latency and size only: skip the task metric.")
@click.option("--max-eval", type=int, default=BenchConfig.max_eval, show_default=True,
              help="Test sequences for the metric (the first ones of the test split).")
@click.option("--seq-len", type=int, default=None,
              help="Length of the random input sequence for models that record no task (.onnx files without "
                   "rnncompress metadata, checkpoints without a task); they get latency only. Refused when every "
                   "model records its task.")
@click.option("--chunk", type=int, default=BenchConfig.chunk, show_default=True,
              help="Steps per call for chunk models (NAME.chunk.onnx): their per-step latency is one call "
                   "divided by this, what streaming costs when this many steps are buffered per call.")
@click.option("--seed", type=int, default=BenchConfig.seed, show_default=True,
              help="Seed of the interleaving order and of random inputs.")
@data_option
@click.option("--force", is_flag=True, help="Replace an earlier report in --out-dir (inputs never).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (without raw samples) as JSON.")
@quiet_option
@click.pass_context
@handle_errors
def bench(ctx: click.Context, paths: tuple[Path, ...], baseline: Path | None, names: tuple[str, ...], out_dir: Path, threads: int,
          runs: int, warmup: int, no_step: bool, no_torch: bool, no_call_floor: bool, no_accuracy: bool,
          max_eval: int, seq_len: int | None, chunk: int, seed: int, data: str | None, force: bool,
          as_json: bool, quiet: bool) -> None:
    """Measure checkpoints and ONNX files in onnxruntime: latency, size, accuracy.

    Batch 1, onnxruntime CPU, graph optimizations on. Each checkpoint is measured as its
    dense full model (one call = the whole sequence) and its step model (one call = one
    streaming step, state carried between calls), plus the torch eager model as a
    reference line. An .onnx file with rnncompress metadata is measured as what it is
    (full, step or chunk model: --chunk steps per call) and scored on its task's test
    data (a step or chunk file of a navigation model, whose start state comes from an init
    layer the step graph lacks, only when the checkpoint it was exported from is among the
    MODELs); one without metadata gets latency only, on random inputs (--seq-len sets dynamic
    sequence axes). Every model also gets its onnxruntime call floor: the same calls on a
    copy-only graph of the same inputs and outputs, the part of each call's latency that
    no compression removes.

    All models and the baseline are timed in one loop, interleaved, so machine drift
    hits them alike: the ratios to the baseline are the numbers to compare; the
    milliseconds depend on the machine. Writes report.json (schema
    rnncompress-report/1.2), report.md and PNG plots to --out-dir.

    \b
    Example:
      rnncompress bench lstm.pt onnx/lstm.int8.onnx onnx/small.onnx --out-dir bench/
    """
    if no_accuracy:
        refuse_inapplicable(ctx, ["max_eval"], "the metric (drop --no-accuracy)")
    config = BenchConfig(threads=threads, warmup=warmup, runs=runs, step=not no_step, torch_reference=not no_torch,
                         call_floor=not no_call_floor, accuracy=not no_accuracy, max_eval=max_eval, seed=seed,
                         seq_len=seq_len, chunk=chunk, data=data)
    check_out_dir(out_dir, [*paths, baseline], force)
    report = run_bench(list(paths), baseline=baseline, config=config, names=list(names) or None,
                       progress=progress_for(quiet or as_json))
    written = write_report(report, out_dir)
    if as_json:
        echo_json({**report, "models": [{k: v for k, v in e.items() if k != "samples_us"} for e in report["models"]]})
        return
    click.echo(markdown(report).rstrip())
    click.echo("")
    for p in written:
        click.echo(f"wrote {p}")
