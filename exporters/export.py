"""Checkpoint -> verified ONNX files, and sparse storage for any ONNX model.

A *format* is a base graph plus transforms, written with ``+``:

| format | file | what |
|---|---|---|
| ``dense`` | ``NAME.onnx`` | full-sequence model, float32, dense initializers |
| ``sparse`` | ``NAME.sparse.onnx`` | ``dense`` with initializers stored sparse where smaller |
| ``step`` | ``NAME.step.onnx`` | one streaming step, states as inputs and outputs |
| ``chunk`` | ``NAME.chunk.onnx`` | several streaming steps per call (``x`` [batch, steps, F]), states in and out |
| ``int8`` | ``NAME.int8.onnx`` | ``dense`` after onnxruntime dynamic quantization |
| e.g. ``int8+sparse``, ``step+int8``, ``chunk+int8`` | ``NAME.int8.sparse.onnx``, ... | combinations |

Every variant is verified in onnxruntime before anything is written (fp32 variants to an
absolute tolerance, the step and chunk models over T steps against the full model, int8 variants
by the task metric); then all files are written atomically together, so a failed
command leaves no file behind. Exports carry no timestamps: the same checkpoint gives
byte-identical files.
"""

from __future__ import annotations

import contextlib
import json
import os
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import onnx
import torch

from exporters.graph import IR_VERSION, MIN_IR_VERSION, OPSET, build_chunk_graph, build_full_graph, build_step_graph
from exporters.passes import (
    INT8_FLOAT_BELOW,
    AddMetadata,
    DensifyInitializers,
    Pass,
    QuantizeDynamic,
    SetIrVersion,
    SparsifyInitializers,
    StoreRecurrentWeightsInt8,
    all_graphs,
    check_float_below,
    initializer_names,
    initializer_stats,
    run_passes,
    stored_sparsity,
    weight_only_int8,
)
from exporters.verify import (
    DATA_KEY,
    FORMAT_KEY,
    INTERFACE_KEY,
    META_PREFIX,
    MODEL_CONFIG_KEY,
    OBJECT_KEYS,
    SESSION_CONFIG_KEY,
    SPARSITY_KEY,
    TASK_KEY,
    Int8Tolerance,
    Parity,
    TorchReference,
    check_fp32,
    check_int8,
    check_step,
    json_metadata,
    make_session,
)
from models.checkpoint import Checkpoint, as_checkpoint, check_finite, package_version
from models.errors import (ConfigError, ExportError, ParityError, check_field_types,
                           check_threads, clip, param_error)
from models.io import atomic_path, check_output_file, probe_writable_dir, text_of_name
from models.progress import SILENT, Progress
from models.sequence import SequenceModel, sparsity_report
from models.tasks import Split, Task, check_data_fits, interface_of, recorded_test_split, task_files

FORMATS = ("dense", "sparse", "step", "chunk", "int8")
_ORDER = ("step", "chunk", "int8", "sparse")  # canonical order of the parts of a combined format
VERIFY_DATA = ("task", "random")


@dataclass(frozen=True)
class Variant:
    """One export format: base graph (full, step or chunk) x weights (fp32 or int8) x storage."""

    step: bool = False
    chunk: bool = False
    int8: bool = False
    sparse: bool = False

    @property
    def parts(self) -> list[str]:
        return [p for p in _ORDER if getattr(self, p)]

    @property
    def stateful(self) -> bool:
        """The caller carries the states (step or chunk graph)."""
        return self.step or self.chunk

    @property
    def name(self) -> str:
        return "+".join(self.parts) or "dense"

    def filename(self, stem: str) -> str:
        return stem + "".join(f".{p}" for p in self.parts) + ".onnx"

    def streaming(self, tokens: bool = False) -> str | None:
        """How a step or chunk file's calls relate to the task's input and output sentences
        (the interface states them for the whole sequence); None for a full-sequence file.
        ``tokens``: the model reads int64 token ids (an embedding input), not F features."""
        if not self.stateful:
            return None
        per_step = "" if tokens else ", F"
        calls = (f"this step file runs one step per call: x [batch{per_step}] is one step of the input above, y "
                 "that step's output" if self.step else
                 f"this chunk file runs k consecutive steps per call (any k): x [batch, k{per_step}] holds them, y "
                 "[batch, k, out] every one's output")
        return (f"{calls} (an output the task reads after the last step is the last step's y); the state inputs "
                "h0, h1, ... (and an LSTM's c0, c1, ...), each [1, batch, H_l], start at zeros (navigation: see "
                "init) and each call returns the next call's as h0_out, ... (c0_out, ...)")


def parse_formats(spec: str | Iterable[str]) -> list[Variant]:
    """``"dense,sparse,step,int8"`` (or a list of names) -> variants, duplicates dropped.

    Raises:
        ConfigError: an unknown or contradictory name.
    """
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    rule = f"a comma-separated list of {', '.join(FORMATS)} or '+'-combinations such as int8+sparse or step+int8"
    out: list[Variant] = []
    for name in names:
        parts = [p.strip() for p in name.split("+")]
        if not name or any(p not in FORMATS for p in parts) or len(set(parts)) != len(parts):
            raise param_error("format", rule, name)
        if "dense" in parts and len(parts) > 1:
            raise param_error("format", rule + " ('dense' stands alone)", name)
        if "step" in parts and "chunk" in parts:
            raise param_error("format", rule + " ('step' and 'chunk' are two graphs: pick one)", name)
        v = Variant(step="step" in parts, chunk="chunk" in parts, int8="int8" in parts, sparse="sparse" in parts)
        if v not in out:
            out.append(v)
    if not out:
        raise param_error("format", rule, spec)
    return out


@dataclass(frozen=True)
class ExportOptions:
    """How exports are verified and stored.

    Args:
        verify_data: "task" (the checkpoint task's test data plus random inputs) or
            "random" (seeded random inputs only, e.g. when the data is not available).
        atol, rtol: float32 variants must satisfy |onnx - torch| <= atol + rtol * |torch|
            for every output. rtol defaults to torch.testing's float32 rtol: a 256-unit
            LSTM's logits of ~14 differ from torch by ~1e-5 from summation order alone.
        int8: how much worse an int8 variant's metric may be.
        min_gain: fraction of an initializer's size sparse storage must save.
        int8_float_below: int8 variants keep a MatMul or LSTM float when it runs on one
            row per call (a last-step head, a step model's layers) and has fewer weights
            than this (a float LSTM's weights are still stored int8); 0 quantizes every
            MatMul and LSTM (see ``QuantizeDynamic``).
        parity_samples / metric_samples / step_samples: test sequences used for the
            float32 check, the int8 metric and the step check (each from the start of the
            test split).
        ir_version: IR version written (onnxruntime 1.31 reads at most 13).
        threads: onnxruntime intra-op threads during verification.
        data: where the task's files are now, if they moved since training (default: the
            location the checkpoint records).
    """

    verify_data: str = "task"
    atol: float = 1e-5
    rtol: float = 1.3e-6
    int8: Int8Tolerance = field(default_factory=Int8Tolerance)
    min_gain: float = 0.0
    int8_float_below: int = INT8_FLOAT_BELOW
    parity_samples: int = 512
    metric_samples: int = 10000
    step_samples: int = 64
    ir_version: int = IR_VERSION
    threads: int = 1
    data: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.int8, Int8Tolerance):
            raise param_error("int8", "an Int8Tolerance", type(self.int8).__name__)
        if self.verify_data not in VERIFY_DATA:
            raise param_error("verify_data", f"one of {list(VERIFY_DATA)}", self.verify_data)
        if not (self.atol > 0 and np.isfinite(self.atol)):
            raise param_error("atol", "a positive float", self.atol)
        if not (self.rtol >= 0 and np.isfinite(self.rtol)):
            raise param_error("rtol", "a float >= 0", self.rtol)
        # Named as the export command's options: --int8-accuracy-drop, --int8-relative.
        for name, option in (("accuracy_points", "int8_accuracy_drop"), ("relative", "int8_relative"),
                             ("random_rel_rms", "int8_random_rel_rms")):
            v = getattr(self.int8, name)
            if not (v >= 0 and np.isfinite(v)):
                raise param_error(option, "a finite float >= 0 (a tolerance)", v)
        if not 0.0 <= self.min_gain < 1.0:
            raise param_error("min_gain", "a float in [0, 1)", self.min_gain)
        check_float_below("int8_float_below", self.int8_float_below)
        for name in ("parity_samples", "metric_samples", "step_samples"):
            if getattr(self, name) < 1:
                raise param_error(name, "a positive int", getattr(self, name))
        if not MIN_IR_VERSION <= self.ir_version <= 13:
            raise param_error("ir_version", f"an int in [{MIN_IR_VERSION}, 13] (opset {OPSET} needs IR "
                              f">= {MIN_IR_VERSION}; onnxruntime 1.31 reads at most 13)", self.ir_version)
        check_threads(self.threads)


# The int8 tolerances as the export command's options and a pipeline's [export] keys name
# them (flat), against ExportOptions.int8's fields.
INT8_TOLERANCE_KEYS = {"int8_accuracy_drop": "accuracy_points", "int8_relative": "relative"}


def inapplicable_export_settings(variants: Sequence[Variant], verify_data: str) -> dict[str, str]:
    """The export settings (flat names, as ``export_options`` takes them) that these formats
    and this verification would ignore -> what each applies to, so that callers can refuse
    them rather than let a tolerance or a gain that is never used look applied."""
    out: dict[str, str] = {}
    if not any(v.sparse for v in variants):
        out["min_gain"] = "a sparse format (sparse, int8+sparse, ...)"
    int8_only = "an int8 format (int8, step+int8, ...)"
    if not any(v.int8 for v in variants):
        out.update(dict.fromkeys(("int8_accuracy_drop", "int8_relative", "int8_float_below", "metric_samples"),
                                 int8_only))
    if not any(not v.int8 and not v.stateful for v in variants):
        out["parity_samples"] = "a float full-sequence format (dense, sparse)"
    if verify_data == "random":
        for key in ("int8_accuracy_drop", "int8_relative", "metric_samples", "parity_samples", "data"):
            out.setdefault(key, "verification on task data (random inputs need none)")
    return out


def export_options(**settings: Any) -> ExportOptions:
    """ExportOptions from flat settings: ExportOptions' own fields plus ``int8_accuracy_drop``
    and ``int8_relative`` (the int8 tolerance), as ``rnncompress export`` and a pipeline's
    [export] table give them."""
    int8 = {f: settings.pop(key) for key, f in INT8_TOLERANCE_KEYS.items() if key in settings}
    return ExportOptions(int8=Int8Tolerance(**int8), **settings)


@dataclass(frozen=True)
class ExportResult:
    """One written file. ``stored_sparsity``: fraction of initializer elements the file
    leaves out (zeros of sparse initializers); ``int8``: how it uses int8 (``int8_usage``)."""

    format: str
    path: Path
    bytes: int
    stored_sparsity: float
    parity: Parity
    opset: int
    ir_version: int
    int8: tuple[str, ...] = ()

    @property
    def parity_error(self) -> float:
        return self.parity.error


def export_notes(results: Sequence[ExportResult], min_gain: float = 0.0) -> list[str]:
    """What a user should know about the written files that the formats' names do not say:
    a sparse file that stores nothing sparse, an int8 file that holds nothing int8, an int8
    file no smaller than its float twin. (``export`` prints them; so does ``run``.)"""
    notes = []
    by_format = {r.format: r for r in results}
    for r in results:
        parts = r.format.split("+")
        name = text_of_name(r.path.name)
        if "sparse" in parts and r.stored_sparsity == 0:
            why = (f"no initializer saves the --min-gain {min_gain:g} of its size" if min_gain > 0 else
                   "no initializer has enough zeros for sparse storage to be smaller")
            notes.append(f"{name} stores nothing sparse ({why}): it is the non-sparse file.")
        if "int8" not in parts:
            continue
        if not r.int8:
            notes.append(f"{name} holds nothing int8 (every matrix is below --int8-float-below, or too small for "
                         "int8 to shrink the file): it is the float model.")
            continue
        # its float twin: the same format without int8 (int8+sparse: sparse, else dense)
        twins = ("+".join(p for p in parts if p not in drop) or "dense" for drop in (("int8",), ("int8", "sparse")))
        float_twin = next((by_format[t] for t in twins if t in by_format), None)
        if float_twin is not None and r.bytes >= float_twin.bytes:
            notes.append(f"{name} is not smaller than {text_of_name(float_twin.path.name)} ({r.bytes:,} vs "
                         f"{float_twin.bytes:,} bytes): its matrices are too small for int8 storage to save more "
                         "than the metadata and nodes it adds.")
    return notes


def task_interface(ckpt: Checkpoint, data: str | os.PathLike | None = None) -> dict[str, Any]:
    """The interface an export stores for ``ckpt`` (its task's files read from ``data`` if
    given); ``{"unavailable": why}`` when its tables cannot be read, and then none is stored."""
    return interface_of(ckpt.task, ckpt.provenance.get("data_sha256"), data)


def provenance_metadata(ckpt: Checkpoint, model: SequenceModel, variant: Variant,
                        options: ExportOptions, interface: dict[str, Any] | None = None) -> dict[str, str]:
    """metadata_props for an export: what it came from and how it was checked. No times:
    the same checkpoint gives the same bytes. The task is recorded as the checkpoint has it,
    its data location included (absolute), so that bench can score the file. ``interface``
    (``Task.interface``: the input recipe and the tables a service needs) is stored when
    given and available, so the file carries them wherever it goes."""
    sp = sparsity_report(model)
    per = {name: round(v["sparsity"], 6) for name, v in sp["per_matrix"].items()}
    metric = ckpt.metrics.get("metric") or ""
    value = ckpt.metrics.get(f"test_{metric}") if metric else None
    meta = {
        "rnncompress.version": package_version(),
        "rnncompress.source": text_of_name(ckpt.path.name) if ckpt.path else "",
        "rnncompress.source_sha256": ckpt.sha256 or "",
        TASK_KEY: json.dumps(ckpt.task, sort_keys=True),
        DATA_KEY: json.dumps(ckpt.provenance.get("data_sha256") or {}, sort_keys=True),
        "rnncompress.metric": metric,
        "rnncompress.metric_value": "" if value is None else repr(float(value)),
        SPARSITY_KEY: json.dumps({"per_matrix": per, "recurrent": round(sp["recurrent"], 6),
                                            "overall": round(sp["overall"], 6)}, sort_keys=True),
        FORMAT_KEY: variant.name,
        "rnncompress.opset": str(OPSET),
        "rnncompress.verified": options.verify_data,  # "task" (test data + random inputs) or "random"
        "rnncompress.tolerance": json.dumps({"fp32_max_abs": options.atol, "fp32_rtol": options.rtol,
                                             "int8_accuracy_points": options.int8.accuracy_points,
                                             "int8_relative": options.int8.relative,
                                             "int8_random_rel_rms": options.int8.random_rel_rms}, sort_keys=True),
        MODEL_CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True),
    }
    if variant.int8:
        meta["rnncompress.int8_float_below"] = str(options.int8_float_below)
    if interface and "unavailable" not in interface:
        if variant.stateful:
            interface = {**interface, "streaming": variant.streaming(model.config.input_layer == "embedding")}
        meta[INTERFACE_KEY] = json.dumps(interface, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return meta


def build_variant(model: SequenceModel, variant: Variant, metadata: dict[str, str] | None = None,
                  min_gain: float = 0.0, ir_version: int = IR_VERSION,
                  int8_float_below: int = INT8_FLOAT_BELOW) -> onnx.ModelProto:
    """The ONNX model of one format, not verified (``export_checkpoint`` verifies).

    Pipeline: emit the full or step graph -> [QuantizeDynamic, StoreRecurrentWeightsInt8]
    -> [SparsifyInitializers] -> SetIrVersion -> AddMetadata. When sparse storage pays
    for no initializer, the file is exactly the non-sparse one (its ``rnncompress.format``
    says so), so a sparse file is never larger.
    """
    build = build_step_graph if variant.step else build_chunk_graph if variant.chunk else build_full_graph
    proto = build(model)
    passes: list[Pass] = [SetIrVersion(ir_version)]
    if variant.int8:
        passes += [QuantizeDynamic(float_below=int8_float_below), StoreRecurrentWeightsInt8()]
    proto, _ = run_passes(proto, passes)
    stored = variant
    if variant.sparse:
        proto, changed = SparsifyInitializers(min_gain)(proto)
        if not changed:
            stored = replace(variant, sparse=False)
    meta = dict(metadata or {})
    if meta:
        meta[FORMAT_KEY] = stored.name
    if weight_only_int8(proto):
        # Weight-only int8 W/R (GRU, RNN, a step LSTM left float): let onnxruntime fold the
        # DequantizeLinear into a constant at load instead of running it on every call.
        meta[SESSION_CONFIG_KEY] = json.dumps({"session.disable_quant_qdq": "1"})
    return run_passes(proto, [SetIrVersion(ir_version), AddMetadata(meta)]).model


# ----------------------------------------------------------------- verification data
def random_inputs(model: SequenceModel, batch: int, steps: int, seed: int) -> Split:
    """Seeded random sequences the model accepts (tokens for an embedding input)."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    if c.input_layer == "embedding":
        x = torch.randint(0, c.input_size, (batch, steps), generator=g)
    else:
        x = torch.randn(batch, steps, c.input_size, generator=g)
    init = torch.randn(batch, c.init_size, generator=g) if c.init_size else None
    return Split(x, torch.zeros(batch), init)


def load_test_split(ckpt: Checkpoint, data: str | None = None) -> tuple[Task, Split]:
    """The checkpoint's task (reading its files from ``data`` if given) and its test split,
    checked against the model's shape.

    Raises:
        DataError: the task cannot be rebuilt or its data cannot be loaded.
        ConfigError: ``data`` given for a task that generates its data.
    """
    hint = "pass --data PATH if the data moved, or --verify-data random to verify on random inputs only"
    task, test = recorded_test_split(ckpt.task, "the task data to verify the export", hint, data)
    task.check_data_is(ckpt.provenance.get("data_sha256"), str(ckpt.path or "the checkpoint"))
    check_data_fits(test, ckpt.config, task.name, hint)
    return task, test


@dataclass
class _VerifyData:
    task: Task | None
    parity: dict[str, Split]
    step: dict[str, Split]
    int8: dict[str, Split]
    reference: TorchReference


def _verify_data(ckpt: Checkpoint, model: SequenceModel, options: ExportOptions, need_int8: bool) -> _VerifyData:
    # Two shapes (and a length unlike the task's) exercise the dynamic batch and sequence axes.
    steps = 9
    rand = {"random inputs (batch 8 x 9 steps)": random_inputs(model, 8, steps, seed=0),
            "random inputs (batch 3 x 1 step)": random_inputs(model, 3, 1, seed=1)}
    if options.verify_data == "random":
        r_int8 = {"random inputs (batch 64 x 9 steps)": random_inputs(model, 64, steps, seed=2)}
        return _VerifyData(None, rand, rand, r_int8, TorchReference(model))
    task, test = load_test_split(ckpt, options.data)
    n = len(test)
    parity = {f"task test data ({min(n, options.parity_samples)})": test.take(slice(0, options.parity_samples)), **rand}
    step = {f"task test data ({min(n, options.step_samples)})": test.take(slice(0, options.step_samples)), **rand}
    int8 = {"task": test.take(slice(0, options.metric_samples))} if need_int8 else {}
    return _VerifyData(task, parity, step, int8, TorchReference(model))


def verify_variant(model_proto: onnx.ModelProto, variant: Variant, data: _VerifyData,
                   options: ExportOptions) -> Parity:
    """Check and run one variant; raises ``ParityError`` / ``ExportError`` on failure."""
    try:
        # Strict shape inference types sparse initializers as sparse_tensor(float), which no
        # op accepts (an onnx limitation); the plain check applies to every model.
        onnx.checker.check_model(model_proto, full_check=not model_proto.graph.sparse_initializer)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"Export '{variant.name}' fails onnx.checker: {str(e).strip().splitlines()[0]}") from None
    session = make_session(model_proto, options.threads)
    if variant.int8:
        parity = check_int8(session, data.reference, data.task, data.int8, options.int8)
    elif variant.stateful:
        parity = check_step(session, data.reference, data.step, options.atol, options.rtol)
    else:
        parity = check_fp32(session, data.reference, data.parity, options.atol, options.rtol)
    if not parity.passed:
        raise ParityError(f"Export '{variant.name}' disagrees with the torch model: {parity.describe()}; "
                          f"nothing was written.")
    return parity


# ------------------------------------------------------------------------- writing
def write_all(files: dict[Path, bytes]) -> None:
    """Write every file or none: all contents go to temporary files first, and they are
    renamed into place only once every one of them is complete. (The renames themselves
    run in turn: one the file system refuses midway, such as onto an immutable file, leaves
    the files renamed before it replaced; the error names the file.)"""
    created_dirs = []
    for d in sorted({p.parent for p in files}):
        missing = [q for q in [d, *d.parents] if not q.exists()]
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExportError(f"Cannot create output directory {d}: {e.strerror}.") from None
        created_dirs += sorted(missing, key=lambda q: len(q.parts), reverse=True)
    try:
        with contextlib.ExitStack() as stack:
            for path, data in files.items():
                tmp = stack.enter_context(atomic_path(path))
                tmp.write_bytes(data)
    except OSError as e:
        for d in created_dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
        which = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise ExportError(f"Cannot write the exported files{which}: {e.strerror or e}.") from None


def export_checkpoint(ckpt: Checkpoint, formats: str | Sequence[str], out_dir: str | os.PathLike,
                      name: str | None = None, options: ExportOptions | None = None, force: bool = False,
                      progress: Progress | None = None) -> list[ExportResult]:
    """Export a checkpoint to ONNX in each format, verify every file, then write them all.

    Args:
        ckpt: a loaded checkpoint (``models.checkpoint.load_checkpoint``).
        formats: names such as ``"dense,sparse,step,int8"`` (see ``parse_formats``).
        out_dir: directory for the files (created if missing).
        name: file stem (default: the checkpoint's file stem).
        options: verification and storage settings.
        force: overwrite existing files of the same names.
        progress: progress messages (default silent).

    Returns:
        One ``ExportResult`` per format, in the order given.

    Raises:
        CheckpointError: NaN/Inf weights. ConfigError: a bad format or option.
        DataError: task data unavailable (use ``verify_data="random"``).
        ParityError: a variant disagrees with torch (nothing is written).
        ExportError: the files cannot be written or a model cannot be built or loaded.

    Example:
        >>> results = export_checkpoint("lstm.pt", "dense,sparse,int8", "onnx/")   # a path or a Checkpoint
        >>> sizes = {r.format: r.bytes for r in results}   # {"dense": ..., "sparse": ..., "int8": ...}
    """
    ckpt = as_checkpoint(ckpt)
    options = options or ExportOptions()
    if not isinstance(options, ExportOptions):
        raise param_error("options", "an ExportOptions", type(options).__name__)
    progress = progress or SILENT
    check_finite(ckpt)
    variants = parse_formats(formats)
    out = Path(out_dir)
    stem = name if name is not None else (ckpt.path.stem if ckpt.path else "model")
    # (control characters: a newline in a file name breaks every listing; a name's undecodable
    # bytes, which Python holds as surrogates, are the user's file system's and stay)
    if (not stem.strip() or "/" in stem or "\\" in stem or stem.startswith(".")
            or any(unicodedata.category(ch) == "Cc" for ch in stem)):
        raise param_error("name", "a non-empty file stem without control characters or path separators, not "
                          "starting with '.' (a hidden file)", stem)
    targets = {v: out / v.filename(stem) for v in variants}
    probe_writable_dir(out, ExportError)  # before the (slow) verification
    inputs = [ckpt.path, *task_files(ckpt.task, options.data)]
    for target in targets.values():
        check_output_file(target, "--out-dir's", inputs, force, ExportError, probe=False)
    model = ckpt.build_model()
    model.eval()
    data = _verify_data(ckpt, model, options, need_int8=any(v.int8 for v in variants))
    interface = task_interface(ckpt, options.data)
    built: dict[Path, bytes] = {}
    results = []
    for v in variants:
        progress.message(f"{stem}: {v.name}: building and verifying")
        meta = provenance_metadata(ckpt, model, v, options, interface)
        proto = build_variant(model, v, meta, options.min_gain, options.ir_version, options.int8_float_below)
        parity = verify_variant(proto, v, data, options)
        blob = proto.SerializeToString()
        built[targets[v]] = blob
        results.append(ExportResult(v.name, targets[v], len(blob), stored_sparsity(proto), parity,
                                    OPSET, proto.ir_version, tuple(int8_usage(proto))))
    write_all(built)
    return results


# ---------------------------------------------------------------------- sparsify
@dataclass(frozen=True)
class SparsifyResult:
    path: Path
    bytes_before: int
    bytes_after: int
    sparsified: int  # initializers now stored sparse (including ones already sparse)
    initializers: int
    stored_sparsity: float
    onnxruntime_loads: bool | None  # None: the input itself does not load in onnxruntime


def read_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check an ONNX file; one clear error when it is not one."""
    return read_onnx_sized(Path(path))[0]


def read_onnx_sized(path: str | os.PathLike) -> tuple[onnx.ModelProto, int]:
    """``read_onnx``, and the bytes the model takes on disk: its file plus the external data
    files its tensors name (each counted once), learnt from the one parse of the file."""
    model, size, _ = _read_onnx_files(Path(path))
    return model, size


def _read_onnx_files(path: Path) -> tuple[onnx.ModelProto, int, list[Path]]:
    """``read_onnx_sized``, and the external data files the model's tensors name (inputs
    too, which nothing may write over)."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model, uses_external_data

    if not path.exists():
        raise ExportError(f"ONNX file {path} does not exist.")
    if not path.is_file():
        raise ExportError(f"{path} is not a file.")
    if path.stat().st_size == 0:
        raise ExportError(f"{path} is empty, not an ONNX model.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path} is not an ONNX model (cannot parse it: {type(e).__name__}).") from None
    external = sorted({path.parent / ExternalDataInfo(t).location for t in _graph_tensors(model.graph)
                       if uses_external_data(t)})
    if external:
        try:
            load_external_data_for_model(model, str(path.parent))  # what onnx.load does, with its path checks
        except Exception as e:  # its weights' file is gone (or names a place outside the model's folder)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"{path} keeps its weights in an external data file that cannot be read: "
                              f"{first[:160]}") from None
    size = path.stat().st_size + sum(f.stat().st_size for f in external)
    if model.ir_version < 1 or not model.opset_import or not model.HasField("graph"):
        raise ExportError(f"{path} is not an ONNX model (no IR version, opset or graph).")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError, or ValueError for > 2 GB protos
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{path} is not a valid ONNX model: {first[:200]}") from None
    return model, size, external


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph stores: initializers, sparse ones, and node attributes (subgraphs too)."""
    for g in all_graphs(graph):
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield from (sp.values, sp.indices)
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors


def _same_weights(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    from onnx import numpy_helper

    da = {t.name: numpy_helper.to_array(t) for t in DensifyInitializers()(a).model.graph.initializer}
    db = {t.name: numpy_helper.to_array(t) for t in DensifyInitializers()(b).model.graph.initializer}
    if da.keys() != db.keys():
        return False
    for k, x in da.items():
        y = db[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
            return False
    return True


def _checker_error(model: onnx.ModelProto) -> str | None:
    """What onnx.checker (not full_check) says against ``model``, or None when it passes."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


def check_graph_metadata(proto: onnx.ModelProto, hidden_sizes: Sequence[int], graph_kind: str,
                         source: str | os.PathLike) -> None:
    """The metadata of an rnncompress export agrees with its graph: its format is one this
    version writes and of the graph's kind ("full", "step" or "chunk"), and the recurrent
    layers' widths are the model config's. A hand-edited file is refused, not reported as
    what it is not.

    Raises:
        ExportError: naming the key, what it says and what the graph has.
    """
    fmt = next((p.value for p in proto.metadata_props if p.key == FORMAT_KEY), None)
    if fmt:
        try:
            (variant,) = parse_formats([fmt])
        except ConfigError:
            raise ExportError(f"{source} has corrupt rnncompress metadata: {FORMAT_KEY} {clip(fmt)!r} is not a format "
                              f"rnncompress writes ({', '.join(FORMATS)} and their '+'-combinations).") from None
        kind = "chunk" if variant.chunk else "step" if variant.step else "full"
        if kind != graph_kind:
            raise ExportError(f"{source} has corrupt rnncompress metadata: {FORMAT_KEY} {fmt!r} is a {kind} model's "
                              f"format, but the graph is a {graph_kind} model's.")
    widths = [a.i for n in proto.graph.node for a in n.attribute if a.name == "hidden_size"]
    if widths and widths != list(hidden_sizes):
        raise ExportError(f"{source} has corrupt rnncompress metadata: {MODEL_CONFIG_KEY} says hidden sizes "
                          f"{list(hidden_sizes)}, but the graph's recurrent layers have {widths}.")


def _mark_sparse(model: onnx.ModelProto) -> onnx.ModelProto:
    """An rnncompress export that sparsify changed records it in its format (dense -> sparse,
    int8 -> int8+sparse), so info and bench describe the file as it is."""
    fmt = next((p.value for p in model.metadata_props if p.key == FORMAT_KEY), None)
    if fmt is None:
        return model
    try:
        (variant,) = parse_formats([fmt])
    except ConfigError:  # not a format this version writes: leave it as found
        return model
    return AddMetadata({FORMAT_KEY: replace(variant, sparse=True).name})(model).model


def sparsify_file(in_path: str | os.PathLike, out_path: str | os.PathLike, min_gain: float = 0.0,
                  force: bool = False) -> SparsifyResult:
    """Store the initializers of any ONNX model sparse wherever that makes them smaller.

    The result is checked (onnx.checker, not full_check, whenever the input passes it;
    densified weights equal the input's exactly; it loads in onnxruntime whenever the
    input does) before it is written atomically.

    Raises:
        ConfigError: ``out_path`` is the input, or exists without ``force``.
        ExportError: the input is not a valid ONNX model, or the output cannot be written.
    """
    src, dst = Path(in_path), Path(out_path)
    sparsify = SparsifyInitializers(min_gain)
    model, src_bytes, external = _read_onnx_files(src)  # the input first: a missing one is the error to report
    check_output_file(dst, "--out", [src, *external], force, ConfigError)
    result, changed = sparsify(model)
    if changed:
        result = _mark_sparse(result)
    if not _same_weights(model, result):
        raise ExportError(f"Sparse storage of {src} would change its weights; nothing was written.")
    if changed and _checker_error(model) is None and (error := _checker_error(result)) is not None:
        raise ExportError(f"The sparse model fails onnx.checker ({clip(error, 120)}); nothing was written.")
    try:
        blob = result.SerializeToString()
    except ValueError as e:
        raise ExportError(f"{src} is too large to store in one file ({e}).") from None
    loads: bool | None = True
    try:
        make_session(blob)
    except ExportError as e:
        try:
            make_session(model)
        except ExportError:
            loads = None
        else:
            raise ExportError(f"The sparse model no longer loads in onnxruntime ({e}); nothing was written.") from None
    try:
        with atomic_path(dst) as tmp:
            tmp.write_bytes(blob)
    except OSError as e:
        raise ExportError(f"Cannot write {dst}: {e.strerror or e}.") from None
    counts = initializer_stats(result)  # (subgraphs included, as info counts them)
    return SparsifyResult(dst, src_bytes, len(blob), counts["sparse"], counts["sparse"] + counts["dense"],
                          stored_sparsity(result), loads)


# ------------------------------------------------------------------------ inspect
_INT8_OPS = {"DynamicQuantizeLSTM": "LSTM with int8 arithmetic", "MatMulInteger": "MatMul with int8 arithmetic",
             "DynamicQuantizeMatMul": "MatMul with int8 arithmetic"}


def _value_info(v: onnx.ValueInfoProto) -> dict[str, object]:
    t = v.type.tensor_type
    dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]
    return {"name": v.name, "type": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?",
            "shape": dims}


def int8_usage(model: onnx.ModelProto) -> list[str]:
    """How a model uses int8, one line each: ops with int8 arithmetic, and float ops whose
    weights are stored int8 (a DequantizeLinear reading an initializer); [] for a float model."""
    g = model.graph
    int8 = [f"{_INT8_OPS[n.op_type]} ({n.name})" for n in g.node if n.op_type in _INT8_OPS]
    dequantized = weight_only_int8(model)
    if dequantized:
        consumers = sorted({c.op_type for c in g.node if dequantized & set(c.input)})
        int8.append(f"weights stored int8, arithmetic float: {len(dequantized)} "
                    f"tensor{'s' if len(dequantized) > 1 else ''} of {', '.join(consumers)}")
    return int8


def onnx_summary(path: str | os.PathLike) -> dict[str, object]:
    """What an ONNX file is: its interface, ops, storage and rnncompress provenance.

    ``int8`` lists how the file uses int8 (``int8_usage``). ``metadata``
    holds the ``rnncompress.*`` entries (JSON values decoded), ``other_metadata`` the rest.

    Raises:
        ExportError: the file is missing or not a valid ONNX model, or metadata an export
        stores as a JSON object (``OBJECT_KEYS``) is something else.
    """
    p = Path(path)
    model, size = read_onnx_sized(p)
    g = model.graph
    ops: dict[str, int] = {}
    for n in g.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        ops[key] = ops.get(key, 0) + 1
    stored = initializer_names(model)
    meta, other = {}, {}
    for prop in model.metadata_props:
        if prop.key in OBJECT_KEYS:
            meta[prop.key[len(META_PREFIX):]] = json_metadata({prop.key: prop.value}, prop.key, p)
        elif prop.key.startswith(META_PREFIX):
            try:
                meta[prop.key[len(META_PREFIX):]] = json.loads(prop.value)
            except ValueError:
                meta[prop.key[len(META_PREFIX):]] = prop.value
        else:
            other[prop.key] = prop.value
    return {
        "path": str(p), "bytes": size, "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [_value_info(v) for v in g.input if v.name not in stored],
        "outputs": [_value_info(v) for v in g.output],
        "ops": ops, "int8": int8_usage(model),
        "initializers": {**initializer_stats(model), "stored_sparsity": stored_sparsity(model)},
        "metadata": meta, "other_metadata": other,
    }
