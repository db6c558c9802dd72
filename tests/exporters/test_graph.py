"""The emitter: every cell, depth, hidden size and sparsity gives a valid ONNX model that
onnxruntime runs with torch's outputs; the step model over T steps, and the chunk model
fed in any chunking, equal the full one."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from exporters.export import IR_VERSION, random_inputs
from exporters.graph import OPSET, build_chunk_graph, build_full_graph, build_step_graph
from exporters.passes import SetIrVersion, SparsifyInitializers
from exporters.verify import make_session, run_full, run_steps, torch_initial_states

ATOL = 1e-5


def _check(model, sparse: bool = False):
    full = SetIrVersion(IR_VERSION)(build_full_graph(model)).model
    step = SetIrVersion(IR_VERSION)(build_step_graph(model)).model
    chunk = SetIrVersion(IR_VERSION)(build_chunk_graph(model)).model
    if sparse:
        full = SparsifyInitializers()(full).model
        step = SparsifyInitializers()(step).model
        chunk = SparsifyInitializers()(chunk).model
    for m in (full, step, chunk):
        # onnx's strict shape inference types sparse initializers as sparse_tensor(float),
        # which no op accepts: the full check applies to dense models only.
        onnx.checker.check_model(m, full_check=not sparse)
        assert m.ir_version == IR_VERSION
        assert [(o.domain, o.version) for o in m.opset_import] == [("", OPSET)]
    full_s, step_s, chunk_s = make_session(full), make_session(step), make_session(chunk)
    for batch, steps in ((3, 7), (1, 1), (5, 2)):  # dynamic batch and sequence length
        split = random_inputs(model, batch, steps, seed=batch)
        x, init = split.x, split.init
        with torch.no_grad():
            ref = model(x, init).numpy()
        y = run_full(full_s, x, init)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=ATOL)
        ys, states = run_steps(step_s, x, torch_initial_states(model, split))
        got = ys[:, -1] if model.config.head == "last" else ys
        np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)
        assert set(states) == {i.name for i in step_s.get_inputs()} - {"x"}
        for chunks in ((), (1,), (2,), (3, 1)):  # whole sequence, one step per call, uneven chunks
            ys_c, states_c = run_steps(chunk_s, x, torch_initial_states(model, split), chunks)
            np.testing.assert_allclose(ys_c, ys, rtol=0, atol=ATOL)
            assert states_c.keys() == states.keys()
            for k in states:
                np.testing.assert_allclose(states_c[k], states[k], rtol=0, atol=ATOL)


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
@pytest.mark.parametrize("hidden", [3, 8])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_parity_cell_layers_hidden_sparsity(make_model, cell, layers, hidden, sparsity):
    model = make_model(cell, (hidden,) * layers, sparsity, seed=layers * 10 + hidden)
    _check(model, sparse=sparsity > 0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("extra", [
    {"hidden": (12, 7)},
    {"hidden": (6, 9, 4), "head": "every"},
    {"input_layer": "embedding", "input_size": 11, "input_dim": 5, "head": "every", "output_size": 11},
    {"input_layer": "linear", "input_dim": 6},
    {"init_size": 4, "hidden": (5, 3), "head": "every", "output_size": 3},
    {"init_size": 4, "hidden": (5,)},
    {"bias": False, "nonlinearity": "relu", "hidden": (6, 4)},
], ids=["unequal", "three-layers-every", "embedding", "linear-input", "init-2-layers", "init-1-layer", "no-bias-relu"])
def test_parity_model_shapes(make_model, cell, extra):
    extra = dict(extra)
    hidden = extra.pop("hidden", (6,))
    _check(make_model(cell, hidden, 0.5, seed=3, **extra))


def test_graph_io_names(make_model):
    model = make_model("lstm", (4, 3), init_size=2)
    full, step = build_full_graph(model), build_step_graph(model)
    assert [i.name for i in full.graph.input] == ["x", "init"]
    assert [o.name for o in full.graph.output] == ["y"]
    dims = [d.dim_param or d.dim_value for d in full.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq", 2]
    assert [i.name for i in step.graph.input] == ["x", "h0", "h1", "c0", "c1"]
    assert [o.name for o in step.graph.output] == ["y", "h0_out", "h1_out", "c0_out", "c1_out"]
    chunk = build_chunk_graph(model)
    assert [i.name for i in chunk.graph.input] == [i.name for i in step.graph.input]
    assert [o.name for o in chunk.graph.output] == [o.name for o in step.graph.output]
    dims = [d.dim_param or d.dim_value for d in chunk.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "steps", 2]


def test_gate_reordering_is_not_identity():
    """A wrong gate order would still run: make sure the reorder is what torch needs."""
    from exporters.graph import reorder_gates

    w = np.arange(8, dtype=np.float32).reshape(4, 2)  # LSTM: 4 gates of hidden 1
    assert reorder_gates(w, "lstm")[:, 0].tolist() == [0, 6, 2, 4]  # i, o, f, g(c)
    w = np.arange(3, dtype=np.float32).reshape(3, 1)  # GRU: r, z, n
    assert reorder_gates(w, "gru")[:, 0].tolist() == [1, 0, 2]  # z, r, h


def test_negative_zero_is_normalised(make_model):
    model = make_model("gru", (4,))
    with torch.no_grad():
        model.rnn[0].weight_hh_l0[0, 0] = -0.0
    w = {t.name: onnx.numpy_helper.to_array(t) for t in build_full_graph(model).graph.initializer}["rnn.0.R"]
    assert not np.signbit(w[w == 0]).any()
