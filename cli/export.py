"""``rnncompress export``: a checkpoint to verified ONNX files."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import (PathArg, data_option, echo_json, fmt_table, handle_errors, note_unfinished, progress_for,
                        quiet_option, refuse_inapplicable)
from exporters.export import (INT8_FLOAT_BELOW, IR_VERSION, VERIFY_DATA, ExportOptions, export_checkpoint, export_notes,
                              export_options, inapplicable_export_settings, parse_formats)
from exporters.verify import Int8Tolerance
from models.checkpoint import load_checkpoint


@click.command()
@click.argument("checkpoint", type=PathArg(path_type=Path))
@click.option("--format", "formats", default="dense,sparse,step,int8", show_default=True,
              help="Comma-separated formats. dense: standard ONNX RNN/LSTM/GRU ops, dynamic batch and "
                   "sequence length; sparse: dense with weights stored as sparse initializers where that is "
                   "smaller (file size only: onnxruntime densifies them at load); step: one time step with the "
                   "states as inputs and outputs, for streaming; chunk: several streaming steps per call (x [batch, "
                   "steps, features], states in and out, every step's output), which pays onnxruntime's fixed "
                   "per-call cost once per chunk; int8: onnxruntime dynamic quantization. "
                   "Combine with '+': int8+sparse, step+int8, chunk+int8, step+sparse.")
@click.option("--out-dir", type=PathArg(path_type=Path), required=True,
              help="Directory for the .onnx files (created if missing).")
@click.option("--name", default=None, help="File stem (default: the checkpoint's), e.g. NAME.sparse.onnx.")
@click.option("--verify-data", type=click.Choice(VERIFY_DATA), default="task", show_default=True,
              help="task: compare with torch on the checkpoint task's test data and on random inputs; "
                   "random: random inputs only (when the data is not available; recorded in the metadata).")
@click.option("--atol", type=float, default=1e-5, show_default=True,
              help="float32 variants (dense, sparse, step, chunk) must satisfy |onnx - torch| <= atol + rtol*|torch| "
                   "for every output.")
@click.option("--rtol", type=float, default=ExportOptions.rtol, show_default=True,
              help="Relative part of that bound (torch.testing's float32 default): float32 summation order "
                   "alone moves logits of ~14 by ~1e-5. 0 = absolute only.")
@click.option("--int8-accuracy-drop", type=float, default=Int8Tolerance.accuracy_points, show_default=True,
              help="int8 variants: accuracy points they may lose against torch (accuracy tasks).")
@click.option("--int8-relative", type=float, default=Int8Tolerance.relative, show_default=True,
              help="int8 variants: fraction by which mse / bpc / position error may get worse.")
@click.option("--min-gain", type=float, default=0.0, show_default=True,
              help="sparse: fraction of a weight's dense size that sparse storage must save to be used.")
@click.option("--int8-float-below", type=int, default=INT8_FLOAT_BELOW, show_default=True,
              help="int8 formats keep a MatMul or LSTM float when it runs once per call (a last-step head, "
                   "a step model's layers) and has fewer weights than this: quantizing it costs more time "
                   "than it saves (benchmarks/int8_ops.py). A float LSTM's weights are still stored int8. "
                   "0 quantizes every MatMul and LSTM (smallest file).")
@click.option("--parity-samples", type=int, default=512, show_default=True,
              help="Test sequences for the float32 comparison.")
@click.option("--metric-samples", type=int, default=10000, show_default=True,
              help="Test sequences for the int8 metric comparison.")
@click.option("--ir-version", type=int, default=IR_VERSION, show_default=True,
              help="ONNX IR version written, 8 (the first with opset 17) to 13 (the most onnxruntime 1.31 reads).")
@click.option("--threads", type=int, default=1, show_default=True,
              help="onnxruntime intra-op threads while verifying (0 = onnxruntime's default).")
@data_option
@click.option("--force", is_flag=True, help="Overwrite existing files of the same names.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (for scripts).")
@quiet_option
@click.pass_context
@handle_errors
def export(ctx: click.Context, checkpoint: Path, formats: str, out_dir: Path, name: str | None, verify_data: str, atol: float,
           rtol: float, int8_accuracy_drop: float, int8_relative: float, min_gain: float, int8_float_below: int,
           parity_samples: int, metric_samples: int, ir_version: int, threads: int, data: str | None, force: bool,
           as_json: bool, quiet: bool) -> None:
    """Export a checkpoint to ONNX (opset 17), verified against the torch model.

    Every file is run in onnxruntime and compared with torch before anything is written;
    if any format fails (exit code 3), no file is written. Files are NAME.onnx,
    NAME.sparse.onnx, NAME.step.onnx, NAME.chunk.onnx, NAME.int8.onnx (NAME.int8.sparse.onnx,
    ...).

    \b
    Full model: x [batch, seq, features] (int64 tokens [batch, seq] with an embedding),
      init [batch, init_size] if the model has an init layer -> y.
    Step model: x [batch, features], h0, h1, ... (and c0, c1, ... for LSTM) [1, batch, hidden]
      -> y, h0_out, ... (c0_out, ...).
    Chunk model: x [batch, steps, features] and the step model's states -> y [batch, steps,
      out] (every step), h0_out, ... (c0_out, ...).

    \b
    Example:
      rnncompress export lstm.pt --format dense,sparse,step,int8 --out-dir onnx/
    """
    for setting, applies_to in inapplicable_export_settings(parse_formats(formats), verify_data).items():
        refuse_inapplicable(ctx, [setting], applies_to)  # a tolerance never applied must not look applied
    options = export_options(
        verify_data=verify_data, atol=atol, rtol=rtol, int8_accuracy_drop=int8_accuracy_drop,
        int8_relative=int8_relative, min_gain=min_gain, int8_float_below=int8_float_below,
        parity_samples=parity_samples, metric_samples=metric_samples, ir_version=ir_version, threads=threads, data=data,
    )
    ckpt = load_checkpoint(checkpoint)
    note_unfinished(ckpt)
    results = export_checkpoint(ckpt, formats, out_dir, name=name, options=options, force=force,
                                progress=progress_for(quiet or as_json))
    if as_json:
        echo_json([{"format": r.format, "path": str(r.path), "bytes": r.bytes,
                    "stored_sparsity": r.stored_sparsity, "parity": r.parity.describe(),
                    "parity_error": r.parity.error, "parity_tolerance": r.parity.tolerance,
                    "opset": r.opset, "ir_version": r.ir_version} for r in results])
        return
    rows = [[r.format, r.path.name, f"{r.bytes:,}", f"{r.stored_sparsity:.3f}", r.parity.short(),
             f"{r.opset}/{r.ir_version}"] for r in results]
    checked = "the task's test data and random inputs" if verify_data == "task" else "random inputs only"
    files = f"{len(results)} file" + ("" if len(results) == 1 else "s")
    click.echo(f"wrote {files} to {out_dir}, each verified against torch on {checked}")
    click.echo(fmt_table(rows, ["format", "file", "bytes", "stored sparsity", "parity", "opset/IR"]))
    for note in export_notes(results, min_gain):
        click.echo(f"note: {note}")
