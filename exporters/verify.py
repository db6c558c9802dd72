"""Run exported models in onnxruntime and compare them with the torch model.

Reusable pieces (the runtime package uses them too):

- ``make_session(model)``: an onnxruntime CPU session for a model (proto, bytes or path),
  applying the session options the export recorded in its metadata.
- ``run_full(session, x, init)`` / ``run_steps(session, x, states)``: outputs over a batch.
- ``onnx_outputs(session, split)``: outputs for a whole task split, batched; a step (or
  chunk) model is run over every time step and returns what the full model would.
- ``evaluate_onnx(session, task, split)``: the task metric from onnxruntime's outputs.

The checks (``check_fp32``, ``check_step``, ``check_int8``) return a ``Parity`` record;
``exporters.export`` refuses a variant whose parity does not pass.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
import torch

from models.errors import ExportError, clip, is_fraction
from models.sequence import SequenceModel
from models.tasks import Split, Task, evaluate

META_PREFIX = "rnncompress."
SESSION_CONFIG_KEY = META_PREFIX + "session_config"
MODEL_CONFIG_KEY = META_PREFIX + "model_config"
TASK_KEY = META_PREFIX + "task"
SPARSITY_KEY = META_PREFIX + "sparsity"
DATA_KEY = META_PREFIX + "data_sha256"
FORMAT_KEY = META_PREFIX + "format"
INTERFACE_KEY = META_PREFIX + "interface"
# The metadata an export stores as JSON objects: readers refuse a file where one is not.
OBJECT_KEYS = (MODEL_CONFIG_KEY, TASK_KEY, SPARSITY_KEY, DATA_KEY, SESSION_CONFIG_KEY, INTERFACE_KEY)


def json_metadata(meta: Mapping[str, str], key: str, source: str | os.PathLike = "the model") -> dict[str, Any] | None:
    """The JSON object stored under ``key`` in ONNX metadata (None when absent or empty).

    Raises:
        ExportError: the value is not JSON or not a JSON object (a hand-edited or foreign file).
    """
    text = meta.get(key)
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
        shown = text
    else:
        shown = json.dumps(value)
    if not isinstance(value, dict):
        raise ExportError(f"{source} has corrupt rnncompress metadata: {key} must be a JSON object; "
                          f"got {clip(shown)}.")
    return value


def sparsity_metadata(meta: Mapping[str, str], source: str | os.PathLike = "the model") -> dict[str, Any] | None:
    """``rnncompress.sparsity`` (None when absent), its ``recurrent`` and ``overall`` checked
    to be fractions: bench reports them and plots them, info prints them.

    Raises:
        ExportError: not a JSON object, or one of the two is not a number in [0, 1].
    """
    value = json_metadata(meta, SPARSITY_KEY, source)
    check_sparsity_metadata(value, source)
    return value


def check_sparsity_metadata(value: Mapping[str, Any] | None, source: str | os.PathLike = "the model") -> None:
    """``sparsity_metadata``'s rule on the parsed object."""
    for key in ("recurrent", "overall"):
        v = (value or {}).get(key)
        if v is not None and not is_fraction(v):
            shown = v if isinstance(v, str) else json.dumps(v)
            raise ExportError(f"{source} has corrupt rnncompress metadata: {SPARSITY_KEY}'s {key!r} must be a "
                              f"fraction in [0, 1]; got {clip(shown)}.")


def make_session(model: onnx.ModelProto | bytes | str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session; ``threads`` intra-op threads (0 = onnxruntime's default).

    Session config entries recorded by the export (``rnncompress.session_config``
    metadata, e.g. ``session.disable_quant_qdq`` for weight-only int8) are applied.

    Raises:
        ExportError: onnxruntime cannot load the model.
    """
    import onnxruntime as ort

    try:
        if isinstance(model, onnx.ModelProto):
            proto, data = model, model.SerializeToString()
        elif isinstance(model, bytes):
            proto, data = onnx.load_model_from_string(model), model
        else:
            data = str(Path(model))
            proto = onnx.load_model(data, load_external_data=False)
    except Exception as e:
        raise ExportError(f"Cannot read the ONNX model ({type(e).__name__}).") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    so = ort.SessionOptions()
    so.log_severity_level = 4  # (fatal only: a failure is our one error line, not also onnxruntime's coloured log)
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    for k, v in (json_metadata(meta, SESSION_CONFIG_KEY, model if isinstance(model, (str, os.PathLike)) else "the model")
                 or {}).items():
        so.add_session_config_entry(k, str(v))
    try:
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        first = ort_error_text(e)
        hint = ""
        if "external tensors" in first:  # onnxruntime's shape inference reads constants (Squeeze axes) in the file only
            hint = ("; onnxruntime needs the small constants that shape inference reads inside the .onnx file: save "
                    "it with onnx.save(..., save_as_external_data=True) and the default size_threshold, not 0")
        which = f" {model}" if isinstance(model, (str, os.PathLike)) else " the model"
        raise ExportError(f"onnxruntime cannot load{which}: {first[:300]}{hint}") from None


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_ORT_SOURCE = re.compile(r"[\w./-]+\.(?:cc|cpp|h):\d+ ")


def ort_error_text(e: BaseException) -> str:
    """The first line of an onnxruntime exception without its '[ONNXRuntimeError] : 1 : FAIL :'
    prefix and the C++ source location and function signature it often quotes
    ('/onnxruntime_src/...cc:266 onnxruntime::common::Status onnxruntime::...(const ...&, ...)'):
    what is left is the message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = _ORT_PREFIX.sub("", text)
    m = _ORT_SOURCE.search(text)
    if m is None:
        return text
    rest = text[m.end():]
    start = rest.find("(")
    if start > 0 and "::" in rest[:start]:  # a qualified C++ signature: skip to its closing parenthesis
        depth = 0
        for i in range(start, len(rest)):
            depth += {"(": 1, ")": -1}.get(rest[i], 0)
            if depth == 0:
                rest = rest[i + 1:].lstrip()
                break
    return (text[:m.start()].rstrip() + " " + rest).strip()


def _input_types(session) -> dict[str, str]:
    return {i.name: i.type for i in session.get_inputs()}


def _as_input(array: Any, onnx_type: str) -> np.ndarray:
    a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return a.astype(np.int64 if onnx_type == "tensor(int64)" else np.float32, copy=False)


def is_step_session(session) -> bool:
    """A model whose caller carries the states: a step or a chunk model."""
    return "h0" in _input_types(session)


def is_chunk_session(session) -> bool:
    """A state-carrying model whose ``x`` has a step axis: several steps per call."""
    x = next((i for i in session.get_inputs() if i.name == "x"), None)
    return is_step_session(session) and x is not None and len(x.shape) == (2 if x.type == "tensor(int64)" else 3)


def chunk_bounds(steps: int, sizes: Sequence[int] = ()) -> list[tuple[int, int]]:
    """[start, end) of each call when ``steps`` steps are fed in chunks of ``sizes``
    (cycled; the last chunk may be shorter); no sizes: all steps in one call."""
    if steps <= 0:
        return []
    sizes = [int(k) for k in sizes] or [steps]
    if any(k < 1 for k in sizes):
        raise ExportError(f"Chunk sizes must be >= 1; got {list(sizes)}.")
    out, t, i = [], 0, 0
    while t < steps:
        end = min(steps, t + sizes[i % len(sizes)])
        out.append((t, end))
        t, i = end, i + 1
    return out


def call_inputs(session, xs: np.ndarray, chunks: Sequence[int] = ()) -> list[np.ndarray]:
    """``x`` of each call when the sequence ``xs`` [B, T, ...] is streamed through a step
    model (one step per call) or a chunk model (``chunk_bounds(T, chunks)``)."""
    if is_chunk_session(session):
        return [np.ascontiguousarray(xs[:, a:b]) for a, b in chunk_bounds(xs.shape[1], chunks)]
    return [np.ascontiguousarray(xs[:, t]) for t in range(xs.shape[1])]


def state_shapes(session) -> dict[str, int]:
    """Step model: hidden size of every state input (h0, h1, ..., c0, ...)."""
    out = {}
    for i in session.get_inputs():
        if i.name != "x":
            out[i.name] = int(i.shape[-1])
    return out


def session_model_config(session) -> dict[str, Any]:
    meta = session.get_modelmeta().custom_metadata_map
    return json_metadata(meta, MODEL_CONFIG_KEY) or {}


def run_full(session, x: Any, init: Any = None) -> np.ndarray:
    """One batch through a full-sequence model: ``y`` for ``x`` [B, T, F] (or tokens [B, T])."""
    types = _input_types(session)
    feeds = {"x": _as_input(x, types["x"])}
    if "init" in types:
        if init is None:
            raise ExportError("The model has an 'init' input (initial state features); pass init values.")
        feeds["init"] = _as_input(init, types["init"])
    return session.run(["y"], feeds)[0]


def zero_states(session, batch: int) -> dict[str, np.ndarray]:
    return {name: np.zeros((1, batch, h), dtype=np.float32) for name, h in state_shapes(session).items()}


def run_steps(session, x: Any, states: dict[str, Any] | None = None,
              chunks: Sequence[int] = ()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Feed ``x`` [B, T, F] (or tokens [B, T]) through a step model one step per call, or
    through a chunk model ``chunks`` steps per call (sizes cycled; default: all T steps in
    one call), carrying the states from call to call.

    Returns every step's ``y`` stacked to [B, T, out] and the final states. ``states``
    defaults to zeros.
    """
    types = _input_types(session)
    xs = _as_input(x, types["x"])
    st = zero_states(session, xs.shape[0])
    if states:
        st.update({k: _as_input(v, "tensor(float)") for k, v in states.items()})
    names = [o.name for o in session.get_outputs()]
    chunked = is_chunk_session(session)
    ys = []
    for x_call in call_inputs(session, xs, chunks):
        out = session.run(names, {"x": x_call, **st})
        ys.append(out[0] if chunked else out[0][:, None])
        st = {n[: -len("_out")]: v for n, v in zip(names[1:], out[1:])}
    return np.concatenate(ys, axis=1), st


StatesFn = Callable[[Split], "dict[str, Any] | None"]


def onnx_outputs(session, split: Split, batch_size: int = 256, head: str | None = None,
                 states_fn: StatesFn | None = None) -> torch.Tensor:
    """Outputs for a whole split, as the full model would give them.

    A step model is run over every step; ``head`` ("last" or "every", default from the
    model's metadata) says whether to keep the last step or all; ``states_fn(batch)``
    gives its initial states (default zeros).
    """
    step = is_step_session(session)
    if step and head is None:
        head = session_model_config(session).get("head")
        if head not in ("last", "every"):
            raise ExportError("A step model without rnncompress metadata needs head='last' or head='every'.")
    outs = []
    for b in split.batches(batch_size):
        if step:
            ys, _ = run_steps(session, b.x, states_fn(b) if states_fn else None)
            outs.append(ys[:, -1] if head == "last" else ys)
        else:
            outs.append(run_full(session, b.x, b.init))
    return torch.from_numpy(np.concatenate(outs, axis=0))


def evaluate_onnx(session, task: Task, split: Split, batch_size: int = 256, head: str | None = None,
                  states_fn: StatesFn | None = None) -> dict[str, float]:
    """The task metric (and sample count) from onnxruntime's outputs on ``split``."""
    total = count = 0.0
    for b in split.batches(batch_size):
        out = onnx_outputs(session, b, batch_size, head, states_fn)
        s, c = task.finite_metric_sums(out, b)
        total += s
        count += c
    return {task.metric_name: total / max(count, 1.0), "samples": float(len(split))}


# --------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Parity:
    """The outcome of one check. ``kind``: "max_abs" (fp32: largest absolute output
    difference), "metric" (int8: how much worse the task metric is, in points for
    accuracy, relative otherwise) or "rel_rms" (int8 on random inputs)."""

    kind: str
    error: float
    tolerance: float
    data: str
    detail: str = ""
    rtol: float = 0.0  # max_abs only: |onnx - torch| <= tolerance + rtol * |torch|
    excess: float | None = None  # max_abs only: max(|onnx - torch| - rtol * |torch|)

    @property
    def passed(self) -> bool:
        measured = self.error if self.excess is None else self.excess
        return math.isfinite(measured) and measured <= self.tolerance

    def _bound(self) -> str:
        return f"{self.tolerance:g}" + (f" + {self.rtol:g}*|y|" if self.rtol else "")

    def short(self) -> str:
        """A compact form for tables: the error, its unit and the tolerance."""
        if self.kind == "max_abs":
            return f"max abs {self.error:.2g} <= {self._bound()}"
        if self.kind == "rel_rms":
            return f"rel rms {self.error:.2g} <= {self.tolerance:g}"
        unit = " pts" if self.detail.startswith("accuracy") else " rel"
        return f"{self.detail.split(' ')[0]} {self._change(f'{{:.2g}}{unit}')}, tol {self.tolerance:g}"

    def describe(self) -> str:
        if self.kind == "max_abs":
            worst = f", worst on {self.detail}" if self.detail else ""
            return f"max abs error {self.error:.3g} (tolerance {self._bound()}{worst})"
        if self.kind == "rel_rms":
            return f"relative RMS error {self.error:.3g} (tolerance {self.tolerance:g}) on {self.data}"
        if self.detail.startswith("accuracy"):  # error and tolerance in accuracy points
            change, tol = self._change("by {:.3g} points"), f"{self.tolerance:g} points"
        else:  # relative: 0.05 = 5% of the torch metric
            change, tol = self._change("by {:.2g}% (relative)", 100), f"{100 * self.tolerance:g}%"
        return f"{self.detail} ({change}; tolerance {tol} worse) on {self.data}"

    def _change(self, amount: str, scale: float = 1.0) -> str:
        """"worse by 0.2", "better by 0.05" or "unchanged" (metric kinds: error = how much worse)."""
        if self.error == 0:
            return "unchanged"
        return f"{'worse' if self.error > 0 else 'better'} {amount.format(scale * abs(self.error))}"


@torch.no_grad()
def torch_outputs(model: SequenceModel, split: Split, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([model(b.x, b.init) for b in split.batches(batch_size)], dim=0)


@torch.no_grad()
def torch_step_outputs(model: SequenceModel, split: Split) -> torch.Tensor:
    """Every step's output from ``model.step`` over the sequence [B, T, out]."""
    states = model.initial_states(split.init, len(split))
    ys = []
    for t in range(split.x.shape[1]):
        y, states = model.step(split.x[:, t], states)
        ys.append(y)
    return torch.stack(ys, dim=1)


@torch.no_grad()
def torch_initial_states(model: SequenceModel, batch: Split) -> dict[str, np.ndarray]:
    """The step model's state feeds equal to the full model's initial state."""
    c = model.config
    states = model.initial_states(batch.init, len(batch))
    out: dict[str, np.ndarray] = {}
    for l, s in enumerate(states):
        zeros = np.zeros((1, len(batch), c.hidden_sizes[l]), dtype=np.float32)
        if c.cell == "lstm":
            out[f"h{l}"] = zeros if s is None else s[0].numpy()
            out[f"c{l}"] = zeros if s is None else s[1].numpy()
        else:
            out[f"h{l}"] = zeros if s is None else s.numpy()
    return out


def _max_abs(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, rtol: float = 0.0) -> tuple[float, float]:
    """(largest |a - b|, largest |a - b| - rtol * |b|) with ``b`` the reference."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), float("inf")
    if a.size == 0:
        return 0.0, 0.0
    d = np.abs(a - b)
    return float(d.max()), float((d - rtol * np.abs(b)).max())


class TorchReference:
    """The torch model's outputs and metrics, computed once per input set and reused by
    every variant's check (torch is the slow side of verification)."""

    def __init__(self, model: SequenceModel, batch_size: int = 256):
        self.model = model
        self.batch_size = batch_size
        self._cache: dict[tuple[str, int], Any] = {}

    def _memo(self, kind: str, split: Split, compute: Callable[[], Any]) -> Any:
        key = (kind, id(split))
        if key not in self._cache:
            self._cache[key] = (split, compute())  # keep split alive so its id stays unique
        return self._cache[key][1]

    def outputs(self, split: Split) -> torch.Tensor:
        return self._memo("full", split, lambda: torch_outputs(self.model, split, self.batch_size))

    def step_outputs(self, split: Split) -> torch.Tensor:
        return self._memo("step", split, lambda: torch_step_outputs(self.model, split))

    def metric(self, task: Task, split: Split) -> float:
        return self._memo("metric", split, lambda: evaluate(self.model, task, split, self.batch_size)[task.metric_name])

    def initial_states(self, batch: Split) -> dict[str, np.ndarray]:
        return torch_initial_states(self.model, batch)


def _worse(current: float | None, new: float) -> bool:
    """Whether ``new`` is a worse error than ``current``: a NaN or infinite error is worse
    than any finite one and, once seen, is kept (explicitly, not by ``max``'s NaN rules)."""
    if current is None:
        return True
    if not math.isfinite(current):
        return False
    return not math.isfinite(new) or new > current


def _fp32_parity(pairs: dict[str, list[tuple[Any, Any]]], atol: float, rtol: float) -> Parity:
    """Every (onnx, torch) pair must satisfy |onnx - torch| <= atol + rtol * |torch|; the
    record keeps the largest absolute difference and the input set where the bound is
    tightest. Any NaN or Inf difference makes the record non-finite, so the check fails."""
    err: float | None = None
    excess: float | None = None
    worst = ""
    for name, items in pairs.items():
        for got, ref in items:
            e, x = _max_abs(got, ref, rtol)
            if _worse(err, e):
                err = e
            if _worse(excess, x):
                excess, worst = x, name
    err = 0.0 if err is None else err
    excess = 0.0 if excess is None else (excess if not math.isfinite(excess) or excess > 0 else 0.0)
    return Parity("max_abs", err, atol, " + ".join(pairs), worst, rtol=rtol, excess=excess)


def check_fp32(session, reference: TorchReference, inputs: dict[str, Split], atol: float,
               rtol: float = 0.0) -> Parity:
    """Full model against torch on every input set."""
    return _fp32_parity({name: [(onnx_outputs(session, split, reference.batch_size), reference.outputs(split))]
                         for name, split in inputs.items()}, atol, rtol)


CHECK_CHUNKS = ((), (1, 2, 3))  # chunk models: all steps in one call, then uneven chunks


def check_step(session, reference: TorchReference, inputs: dict[str, Split], atol: float,
               rtol: float = 0.0) -> Parity:
    """Step (or chunk) model over T steps: every step equals torch's ``step`` loop, and the
    result equals torch's full model (last step, or every step for head "every"). A chunk
    model is checked fed whole and in uneven chunks, so any chunking carries the state."""
    pairs = {}
    for name, split in inputs.items():
        pairs[name] = []
        for chunks in CHECK_CHUNKS if is_chunk_session(session) else ((),):
            ys, _ = run_steps(session, split.x, reference.initial_states(split), chunks)
            last = ys[:, -1] if reference.model.config.head == "last" else ys
            pairs[name] += [(ys, reference.step_outputs(split)), (last, reference.outputs(split))]
    return _fp32_parity(pairs, atol, rtol)


@dataclass(frozen=True)
class Int8Tolerance:
    """How much worse an int8 variant may be: ``accuracy_points`` for accuracy metrics,
    ``relative`` (fraction of torch's value) for the others (mse, bpc, position error),
    and ``random_rel_rms`` for outputs on random inputs when task data is not used."""

    accuracy_points: float = 0.5
    relative: float = 0.05
    random_rel_rms: float = 0.1


def check_int8(session, reference: TorchReference, task: Task | None, inputs: dict[str, Split],
               tolerance: Int8Tolerance) -> Parity:
    """With task data (``inputs["task"]``): the metric from onnxruntime's outputs against
    torch's on the same sequences; only a worse metric counts. Otherwise: relative RMS
    output error on the given (random) inputs."""
    step = is_step_session(session)
    states_fn = reference.initial_states if step else None
    head = reference.model.config.head
    bs = reference.batch_size
    if task is not None and "task" in inputs:
        split = inputs["task"]
        ours = evaluate_onnx(session, task, split, bs, head, states_fn)[task.metric_name]
        ref = reference.metric(task, split)
        worse = (ref - ours) if task.higher_is_better else (ours - ref)
        data = f"task test data ({len(split)})"
        if task.metric_name == "accuracy":
            detail = f"accuracy {100 * ours:.2f}% vs torch {100 * ref:.2f}%"
            return Parity("metric", 100.0 * worse, tolerance.accuracy_points, data, detail)
        detail = f"{task.metric_name} {ours:.5g} vs torch {ref:.5g}"
        rel = worse / abs(ref) if ref else (0.0 if worse <= 0 else float("inf"))
        return Parity("metric", rel, tolerance.relative, data, detail)
    err = 0.0
    for split in inputs.values():
        ours = onnx_outputs(session, split, bs, head, states_fn).double()
        ref_out = reference.outputs(split).double()
        denom = float(ref_out.pow(2).mean().sqrt())
        diff = ours - ref_out
        e = float(diff.pow(2).mean().sqrt()) / denom if denom > 0 else float(diff.abs().max())
        err = max(err, e)
    return Parity("rel_rms", err, tolerance.random_rel_rms, " + ".join(inputs))
