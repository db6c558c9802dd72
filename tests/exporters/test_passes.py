"""Passes: pure, deterministic, report whether they changed the model; sparse storage
round-trips exactly and never makes a file larger."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from exporters.graph import IR_VERSION, build_full_graph, build_step_graph
from exporters.passes import (
    AddMetadata,
    DensifyInitializers,
    QuantizeDynamic,
    SetIrVersion,
    SparsifyInitializers,
    StoreRecurrentWeightsInt8,
    run_passes,
    stored_sparsity,
    to_dense_tensor,
    weight_only_int8,
)
from exporters.verify import make_session, run_full
from models.checkpoint import package_version
from models.errors import ConfigError, ExportError


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    dense = DensifyInitializers()(model).model
    return {t.name: numpy_helper.to_array(t) for t in dense.graph.initializer}


def _one_weight_model(array: np.ndarray) -> onnx.ModelProto:
    """y = x @ W for one initializer W (2-D), or y = x + W (other ranks)."""
    w = numpy_helper.from_array(array, "W")
    dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
    if array.ndim == 2:
        node = helper.make_node("MatMul", ["x", "W"], ["y"])
        x_shape, y_shape = ["b", array.shape[0]], ["b", array.shape[1]]
    else:
        node = helper.make_node("Add", ["x", "W"], ["y"])
        x_shape = y_shape = list(array.shape)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, x_shape)],
                              [helper.make_tensor_value_info("y", dtype, y_shape)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@st.composite
def sparse_arrays(draw):
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=3)))
    sparsity = draw(st.floats(0.0, 1.0))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int8, np.int64, np.float16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    values = rng.normal(size=shape) * 50
    values[rng.random(shape) < sparsity] = 0
    return values.astype(dtype)


@settings(max_examples=60, deadline=None)
@given(sparse_arrays())
def test_sparsify_round_trip_exact_and_never_larger(array):
    model = _one_weight_model(array)
    sparse_model, changed = SparsifyInitializers()(model)
    onnx.checker.check_model(sparse_model)
    back = _weights(sparse_model)["W"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == (array + np.zeros((), array.dtype)).tobytes()  # exact (+0.0 for -0.0)
    assert sparse_model.ByteSize() <= model.ByteSize()
    assert changed == bool(sparse_model.graph.sparse_initializer)
    # float32 stores 4 + 8 bytes per non-zero instead of 4 per entry: above 2/3 zeros
    # (with a margin for the protobuf framing) it must win.
    zeros = float((array == 0).mean())
    if array.dtype == np.float32 and array.size >= 32 and zeros >= 0.75:
        assert changed and sparse_model.ByteSize() < model.ByteSize()


def test_sparsify_drops_dense_types_of_converted_tensors_and_needs_ir_6() -> None:
    # A value_info typing W as a dense tensor contradicts its sparse initializer: onnx's own
    # (non-strict) shape inference and onnxruntime's quantizer fail on such a file. Sparse
    # initializers came with IR 6: an older model is raised to it.
    array = np.zeros((16, 8), np.float32)
    array[0, 0] = 1.0
    model = _one_weight_model(array)
    model.graph.value_info.append(helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [16, 8]))
    model.graph.value_info.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", 8]))
    model.ir_version = 5
    sparse_model, changed = SparsifyInitializers()(model)
    assert changed and [v.name for v in sparse_model.graph.value_info] == ["y"]
    assert sparse_model.ir_version == 6 and model.ir_version == 5  # (the input is untouched)
    onnx.shape_inference.infer_shapes(sparse_model)
    onnx.checker.check_model(sparse_model)


def test_initializer_stats_count_subgraphs() -> None:
    from exporters.passes import initializer_stats

    def branch(name: str) -> onnx.GraphProto:
        w = numpy_helper.from_array(np.ones(4, np.float32), f"{name}_w")
        node = helper.make_node("Identity", [f"{name}_w"], [f"{name}_out"])
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(f"{name}_out", 1, [4])], [w])

    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch("then"), else_branch=branch("else"))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", 1, [4])], [cond])
    stats = initializer_stats(helper.make_model(graph))
    assert stats["elements"] == 1 + 4 + 4 and stats["dense"] == 3


def _if_model_with_sparse_weights() -> onnx.ModelProto:
    """y = x @ W (then) or x @ W2 (else); W in the main graph, W2 in the else branch; both 90% zeros."""
    rng = np.random.default_rng(0)

    def weights(name: str) -> onnx.TensorProto:
        w = rng.normal(size=(8, 8)).astype(np.float32)
        w[rng.random((8, 8)) < 0.9] = 0.0
        return numpy_helper.from_array(w, name)

    def branch(name: str, w: str, inits: list) -> onnx.GraphProto:
        node = helper.make_node("MatMul", ["x", w], [f"{name}_y"])
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(f"{name}_y", 1, [1, 8])], inits)

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("then", "W", []),
                            else_branch=branch("else", "W2", [weights("W2")]))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1, 8]),
                                            helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", 1, [1, 8])], [weights("W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    return model


def test_subgraph_initializers_are_sparsified_and_densified_too() -> None:
    """An If branch's own weights get the main graph's treatment, and onnxruntime computes
    the same outputs from the sparse file (it loads a subgraph's sparse initializers)."""
    from exporters.passes import all_graphs, initializer_stats

    model = _if_model_with_sparse_weights()
    sparse_model, changed = SparsifyInitializers()(model)
    assert changed and initializer_stats(sparse_model)["sparse"] == 2 and initializer_stats(sparse_model)["dense"] == 0
    else_branch = next(a.g for a in sparse_model.graph.node[0].attribute if a.name == "else_branch")
    assert [sp.values.name for sp in else_branch.sparse_initializer] == ["W2"]
    onnx.checker.check_model(sparse_model)
    x = np.arange(8, dtype=np.float32)[None]
    for c in (True, False):
        feeds = {"x": x, "c": np.array(c)}
        dense_y = make_session(model).run(None, feeds)[0]
        assert np.array_equal(make_session(sparse_model).run(None, feeds)[0], dense_y)
    dense_again, changed = DensifyInitializers()(sparse_model)
    assert changed and initializer_stats(dense_again)["sparse"] == 0
    restored = {t.name: numpy_helper.to_array(t) for g in all_graphs(dense_again.graph) for t in g.initializer}
    original = {t.name: numpy_helper.to_array(t) for g in all_graphs(model.graph) for t in g.initializer}
    assert restored.keys() == original.keys() and all(np.array_equal(restored[k], original[k]) for k in original)


def test_sparsify_file_counts_subgraph_initializers_as_info_does(tmp_path) -> None:
    from exporters.export import onnx_summary, sparsify_file

    src = tmp_path / "if.onnx"
    onnx.save(_if_model_with_sparse_weights(), str(src))
    r = sparsify_file(src, tmp_path / "if.sparse.onnx")
    assert (r.sparsified, r.initializers) == (2, 2)
    stats = onnx_summary(tmp_path / "if.sparse.onnx")["initializers"]
    assert (stats["sparse"], stats["dense"]) == (2, 0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.7, 0.95])
def test_sparse_export_smaller_above_break_even(make_model, cell, sparsity):
    model = make_model(cell, (24, 16), sparsity, seed=1)
    dense = build_full_graph(model)
    sparse_model, _ = SparsifyInitializers()(dense)
    assert sparse_model.ByteSize() <= dense.ByteSize()
    if sparsity >= 0.7:
        assert sparse_model.ByteSize() < dense.ByteSize()
        assert stored_sparsity(sparse_model) > 0.5
    weights = {t.name: numpy_helper.to_array(t) for t in dense.graph.initializer}
    back = _weights(sparse_model)
    assert back.keys() == weights.keys()
    for name, w in weights.items():
        assert back[name].tobytes() == w.tobytes(), name  # bit-exact round trip


def test_min_gain_keeps_marginal_tensors_dense(make_model):
    dense = build_full_graph(make_model("lstm", (16,), 0.75, seed=2))
    loose = SparsifyInitializers(0.0)(dense).model
    strict = SparsifyInitializers(0.5)(dense).model
    assert len(strict.graph.sparse_initializer) < len(loose.graph.sparse_initializer)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_min_gain_validated(bad):
    with pytest.raises(ConfigError, match="'min_gain' parameter must be a float in \\[0, 1\\)"):
        SparsifyInitializers(bad)


@pytest.mark.parametrize("p", [
    SparsifyInitializers(), DensifyInitializers(), SetIrVersion(9), AddMetadata({"k": "v"}),
    QuantizeDynamic(), StoreRecurrentWeightsInt8(),
], ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_passes_are_pure_and_deterministic(make_model, p, cell):
    model = build_full_graph(make_model(cell, (8,), 0.9, seed=4))
    if isinstance(p, DensifyInitializers):
        model = SparsifyInitializers()(model).model
    before = model.SerializeToString()
    first, changed = p(model)
    second, _ = p(model)
    assert model.SerializeToString() == before
    assert first.SerializeToString() == second.SerializeToString()
    assert changed == (first.SerializeToString() != before)
    again, changed_again = p(first)
    if not isinstance(p, (QuantizeDynamic, StoreRecurrentWeightsInt8)):
        assert not changed_again  # idempotent


def test_set_ir_version_and_metadata(make_model):
    model = build_full_graph(make_model("rnn", (4,)))
    out, changed = run_passes(model, [SetIrVersion(8), AddMetadata({"b": "2", "a": "1"}), AddMetadata({"a": "3"})])
    assert changed and out.ir_version == 8
    assert [(p.key, p.value) for p in out.metadata_props] == [("a", "3"), ("b", "2")]
    with pytest.raises(ConfigError, match="'ir_version' parameter"):
        SetIrVersion(2)


def test_densify_accepts_coordinate_indices():
    values = numpy_helper.from_array(np.array([1.5, -2.0], np.float32), "W")
    indices = numpy_helper.from_array(np.array([[0, 1], [2, 0]], np.int64), "")
    dense = numpy_helper.to_array(to_dense_tensor(helper.make_sparse_tensor(values, indices, [3, 2])))
    assert dense.tolist() == [[0, 1.5], [0, 0], [-2.0, 0]]


def test_quantize_refuses_sparse_input(make_model):
    model = SparsifyInitializers()(build_full_graph(make_model("lstm", (8,), 0.9))).model
    with pytest.raises(ExportError, match="quantize before sparsifying"):
        QuantizeDynamic()(model)


def test_quantize_lstm_becomes_dynamic_quantize_lstm(make_model):
    q = QuantizeDynamic()(build_full_graph(make_model("lstm", (8, 6), 0.5))).model
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("DynamicQuantizeLSTM") == 2 and "LSTM" not in ops
    assert "MatMulInteger" in ops  # the head
    assert (q.producer_name, q.producer_version, q.ir_version) == ("rnncompress", package_version(), IR_VERSION)


def _matmuls(model: onnx.ModelProto) -> dict[str, str]:
    """MatMul prefix ("head", "input") -> "float" or "int8", as the quantized graph has it."""
    out = {}
    for n in model.graph.node:
        prefix = n.name.split(".")[0]
        if n.op_type == "MatMul":
            out[prefix] = "float"
        elif n.op_type == "MatMulInteger":
            out[prefix] = "int8"
    return out


@pytest.mark.parametrize("graph, head, expected", [
    (build_full_graph, "last", {"input": "int8", "head": "float"}),    # every step / once per call
    (build_full_graph, "every", {"input": "int8", "head": "int8"}),    # both over every time step
    (build_step_graph, "last", {"input": "float", "head": "float"}),   # a step model: one row per call
])
def test_quantize_keeps_small_one_row_ops_float(make_model, graph, head, expected):
    # big enough that int8 storage pays for every op (see test_quantize_leaves_tiny_ops_float)
    model = make_model("lstm", (8,), 0.0, input_layer="linear", input_dim=40, input_size=30,
                       output_size=40, head=head)
    proto = graph(model)
    small = QuantizeDynamic(float_below=10_000)
    q = small(proto).model
    assert _matmuls(q) == expected
    floats = {f"{k}.matmul" for k, v in expected.items() if v == "float"}
    assert set(small.float_nodes(proto)) == floats | ({"rnn.0.lstm"} if graph is build_step_graph else set())
    ops = [n.op_type for n in q.graph.node]  # the LSTM: float over one step, int8 over a sequence
    assert ("LSTM" in ops, "DynamicQuantizeLSTM" in ops) == ((True, False) if graph is build_step_graph
                                                              else (False, True))
    assert set(_matmuls(QuantizeDynamic()(proto).model).values()) == {"int8"}  # 0: every MatMul
    sizes = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer}
    smallest = min(sizes[n.input[1]] for n in proto.graph.node if n.op_type == "MatMul")
    assert QuantizeDynamic(float_below=smallest).float_nodes(proto) == []  # "fewer than": the smallest is quantized


def test_quantize_leaves_tiny_ops_float(make_model):
    """A head of 8 x 1 weights and an LSTM of 2 hidden neurons would grow the file as int8:
    they stay float by default (any float_below), and 0 still quantizes everything."""
    proto = build_full_graph(make_model("lstm", (2,), 0.0, input_size=3, output_size=1, head="every"))
    assert set(QuantizeDynamic(float_below=1).float_nodes(proto)) == {"head.matmul", "rnn.0.lstm"}
    assert QuantizeDynamic(float_below=0).float_nodes(proto) == []
    big = build_full_graph(make_model("lstm", (32,), 0.0, input_size=3, output_size=16, head="every"))
    assert QuantizeDynamic(float_below=1).float_nodes(big) == []


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64"])
def test_float_below_validated(bad):
    with pytest.raises(ConfigError, match="'float_below' parameter must be an int >= 0"):
        QuantizeDynamic(float_below=bad)


@pytest.mark.parametrize("cell", ["gru", "rnn", "lstm"])
def test_weight_only_int8_keeps_zeros_and_runs(make_model, cell):
    import torch

    model = make_model(cell, (16, 8), 0.8, seed=5, input_size=12)
    q = StoreRecurrentWeightsInt8()(build_full_graph(model)).model
    onnx.checker.check_model(q, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    for l in range(2):
        for m in ("W", "R"):
            assert inits[f"rnn.{l}.{m}_quantized"].dtype == np.int8
            assert f"rnn.{l}.{m}" not in inits
    # pruned weights stay exact zeros (zero point 0), so sparse storage still applies
    r = model.rnn[0].weight_hh_l0.detach().numpy()
    assert (inits["rnn.0.R_quantized"] == 0).sum() >= (r == 0).sum()
    x = torch.randn(4, 5, 12)
    with torch.no_grad():
        ref = model(x).numpy()
    y = run_full(make_session(q), x)
    assert np.abs(y - ref).max() < 0.05 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("hidden", [(2,), (4, 3), (6,), (16, 8), (40,)])
def test_weight_only_int8_never_grows_the_file(make_model, cell, hidden):
    """A matrix so small that int8 + one scale per row + a DequantizeLinear cost more bytes
    than its float values stays float: the pass only ever shrinks the model."""
    f = build_full_graph(make_model(cell, hidden))
    result = StoreRecurrentWeightsInt8()(f)
    assert result.model.ByteSize() <= f.ByteSize()
    int8 = weight_only_int8(result.model)
    assert result.changed == bool(int8)
    if hidden == (2,):
        assert not result.changed and result.model is f
    if hidden == (40,):
        assert "rnn.0.R" in int8  # [G*40, 40] pays
