"""ONNX transforms as passes: each takes a model and returns ``PassResult(model, changed)``.

Passes are pure (the input model is never mutated; the result is a new ``ModelProto``)
and deterministic (the same input gives a byte-identical output). Each states what it
requires of its input and what it ensures of its output. Run them in sequence with
``run_passes``.

Example:
    >>> model = onnx.load("model.onnx")
    >>> model, changed = run_passes(model, [SparsifyInitializers(min_gain=0.0), SetIrVersion(8)])
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, NamedTuple, Protocol

import numpy as np
import onnx
import sparse
from onnx import TensorProto, helper, numpy_helper

from models.errors import ExportError, param_error


class PassResult(NamedTuple):
    model: onnx.ModelProto
    changed: bool


class Pass(Protocol):
    def __call__(self, model: onnx.ModelProto) -> PassResult: ...


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def run_passes(model: onnx.ModelProto, passes: Iterable[Pass]) -> PassResult:
    """Apply ``passes`` in order; ``changed`` is True if any of them changed the model."""
    changed = False
    for p in passes:
        model, c = p(model)
        changed = changed or c
    return PassResult(model, changed)


# Element types whose values round-trip exactly through numpy_helper (others stay dense).
_SPARSIFIABLE = {
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT8, TensorProto.UINT8,
    TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64,
    TensorProto.UINT64,
}


def to_sparse_tensor(tensor: TensorProto) -> onnx.SparseTensorProto:
    """COO form of a dense initializer: values (named like the tensor) and flat int64
    indices in ascending order, as ``onnx.checker`` requires."""
    array = numpy_helper.to_array(tensor)
    coo = sparse.COO.from_numpy(array)  # fill value 0: drops 0 and -0.0
    values = numpy_helper.from_array(np.ascontiguousarray(coo.data), tensor.name)
    indices = numpy_helper.from_array(np.ascontiguousarray(coo.linear_loc().astype(np.int64)), "")
    return helper.make_sparse_tensor(values, indices, list(tensor.dims))


def to_dense_tensor(sp: onnx.SparseTensorProto) -> TensorProto:
    """The dense initializer a sparse one stands for (what onnxruntime builds at load)."""
    values = numpy_helper.to_array(sp.values)
    indices = numpy_helper.to_array(sp.indices).astype(np.int64)
    shape = tuple(int(d) for d in sp.dims)
    if indices.ndim == 2:  # [NNZ, rank] coordinate form, also allowed by the spec
        indices = np.ravel_multi_index(tuple(indices.T), shape) if indices.size else indices.reshape(0)
    dense = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=values.dtype)
    dense[indices] = values
    return numpy_helper.from_array(dense.reshape(shape), sp.values.name)


@dataclass(frozen=True)
class SparsifyInitializers:
    """Store every initializer that gets smaller as a ``graph.sparse_initializer``.

    Args:
        min_gain: fraction of an initializer's dense size that sparse storage must save
            for it to be converted, in [0, 1). 0 converts whenever sparse is smaller.

    Requires: a model whose weights are embedded (no external data). Initializers that
    are also inputs of their graph (overridable defaults) and types outside ``_SPARSIFIABLE``
    stay dense. Subgraphs (If branches, Loop and Scan bodies) are converted like the main
    graph: each keeps its sparse initializers itself, which onnxruntime loads.
    Ensures: every converted tensor's serialized size shrank by more than ``min_gain``
    of its dense size, so the file is never larger; values are unchanged (-0.0 is
    stored as an implicit 0). Break-even for float32 (4-byte value + 8-byte index) is
    2/3 zeros; for int8 it is 8/9. No ``value_info`` entry types a converted tensor (a
    dense type there would contradict the sparse one: shape inference fails on it), and
    the IR version is at least 6, the one that introduced sparse initializers.
    """

    min_gain: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_gain < 1.0:
            raise param_error("min_gain", "a float in [0, 1)", self.min_gain)

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        out = copy_model(model)
        changed = [self._sparsify(g) for g in all_graphs(out.graph)]
        if not any(changed):
            return PassResult(model, False)
        out.ir_version = max(out.ir_version, 6)
        return PassResult(out, True)

    def _sparsify(self, g: onnx.GraphProto) -> bool:
        """Convert ``g``'s own initializers in place; whether any was."""
        overridable = {i.name for i in g.input}
        keep: list[TensorProto] = []
        new_sparse: list[onnx.SparseTensorProto] = []
        for t in g.initializer:
            sp = self._candidate(t, overridable)
            if sp is None:
                keep.append(t)
            else:
                new_sparse.append(sp)
        if not new_sparse:
            return False
        del g.initializer[:]
        g.initializer.extend(keep)
        g.sparse_initializer.extend(new_sparse)
        converted = {sp.values.name for sp in new_sparse}
        typed = [v for v in g.value_info if v.name not in converted]
        del g.value_info[:]
        g.value_info.extend(typed)
        return True

    def _candidate(self, t: TensorProto, overridable: set[str]) -> onnx.SparseTensorProto | None:
        if t.name in overridable or t.data_type not in _SPARSIFIABLE or not t.dims:
            return None
        if t.data_location == TensorProto.EXTERNAL:
            return None
        if int(np.prod(t.dims, dtype=np.int64)) == 0:
            return None
        sp = to_sparse_tensor(t)
        dense_bytes = t.ByteSize()
        gain = dense_bytes - sp.ByteSize()
        if gain <= 0 or gain <= self.min_gain * dense_bytes:
            return None
        return sp


@dataclass(frozen=True)
class DensifyInitializers:
    """Turn every ``graph.sparse_initializer`` back into a dense initializer.

    Requires: nothing. Ensures: no sparse initializers in any graph (subgraphs included);
    each dense tensor has the name, type, shape and values of the sparse one (appended after
    the existing initializers of its graph).
    """

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        if not any(g.sparse_initializer for g in all_graphs(model.graph)):
            return PassResult(model, False)
        out = copy_model(model)
        for g in all_graphs(out.graph):
            dense = [to_dense_tensor(sp) for sp in g.sparse_initializer]
            del g.sparse_initializer[:]
            g.initializer.extend(dense)
        return PassResult(out, True)


@dataclass(frozen=True)
class SetIrVersion:
    """Set the model's IR version (onnx 1.23 writes 14 by default; onnxruntime 1.31 reads
    at most 13). Requires: an IR version that supports the model's opsets and features.
    Ensures: ``model.ir_version == ir_version``."""

    ir_version: int

    def __post_init__(self) -> None:
        if not isinstance(self.ir_version, int) or self.ir_version < 3:
            raise param_error("ir_version", "an int >= 3", self.ir_version)

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        if model.ir_version == self.ir_version:
            return PassResult(model, False)
        out = copy_model(model)
        out.ir_version = self.ir_version
        return PassResult(out, True)


@dataclass(frozen=True)
class AddMetadata:
    """Set ``metadata_props`` entries (string keys and values).

    Requires: nothing. Ensures: each key holds the given value; other entries and the
    order of existing keys are kept; new keys are appended in sorted order.
    """

    props: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        for k, v in self.props.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise param_error("metadata", "a mapping of str to str", {k: v})
        current = {p.key: p.value for p in model.metadata_props}
        if all(current.get(k) == v for k, v in self.props.items()):
            return PassResult(model, False)
        out = copy_model(model)
        for p in out.metadata_props:
            if p.key in self.props:
                p.value = self.props[p.key]
        for k in sorted(set(self.props) - set(current)):
            out.metadata_props.add(key=k, value=self.props[k])
        return PassResult(out, True)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """onnxruntime.quantization logs advice (pre-processing) on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# Below this many weights an op on one row per call (a last-step head, a step model's MatMul
# or LSTM) is faster float than int8 in onnxruntime 1.31 (benchmarks/int8_ops.py; a
# 256 x 256 MatMul is about even).
INT8_FLOAT_BELOW = 256 * 256


def check_float_below(name: str, value: object) -> int:
    """``value`` as a ``float_below`` threshold (see ``QuantizeDynamic``); ``name`` is the
    parameter the caller exposes it as."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise param_error(name, "an int >= 0 (weights; 0 quantizes every MatMul and LSTM)", value)
    return value


# Bytes quantizing one op adds beyond its int8 weights and scales: the new nodes
# (DynamicQuantizeLinear, MatMulInteger, Cast, Mul; DynamicQuantizeLSTM's extra inputs) and
# their names, about what exported heads and tiny LSTMs showed.
INT8_OVERHEAD = 512


def _int8_pays(*weights: onnx.TensorProto) -> bool:
    """Whether storing an op's float weights as int8 (1 byte each instead of 4, plus a scale
    and zero point per output channel) saves more bytes than quantizing it adds: a MatMul's
    [K, N] weight (N channels), an LSTM's W and R ([dirs, 4H, .]: 4H channels each)."""
    saved = 0
    for w in weights:
        dims = [int(d) for d in w.dims]
        channels = (dims[-1] if len(dims) == 2 else int(np.prod(dims[:-1]))) if dims else 1
        saved += 3 * int(np.prod(dims)) - 5 * channels
    return saved > INT8_OVERHEAD


@dataclass(frozen=True)
class QuantizeDynamic:
    """onnxruntime dynamic quantization (int8 weights, activations quantized at run time).

    MatMul with a constant weight becomes DynamicQuantizeLinear + MatMulInteger (per
    output column scales with ``per_channel``); LSTM becomes com.microsoft
    DynamicQuantizeLSTM (int8 W and R, per gate row); Gather's table is stored as uint8
    and dequantized after the lookup. GRU and RNN are left alone (onnxruntime has no
    quantized kernel for them; see ``StoreRecurrentWeightsInt8``).

    ``float_below``: an op that runs on one row per call at batch 1 and has fewer
    constant weights than this is left float: a MatMul whose activation has rank 2 (a
    last-step head, any MatMul of a step model), and an LSTM over a sequence of static
    length 1 (a step model's layer; W and R counted). Quantizing it adds nodes whose fixed
    cost outweighs the int8 arithmetic below about 256 x 256 weights at one row
    (``benchmarks/int8_ops.py``; ``StoreRecurrentWeightsInt8`` then still stores a
    left-float LSTM's weights as int8). Ops over every time step are quantized, since there
    the rows add up, unless their weights are so few that int8 storage would not pay for the
    nodes it adds (then the file would grow). 0 quantizes every MatMul and LSTM.

    Requires: dense initializers only (run it before ``SparsifyInitializers``).
    Ensures: a model that onnxruntime runs; the IR version and the producer are kept; the
    nodes named by ``float_nodes`` are unchanged.
    """

    per_channel: bool = True
    reduce_range: bool = False
    float_below: int = 0

    def __post_init__(self) -> None:
        check_float_below("float_below", self.float_below)

    def float_nodes(self, model: onnx.ModelProto) -> list[str]:
        """Names of the MatMul and LSTM nodes this pass leaves float: with ``float_below``
        set, the one-row ops below it and every op whose int8 weights would not pay for the
        nodes quantization adds (``_int8_pays``); with 0, none."""
        if not self.float_below:
            return []
        inits = {t.name: t for t in model.graph.initializer}
        weight_inputs = {"MatMul": slice(1, 2), "LSTM": slice(1, 3)}  # the weights int8 would store
        tiny = []
        for n in model.graph.node:
            names = list(n.input[weight_inputs[n.op_type]]) if n.op_type in weight_inputs else []
            if names and all(w in inits for w in names) and not _int8_pays(*(inits[w] for w in names)):
                tiny.append(n.name)
        try:
            g = onnx.shape_inference.infer_shapes(model).graph
        except Exception:  # shapes unknown: nothing is known to run on one row; the size rule still holds
            return sorted(tiny)
        shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                  for v in [*g.input, *g.value_info, *g.output] if v.type.tensor_type.HasField("shape")}

        def weights(names: Iterable[str]) -> int:
            return sum(int(np.prod(inits[n].dims)) for n in names if n in inits)

        out = []
        for n in model.graph.node:
            x = shapes.get(n.input[0]) if n.input else None
            if n.op_type == "MatMul" and n.input[1] in inits:
                one_row = x is not None and len(x) == 2
                size = weights(n.input[1:2])
            elif n.op_type == "LSTM" and n.domain in ("", "ai.onnx"):
                one_row = x is not None and len(x) == 3 and x[0] == 1
                size = weights(n.input[1:3])
            else:
                continue
            if one_row and size < self.float_below:
                out.append(n.name)
        return sorted(set(out) | set(tiny))

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        if model.graph.sparse_initializer:
            raise ExportError("Dynamic quantization needs dense initializers: quantize before sparsifying.")
        exclude = self.float_nodes(model)
        with tempfile.TemporaryDirectory(prefix="rnncompress-quant-") as d, _quiet_logging():
            target = os.path.join(d, "int8.onnx")
            try:
                quantize_dynamic(copy_model(model), target, per_channel=self.per_channel,
                                 reduce_range=self.reduce_range, weight_type=QuantType.QInt8,
                                 nodes_to_exclude=exclude)
            except Exception as e:  # the quantizer raises bare asserts and assorted errors
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ExportError(f"onnxruntime dynamic quantization failed: {msg}") from None
            out = onnx.load(target)
        out.ir_version = model.ir_version
        # The quantizer signs the file as its own ("onnx.quantize"); the model is still ours.
        out.producer_name, out.producer_version = model.producer_name, model.producer_version
        changed = [n.op_type for n in out.graph.node] != [n.op_type for n in model.graph.node]
        return PassResult(out if changed else model, changed)


@dataclass(frozen=True)
class StoreRecurrentWeightsInt8:
    """Weight-only int8 for float recurrent ops: GRU and RNN (onnxruntime has no quantized
    kernel for them), and an LSTM that ``QuantizeDynamic`` left float.

    W and R are stored as int8 with one symmetric scale per gate row (zero point 0, so
    pruned weights stay exact zeros and sparse storage still applies), and a
    DequantizeLinear (axis 1) feeds the float op. The file shrinks about 4x; compute stays
    float. onnxruntime runs the DequantizeLinear on every call unless the session sets
    ``session.disable_quant_qdq=1``, which folds it into a constant at load.

    Requires: opset >= 13 (per-axis DequantizeLinear); W/R as float initializers.
    Ensures: every matching op reads W and R through DequantizeLinear where that makes the
    file smaller (not for a matrix so small that int8 + scales + the node cost more bytes
    than its float values; such a W or R stays float); DequantizeLinear
    nodes are placed right before their consumer (topological order kept).
    """

    op_types: tuple[str, ...] = ("GRU", "RNN", "LSTM")

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        inits = {t.name: t for t in model.graph.initializer}
        targets = [n for n in model.graph.node if n.domain in ("", "ai.onnx") and n.op_type in self.op_types]
        names = [n.input[k] for n in targets for k in (1, 2)
                 if len(n.input) > k and n.input[k] in inits and inits[n.input[k]].data_type == TensorProto.FLOAT]
        if not names:
            return PassResult(model, False)
        quantized: dict[str, list[TensorProto]] = {}
        for name in dict.fromkeys(names):
            q = self._quantize(numpy_helper.to_array(inits[name]), name)
            if sum(t.ByteSize() for t in q) + self._dequantize(name).ByteSize() < inits[name].ByteSize():
                quantized[name] = q  # (a tiny matrix costs more as int8 + scales + a node)
        if not quantized:
            return PassResult(model, False)
        out = copy_model(model)
        g = out.graph
        keep = [t for t in g.initializer if t.name not in quantized]
        del g.initializer[:]
        g.initializer.extend(keep)
        for name in quantized:
            g.initializer.extend(quantized[name])
        nodes: list[onnx.NodeProto] = []
        done: set[str] = set()
        for n in g.node:
            for name in n.input:
                if name in quantized and name not in done:
                    nodes.append(self._dequantize(name))
                    done.add(name)
            nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)
        return PassResult(out, True)

    @staticmethod
    def _dequantize(name: str) -> onnx.NodeProto:
        return helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale"], [name],
                                name=f"{name}.dequantize", axis=1)

    @staticmethod
    def _quantize(w: np.ndarray, name: str) -> list[TensorProto]:
        # w: [num_directions, G*H, in]; one scale per row (axis 1), symmetric int8.
        amax = np.abs(w).max(axis=(0, 2))
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale[None, :, None]), -127, 127).astype(np.int8)
        return [numpy_helper.from_array(q, f"{name}_quantized"), numpy_helper.from_array(scale, f"{name}_scale")]


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph inside it (If branches, Loop and Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from all_graphs(sub)


def initializer_stats(model: onnx.ModelProto) -> dict[str, int]:
    """Element counts over the graph and its subgraphs: all initializer elements, those
    stored (dense + sparse values), and how many initializers are sparse / dense."""
    total = stored = sparse = dense = 0
    for g in all_graphs(model.graph):
        for t in g.initializer:
            n = int(np.prod(t.dims, dtype=np.int64))
            total += n
            stored += n
        for sp in g.sparse_initializer:
            total += int(np.prod(sp.dims, dtype=np.int64))
            stored += int(np.prod(sp.values.dims, dtype=np.int64))
        sparse += len(g.sparse_initializer)
        dense += len(g.initializer)
    return {"elements": total, "stored": stored, "sparse": sparse, "dense": dense}


def initializer_names(model: onnx.ModelProto) -> set[str]:
    """Names of every stored weight, dense or sparse."""
    g = model.graph
    return {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}


def weight_only_int8(model: onnx.ModelProto) -> set[str]:
    """Outputs of the DequantizeLinear nodes that read a stored initializer (dense or
    sparse): weights kept int8 in the file for float arithmetic (``StoreRecurrentWeightsInt8``)."""
    stored = initializer_names(model)
    return {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in stored}


def stored_sparsity(model: onnx.ModelProto) -> float:
    """Fraction of initializer elements the file leaves out (zeros of sparse initializers)."""
    s = initializer_stats(model)
    return 1.0 - s["stored"] / s["elements"] if s["elements"] else 0.0
