"""torch -> ONNX: dense, sparse-initializer, streaming step and chunk, and int8 variants, each
verified against the torch model in onnxruntime before it is written.

Public API:
    export_checkpoint(ckpt, formats, out_dir, ...) -> list[ExportResult]
    sparsify_file(in_path, out_path, min_gain=0.0) -> SparsifyResult
    build_full_graph / build_step_graph / build_chunk_graph (graph.py), passes (passes.py),
    make_session / evaluate_onnx / run_full / run_steps (verify.py).
"""

from exporters.export import (
    FORMATS,
    IR_VERSION,
    ExportOptions,
    ExportResult,
    SparsifyResult,
    Variant,
    build_variant,
    export_checkpoint,
    parse_formats,
    read_onnx,
    sparsify_file,
)
from exporters.graph import OPSET, build_chunk_graph, build_full_graph, build_step_graph
from exporters.passes import (
    INT8_FLOAT_BELOW,
    AddMetadata,
    DensifyInitializers,
    Pass,
    PassResult,
    QuantizeDynamic,
    SetIrVersion,
    SparsifyInitializers,
    StoreRecurrentWeightsInt8,
    run_passes,
    stored_sparsity,
)
from exporters.verify import Int8Tolerance, Parity, evaluate_onnx, make_session, onnx_outputs, run_full, run_steps

__all__ = [
    "FORMATS", "INT8_FLOAT_BELOW", "IR_VERSION", "OPSET", "ExportOptions", "ExportResult", "SparsifyResult", "Variant",
    "build_variant", "export_checkpoint", "parse_formats", "read_onnx", "sparsify_file",
    "build_full_graph", "build_step_graph", "build_chunk_graph",
    "AddMetadata", "DensifyInitializers", "Pass", "PassResult", "QuantizeDynamic", "SetIrVersion",
    "SparsifyInitializers", "StoreRecurrentWeightsInt8", "run_passes", "stored_sparsity",
    "Int8Tolerance", "Parity", "evaluate_onnx", "make_session", "onnx_outputs", "run_full", "run_steps",
]
