"""Benchmark reports: ``report.json`` (machine), ``report.md`` (human), PNG plots.

Schema ``rnncompress-report/1.2`` (1.1 added ``call_floor_ms``, ``settings.chunk`` and
``inputs.steps_per_call``; 1.2 ``metric.not_finite``). Times are milliseconds unless a name says ``_us``;
``null`` means "not measured". Readers must ignore keys they do not know; the major
version (the number after the slash) changes only when a key is removed or changes
meaning; ``load_report`` reads ``rnncompress-report/1`` and ``/1.N`` and refuses other
versions. It requires the top-level keys ``schema``, ``rnncompress_version``,
``environment``, ``settings``, ``baseline``, ``models`` and, per model, ``name``, ``kind``,
``format``, ``size_bytes``, ``metric``, ``latency_ms``, ``ratio_to_baseline``.

Top level:

| key | type | meaning |
|---|---|---|
| ``schema`` | str | ``"rnncompress-report/1.2"`` |
| ``rnncompress_version`` | str | version of rnncompress that measured |
| ``created`` | str | ISO 8601 UTC time of the run |
| ``environment`` | object | what it ran on (below) |
| ``settings`` | object | ``BenchConfig`` fields: ``threads``, ``warmup``, ``runs``, ``step``, ``torch_reference``, ``call_floor``, ``accuracy``, ``max_eval``, ``seed``, ``seq_len``, ``chunk``, ``data`` (the ``--data`` override or null); and ``interleaved`` (always true) |
| ``baseline`` | str | ``name`` of the model ratios are relative to |
| ``models`` | list | one object per model (below), names unique |

``environment``: ``onnxruntime``, ``torch``, ``numpy``, ``python`` (versions),
``platform``, ``machine``, ``cpu`` (model name from /proc/cpuinfo), ``logical_cores``,
``intra_op_threads``, ``inter_op_threads``, ``torch_threads``,
``graph_optimization_level`` (e.g. ``ORT_ENABLE_ALL``), ``execution_providers``,
``load_average`` ([1, 5, 15] minutes at the end of the run, or null).

Each entry of ``models``:

| key | type | meaning |
|---|---|---|
| ``name`` | str | report name (default: the file name) |
| ``source`` | str | path of the input file |
| ``kind`` | str | ``"checkpoint"`` or ``"onnx"`` |
| ``format`` | str / null | export format (``dense``, ``sparse``, ``step``, ``int8``, ``step+int8``, ...); a checkpoint is measured as ``dense`` (plus its step model); null for ONNX files without rnncompress metadata |
| ``sha256`` | str / null | sha256 of the input file |
| ``source_sha256`` | str / null | sha256 of the checkpoint the model comes from (the checkpoint itself, or the ONNX metadata) |
| ``size_bytes`` | int | file size; for a checkpoint, the size of its dense ONNX serialization |
| ``task`` | object / null | ``{"name", "params"}`` of the task the test data comes from (all parameters, defaults filled in) |
| ``cell`` | str / null | ``rnn``, ``lstm`` or ``gru`` |
| ``hidden_sizes`` | list[int] / null | hidden size per recurrent layer |
| ``parameters`` | int | parameter count of the model (for ONNX files without metadata: initializer elements) |
| ``sparsity`` | object / null | ``{"recurrent", "overall"}``: fraction of exact zeros in the recurrent matrices / all weight matrices |
| ``inputs`` | object | the latency input (batch 1): ``{"data": "task test split", "seq_len": T}`` (its first sequence), or ``"data": "random"`` for models that record no task (plus ``"shapes"``, input name -> shape, for ONNX files without metadata, whose ``seq_len`` is null when every input axis is fixed; ``"steps_per_call"`` for chunk models) |
| ``metric`` | object / null | ``{"name", "higher_is_better", "onnxruntime", "torch", "samples"}``: the task's test metric from onnxruntime's outputs and from the torch model (null for ONNX inputs) on the first ``samples`` test sequences; null when not measured. ``not_finite`` (present only then): the values measured as NaN or Inf (the model's outputs are), recorded as null; metric budgets fail on them. Added in 1.2 |
| ``latency_ms`` | object | ``{"full": S, "step": S}``: one full-sequence call, one streaming step (state carried from the previous call, reset after the last step of the sequence; for a chunk model, one call of ``inputs.steps_per_call`` steps divided by that number); either may be null. For ONNX files without metadata, ``full`` is one ``session.run`` |
| ``torch_latency_ms`` | object / null | the same for the torch eager model (checkpoints only; a reference line, never in ratios) |
| ``call_floor_ms`` | object / null | ``{"full": S, "step": S}``: the same calls, in the same run, on a graph with this model's inputs and outputs that only copies them (``runtime.latency.call_floor_model``): onnxruntime's fixed cost per call, which no compression removes; null when not measured (``call_floor`` off). Added in 1.1 |
| ``ratio_to_baseline`` | object / null | ``{"p50", "p99", "step_p50", "step_p99"}``: this model's percentile / the baseline's, from the same interleaved run (null entries where either side was not measured, and p50/p99 where the two were timed on sequences of different lengths: see ``notes``); null for the baseline itself |
| ``samples_us`` | object | raw latencies in microseconds (0.1 us resolution), keys ``full``, ``step``, ``torch_full``, ``torch_step`` as measured, in round order |
| ``notes`` | list[str] | what was not measured and why, and other caveats |

A latency summary ``S`` is ``{"p50", "p90", "p99", "mean", "min", "max", "runs"}``
(ms, rounded to 0.1 us; ``runs`` the number of timed calls).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from models.errors import ReportError, is_finite_number, is_fraction
from models.io import atomic_write_text, check_output_file, check_writable_dir, probe_writable_dir, removed_on_failure

SCHEMA = "rnncompress-report/1.2"
SCHEMA_PREFIX = "rnncompress-report/"
MAJOR = 1
FILES = {"json": "report.json", "markdown": "report.md", "latency_full": "latency_full.png",
         "latency_step": "latency_step.png", "accuracy_latency": "accuracy_latency.png",
         "accuracy_sparsity": "accuracy_sparsity.png"}

_TOP = ("schema", "rnncompress_version", "environment", "settings", "baseline", "models")
_MODEL = ("name", "kind", "format", "size_bytes", "metric", "latency_ms", "ratio_to_baseline")
_SUMMARY = ("p50", "p90", "p99", "mean", "min", "max", "runs")
_RATIOS = ("p50", "p99", "step_p50", "step_p99")


# ------------------------------------------------------------------------ loading
def validate_report(report: Any, source: str = "the report") -> dict[str, Any]:
    """Check that ``report`` is a compatible report dict; returns it.

    Raises:
        ReportError: foreign, incompatible version, or missing / mistyped keys.
    """
    if not isinstance(report, dict):
        raise ReportError(f"{source} is not an rnncompress report (a JSON object is expected, got "
                          f"{type(report).__name__}).")
    schema = report.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise ReportError(f"{source} is not an rnncompress report (schema {schema!r}; expected {SCHEMA!r}).")
    # (ASCII digits without leading zeros: \d and int() also take '01' and other scripts' digits)
    m = re.fullmatch(r"(0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?", schema[len(SCHEMA_PREFIX):])
    if not m or int(m.group(1)) != MAJOR:
        raise ReportError(f"{source} has report schema {schema!r}; this rnncompress reads {SCHEMA!r} "
                          f"(rerun 'rnncompress bench' with this version).")
    missing = [k for k in _TOP if k not in report]
    if missing:
        raise ReportError(f"{source} is incomplete: missing key {missing[0]!r}.")
    for key in ("environment", "settings"):
        if not isinstance(report[key], dict):
            raise ReportError(f"{source} is corrupt: {key!r} must be an object; got {json.dumps(report[key])[:60]}.")
    models = report["models"]
    if not isinstance(models, list) or not models:
        raise ReportError(f"{source} is corrupt: 'models' must be a non-empty list.")
    names = set()
    for i, e in enumerate(models):
        where = f"{source} is corrupt: models[{i}]"
        if not isinstance(e, dict):
            raise ReportError(f"{where} is not an object.")
        missing = [k for k in _MODEL if k not in e]
        if missing:
            raise ReportError(f"{where} has no {missing[0]!r}.")
        # (printable: names reach JUnit XML, which cannot hold control characters)
        if not isinstance(e["name"], str) or not e["name"] or not e["name"].isprintable() or e["name"] in names:
            raise ReportError(f"{where} has a missing, unprintable or duplicate name {e['name']!r}.")
        names.add(e["name"])
        _check_model(e, f"{source} is corrupt: model {e['name']!r}")
    if not isinstance(report["baseline"], str) or report["baseline"] not in names:
        raise ReportError(f"{source} is corrupt: baseline {report['baseline']!r} is not one of its models.")
    return report


def _check_model(e: dict[str, Any], where: str) -> None:
    if not isinstance(e["kind"], str):
        raise ReportError(f"{where} has kind = {e['kind']!r} (a string is expected).")
    if e["format"] is not None and not isinstance(e["format"], str):  # null: a foreign ONNX file
        raise ReportError(f"{where} has format = {e['format']!r} (a string or null is expected).")
    notes = e.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ReportError(f"{where} has notes that are not a list of strings.")
    if e["size_bytes"] is not None and not (is_finite_number(e["size_bytes"]) and e["size_bytes"] >= 0):
        raise ReportError(f"{where} has size_bytes {e['size_bytes']!r} (a number >= 0 is expected).")
    for key in ("latency_ms", "call_floor_ms"):
        lat = e.get(key)
        if lat is None and key == "call_floor_ms":  # optional (added in 1.1)
            continue
        if not isinstance(lat, dict):
            raise ReportError(f"{where} has no {key} object.")
        for kind in ("full", "step"):
            s = lat.get(kind)
            if s is not None and (not isinstance(s, dict) or any(not is_finite_number(s.get(k)) for k in _SUMMARY)):
                raise ReportError(f"{where} has a {key}.{kind} without numbers {list(_SUMMARY)}.")
            bad = next((k for k in _SUMMARY if s is not None and s[k] < 0), None)
            if bad is not None:
                raise ReportError(f"{where} has {key}.{kind}.{bad} = {s[bad]!r} (a time or count >= 0 is expected).")
            if s is not None and (not isinstance(s["runs"], int) or s["runs"] < 1):
                raise ReportError(f"{where} has {key}.{kind}.runs = {s['runs']!r} (a count >= 1 is expected).")
    ratio = e["ratio_to_baseline"]
    if ratio is not None:
        if not isinstance(ratio, dict):
            raise ReportError(f"{where} has a ratio_to_baseline that is not an object.")
        if (gone := next((k for k in _RATIOS if k not in ratio), None)) is not None:
            raise ReportError(f"{where} has a ratio_to_baseline without {gone!r} (null where it was not measured).")
        for k, v in ratio.items():
            if v is not None and not (is_finite_number(v) and v >= 0):
                raise ReportError(f"{where} has ratio_to_baseline.{k} = {v!r} (a number >= 0 or null is expected).")
    sparsity = e.get("sparsity")
    if sparsity is not None:
        if not isinstance(sparsity, dict):
            raise ReportError(f"{where} has a sparsity that is not an object.")
        for k in ("recurrent", "overall"):
            v = sparsity.get(k)
            if v is not None and not is_fraction(v):
                raise ReportError(f"{where} has sparsity.{k} = {v!r} (a fraction in [0, 1] or null is expected).")
    metric = e["metric"]
    if metric is not None:
        if not isinstance(metric, dict):
            raise ReportError(f"{where} has a metric that is not an object.")
        if not isinstance(metric.get("name"), str):
            raise ReportError(f"{where} has metric.name = {metric.get('name')!r} (a string is expected).")
        if not isinstance(metric.get("higher_is_better"), bool):
            raise ReportError(f"{where} has metric.higher_is_better = {metric.get('higher_is_better')!r} "
                              "(true or false is expected).")
        not_finite = metric.get("not_finite", [])
        if not (isinstance(not_finite, list) and all(k in ("onnxruntime", "torch") for k in not_finite)
                and all(metric.get(k) is None for k in not_finite)):
            raise ReportError(f"{where} has metric.not_finite = {not_finite!r} (a list of 'onnxruntime' / 'torch' "
                              "whose values are null is expected).")
        for k in ("onnxruntime", "torch"):
            if metric.get(k) is not None and not is_finite_number(metric[k]):
                raise ReportError(f"{where} has metric.{k} = {metric[k]!r} (a number or null is expected).")
            if metric["name"] == "accuracy" and metric.get(k) is not None and not is_fraction(metric[k]):
                raise ReportError(f"{where} has metric.{k} = {metric[k]!r} (an accuracy is a fraction in [0, 1]).")


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``report.json``.

    Raises:
        ReportError: missing, unreadable, not JSON, not ours, an incompatible schema
            version, or missing / mistyped keys.
    """
    p = Path(path)
    if not p.exists():
        raise ReportError(f"Report {p} does not exist.")
    if not p.is_file():
        raise ReportError(f"Report {p} is not a file.")
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise ReportError(f"Report {p} cannot be read ({e.strerror or type(e).__name__}).") from None
    except UnicodeDecodeError:
        raise ReportError(f"Report {p} is not a JSON text file (not UTF-8), so not an rnncompress report.") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"Report {p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                          f"truncated or not a report.") from None
    except RecursionError:
        raise ReportError(f"Report {p} is nested too deeply to be an rnncompress report.") from None
    return validate_report(report, f"Report {p}")


# ------------------------------------------------------------------------ writing
def check_out_dir(out_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike | None] = (),
                  force: bool = False) -> Path:
    """Fail before a (long) benchmark if ``out_dir`` could not be created or written, if a
    file the report writes there is one of the ``inputs``, or (without ``force``) if one
    exists already; creates nothing."""
    out = probe_writable_dir(out_dir, ReportError)
    for name in FILES.values():
        # "--out-dir's b/report.md is one of the inputs": the file in the folder, not the folder
        check_output_file(out / name, "--out-dir's", inputs, force=force, error=ReportError, probe=False)
    return out


def _f(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _kb(size: Any) -> str:
    return "-" if size is None else f"{size / 1024:.1f}"


def _lat(e: dict[str, Any], kind: str, key: str, table: str = "latency_ms") -> str:
    s = (e.get(table) or {}).get(kind)
    return "-" if not s else f"{s[key]:.4g}"


def _floor_share(e: dict[str, Any]) -> str:
    """The call floor's p50 as a share of the model's per-step p50 ("-" if either is missing)."""
    floor, step = (e.get("call_floor_ms") or {}).get("step"), (e.get("latency_ms") or {}).get("step")
    if not (floor and step and step["p50"] > 0):
        return "-"
    share = floor["p50"] / step["p50"]
    # A floor above the step it is part of is timing noise (few --runs): the step is all floor.
    return f"{share:.0%}" if share <= 1 else f"~100% (floor {share:.0%} of step: noise, more --runs)"


def markdown(report: dict[str, Any], images: list[str] | None = None) -> str:
    """The human report: settings, one row per model, the torch reference, plots."""
    env, st, models = report["environment"], report["settings"], report["models"]
    metric_names = {e["metric"]["name"] for e in models if e.get("metric")}
    mixed = len(metric_names) > 1  # then each cell names its metric
    mname = "metric" if mixed or not metric_names else next(iter(metric_names))
    lines = [
        "# rnncompress benchmark",
        "",
        f"Baseline **{_cell(report['baseline'])}**. onnxruntime {env.get('onnxruntime')} on {env.get('cpu')} "
        f"({env.get('logical_cores')} logical cores), {env.get('intra_op_threads')} intra-op thread(s), "
        f"graph optimization {env.get('graph_optimization_level')}; batch 1; {st.get('warmup')} warm-up + "
        f"{st.get('runs')} timed rounds, every model once per round in a shuffled order (seed {st.get('seed')}).",
        f"Created {report.get('created', '?')} with rnncompress {report['rnncompress_version']}.",
        "",
        "Ratios are this model's latency / the baseline's, measured in the same interleaved run: "
        "they compare across machines; the milliseconds do not.",
        "",
        f"| model | kind | format | size KB | {mname} (ORT) | {mname} (torch) | full p50 ms | full p99 ms "
        f"| step p50 ms | step p99 ms | ratio p50 | ratio p99 | ratio step p50 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in models:
        m = e.get("metric") or {}
        ort_m, torch_m = ("NaN/Inf" if k in m.get("not_finite", []) else _f(m.get(k)) for k in ("onnxruntime", "torch"))
        if m and mixed:
            ort_m = f"{m['name']} {ort_m}"
        r = e.get("ratio_to_baseline")
        ratio = ["baseline", "-", "-"] if e["name"] == report["baseline"] else \
            [_f((r or {}).get(k), 3) for k in ("p50", "p99", "step_p50")]
        lines.append("| " + " | ".join([
            _cell(e["name"]), e["kind"], e.get("format") or "-", _kb(e.get("size_bytes")), ort_m, torch_m,
            _lat(e, "full", "p50"), _lat(e, "full", "p99"), _lat(e, "step", "p50"), _lat(e, "step", "p99"), *ratio,
        ]) + " |")
    floor_rows = [e for e in models if e.get("call_floor_ms")]
    if floor_rows:
        lines += ["", "onnxruntime call floor (same run: the same calls on a copy-only graph of the model's inputs and "
                      "outputs; the part of a call no compression removes):", "",
                  "| model | full floor p50 ms | step floor p50 ms | floor share of step p50 |", "|---|---:|---:|---:|"]
        for e in floor_rows:
            lines.append(f"| {_cell(e['name'])} | {_lat(e, 'full', 'p50', 'call_floor_ms')} | "
                         f"{_lat(e, 'step', 'p50', 'call_floor_ms')} | {_floor_share(e)} |")
    torch_rows = [e for e in models if e.get("torch_latency_ms")]
    if torch_rows:
        lines += ["", "torch eager reference (same run, same thread count; not in the ratios):", "",
                  "| model | full p50 ms | full p99 ms | step p50 ms | step p99 ms |", "|---|---:|---:|---:|---:|"]
        for e in torch_rows:
            lines.append(f"| {_cell(e['name'])} (torch) | " + " | ".join(
                _lat(e, k, q, "torch_latency_ms") for k, q in (("full", "p50"), ("full", "p99"), ("step", "p50"),
                                                                ("step", "p99"))) + " |")
    directions = sorted({(e["metric"]["name"], e["metric"]["higher_is_better"]) for e in models if e.get("metric")})
    if directions:
        lines += ["", "Metrics: " + "; ".join(f"{n} ({'higher' if h else 'lower'} is better)" for n, h in directions)
                  + ", on the first test sequences of the task (samples per model in report.json)."]
    if any(e["kind"] == "checkpoint" for e in models):
        built = "and its step model, both built" if st.get("step", True) else "built"
        lines += ["", "A checkpoint is measured as its dense ONNX model (size: that model's serialization) "
                      f"{built} in memory; its torch metric comes from the same test sequences."]
    notes = list(dict.fromkeys((e["name"], n) for e in models for n in e.get("notes", [])))
    if notes:
        lines += ["", "Notes:", ""] + [f"- {name}: {n}" for name, n in notes]
    if images:
        lines += [""] + [f"![{Path(i).stem}]({i})" for i in images]
    return "\n".join(lines) + "\n"


def _plots(report: dict[str, Any], out: Path) -> list[Path]:
    from runtime.plots import plot_latency_distributions, plot_scatter

    models = report["models"]
    written = []
    for kind, title in (("full", "full-sequence latency per call"), ("step", "per-step latency (state carried)")):
        samples = {}
        for e in models:
            s = e.get("samples_us", {})
            if s.get(kind):
                samples[e["name"]] = [v / 1000.0 for v in s[kind]]
            if s.get(f"torch_{kind}"):
                samples[f"{e['name']} (torch)"] = [v / 1000.0 for v in s[f"torch_{kind}"]]
        if samples:
            path = out / FILES[f"latency_{kind}"]
            plot_latency_distributions(path, samples, f"{title}, batch 1, "
                                                      f"{report['environment'].get('intra_op_threads')} thread(s)",
                                       highlight=report["baseline"])
            written.append(path)
    scored = [e for e in models if e.get("metric") and e["metric"].get("onnxruntime") is not None]
    names = {e["metric"]["name"] for e in scored}
    if len(names) == 1:
        mname = names.pop()
        better = "higher" if scored[0]["metric"]["higher_is_better"] else "lower"
        ylabel = f"{mname} in onnxruntime ({better} is better)"
        kind = "full" if any(e["latency_ms"].get("full") for e in scored) else "step"
        points = [{"name": e["name"], "latency": e["latency_ms"][kind]["p50"], "metric": e["metric"]["onnxruntime"]}
                  for e in scored if e["latency_ms"].get(kind)]
        if points:
            path = out / FILES["accuracy_latency"]
            plot_scatter(path, points, "latency", "metric", f"{kind} p50 latency (ms, log scale)", ylabel,
                         f"{mname} vs latency (star: baseline)", logx=True, highlight=report["baseline"])
            written.append(path)
        sparse = [{"name": e["name"], "sparsity": e["sparsity"]["recurrent"], "metric": e["metric"]["onnxruntime"]}
                  for e in scored if (e.get("sparsity") or {}).get("recurrent") is not None]
        if len(sparse) >= 2:
            path = out / FILES["accuracy_sparsity"]
            plot_scatter(path, sparse, "sparsity", "metric", "recurrent sparsity (fraction of zero weights)", ylabel,
                         f"{mname} vs recurrent sparsity (star: baseline)", highlight=report["baseline"])
            written.append(path)
    return written


def dumps(report: dict[str, Any]) -> str:
    """Indented JSON, with each raw sample list on one line (they are most of the bytes)."""
    lists: dict[str, list[float]] = {}
    shallow = dict(report)
    shallow["models"] = []
    for i, e in enumerate(report["models"]):
        e = dict(e)
        if isinstance(e.get("samples_us"), dict):
            e["samples_us"] = dict(e["samples_us"])
            for k, v in e["samples_us"].items():
                key = f"@samples:{i}:{k}@"
                lists[key], e["samples_us"][k] = v, key
        shallow["models"].append(e)
    try:
        text = json.dumps(shallow, indent=1, allow_nan=False)
        for key, values in lists.items():
            text = text.replace(json.dumps(key), json.dumps(values, separators=(",", ":"), allow_nan=False), 1)
        if json.loads(text) != report:  # a name that looks like a placeholder: no compaction
            text = json.dumps(report, indent=1, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ReportError(f"The report cannot be written as JSON: {e}.") from None
    return text + "\n"


def write_report(report: dict[str, Any], out_dir: str | os.PathLike, plots: bool = True) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the PNG plots into ``out_dir`` (created).

    Each file is written atomically; ``report.json`` last, so a reader that sees it sees
    a complete set. Plots: latency distribution per model (full sequence and per step);
    metric vs latency (models with a metric, one metric); metric vs recurrent sparsity
    (at least two such models).

    Returns:
        The paths written: report.json, report.md, then the PNGs.

    Raises:
        ReportError: ``report`` is not a valid report. RnnCompressError: ``out_dir``
        cannot be created or written.
    """
    validate_report(report)
    text = dumps(report)
    # A full disk halfway: take back what this call created, the directory too.
    with removed_on_failure([Path(out_dir) / name for name in FILES.values()], out_dir, whole_set=True):
        out = check_writable_dir(out_dir)
        images = _plots(report, out) if plots else []
        md = out / FILES["markdown"]
        atomic_write_text(md, markdown(report, [p.name for p in images]))
        js = out / FILES["json"]
        atomic_write_text(js, text)
    for name in FILES.values():  # a plot an earlier report drew that this one does not
        stale = out / name
        if stale.suffix == ".png" and stale not in images and stale.is_file():
            stale.unlink()
    return [js, md, *images]
