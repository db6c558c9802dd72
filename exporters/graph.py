"""Emit ONNX graphs straight from a ``SequenceModel``'s weights (our own emitter).

We do not go through ``torch.onnx.export``: building the graph with ``onnx.helper`` is
deterministic (the same checkpoint gives byte-identical files), fast, handles a
different hidden size per layer and gives the streaming step model for free. Every
export is still verified against the torch model (``exporters.verify``).

Both graphs use opset 17 and IR version 8 (see ``IR_VERSION``).

Full model (``build_full_graph``)::

    inputs   x     float [batch, seq, input_size]   (int64 tokens [batch, seq] with an
                                                     embedding input layer)
             init  float [batch, init_size]          only when the model has an init layer
    output   y     float [batch, output_size]        head "last"
                   float [batch, seq, output_size]   head "every"

Step model (``build_step_graph``), one time step for streaming::

    inputs   x            float [batch, input_size]  (int64 tokens [batch])
             h0, h1, ...  float [1, batch, hidden_l]  hidden state of layer l
             c0, c1, ...  float [1, batch, hidden_l]  cell state (LSTM only)
    outputs  y            float [batch, output_size]
             h0_out, ...  the new hidden states, then c0_out, ... (LSTM)

Chunk model (``build_chunk_graph``), several streaming steps per call, so the fixed cost
of a call is paid once per chunk::

    inputs   x            float [batch, steps, input_size]  (int64 tokens [batch, steps])
             h0.., c0..   as in the step model
    outputs  y            float [batch, steps, output_size]  every step's output
             h0_out, ...  the states after the last step of the chunk

The step and chunk models have no ``init`` input: the caller owns the state. Start from zeros, or
from the full model's initial state (``init`` projected by the init layer, c = 0).

Layout facts this relies on:
- onnxruntime's CPU RNN/LSTM/GRU kernels refuse ``layout=1`` (batch first), so the
  graph transposes [batch, seq, F] to [seq, batch, F] once before the first layer.
- Gate order differs: torch LSTM (i, f, g, o) -> ONNX (i, o, f, c); torch GRU (r, z, n)
  -> ONNX (z, r, h). ONNX B is concat(Wb, Rb) of the reordered biases.
- torch's GRU applies the reset gate after the recurrent matmul (and its bias), which
  is ONNX ``linear_before_reset=1``; the default 0 computes something else.
- A recurrent layer without bias gets no B input (ONNX defines it as zeros).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.checkpoint import package_version
from models.sequence import SequenceModel

OPSET = 17  # LSTM/GRU/RNN-14 semantics; per-axis DequantizeLinear needs >= 13
# IR 8 is the version onnx pairs with opset 17 (onnx 1.12); onnx 1.23 would write 14,
# which onnxruntime 1.31 (at most 13) refuses. onnxruntime >= 1.12 reads IR 8.
IR_VERSION = 8
MIN_IR_VERSION = 8  # the IR version that introduced opset 17
ONNX_OPS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# Index of each ONNX gate block in torch's stacked weight, in ONNX order.
GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
BATCH, SEQ, STEPS = "batch", "seq", "steps"


def _array(t: Any) -> np.ndarray:
    """A float32 copy of a tensor, with -0.0 (left by masking) turned into +0.0 so that
    sparse storage round-trips bit-exactly."""
    a = t.detach().cpu().numpy().astype(np.float32, copy=True)
    return a + np.float32(0.0)


def reorder_gates(weight: np.ndarray, cell: str) -> np.ndarray:
    """Reorder torch's stacked gate blocks (rows) into ONNX's order."""
    blocks = np.split(weight, len(GATE_ORDER[cell]), axis=0)
    return np.concatenate([blocks[i] for i in GATE_ORDER[cell]], axis=0)


def recurrent_initializers(model: SequenceModel, layer: int) -> dict[str, np.ndarray]:
    """ONNX W [1, G*H, in], R [1, G*H, H] and, with bias, B [1, 2*G*H] for one layer."""
    cell = model.config.cell
    mod = model.rnn[layer]
    out = {
        "W": reorder_gates(_array(mod.weight_ih_l0), cell)[None],
        "R": reorder_gates(_array(mod.weight_hh_l0), cell)[None],
    }
    if model.config.bias:
        wb = reorder_gates(_array(mod.bias_ih_l0), cell)
        rb = reorder_gates(_array(mod.bias_hh_l0), cell)
        out["B"] = np.concatenate([wb, rb])[None]
    return out


class _Builder:
    """Collects nodes and initializers in a fixed order (deterministic output)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._names: set[str] = set()

    def init(self, name: str, array: np.ndarray) -> str:
        if name not in self._names:
            self._names.add(name)
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any) -> list[str]:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs

    def axes(self, axis: int) -> str:
        return self.init(f"axes_{axis}", np.array([axis], dtype=np.int64))

    def linear(self, x: str, module: Any, prefix: str, out: str) -> str:
        """x @ W^T (+ b): MatMul then Add, which dynamic quantization turns into int8."""
        wt = self.init(f"{prefix}.weight_t", _array(module.weight).T)
        if module.bias is None:
            return self.node("MatMul", [x, wt], [out], f"{prefix}.matmul")[0]
        mm = self.node("MatMul", [x, wt], [f"{prefix}.mm"], f"{prefix}.matmul")[0]
        b = self.init(f"{prefix}.bias", _array(module.bias))
        return self.node("Add", [mm, b], [out], f"{prefix}.add")[0]

    def input_layer(self, model: SequenceModel, x: str) -> str:
        c = model.config
        if c.input_layer == "embedding":
            table = self.init("input.weight", _array(model.input.weight))
            return self.node("Gather", [table, x], ["input.out"], "input.gather", axis=0)[0]
        if c.input_layer == "linear":
            return self.linear(x, model.input, "input", "input.out")
        return x

    def recurrent(self, model: SequenceModel, layer: int, x: str, h0: str, c0: str,
                  y: str, y_h: str, y_c: str) -> None:
        c = model.config
        w = recurrent_initializers(model, layer)
        p = f"rnn.{layer}"
        inputs = [x, self.init(f"{p}.W", w["W"]), self.init(f"{p}.R", w["R"])]
        inputs.append(self.init(f"{p}.B", w["B"]) if "B" in w else "")
        inputs += ["", h0]  # sequence_lens: all sequences are full length
        attrs: dict[str, Any] = {"hidden_size": c.hidden_sizes[layer]}
        outputs = [y, y_h]
        if c.cell == "lstm":
            inputs.append(c0)
            outputs.append(y_c)
        elif c.cell == "gru":
            attrs["linear_before_reset"] = 1
        else:
            attrs["activations"] = ["Relu" if c.nonlinearity == "relu" else "Tanh"]
        while inputs and inputs[-1] == "":
            inputs.pop()
        while outputs and outputs[-1] == "":
            outputs.pop()
        self.node(ONNX_OPS[c.cell], inputs, outputs, f"{p}.{c.cell}", **attrs)

    def model(self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rnncompress", producer_version=package_version())
        model.ir_version = IR_VERSION
        return model


def _x_info(model: SequenceModel, dims: list[Any]) -> onnx.ValueInfoProto:
    c = model.config
    if c.input_layer == "embedding":
        return helper.make_tensor_value_info("x", TensorProto.INT64, dims)
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, dims + [c.input_size])


def build_full_graph(model: SequenceModel) -> onnx.ModelProto:
    """The whole-sequence model: ``x`` (and ``init``) -> ``y``. See the module docstring."""
    c = model.config
    b = _Builder()
    inputs = [_x_info(model, [BATCH, SEQ])]
    h = b.input_layer(model, "x")
    h = b.node("Transpose", [h], ["x_tbf"], "to_time_major", perm=[1, 0, 2])[0]
    h0s = [""] * c.num_layers
    if c.init_size:
        inputs.append(helper.make_tensor_value_info("init", TensorProto.FLOAT, [BATCH, c.init_size]))
        h_all = b.linear("init", model.init, "init", "init.out")
        if c.num_layers == 1:
            parts = [h_all]
        else:
            sizes = b.init("init.split", np.array(c.hidden_sizes, dtype=np.int64))
            parts = b.node("Split", [h_all, sizes], [f"init.h{l}" for l in range(c.num_layers)], "init.split", axis=1)
        h0s = [b.node("Unsqueeze", [p, b.axes(0)], [f"h0_{l}"], f"init.unsqueeze{l}")[0] for l, p in enumerate(parts)]
    last = c.num_layers - 1
    for l in range(c.num_layers):
        need_y = l < last or c.head == "every"
        y = f"rnn.{l}.y" if need_y else ""
        y_h = f"rnn.{l}.y_h" if l == last and c.head == "last" else ""
        b.recurrent(model, l, h, h0s[l], "", y, y_h, "")
        if need_y:  # Y is [seq, 1, batch, H]: drop the direction axis
            h = b.node("Squeeze", [y, b.axes(1)], [f"rnn.{l}.out"], f"rnn.{l}.squeeze")[0]
    if c.head == "last":
        h = b.node("Squeeze", [f"rnn.{last}.y_h", b.axes(0)], ["last"], "last_step")[0]
        b.linear(h, model.head, "head", "y")
        y_dims: list[Any] = [BATCH, c.output_size]
    else:
        h = b.linear(h, model.head, "head", "y_tb")
        b.node("Transpose", [h], ["y"], "to_batch_major", perm=[1, 0, 2])
        y_dims = [BATCH, SEQ, c.output_size]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)]
    return b.model("rnncompress_full", inputs, outputs, "rnncompress sequence model (full sequence)")


def state_names(model: SequenceModel) -> tuple[list[str], list[str]]:
    """Step-model state inputs in feed order: h0, h1, ... then c0, c1, ... (LSTM)."""
    n = model.config.num_layers
    hs = [f"h{l}" for l in range(n)]
    cs = [f"c{l}" for l in range(n)] if model.config.cell == "lstm" else []
    return hs, cs


def build_step_graph(model: SequenceModel) -> onnx.ModelProto:
    """One time step: ``x``, ``h*`` (and ``c*``) -> ``y``, ``h*_out`` (and ``c*_out``)."""
    return _stateful_graph(model, chunk=False)


def build_chunk_graph(model: SequenceModel) -> onnx.ModelProto:
    """Several streaming steps per call: ``x`` [batch, steps, F], ``h*`` (and ``c*``) ->
    ``y`` [batch, steps, out] (every step's output), ``h*_out`` (and ``c*_out``)."""
    return _stateful_graph(model, chunk=True)


def _stateful_graph(model: SequenceModel, chunk: bool) -> onnx.ModelProto:
    c = model.config
    b = _Builder()
    hs, cs = state_names(model)
    inputs = [_x_info(model, [BATCH, STEPS] if chunk else [BATCH])]
    sizes = list(c.hidden_sizes) * (2 if cs else 1)  # h0.. then c0.., same sizes
    for name, size in zip(hs + cs, sizes):
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, BATCH, size]))
    h = b.input_layer(model, "x")
    if chunk:
        h = b.node("Transpose", [h], ["x_tbf"], "to_time_major", perm=[1, 0, 2])[0]
    else:
        h = b.node("Unsqueeze", [h, b.axes(0)], ["x_1bf"], "one_step")[0]  # [seq=1, batch, F]
    for l in range(c.num_layers):
        c_in = cs[l] if cs else ""
        c_out = f"{cs[l]}_out" if cs else ""
        y = f"rnn.{l}.y" if chunk else ""
        b.recurrent(model, l, h, hs[l], c_in, y, f"{hs[l]}_out", c_out)
        if chunk:  # Y is [steps, 1, batch, H]: drop the direction axis
            h = b.node("Squeeze", [y, b.axes(1)], [f"rnn.{l}.out"], f"rnn.{l}.squeeze")[0]
        else:
            h = f"{hs[l]}_out"  # Y_h [1, batch, H] is also the next layer's one-step input
    if chunk:
        h = b.linear(h, model.head, "head", "y_tb")
        b.node("Transpose", [h], ["y"], "to_batch_major", perm=[1, 0, 2])
        y_dims: list[Any] = [BATCH, STEPS, c.output_size]
    else:
        h = b.node("Squeeze", [h, b.axes(0)], ["last"], "last_step")[0]
        b.linear(h, model.head, "head", "y")
        y_dims = [BATCH, c.output_size]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)]
    for name, size in zip(hs + cs, sizes):
        outputs.append(helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, BATCH, size]))
    if chunk:
        return b.model("rnncompress_chunk", inputs, outputs, "rnncompress sequence model (streaming, several steps "
                                                             "per call)")
    return b.model("rnncompress_step", inputs, outputs, "rnncompress sequence model (one streaming step)")
