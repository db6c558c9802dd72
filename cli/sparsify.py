"""``rnncompress sparsify``: store any ONNX model's initializers sparse where smaller."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import PathArg, handle_errors, quiet_option
from exporters.export import sparsify_file


@click.command()
@click.argument("model", type=PathArg(path_type=Path))
@click.option("--out", type=PathArg(path_type=Path), required=True,
              help="Output .onnx file; must differ from MODEL (the input is never overwritten).")
@click.option("--min-gain", type=float, default=0.0, show_default=True,
              help="Fraction of an initializer's dense size that sparse storage must save for it to be "
                   "stored sparse (0: whenever it is smaller; float32 breaks even at about 2/3 zeros).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@quiet_option
@handle_errors
def sparsify(model: Path, out: Path, min_gain: float, force: bool, quiet: bool) -> None:
    """Store MODEL's weights as ONNX sparse initializers wherever that makes the file smaller.

    Works on any ONNX model, not only rnncompress exports. The result passes
    onnx.checker whenever MODEL does (not full_check: ONNX's operator type rules have no
    sparse input types, so no sparse file passes strict shape inference), its densified
    weights equal MODEL's exactly, and it loads in onnxruntime whenever MODEL does (which
    densifies the weights at load: this shrinks the file, not the latency).

    \b
    Example:
      rnncompress sparsify model.onnx --out model.sparse.onnx
    """
    r = sparsify_file(model, out, min_gain=min_gain, force=force)
    ratio = r.bytes_after / r.bytes_before if r.bytes_before else 1.0
    note = "" if r.onnxruntime_loads else " (the input does not load in onnxruntime either)"
    click.echo(f"wrote {r.path}: {r.bytes_before:,} -> {r.bytes_after:,} bytes ({ratio:.1%}), "
               f"{r.sparsified} of {r.initializers} initializers sparse, stored sparsity {r.stored_sparsity:.3f}{note}")
