"""Benchmark checkpoints and ONNX files in onnxruntime: latency, size, accuracy.

What is measured for each input:

| input | latency | metric |
|---|---|---|
| checkpoint (``.pt``, anything not ``.onnx``) | its dense full model and its step model, both built in memory with ``exporters.build_variant``; plus the torch eager model as a reference line | onnxruntime (dense full model) and torch, on the task's test split |
| ``.onnx`` with rnncompress metadata, full model | full sequence | onnxruntime, on the test split of the task in the metadata |
| ``.onnx`` with rnncompress metadata, step model | per step (state carried between calls) | onnxruntime, run step by step (a model with an init layer: only beside the checkpoint it was exported from, whose init layer gives the start states; the step graph has none) |
| ``.onnx`` without our metadata | one ``session.run`` on seeded random inputs shaped from the graph's inputs (dynamic non-batch axes need ``seq_len``) | none |

Latency inputs are batch 1 and a real test sequence (the first of the test split); a
model whose checkpoint recorded no task is timed on a seeded random sequence of
``seq_len`` steps, without a metric. The baseline (default: the dense model of the first checkpoint given, else the first input)
and every candidate are timed in one interleaved loop: all full-sequence runners
together, then all step runners together; ratios are candidate / baseline percentiles.
A checkpoint's in-memory ONNX models are checked against torch on one test sequence
first, so a broken model cannot silently report.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from exporters.export import (ExportOptions, Variant, build_variant, check_graph_metadata, provenance_metadata,
                              read_onnx_sized, task_interface)
from exporters.verify import (
    DATA_KEY,
    FORMAT_KEY,
    MODEL_CONFIG_KEY,
    TASK_KEY,
    TorchReference,
    check_fp32,
    check_step,
    evaluate_onnx,
    is_chunk_session,
    is_step_session,
    json_metadata,
    make_session,
    ort_error_text,
    sparsity_metadata,
    torch_initial_states,
)
from models.checkpoint import check_finite, check_model_file, load_checkpoint, now_iso, package_version
from models.errors import (CheckpointError, ExportError, ParityError, RnnCompressError, check_field_types,
                           check_seed, check_threads, param_error)
from models.io import model_file_kind, sha256_file, text_of_name
from models.progress import SILENT, Progress
from models.sequence import ModelConfig, count_parameters, sparsity_report
from models.tasks import Split, Task, check_data_fits, evaluate, recorded_test_split
from runtime.environment import environment
from runtime.report import SCHEMA
from runtime.latency import (
    NUMPY_TYPES,
    Runner,
    call_floor_model,
    measure_interleaved,
    ort_feeds_runner,
    ort_full_runner,
    ort_step_runner,
    summarize,
    torch_full_runner,
    torch_step_runner,
    torch_threads,
)

KINDS = ("checkpoint", "onnx")
TORCH = "\0torch"  # runner-name suffix of a model's torch reference line
FLOOR = "\0floor"  # runner-name suffix of a model's onnxruntime call floor
# Ten times the export's tolerance (|onnx - torch| <= atol + rtol * |torch|): export already
# verified the model; this only catches a broken one, and must not refuse what export wrote.
PARITY_ATOL, PARITY_RTOL = 10 * ExportOptions.atol, 10 * ExportOptions.rtol


MAX_ROUNDS = 1_000_000  # warm-up or timed rounds: at 1 ms a call, over a quarter of an hour per model


@dataclass(frozen=True)
class BenchConfig:
    """How a benchmark runs.

    Args:
        threads: onnxruntime intra-op threads (and torch threads for the reference line).
        warmup: untimed rounds before timing.
        runs: timed rounds (every runner is called once per round); p99 needs >= 100.
        step: also measure the streaming step model of checkpoints.
        torch_reference: also time the torch eager model of checkpoints.
        call_floor: also time, for every onnxruntime runner, the same calls on a graph with
            the same inputs and outputs that only copies (``latency.call_floor_model``):
            the fixed cost of a call, which no compression removes.
        accuracy: compute the task metric in onnxruntime (and torch for checkpoints).
        max_eval: test sequences used for the metric (the first ones of the test split).
        seed: seeds the interleaving order and random inputs.
        seq_len: sequence length for ONNX files without rnncompress metadata whose
            inputs have dynamic sequence axes.
        chunk: steps per call for chunk models (``--format chunk``); their per-step
            latency is one call divided by this (at most the sequence length).
        data: where the tasks' files are now, if they moved since training (default: the
            location each model records).
    """

    threads: int = 1
    warmup: int = 50
    runs: int = 300
    step: bool = True
    torch_reference: bool = True
    call_floor: bool = True
    accuracy: bool = True
    max_eval: int = 10000
    seed: int = 0
    seq_len: int | None = None
    data: str | None = None
    chunk: int = 4

    def __post_init__(self) -> None:
        check_field_types(self)  # ints are ints and bools bools: what is left is their range
        check_threads(self.threads, minimum=1)
        check_seed(self.seed)
        for name, minimum in (("warmup", 0), ("runs", 1), ("max_eval", 1), ("chunk", 1)):
            if getattr(self, name) < minimum:
                raise param_error(name, f"an int >= {minimum}", getattr(self, name))
        for name in ("warmup", "runs"):  # every round's times are kept: a bound before memory runs out
            if getattr(self, name) > MAX_ROUNDS:
                raise param_error(name, f"an int <= {MAX_ROUNDS:,}", getattr(self, name))
        if self.seq_len is not None and self.seq_len < 1:
            raise param_error("seq_len", "an int >= 1 (or unset)", self.seq_len)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchInput:
    """One model to benchmark: its report name, file and kind ("checkpoint" or "onnx")."""

    name: str
    path: Path
    kind: str

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.name.strip():
            raise param_error("name", "a non-empty string", self.name)
        if not self.name.isprintable():  # a newline or tab would break report.md's table and the plots
            raise param_error("name", "printable text (no newlines, tabs or control characters)", self.name)
        if self.kind not in KINDS:
            raise param_error("kind", f"one of {list(KINDS)}", self.kind)


def input_kind(path: Path) -> str:
    """"onnx" or "checkpoint": by content where it tells, else ``.onnx`` files are ONNX
    models and anything else is read as a checkpoint (``models.io.model_file_kind``)."""
    return model_file_kind(path)


def bench_inputs(paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None) -> list[BenchInput]:
    """Paths (and optional names, default the file names) -> inputs with unique names."""
    if isinstance(paths, (str, os.PathLike)):  # one model, not the letters of its path
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise param_error("paths", "a non-empty list of checkpoints or .onnx files", [])
    if names is not None:
        names = list(names)
        if len(names) != len(paths):
            raise param_error("names", f"a list of {len(paths)} names, one per model", names)
    out = [BenchInput(names[i] if names is not None else text_of_name(p.name), p, input_kind(p))
           for i, p in enumerate(paths)]
    seen: set[str] = set()
    for inp in out:
        if inp.name in seen:
            raise param_error("names", "unique per model (give names with --name when two files share a name)",
                              inp.name)
        seen.add(inp.name)
    return out


# ------------------------------------------------------------------ preparation
@dataclass
class _Prepared:
    """A model ready to time: its static report fields and its runners."""

    inp: BenchInput
    entry: dict[str, Any]
    session: Any = None
    full: Runner | None = None
    step: Runner | None = None
    torch_full: Runner | None = None
    torch_step: Runner | None = None
    floor_full: Runner | None = None
    floor_step: Runner | None = None
    steps_per_call: int = 1  # a chunk model's step runner feeds several steps per call

    def set_ort(self, kind: str, build: Callable[[Any], Runner], session: Any, config: BenchConfig) -> Runner:
        """Set the ``kind`` ("full" or "step") runner to ``build(session)`` and, with
        ``config.call_floor``, its call floor to ``build`` on the floor graph."""
        runner = build(session)
        setattr(self, kind, runner)
        if config.call_floor:
            floor = call_floor_model(session)
            if floor is not None:
                setattr(self, "floor_" + kind, build(make_session(floor, config.threads)))
        return runner


class _TaskCache:
    """Each task's data is loaded once, however many inputs share it."""

    def __init__(self, data: str | None = None) -> None:
        self._cache: dict[str, tuple[Task, Split]] = {}
        self._data = data  # the files' location now, if they moved since training

    def test_split(self, task_dict: dict[str, Any], config: ModelConfig, source: Path,
                   recorded: dict[str, str] | None = None) -> tuple[Task, Split]:
        """The task's test split, refused when it does not fit the model or is not the data the
        model recorded (``recorded``: its ``data_sha256``)."""
        key = json.dumps(task_dict, sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = recorded_test_split(
                task_dict, f"the test data of {source} (task {task_dict.get('name', '?')!r})",
                "pass --data PATH if the data moved, or --no-accuracy", self._data)
        task, test = self._cache[key]
        task.check_data_is(recorded, str(source))
        check_data_fits(test, config, task.name, f"model {source}")
        return task, test


class _Sources:
    """The checkpoints among the inputs, by sha256: a step or chunk file of a model with an
    init layer has no init projection of its own, and takes its start states from the
    checkpoint it was exported from (its ``rnncompress.source_sha256``) when that is benched
    beside it. Each checkpoint is hashed, and a matching one loaded, only when asked."""

    def __init__(self, inputs: Sequence[BenchInput]) -> None:
        self._paths = [i.path for i in inputs if i.kind == "checkpoint"]
        self._hashes: list[tuple[str, Path]] | None = None
        self._models: dict[str, Any] = {}

    def _hashed(self) -> list[tuple[str, Path]]:
        if self._hashes is None:
            self._hashes = [(sha256_file(p), p) for p in self._paths]
        return self._hashes

    def model(self, sha256: str, name: str) -> tuple[Any, Path] | None:
        """(torch model, checkpoint path) of a checkpoint input with this sha256 (the one
        named ``name`` first, where copies were given), or None."""
        same = sorted((p for h, p in self._hashed() if h == sha256), key=lambda p: p.name != name)
        if not same:
            return None
        if sha256 not in self._models:
            self._models[sha256] = load_checkpoint(same[0]).build_model().eval()
        return self._models[sha256], same[0]

    def missing(self, sha256: str, name: str) -> str:
        """Why no input is the source: a note's reason."""
        if not sha256:
            return "the file records no source checkpoint (rnncompress.source_sha256)"
        if any(p.name == name and h != sha256 for h, p in self._hashed()):
            return (f"the {text_of_name(name)} among the models is not that one (the file records sha256 "
                    f"{sha256[:12]}...; its bytes differ)")
        source = f"{text_of_name(name) or 'its source'} (sha256 {sha256[:12]}...)"
        return f"{source} is not among the models; bench it beside that checkpoint to score it"


def _metric(task: Task, ort_value: float | None, torch_value: float | None, samples: int) -> dict[str, Any]:
    return {"name": task.metric_name, "higher_is_better": bool(task.higher_is_better),
            "onnxruntime": ort_value, "torch": torch_value, "samples": int(samples)}


def _entry(inp: BenchInput, **fields_: Any) -> dict[str, Any]:
    base = {"name": inp.name, "source": text_of_name(inp.path), "kind": inp.kind, "format": None, "sha256": None,
            "source_sha256": None, "size_bytes": None, "task": None, "cell": None, "hidden_sizes": None,
            "parameters": None, "sparsity": None, "inputs": None, "metric": None, "notes": []}
    base.update(fields_)
    return base


def _random_sequence(c: ModelConfig, steps: int, seed: int) -> Split:
    """One seeded random sequence the model accepts (tokens 0 for an embedding input)."""
    g = torch.Generator().manual_seed(seed)
    if c.input_layer == "embedding":
        x = torch.zeros(1, steps, dtype=torch.int64)
    else:
        x = torch.randn(1, steps, c.input_size, generator=g)
    init = torch.randn(1, c.init_size, generator=g) if c.init_size else None
    return Split(x, torch.zeros(1), init)


def _data(task_dict: dict[str, Any] | None, c: ModelConfig, source: Path, config: BenchConfig,
          tasks: _TaskCache, recorded: dict[str, str] | None) -> tuple[Task | None, Split | None, Split, dict[str, Any]]:
    """(task, test split, the latency sequence, the report's ``inputs``): the task's first
    test sequence, or, when the model records no task, a random one of ``seq_len`` steps."""
    if task_dict:
        task, test = tasks.test_split(task_dict, c, source, recorded)
        seq = test.take(slice(0, 1))
        return task, test, seq, {"data": "task test split", "seq_len": int(seq.x.shape[1])}
    if config.seq_len is None:
        raise param_error("seq_len", f"an int >= 1 for {source}, which records no task and so has no test data "
                                     f"(--seq-len T times it on random inputs)", None)
    return None, None, _random_sequence(c, config.seq_len, config.seed), {"data": "random", "seq_len": config.seq_len}


def _ort(source: Path, what: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; an onnxruntime failure (wrong shapes, metadata that does not match the
    graph) becomes one ``ExportError`` line instead of a traceback."""
    try:
        return fn()
    except RnnCompressError:
        raise
    except Exception as e:  # onnxruntime raises its own pybind exception types
        raise ExportError(f"onnxruntime cannot run {source} ({what}): {ort_error_text(e)[:300]}") from None


def _prepare_checkpoint(inp: BenchInput, config: BenchConfig, tasks: _TaskCache, progress: Progress) -> _Prepared:
    ckpt = load_checkpoint(inp.path)
    check_finite(ckpt)
    model = ckpt.build_model().eval()
    c = ckpt.config
    task, test, seq, inputs = _data(ckpt.task, c, inp.path, config, tasks, ckpt.provenance.get("data_sha256"))
    meta = provenance_metadata(ckpt, model, Variant(), ExportOptions(), task_interface(ckpt, config.data))
    blob = build_variant(model, Variant(), meta).SerializeToString()
    full = make_session(blob, config.threads)
    reference = TorchReference(model)
    one = {"the first test sequence" if task else "a random sequence": seq}
    checks = [check_fp32(full, reference, one, PARITY_ATOL, PARITY_RTOL)]
    step = None
    if config.step:
        step = make_session(build_variant(model, Variant(step=True)), config.threads)
        checks.append(check_step(step, reference, one, PARITY_ATOL, PARITY_RTOL))
    for parity in checks:
        if not parity.passed:
            raise ParityError(f"The ONNX model built from {inp.path} disagrees with its torch model: "
                              f"{parity.describe()}; refusing to benchmark it.")
    metric, notes = None, [n for n in [ckpt.unfinished()] if n]
    if config.accuracy and task is not None:
        progress.message(f"{inp.name}: {task.metric_name} in onnxruntime and torch")
        split = test.take(slice(0, config.max_eval))
        ort_value = evaluate_onnx(full, task, split)[task.metric_name]
        torch_value = evaluate(model, task, split)[task.metric_name]
        metric = _metric(task, ort_value, torch_value, len(split))
    elif config.accuracy:
        notes.append("no metric: the checkpoint records no task")
    sp = sparsity_report(model)
    entry = _entry(
        inp, format="dense", sha256=ckpt.sha256, source_sha256=ckpt.sha256, size_bytes=len(blob),
        task=task.to_dict() if task else None, cell=c.cell, hidden_sizes=list(c.hidden_sizes),
        parameters=count_parameters(model),
        sparsity={"recurrent": sp["recurrent"], "overall": sp["overall"]}, inputs=inputs, metric=metric, notes=notes,
    )
    prepared = _Prepared(inp, entry, full)
    prepared.set_ort("full", lambda s: ort_full_runner(s, seq.x, seq.init), full, config)
    if step is not None:
        states = torch_initial_states(model, seq)
        prepared.set_ort("step", lambda s: ort_step_runner(s, seq.x, states), step, config)
    if config.torch_reference:
        prepared.torch_full = torch_full_runner(model, seq.x, seq.init)
        if config.step:
            prepared.torch_step = torch_step_runner(model, seq.x, seq.init)
    return prepared


def _prepare_onnx(inp: BenchInput, config: BenchConfig, tasks: _TaskCache, progress: Progress,
                  sources: _Sources) -> _Prepared:
    proto, size = read_onnx_sized(inp.path)
    meta = {p.key: p.value for p in proto.metadata_props}
    session = make_session(inp.path, config.threads)
    sha = sha256_file(inp.path)
    model_config = json_metadata(meta, MODEL_CONFIG_KEY, inp.path)
    if not model_config:
        return _prepare_foreign(inp, proto, session, size, sha, config)
    try:
        c = ModelConfig.from_dict(dict(model_config))
    except (RnnCompressError, TypeError) as e:
        raise ExportError(f"{inp.path} has an invalid rnncompress.model_config: {e}") from None
    step = is_step_session(session)
    check_graph_metadata(proto, c.hidden_sizes, "chunk" if is_chunk_session(session) else "step" if step else "full",
                         inp.path)
    recorded = json_metadata(meta, DATA_KEY, inp.path)  # absent in older exports: nothing to compare
    task, test, seq, inputs = _data(json_metadata(meta, TASK_KEY, inp.path), c, inp.path, config, tasks, recorded)
    notes: list[str] = []
    prepared = _Prepared(inp, {}, session)
    # A step or chunk file of a model with an init layer starts where the init projection of
    # the checkpoint it came from puts it, when that checkpoint is benched beside it.
    states_fn, states, no_source = None, None, ""
    if step and c.init_size:
        source_sha, source_name = meta.get("rnncompress.source_sha256", ""), meta.get("rnncompress.source", "")
        found = sources.model(source_sha, source_name) if source_sha else None
        if found is not None:
            source_model, source_path = found
            states_fn = functools.partial(torch_initial_states, source_model)
            states = states_fn(seq)
            copy = "" if source_path.name == source_name else f" (the bytes of {source_name}, its recorded source)"
            notes.append(f"start states from the init layer of {text_of_name(source_path.name)}{copy}: the step "
                         "graph has none")
        else:
            no_source = sources.missing(source_sha, source_name)
            notes.append("step latency starts every sequence from zero states (no init layer in the step graph)")
    # One call now, so a graph that does not match its metadata fails here, in one line.
    chunked = is_chunk_session(session)
    chunk = min(config.chunk, int(seq.x.shape[1])) if chunked else 1
    if step:
        prepared.steps_per_call = chunk
        _ort(inp.path, "one step" if chunk == 1 else f"one chunk of {chunk} steps",
             prepared.set_ort("step", lambda s: ort_step_runner(s, seq.x, states, steps_per_call=chunk),
                              session, config))
    else:
        _ort(inp.path, "one sequence",
             prepared.set_ort("full", lambda s: ort_full_runner(s, seq.x, seq.init), session, config))
    metric = None
    if config.accuracy and task is None:
        notes.append("no metric: the model's metadata records no task")
    elif config.accuracy and step and c.init_size and states_fn is None:
        notes.append("no metric: the step graph has no init layer, so the start states of the test sequences come "
                     f"from the checkpoint it was exported from, and {no_source}")
    elif config.accuracy:
        progress.message(f"{inp.name}: {task.metric_name} in onnxruntime")
        split = test.take(slice(0, config.max_eval))
        value = _ort(inp.path, "the test split", lambda: evaluate_onnx(session, task, split, head=c.head,
                                                                       states_fn=states_fn))
        metric = _metric(task, value[task.metric_name], None, len(split))
    if chunked:
        inputs["steps_per_call"] = chunk
        notes.append(f"chunk model: one call feeds {chunk} steps; its step latency (and call floor) is a call's "
                     f"latency / {chunk}, the cost per step when {chunk} steps are buffered per call")
        if chunk < config.chunk:
            notes.append(f"--chunk {config.chunk} is longer than the {chunk}-step sequences: timed {chunk} per call")
    sparsity = sparsity_metadata(meta, inp.path) or {}
    prepared.entry = _entry(
        inp, format=meta.get(FORMAT_KEY) or None, sha256=sha,
        source_sha256=meta.get("rnncompress.source_sha256") or None, size_bytes=size,
        task=task.to_dict() if task else None, cell=c.cell, hidden_sizes=list(c.hidden_sizes),
        parameters=c.parameter_count(),
        sparsity={"recurrent": sparsity.get("recurrent"), "overall": sparsity.get("overall")} if sparsity else None,
        inputs=inputs, metric=metric, notes=notes,
    )
    return prepared


# Elements of one random input (1 GiB of float32): more is no real-time model's input.
MAX_RANDOM_ELEMENTS = 1 << 28


def random_feeds(session, seq_len: int | None, seed: int, source: Path) -> tuple[dict[str, np.ndarray], bool]:
    """Seeded inputs shaped from the graph's input signature: dynamic axes named like a
    batch (or axis 0) become 1, other dynamic axes ``seq_len``; floats are standard
    normal, integers and booleans zeros (valid token ids for any embedding). Returns the
    feeds and whether ``seq_len`` sized an axis."""
    rng = np.random.default_rng(seed)
    feeds, used = {}, False
    for i in session.get_inputs():
        if i.type not in NUMPY_TYPES:
            raise ExportError(f"{source}: input {i.name!r} has type {i.type}, which bench cannot generate.")
        shape = []
        for axis, d in enumerate(i.shape):
            if isinstance(d, int) and d >= 0:
                shape.append(d)
            elif axis == 0 or (isinstance(d, str) and "batch" in d.lower()):
                shape.append(1)
            elif seq_len is None:
                raise param_error(
                    "seq_len", f"an int >= 1 for {source}, which has no rnncompress metadata and a dynamic "
                               f"axis {d or '?'!r} (axis {axis}) on input {i.name!r} (--seq-len T)", None)
            else:
                shape.append(seq_len)
                used = True
        if math.prod(shape) > MAX_RANDOM_ELEMENTS:
            raise ExportError(f"{source}: input {i.name!r} of shape {shape} has {math.prod(shape):,} elements; bench "
                              f"generates random inputs of at most {MAX_RANDOM_ELEMENTS:,} (a batch-1 sequence of a "
                              "streaming model is far smaller).")
        dtype = NUMPY_TYPES[i.type]
        if np.issubdtype(dtype, np.floating):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[i.name] = np.zeros(shape, dtype=dtype)
    return feeds, used


def _initializer_count(proto) -> int:
    n = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    return n + sum(int(np.prod(t.dims)) for t in proto.graph.sparse_initializer)


def _prepare_foreign(inp: BenchInput, proto, session, size: int, sha: str, config: BenchConfig) -> _Prepared:
    feeds, used = random_feeds(session, config.seq_len, config.seed, inp.path)
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    prepared = _Prepared(inp, {}, session)
    runner = prepared.set_ort("full", lambda s: ort_feeds_runner(s, feeds), session, config)
    _ort(inp.path, f"random inputs of shapes {shapes}", runner)
    prepared.entry = _entry(
        inp, sha256=sha, size_bytes=size, parameters=_initializer_count(proto),
        inputs={"data": "random", "seq_len": config.seq_len if used else None, "shapes": shapes},
        notes=["no rnncompress metadata: latency of one session.run on seeded random inputs (reported as 'full'); "
               "no metric; parameters = initializer elements"],
    )
    return prepared


def _prepare(inp: BenchInput, config: BenchConfig, tasks: _TaskCache, progress: Progress,
             sources: _Sources) -> _Prepared:
    progress.message(f"{inp.name}: loading {inp.kind} {inp.path}")
    if inp.kind == "checkpoint":
        return _prepare_checkpoint(inp, config, tasks, progress)
    return _prepare_onnx(inp, config, tasks, progress, sources)


# ------------------------------------------------------------------------ report
def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if not a or not b or not b.get(key):
        return None
    return round(a[key] / b[key], 4)


def _plain(obj: Any) -> Any:
    """JSON-native values only (lists, not tuples; no NaN/Inf, which JSON cannot hold)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _us(samples_ms: np.ndarray) -> list[float]:
    return [round(float(v) * 1000.0, 1) for v in samples_ms]


def _check_files(inputs: list[BenchInput]) -> None:
    """Every input is a file: checked before the first one's (slow) preparation."""
    for i in inputs:
        if not i.path.is_file():
            what, error = ("ONNX file", ExportError) if i.kind == "onnx" else ("Checkpoint", CheckpointError)
            raise error(f"{what} {i.path} {'is not a file' if i.path.exists() else 'does not exist'}.")
        check_model_file(i.path)


def _resolve_baseline(inputs: list[BenchInput], baseline: str | os.PathLike | None,
                      baseline_name: str | None = None) -> tuple[list[BenchInput], str]:
    if baseline is None:
        first = next((i for i in inputs if i.kind == "checkpoint"), inputs[0])
        return inputs, first.name
    path = Path(baseline)
    for i in inputs:
        if i.path.resolve() == path.resolve():
            return inputs, i.name
    names = {i.name for i in inputs}
    name = baseline_name or path.name
    if name in names:
        if baseline_name:
            raise param_error("baseline_name", "a name no other model has", baseline_name)
        name = f"baseline:{path.name}"
    return [BenchInput(name, path, input_kind(path)), *inputs], name


def _note_incomparable(e: dict[str, Any], base: dict[str, Any]) -> bool:
    """Note where ``e`` and the baseline measured different things; False when their full
    sequences differ in length (a full-sequence ratio would compare different work; per
    step they still compare)."""
    tasks = e.get("task"), base.get("task")
    if None not in tasks and tasks[0] != tasks[1]:
        e["notes"].append(f"its task differs from the baseline {base['name']!r}'s: the metrics do not compare")
    steps = (e.get("inputs") or {}).get("seq_len"), (base.get("inputs") or {}).get("seq_len")
    if None not in steps and e["latency_ms"]["full"] and base["latency_ms"]["full"] and steps[0] != steps[1]:
        e["notes"].append(f"timed on {steps[0]}-step sequences, the baseline {base['name']!r} on {steps[1]}: "
                          "no full-sequence ratio (the per-step ratios compare)")
        return False
    return True


def bench(paths: Sequence[str | os.PathLike], baseline: str | os.PathLike | None = None,
          config: BenchConfig | None = None, names: Sequence[str] | None = None,
          progress: Progress | None = None, baseline_name: str | None = None) -> dict[str, Any]:
    """Measure latency, size and accuracy of checkpoints and ONNX files in onnxruntime.

    Args:
        paths: checkpoints and/or ``.onnx`` files (see the module docstring).
        baseline: the model ratios are relative to (checkpoint or ``.onnx``; measured in
            the same interleaved loop). Default: the dense model of the first checkpoint
            in ``paths``, or the first path when there is none. A baseline that is one of
            ``paths`` is that entry; otherwise it is added as an extra model, named after
            its file (prefixed ``baseline:`` if that name is taken) or ``baseline_name``.
        config: measurement settings (``BenchConfig()``).
        names: report names, one per path (default: the file names).
        progress: progress messages and bars (default silent).

    Returns:
        The report dict (schema in ``runtime.report``); write it with ``write_report``.

    Raises:
        ConfigError: bad settings or names. CheckpointError / ExportError: an input that
        cannot be read. DataError: task data that cannot be loaded. ParityError: a
        checkpoint whose ONNX model disagrees with torch.

    Example:
        >>> report = bench(["lstm.pt", "onnx/lstm.int8.onnx"], config=BenchConfig(runs=500))  # export's example
        >>> write_report(report, Path("bench/"))
    """
    config = config or BenchConfig()
    if not isinstance(config, BenchConfig):
        raise param_error("config", "a BenchConfig", type(config).__name__)
    progress = progress or SILENT
    inputs = bench_inputs(paths, names)
    inputs, baseline_name = _resolve_baseline(inputs, baseline, baseline_name)
    _check_files(inputs)
    tasks = _TaskCache(config.data)
    sources = _Sources(inputs)
    prepared = [_prepare(inp, config, tasks, progress, sources) for inp in inputs]
    sized = [p for p in prepared if (p.entry.get("inputs") or {}).get("data") == "random"
             and p.entry["inputs"].get("seq_len") is not None]
    if config.seq_len is not None and not sized:
        raise param_error("seq_len", "unset when no model has a sequence length to set (a model's task sets it "
                                     "from its test sequences; a file without metadata with fixed input shapes "
                                     "has its own; drop --seq-len)", config.seq_len)
    runners: dict[str, dict[str, Runner]] = {"full": {}, "step": {}}
    for p in prepared:
        for kind, ours, ref, floor in (("full", p.full, p.torch_full, p.floor_full),
                                       ("step", p.step, p.torch_step, p.floor_step)):
            for suffix, runner in (("", ours), (TORCH, ref), (FLOOR, floor)):
                if runner is not None:
                    runners[kind][p.inp.name + suffix] = runner
    ms: dict[str, dict[str, np.ndarray]] = {"full": {}, "step": {}}
    labels = {"full": "full-sequence latency", "step": "per-step latency"}
    with torch_threads(config.threads):
        for i, kind in enumerate(("full", "step")):  # full-sequence runners together, then step runners
            if runners[kind]:
                ms[kind] = measure_interleaved(runners[kind], config.warmup, config.runs, config.seed + i, progress,
                                               f"{labels[kind]} ({len(runners[kind])} runners: models, torch lines, "
                                               "call floors)")
    for p in prepared:  # a chunk model's call covers several steps: report per step
        for n in (p.inp.name, p.inp.name + FLOOR):
            if p.steps_per_call > 1 and n in ms["step"]:
                ms["step"][n] = ms["step"][n] / p.steps_per_call
    models = []
    for p in prepared:
        e, n = p.entry, p.inp.name
        e["latency_ms"] = {k: summarize(ms[k][n]) if n in ms[k] else None for k in ("full", "step")}
        ref = {k: summarize(ms[k][n + TORCH]) if n + TORCH in ms[k] else None for k in ("full", "step")}
        e["torch_latency_ms"] = ref if any(ref.values()) else None
        floor = {k: summarize(ms[k][n + FLOOR]) if n + FLOOR in ms[k] else None for k in ("full", "step")}
        e["call_floor_ms"] = floor if any(floor.values()) else None
        e["samples_us"] = {k: _us(ms[k][n]) for k in ("full", "step") if n in ms[k]}
        e["samples_us"].update({f"torch_{k}": _us(ms[k][n + TORCH]) for k in ("full", "step") if n + TORCH in ms[k]})
        m = e.get("metric")
        bad = [k for k in ("onnxruntime", "torch") if m and m[k] is not None and not math.isfinite(m[k])]
        if bad:  # (JSON has no NaN: null, and which values it stands for, so check fails a metric budget)
            m["not_finite"] = bad
            e["notes"].append(f"the metric is not finite in {' and '.join(bad)} (NaN or Inf outputs); recorded as "
                              "null and listed in metric.not_finite")
        models.append(e)
    base = next(e for e in models if e["name"] == baseline_name)
    for e in models:
        if e is base:
            e["ratio_to_baseline"] = None
            continue
        lat, bl = e["latency_ms"], base["latency_ms"]
        full_comparable = _note_incomparable(e, base)
        e["ratio_to_baseline"] = {"p50": _ratio(lat["full"], bl["full"], "p50") if full_comparable else None,
                                  "p99": _ratio(lat["full"], bl["full"], "p99") if full_comparable else None,
                                  "step_p50": _ratio(lat["step"], bl["step"], "p50"),
                                  "step_p99": _ratio(lat["step"], bl["step"], "p99")}
    session = next((p.session for p in prepared if p.session is not None), None)
    settings = config.to_dict()
    settings["interleaved"] = True
    report = {
        "schema": SCHEMA,
        "rnncompress_version": package_version(),
        "created": now_iso(),
        "environment": environment(config.threads, session),
        "settings": settings,
        "baseline": baseline_name,
        "models": models,
    }
    return _plain(report)


__all__ = ["BenchConfig", "BenchInput", "bench", "bench_inputs", "input_kind", "random_feeds",
           "KINDS"]
