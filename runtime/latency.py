"""Latency measurement the way a real-time user sees it: batch 1, one call at a time.

``measure_interleaved`` times several *runners* (zero-argument callables, one call = one
inference) in rounds: every round calls each runner once, in an order shuffled by a
seeded generator. A machine that drifts (another job starts, the CPU clocks down) then
slows every runner alike, so ratios between runners measured in one loop stay meaningful
on a noisy machine where absolute milliseconds do not.

Runner builders:

- ``ort_full_runner(session, x, init)``: one full-sequence call on a fixed batch-1 input.
- ``ort_step_runner(session, x, states, steps_per_call)``: one streaming step (or, for a
  chunk model, ``steps_per_call`` steps) per call; the state is carried from call to call
  and reset after the last step of the sequence, so the states stay those of a real
  sequence of length T.
- ``call_floor_model(session)``: a graph with the same inputs and outputs that only copies
  (Identity). The same runner built on it times what every call costs whatever the model
  does — Python binding, feeds, output allocation — so a per-step latency can be split into
  this floor and the model's own work.
- ``torch_full_runner`` / ``torch_step_runner``: the torch eager model under
  ``torch.inference_mode`` (measure them inside ``torch_threads(n)`` so torch uses the
  same number of threads as onnxruntime).
"""

from __future__ import annotations

import contextlib
import gc
import time
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from exporters.verify import call_inputs, is_chunk_session
from models.errors import param_error
from models.progress import SILENT, Progress

Runner = Callable[[], Any]

NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise param_error(name, f"an int >= {minimum}", value)
    return int(value)


def measure_interleaved(runners: Mapping[str, Runner], warmup: int, runs: int, seed: int = 0,
                        progress: Progress | None = None, label: str = "latency") -> dict[str, np.ndarray]:
    """Time each runner ``runs`` times, interleaved, after ``warmup`` untimed rounds.

    Every round calls each runner once, in a seeded shuffled order (a new order each
    round), so slow drift of the machine hits all runners equally. The garbage collector
    is paused while timing.

    Args:
        runners: name -> zero-argument callable; one call is one inference.
        warmup: untimed rounds first (caches, allocator, onnxruntime's first-run work).
        runs: timed rounds.
        seed: seeds the order of the calls within each round.
        progress: reports the rounds done (default silent).
        label: the progress label.

    Returns:
        name -> float64 array of ``runs`` latencies in milliseconds, in round order.

    Raises:
        ConfigError: no runners, or a negative / non-int count.

    Example:
        >>> fa, fb = (lambda: sum(range(1000))), (lambda: sum(range(2000)))   # any zero-argument callables
        >>> ms = measure_interleaved({"a": fa, "b": fb}, warmup=10, runs=200)
        >>> ratio = np.median(ms["b"]) / np.median(ms["a"])   # about 2
    """
    if not runners:
        raise param_error("runners", "a non-empty mapping of name -> callable", dict(runners))
    warmup = _check_count("warmup", warmup, 0)
    runs = _check_count("runs", runs, 1)
    names = list(runners)
    calls = [runners[n] for n in names]
    rng = np.random.default_rng(seed)
    progress = progress or SILENT
    for _ in range(warmup):
        for i in rng.permutation(len(calls)):
            calls[i]()
    out = np.empty((len(calls), runs), dtype=np.int64)
    clock = time.perf_counter_ns
    progress.start(label, runs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(runs):
            for i in rng.permutation(len(calls)):
                fn = calls[i]
                t0 = clock()
                fn()
                out[i, r] = clock() - t0
            progress.update(r + 1)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {n: out[i].astype(np.float64) / 1e6 for i, n in enumerate(names)}


def summarize(samples_ms: Any) -> dict[str, float | int]:
    """p50, p90, p99, mean, min, max (ms, rounded to 0.1 us) and the number of runs."""
    try:
        a = np.asarray(samples_ms, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise param_error("samples_ms", "a non-empty sequence of latencies in ms", samples_ms) from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise param_error("samples_ms", "a non-empty sequence of finite latencies >= 0 (ms)", samples_ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    r = lambda v: round(float(v), 4)  # noqa: E731  (ms with 0.1 us resolution)
    return {"p50": r(p50), "p90": r(p90), "p99": r(p99), "mean": r(a.mean()), "min": r(a.min()),
            "max": r(a.max()), "runs": int(a.size)}


# ------------------------------------------------------------------------ runners
def _feed(array: Any, onnx_type: str) -> np.ndarray:
    a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return np.ascontiguousarray(a.astype(NUMPY_TYPES.get(onnx_type, np.float32), copy=False))


def _input_types(session) -> dict[str, str]:
    return {i.name: i.type for i in session.get_inputs()}


def ort_feeds_runner(session, feeds: Mapping[str, np.ndarray]) -> Runner:
    """One ``session.run`` of every output on fixed feeds (for models we know nothing about)."""
    fixed = dict(feeds)
    return lambda: session.run(None, fixed)


def ort_full_runner(session, x: Any, init: Any = None) -> Runner:
    """One full-sequence call of an rnncompress full model on ``x`` [1, T, F] (tokens [1, T]).

    The feeds are converted once, so a call times ``session.run`` only.
    """
    types = _input_types(session)
    feeds = {"x": _feed(x, types["x"])}
    if "init" in types:
        if init is None:
            raise param_error("init", "the init features of the sequence (the model has an 'init' input)", None)
        feeds["init"] = _feed(init, types["init"])
    return lambda: session.run(["y"], feeds)


def ort_step_runner(session, x: Any, initial_states: Mapping[str, Any] | None = None,
                    steps_per_call: int = 1) -> Runner:
    """Streaming calls of an rnncompress step model (one step per call) or chunk model
    (``steps_per_call`` steps per call), over ``x`` [1, T, F].

    Call k feeds the k-th step (or chunk) of the sequence with the states the previous
    call returned; after the last one the states go back to ``initial_states`` (default
    zeros), so every call sees the state of a real sequence of length T. A chunk model
    gets only whole chunks: the last T mod ``steps_per_call`` steps are not fed.
    """
    types = _input_types(session)
    xs = _feed(x, types["x"])
    chunked = is_chunk_session(session)
    k = _check_count("steps_per_call", steps_per_call, 1)
    if not chunked and k != 1:
        raise param_error("steps_per_call", "1 for a step model (only chunk models take several steps per call)", k)
    if k > xs.shape[1]:
        raise param_error("steps_per_call", f"at most the sequence length {xs.shape[1]}", k)
    calls = call_inputs(session, xs[:, : xs.shape[1] - xs.shape[1] % k], (k,))  # whole chunks only
    if not calls:
        raise param_error("x", "a sequence of at least one step", tuple(xs.shape))
    batch = xs.shape[0]
    start = {i.name: np.zeros((1, batch, int(i.shape[-1])), dtype=np.float32)
             for i in session.get_inputs() if i.name != "x"}
    for name, v in (initial_states or {}).items():
        start[name] = _feed(v, "tensor(float)")
    outputs = [o.name for o in session.get_outputs()]
    state_out = [n[: -len("_out")] for n in outputs[1:]]  # h0_out -> h0
    cursor = {"t": 0, "states": dict(start)}

    def run() -> Any:
        t = cursor["t"]
        out = session.run(outputs, {"x": calls[t], **cursor["states"]})
        if t + 1 == len(calls):
            cursor["t"], cursor["states"] = 0, dict(start)
        else:
            cursor["t"], cursor["states"] = t + 1, dict(zip(state_out, out[1:]))
        return out[0]

    return run


def call_floor_model(session) -> Any:
    """An ONNX model with ``session``'s inputs and outputs (names, types, shapes) that does
    nothing but copy: output ``<name>_out`` is Identity of input ``<name>`` (so a step
    runner carries its states), any other output k is Identity of input k mod #inputs.

    Runners built on it time onnxruntime's fixed per-call cost for this signature (the
    *call floor*). Returns None for a graph without inputs or outputs, or with an input
    type runners cannot feed.
    """
    import onnx
    from onnx import helper

    from exporters.graph import IR_VERSION, OPSET

    inputs, outputs = session.get_inputs(), session.get_outputs()
    if not inputs or not outputs or any(i.type not in NUMPY_TYPES for i in inputs):
        return None

    def info(name: str, like: Any) -> onnx.ValueInfoProto:  # ``like``'s element type and shape
        dims = [d if (isinstance(d, int) and d >= 0) or (isinstance(d, str) and d) else None for d in like.shape]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(NUMPY_TYPES[like.type])),
                                             dims)

    by_name = {i.name: i for i in inputs}
    nodes, outs = [], []
    for k, o in enumerate(outputs):
        src = by_name.get(o.name[: -len("_out")]) if o.name.endswith("_out") else None
        src = src or inputs[k % len(inputs)]
        nodes.append(helper.make_node("Identity", [src.name], [o.name], name=f"copy_{k}"))
        outs.append(info(o.name, src))
    graph = helper.make_graph(nodes, "call_floor", [info(i.name, i) for i in inputs], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rnncompress")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def torch_full_runner(model: torch.nn.Module, x: torch.Tensor, init: torch.Tensor | None = None) -> Runner:
    """One full-sequence forward of the torch eager model (``torch.inference_mode``)."""
    model.eval()

    def run() -> Any:
        with torch.inference_mode():
            return model(x, init)

    return run


def torch_step_runner(model: torch.nn.Module, x: torch.Tensor, init: torch.Tensor | None = None) -> Runner:
    """One ``model.step`` per call, state carried and reset after step T-1 (as the ORT one)."""
    model.eval()
    steps = [x[:, t].contiguous() for t in range(x.shape[1])]
    with torch.inference_mode():
        start = model.initial_states(init, x.shape[0])
    cursor = {"t": 0, "states": start}

    def run() -> Any:
        t = cursor["t"]
        with torch.inference_mode():
            y, states = model.step(steps[t], cursor["states"])
        cursor["t"], cursor["states"] = (0, start) if t + 1 == len(steps) else (t + 1, states)
        return y

    return run


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads inside the block; restore afterwards."""
    threads = _check_count("threads", threads, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
