"""export_checkpoint: verified files, provenance, byte-identical reruns, all-or-nothing
writes, the GRU linear_before_reset regression, and refusals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from exporters.export import (
    FORMATS,
    ExportOptions,
    Variant,
    build_variant,
    export_checkpoint,
    onnx_summary,
    parse_formats,
    read_onnx,
    sparsify_file,
)
from exporters.graph import IR_VERSION, OPSET, build_full_graph
from exporters.passes import INT8_FLOAT_BELOW, DensifyInitializers
from exporters.verify import make_session, run_full
from models.checkpoint import load_checkpoint
from models.errors import CheckpointError, ConfigError, DataError, ExportError, ParityError
from models.tasks import make_task, task_from_checkpoint

ALL = "dense,sparse,step,int8,int8+sparse,step+int8,chunk,chunk+int8"
FILES = {"dense": "m.onnx", "sparse": "m.sparse.onnx", "step": "m.step.onnx", "int8": "m.int8.onnx",
         "int8+sparse": "m.int8.sparse.onnx", "step+int8": "m.step.int8.onnx", "chunk": "m.chunk.onnx",
         "chunk+int8": "m.chunk.int8.onnx"}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_export_every_format(make_model, make_checkpoint, tmp_path, cell):
    path = make_checkpoint(make_model(cell, (10, 6), 0.9, seed=7))
    out = tmp_path / "onnx"
    results = export_checkpoint(load_checkpoint(path), ALL, out)
    assert [r.format for r in results] == list(FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES.values())
    by = {r.format: r for r in results}
    for r in results:
        assert r.path == out / FILES[r.format] and r.bytes == r.path.stat().st_size
        assert r.parity.passed and (r.opset, r.ir_version) == (OPSET, IR_VERSION)
        model = read_onnx(str(r.path))  # (a str path, as library callers pass it)
        onnx.checker.check_model(model)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["rnncompress.source_sha256"] == load_checkpoint(path).sha256
        assert meta["rnncompress.format"] == r.format and meta["rnncompress.opset"] == "17"
        assert json.loads(meta["rnncompress.task"])["name"] == "adding"
        assert meta["rnncompress.metric"] == "mse" and float(meta["rnncompress.metric_value"]) == 0.25
        sparsity = json.loads(meta["rnncompress.sparsity"])["per_matrix"]
        assert sparsity["rnn.0.weight_hh_l0"] == pytest.approx(0.9, abs=0.1)
        assert meta["rnncompress.verified"] == "task"
        assert json.loads(meta["rnncompress.tolerance"])["fp32_max_abs"] == 1e-5
        assert json.loads(meta["rnncompress.model_config"])["cell"] == cell
        interface = json.loads(meta["rnncompress.interface"])
        streaming = interface.pop("streaming", None)
        assert interface == task_from_checkpoint(load_checkpoint(path).task).interface()
        graph = "step" if r.format.startswith("step") else "chunk" if r.format.startswith("chunk") else None
        assert (streaming is None) == (graph is None) and (graph is None or streaming.startswith(f"this {graph} file"))
        # weight-only int8 recurrent weights: GRU and RNN, and a small LSTM in a step model
        weight_only = "int8" in r.format and (cell != "lstm" or r.format.startswith("step"))
        assert ("rnncompress.session_config" in meta) == weight_only
        assert meta["rnncompress.version"]
        make_session(r.path)  # loads from disk too
    assert by["sparse"].bytes < by["dense"].bytes and by["sparse"].stored_sparsity > 0.5
    assert by["dense"].parity.kind == "max_abs" and by["int8"].parity.kind == "metric"
    ops = {n.op_type for n in onnx.load(str(by["int8"].path)).graph.node}
    if cell == "lstm":
        assert "DynamicQuantizeLSTM" in ops
    else:
        assert {"DequantizeLinear", cell.upper()} <= ops


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_int8_is_smaller_for_real_sizes(make_model, make_checkpoint, tmp_path, cell):
    # (on toy sizes the quantization nodes and scales outweigh the saving)
    path = make_checkpoint(make_model(cell, (64,), 0.0))
    dense, int8 = export_checkpoint(load_checkpoint(path), "dense,int8", tmp_path / "o")
    assert int8.bytes < 0.5 * dense.bytes


def test_int8_keeps_small_one_row_ops_float_unless_told(make_model, make_checkpoint, tmp_path):
    """By default the once-per-call head stays float, and so does a step model's small LSTM
    (its weights stored int8 behind DequantizeLinear, folded at load); the full model's LSTM
    runs over every step and is quantized. 0 quantizes everything. All verify, and the
    files record the choice."""
    path = make_checkpoint(make_model("lstm", (16,), 0.0))
    ckpt = load_checkpoint(path)
    default = export_checkpoint(ckpt, "int8,step+int8", tmp_path / "a")
    every = export_checkpoint(ckpt, "int8,step+int8", tmp_path / "b", options=ExportOptions(int8_float_below=0))
    for kept, quantized in zip(default, every):
        assert kept.parity.passed and quantized.parity.passed
        k, q = (onnx.load(str(r.path)) for r in (kept, quantized))
        kinds = {n.name: n.op_type for n in k.graph.node}
        q_ops = {n.op_type for n in q.graph.node}
        assert kinds["head.matmul"] == "MatMul" and "MatMulInteger" not in kinds.values()
        assert {"MatMulInteger", "DynamicQuantizeLSTM"} <= q_ops and "DequantizeLinear" not in q_ops
        meta = {p.key: p.value for p in k.metadata_props}
        if kept.format == "step+int8":
            assert kinds["rnn.0.lstm"] == "LSTM" and kinds["rnn.0.R.dequantize"] == "DequantizeLinear"
            assert json.loads(meta["rnncompress.session_config"]) == {"session.disable_quant_qdq": "1"}
        else:
            assert "DynamicQuantizeLSTM" in kinds.values() and "rnncompress.session_config" not in meta
        assert meta["rnncompress.int8_float_below"] == str(INT8_FLOAT_BELOW)
        assert {p.key: p.value for p in q.metadata_props}["rnncompress.int8_float_below"] == "0"
    with pytest.raises(ConfigError, match="'int8_float_below' parameter must be an int >= 0"):
        ExportOptions(int8_float_below=-1)


def test_exports_are_byte_identical(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (8,), 0.8, seed=2))
    a = export_checkpoint(load_checkpoint(path), ALL, tmp_path / "a")
    b = export_checkpoint(load_checkpoint(path), ALL, tmp_path / "b")
    for ra, rb in zip(a, b):
        assert ra.path.read_bytes() == rb.path.read_bytes(), ra.format


def test_sparse_never_larger_than_dense(make_model, make_checkpoint, tmp_path):
    """Below break-even nothing is stored sparse and the file is the dense file."""
    path = make_checkpoint(make_model("lstm", (16,), 0.0))
    dense, sparse = export_checkpoint(load_checkpoint(path), "dense,sparse", tmp_path / "o")
    assert sparse.path.read_bytes() == dense.path.read_bytes() and sparse.stored_sparsity == 0.0
    meta = {p.key: p.value for p in onnx.load(str(sparse.path)).metadata_props}
    assert meta["rnncompress.format"] == "dense"


def test_sparse_round_trip_equals_dense_weights(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("gru", (12, 7), 0.9, seed=3))
    res = {r.format: r for r in export_checkpoint(load_checkpoint(path), "dense,sparse", tmp_path / "o")}
    dense = onnx.load(str(res["dense"].path))
    back = DensifyInitializers()(onnx.load(str(res["sparse"].path))).model
    a = {t.name: onnx.numpy_helper.to_array(t) for t in dense.graph.initializer}
    b = {t.name: onnx.numpy_helper.to_array(t) for t in back.graph.initializer}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def test_navigation_checkpoint_with_init_layer(make_model, make_checkpoint, tmp_path):
    nav = {"name": "navigation", "params": {"seq_len": 5, "samples": 16, "val_samples": 8, "test_samples": 16,
                                            "place_cells": 8}}
    model = make_model("rnn", (9,), 0.7, input_size=2, output_size=8, head="every", init_size=8,
                       nonlinearity="relu", bias=False)
    results = export_checkpoint(load_checkpoint(make_checkpoint(model, nav)), "dense,step,int8", tmp_path / "o")
    assert [r.parity.passed for r in results] == [True, True, True]
    assert results[2].parity.detail.startswith("position_error_cm")


def test_embedding_checkpoint_on_charlm(make_model, make_checkpoint, text_file, tmp_path):
    params = {"data": str(text_file), "seq_len": 12, "embed_dim": 5}
    vocab = make_task("charlm", params).load().spec.input_size
    model = make_model("lstm", (8, 6), 0.5, input_size=vocab, output_size=vocab, head="every",
                       input_layer="embedding", input_dim=5)
    results = export_checkpoint(load_checkpoint(make_checkpoint(model, {"name": "charlm", "params": params})),
                                "dense,sparse,step,step+int8", tmp_path / "o")
    assert all(r.parity.passed for r in results)


def test_gru_linear_before_reset_regression(make_model, make_checkpoint, tmp_path, monkeypatch):
    """torch's new exporter once emitted GRU without linear_before_reset: with non-zero
    biases the output is then wrong. Ours sets it, and verification catches its absence."""
    model = make_model("gru", (8,), 0.0, seed=11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_(0.0, 1.0)
    proto = build_full_graph(model)
    gru = next(n for n in proto.graph.node if n.op_type == "GRU")
    assert onnx.helper.get_attribute_value(next(a for a in gru.attribute if a.name == "linear_before_reset")) == 1
    x = torch.randn(4, 9, 2)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(run_full(make_session(proto), x) - ref).max() < 1e-5
    # The bug: linear_before_reset=0 runs fine but computes something else.
    for a in gru.attribute:
        if a.name == "linear_before_reset":
            a.i = 0
    assert np.abs(run_full(make_session(proto), x) - ref).max() > 1e-3
    # ... and the export refuses such a graph, writing nothing.
    import exporters.export as E

    def buggy(*args, **kwargs):
        m = build_variant(*args, **kwargs)
        for n in m.graph.node:
            for a in n.attribute:
                if a.name == "linear_before_reset":
                    a.i = 0
        return m

    monkeypatch.setattr(E, "build_variant", buggy)
    with pytest.raises(ParityError, match="Export 'dense' disagrees with the torch model: max abs error"):
        export_checkpoint(load_checkpoint(make_checkpoint(model)), "dense", tmp_path / "bug")
    assert not (tmp_path / "bug").exists()


def test_failed_format_writes_nothing(make_model, make_checkpoint, tmp_path, monkeypatch):
    """dense and sparse verify, int8 does not: no file at all is written."""
    import exporters.export as E
    from exporters.verify import Parity

    monkeypatch.setattr(E, "check_int8", lambda *a, **k: Parity("metric", 2.0, 0.5, "task test data (16)",
                                                                  "accuracy 90.00% vs torch 92.00%"))
    path = make_checkpoint(make_model("lstm", (8,), 0.5))
    out = tmp_path / "o"
    out.mkdir()
    with pytest.raises(ParityError, match="Export 'int8' disagrees .*worse by 2 points; tolerance 0.5 points worse.*nothing was written"):
        export_checkpoint(load_checkpoint(path), "dense,sparse,int8", out)
    assert list(out.iterdir()) == []


def test_parity_error_exit_code():
    assert ParityError.exit_code == 3


def test_refuses_nan_weights(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (4,)), nan=True)
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        export_checkpoint(load_checkpoint(path), "dense", tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("spec, match", [
    ("dense,fp16", "Got 'fp16'"),
    ("dense+sparse", "'dense' stands alone"),
    ("int8+int8", "Got 'int8\\+int8'"),
    ("step+chunk", "'step' and 'chunk' are two graphs"),
    ("", "Got ''"),
])
def test_unknown_format(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_formats(spec)


def test_parse_formats_canonical():
    assert [v.name for v in parse_formats("sparse+int8, step+int8,dense,dense")] == ["int8+sparse", "step+int8", "dense"]
    assert Variant(step=True, int8=True, sparse=True).filename("m") == "m.step.int8.sparse.onnx"
    assert [v.name for v in parse_formats("int8+chunk")] == ["chunk+int8"] and Variant(chunk=True).stateful
    assert [v.name for v in parse_formats(list(FORMATS))] == list(FORMATS)


@pytest.mark.parametrize("kwargs, match", [
    ({"verify_data": "both"}, "'verify_data' parameter"),
    ({"atol": 0.0}, "'atol' parameter"),
    ({"min_gain": 1.5}, "'min_gain' parameter"),
    ({"ir_version": 14}, "'ir_version' parameter must be an int in \\[8, 13\\]"),
    ({"ir_version": 3}, "'ir_version' parameter must be an int in \\[8, 13\\]"),
    ({"parity_samples": 0}, "'parity_samples' parameter"),
    ({"int8": None}, "'int8' parameter must be an Int8Tolerance"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ExportOptions(**kwargs)


def test_existing_files_need_force(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("rnn", (4,)))
    export_checkpoint(load_checkpoint(path), "dense", tmp_path / "o")
    with pytest.raises(ExportError, match="already exists"):
        export_checkpoint(load_checkpoint(path), "dense", tmp_path / "o")
    export_checkpoint(load_checkpoint(path), "dense", tmp_path / "o", force=True)


def test_out_dir_not_writable(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("rnn", (4,)))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="not a directory"):
        export_checkpoint(load_checkpoint(path), "dense", blocker / "sub")
    with pytest.raises(ExportError, match="not a directory"):
        export_checkpoint(load_checkpoint(path), "dense", blocker)


def test_missing_task_data_suggests_random(make_model, make_checkpoint, tmp_path):
    model = make_model("lstm", (6,), 0.5, input_size=28, output_size=10)
    task = {"name": "smnist", "params": {"data": str(tmp_path / "moved")}}
    ckpt = load_checkpoint(make_checkpoint(model, task))
    with pytest.raises(DataError, match="--verify-data random"):
        export_checkpoint(ckpt, "dense", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    results = export_checkpoint(ckpt, "dense,step,int8", tmp_path / "o", options=ExportOptions(verify_data="random"))
    meta = {p.key: p.value for p in onnx.load(str(results[0].path)).metadata_props}
    assert meta["rnncompress.verified"] == "random"
    assert results[2].parity.kind == "rel_rms"


def test_the_interface_is_stored_when_its_tables_can_be_read(make_model, make_checkpoint, tmp_path):
    """The file carries the task's interface (navigation's place-cell centres, here); a
    charlm model whose text is gone exports (verified on random inputs) without one rather
    than with a vocabulary from nowhere."""
    nav = {"name": "navigation", "params": {"seq_len": 5, "samples": 16, "val_samples": 8, "test_samples": 16,
                                            "place_cells": 8}}
    model = make_model("rnn", (6,), input_size=2, output_size=8, init_size=8, head="every")
    result, = export_checkpoint(load_checkpoint(make_checkpoint(model, nav)), "dense", tmp_path / "nav")
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    stored = json.loads(meta["rnncompress.interface"])
    assert stored == task_from_checkpoint(nav).interface()
    assert len(stored["place_cell_centres"]) == 8
    text = tmp_path / "t.txt"
    text.write_text("abcab" * 40)
    task = {"name": "charlm", "params": {"data": str(text), "seq_len": 4, "embed_dim": 2}}
    lm = make_model("lstm", (4,), input_size=3, output_size=3, head="every", input_layer="embedding", input_dim=2)
    ckpt = load_checkpoint(make_checkpoint(lm, task))
    text.unlink()
    result, = export_checkpoint(ckpt, "dense", tmp_path / "lm", options=ExportOptions(verify_data="random"))
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert "rnncompress.interface" not in meta and json.loads(meta["rnncompress.task"])["name"] == "charlm"


def test_task_shape_mismatch_is_a_data_error(make_model, make_checkpoint, tmp_path):
    model = make_model("gru", (4,), input_size=3)  # adding has 2 input features
    with pytest.raises(DataError, match="does not fit the"):
        export_checkpoint(load_checkpoint(make_checkpoint(model)), "dense", tmp_path / "o")


def test_build_variant_without_verification_is_deterministic(make_model):
    model = make_model("lstm", (5, 4), 0.9)
    for v in parse_formats("dense,sparse,step,int8+sparse"):
        assert build_variant(model, v).SerializeToString() == build_variant(model, v).SerializeToString()


# ------------------------------------------------------------------- sparsify_file
def test_sparsify_file(make_model, tmp_path):
    model = build_full_graph(make_model("lstm", (16,), 0.9))
    src = tmp_path / "in.onnx"
    onnx.save(model, str(src))
    before = src.read_bytes()
    r = sparsify_file(src, tmp_path / "out.onnx")
    assert src.read_bytes() == before
    assert r.bytes_after < r.bytes_before and r.sparsified >= 1 and r.onnxruntime_loads
    with pytest.raises(ConfigError, match="already exists"):
        sparsify_file(src, tmp_path / "out.onnx")
    sparsify_file(src, tmp_path / "out.onnx", force=True)


@pytest.mark.parametrize("fmt, after", [("dense", "sparse"), ("step", "step+sparse"), ("int8", "int8+sparse")])
def test_sparsify_records_the_format_it_leaves(make_model, make_checkpoint, tmp_path, fmt, after):
    ckpt = make_checkpoint(make_model("lstm", (24,), 0.9, input_size=2))
    (r,) = export_checkpoint(load_checkpoint(ckpt), fmt, tmp_path / "o", options=ExportOptions(verify_data="random"))
    sparsify_file(r.path, tmp_path / "s.onnx")
    assert onnx_summary(tmp_path / "s.onnx")["metadata"]["format"] == after
    assert parse_formats(after)[0].sparse


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"hello, not onnx\n", "is not an ONNX model"),
    (b"\x08\x07", "is not an ONNX model"),  # a valid protobuf: ir_version 7 and nothing else
])
def test_sparsify_refuses_non_onnx(tmp_path, content, match):
    src = tmp_path / "bad.onnx"
    src.write_bytes(content)
    with pytest.raises(ExportError, match=match):
        sparsify_file(src, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_sparsify_refuses_overwriting_input(make_model, tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(build_full_graph(make_model("gru", (4,))), str(src))
    with pytest.raises(ConfigError, match="is one of the inputs"):
        sparsify_file(src, src)
    with pytest.raises(ConfigError, match="is one of the inputs"):
        sparsify_file(src, tmp_path / "." / "in.onnx")


def _result(fmt: str, size: int, stored_sparsity: float = 0.0, int8: tuple[str, ...] = ()):
    from pathlib import Path

    from exporters.export import ExportResult, Variant, parse_formats
    from exporters.verify import Parity

    [v] = parse_formats(fmt)
    assert isinstance(v, Variant)
    return ExportResult(fmt, Path(v.filename("m")), size, stored_sparsity, Parity("max_abs", 0.0, 1e-5, "x"),
                        OPSET, IR_VERSION, int8)


def test_export_notes_say_what_a_format_name_does_not():
    from exporters.export import export_notes

    notes = export_notes([_result("dense", 1000), _result("sparse", 1000), _result("int8+sparse", 1100, 0.1, ("W",))])
    assert notes[0] == ("m.sparse.onnx stores nothing sparse (no initializer has enough zeros for sparse storage to "
                        "be smaller): it is the non-sparse file.")
    assert notes[1].startswith("m.int8.sparse.onnx is not smaller than m.sparse.onnx (1,100 vs 1,000 bytes)")
    # without the sparse file, its twin is the dense one; a --min-gain is named as the reason
    notes = export_notes([_result("dense", 1000), _result("int8+sparse", 1100, 0.0, ("W",))], min_gain=0.9)
    assert notes == ["m.int8.sparse.onnx stores nothing sparse (no initializer saves the --min-gain 0.9 of its "
                     "size): it is the non-sparse file.",
                     "m.int8.sparse.onnx is not smaller than m.onnx (1,100 vs 1,000 bytes): its matrices are too "
                     "small for int8 storage to save more than the metadata and nodes it adds."]
    assert export_notes([_result("step", 900), _result("step+int8", 800, 0.0, ("R",))]) == []
    assert export_notes([_result("int8", 900)]) == [
        "m.int8.onnx holds nothing int8 (every matrix is below --int8-float-below, or too small for int8 to shrink "
        "the file): it is the float model."]


@pytest.mark.parametrize("tokens", [False, True])
@pytest.mark.parametrize("fmt", ["step", "chunk"])
def test_the_streaming_sentence_gives_x_the_rank_the_graph_has(make_model, tokens: bool, fmt: str) -> None:
    """A token model's step x is [batch] (int64 ids), its chunk x [batch, k]: no F axis."""
    import re

    config = {"input_size": 7, "input_layer": "embedding", "input_dim": 4} if tokens else {}
    model = make_model(**config)
    [variant] = parse_formats(fmt)
    x = next(i for i in build_variant(model, variant).graph.input if i.name == "x")
    sentence = variant.streaming(tokens=model.config.input_layer == "embedding")
    shape = re.search(r"x \[([^\]]*)\]", sentence).group(1)
    assert len(shape.split(",")) == len(x.type.tensor_type.shape.dim), sentence
