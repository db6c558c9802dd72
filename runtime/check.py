"""Budgets over a benchmark report: one pass/fail row per (model, budget), JUnit XML.

Which models are checked: by default every model except the baseline (when the report
holds the baseline alone, the baseline); ``models`` chooses others by name.

What each budget compares (measured <= limit unless said otherwise):

| budget | measured |
|---|---|
| ``max_p50_ms`` / ``max_p99_ms`` | the model's full-sequence p50 / p99 in ms; its per-step one when only the step model was measured (ONNX step files). Machine-dependent. |
| ``max_latency_ratio`` | full-sequence p50 / the baseline's, from the same interleaved run (the per-step ratio for step-only models: step and chunk files, which have no full-sequence latency). The robust gate on noisy CI machines. |
| ``max_step_latency_ratio`` | per-step (streaming) p50 / the baseline's, same run. At small hidden sizes a step is dominated by onnxruntime's fixed call overhead, so this ratio shrinks far less than the full-sequence one. |
| ``min_metric`` | the onnxruntime metric must be no worse than the limit: metric >= limit for higher-is-better metrics (accuracy), metric <= limit for lower-is-better ones (mse, bpc, position error). The table shows the direction. |
| ``max_metric_drop`` | how much worse the model's onnxruntime metric is than the baseline's, in the metric's units (accuracy is a fraction: 0.01 = one point): baseline - model for higher-is-better, model - baseline for lower-is-better. Negative = better than the baseline. |
| ``max_size_kb`` | ``size_bytes`` / 1024 |

A budget that cannot be evaluated for a model (no metric measured, no per-step ratio, the
baseline's own ratio, different tasks) does not apply to it. With the default models, such a
model gets a row saying so (``applicable`` False, ``measured`` None, the reason in ``note``):
not a failure, not an error; a budget that applies to none of them is a ``ReportError``.
A model named in ``models`` must answer every budget: one that does not apply is a
``ReportError``, not a pass.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from models.errors import ConfigError, ReportError, check_field_types, is_finite_number, param_error
from models.io import atomic_path, check_output_file
from runtime.report import validate_report

_POSITIVE = ("max_p50_ms", "max_p99_ms", "max_latency_ratio", "max_step_latency_ratio", "max_size_kb")


@dataclass(frozen=True)
class Budgets:
    """Limits a report must meet; ``None`` = not checked. See the module docstring."""

    max_p50_ms: float | None = None
    max_p99_ms: float | None = None
    max_latency_ratio: float | None = None
    max_step_latency_ratio: float | None = None
    min_metric: float | None = None
    max_metric_drop: float | None = None
    max_size_kb: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            positive = f.name in _POSITIVE
            rule = "a positive finite number" if positive else "a finite number"
            if not is_finite_number(v):
                raise param_error(f.name, rule, v)
            if positive and v <= 0:
                raise param_error(f.name, rule, v)

    def given(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class BudgetResult:
    """One checked budget. ``comparison``: measured ``<=`` or ``>=`` limit passes;
    ``what``: the quantity measured (e.g. "full-sequence p50 ms"). A budget that does not
    apply to the model (``applicable`` False) has no ``measured`` value, gives its reason in
    ``note`` and is not broken: ``passed`` is False only for a broken budget. A metric budget
    on a model whose metric bench measured as NaN or Inf is broken, with ``measured`` None."""

    model: str
    budget: str
    limit: float
    measured: float | None
    passed: bool
    comparison: str = "<="
    what: str = ""
    note: str = ""
    applicable: bool = True


class _NotApplicable(ReportError):
    """A budget the report cannot answer for one model; ``why`` is the reason alone."""

    def __init__(self, budget: str, model: str, why: str):
        super().__init__(f"Budget {budget} cannot be checked for {model!r}: {why}")
        self.model, self.why = model, why


def _select(report: dict[str, Any], models: Sequence[str] | None) -> list[dict[str, Any]]:
    by_name = {e["name"]: e for e in report["models"]}
    if isinstance(models, str):  # one model's name, not its letters
        models = [models]
    if models:
        unknown = [m for m in models if m not in by_name]
        if unknown:
            raise ConfigError(f"Model {unknown[0]!r} is not in the report; its models are: {', '.join(by_name)}.")
        return [by_name[m] for m in dict.fromkeys(models)]
    chosen = [e for e in report["models"] if e["name"] != report["baseline"]]
    return chosen or list(report["models"])


def _result(model: str, budget: str, limit: float, measured: float, comparison: str, what: str,
            note: str = "") -> BudgetResult:
    passed = measured <= limit if comparison == "<=" else measured >= limit
    return BudgetResult(model, budget, float(limit), float(measured), bool(passed), comparison, what, note)


def _latency(e: dict[str, Any], budget: str, key: str, limit: float) -> BudgetResult:
    lat = e["latency_ms"]
    kind = "full" if lat.get("full") else "step" if lat.get("step") else None
    if kind is None:
        raise _NotApplicable(budget, e["name"], "the report has no latency for it.")
    what = f"{'full-sequence' if kind == 'full' else 'per-step'} {key} ms"
    note = "" if kind == "full" else "only the step model was measured"
    return _result(e["name"], budget, limit, lat[kind][key], "<=", what, note)


def _ratio(e: dict[str, Any], base: dict[str, Any], budget: str, limit: float) -> BudgetResult:
    baseline = base["name"]
    if e["name"] == baseline:
        raise _NotApplicable(budget, e["name"], "it is the baseline the ratios are relative to (name other "
                                                "models with --model, or bench a candidate beside it).")
    r = e["ratio_to_baseline"] or {}
    step_only = not (e.get("latency_ms") or {}).get("full")
    if budget == "max_step_latency_ratio" or step_only:  # a step or chunk file: its per-step ratio is its only one
        key, what = "step_p50", "per-step p50 / baseline"
    else:
        key, what = "p50", "full-sequence p50 / baseline"
    if r.get(key) is not None:
        return _result(e["name"], budget, limit, r[key], "<=", what,
                       "" if baseline == "baseline" else f"vs {baseline}")  # (a baseline named so needs no note)
    kind, side = ("per-step", "step") if key == "step_p50" else ("full-sequence", "full")
    why = next((n.rstrip(".") for n in e.get("notes", []) if "ratio" in n), None)  # bench says why, when it knows
    if why is None:
        why = _missing_ratio_reason(e, base, side)
    raise _NotApplicable(budget, e["name"], f"no {kind} ratio to {baseline!r}: {why}.")


def _missing_ratio_reason(e: dict[str, Any], base: dict[str, Any], side: str) -> str:
    """Why a report holds no ``side`` ("full" or "step") ratio for ``e``, from the latencies."""
    unmeasured = {"step": "a full-sequence ONNX file, or bench --no-step", "full": "a step or chunk file"}[side]
    if not (e.get("latency_ms") or {}).get(side):
        return f"it has no {side} latency ({unmeasured})"
    if not (base.get("latency_ms") or {}).get(side):
        return f"the baseline has no {side} latency ({unmeasured})"
    return "the report records none (ratio_to_baseline is null)"


def _not_finite(m: dict[str, Any]) -> bool:
    """Whether bench measured the onnxruntime metric as NaN or Inf (recorded as null)."""
    return "onnxruntime" in (m.get("not_finite") or [])


def _broken_by_nan(e: dict[str, Any], budget: str, limit: float, comparison: str, what: str,
                   whose: str = "its") -> BudgetResult:
    """A metric budget on a model whose metric is NaN or Inf: broken, not inapplicable (a
    model that outputs NaN must fail CI, not be skipped)."""
    return BudgetResult(e["name"], budget, float(limit), None, False, comparison, what,
                        f"{whose} onnxruntime metric is NaN or Inf: the model's outputs are not finite")


def _metric(e: dict[str, Any], budget: str) -> dict[str, Any]:
    m = e.get("metric")
    if m and _not_finite(m):
        return m
    if not m or m.get("onnxruntime") is None:
        # bench notes why it measured none ("no metric: ..."); older reports and --no-accuracy do not
        why = next((n.removeprefix("no metric: ") for n in e.get("notes") or [] if n.startswith("no metric: ")),
                   "bench ran with --no-accuracy, or the model has no task metadata")
        raise _NotApplicable(budget, e["name"], f"the report has no onnxruntime metric for it ({why}).")
    return m


def check_limit_fits(m: dict[str, Any], budget: str, limit: float) -> None:
    """ConfigError (bad input, exit 2) for a limit no model could meet or every model meets:
    accuracy is a fraction in [0, 1]; the lower-is-better metrics (MSE, bpc, cm) are >= 0."""
    name = m["name"]
    if name == "accuracy" and budget == "min_metric" and not 0 <= limit <= 1:
        hint = f" (did you mean {limit / 100:g}?)" if 1 < limit <= 100 else ""
        raise ConfigError(f"Budget min_metric = {limit:g} cannot hold: accuracy is a fraction in [0, 1]{hint}.")
    if name == "accuracy" and budget == "max_metric_drop" and limit >= 1:
        raise ConfigError(f"Budget max_metric_drop = {limit:g} allows any accuracy: accuracy is a fraction "
                          f"(0.01 = one point; did you mean {limit / 100:g}?).")
    if not m["higher_is_better"] and budget == "min_metric" and limit < 0:
        raise ConfigError(f"Budget min_metric = {limit:g} cannot hold: {name} is never negative.")


def _min_metric(e: dict[str, Any], limit: float) -> BudgetResult:
    m = _metric(e, "min_metric")
    check_limit_fits(m, "min_metric", limit)
    comparison = ">=" if m["higher_is_better"] else "<="
    if _not_finite(m):
        return _broken_by_nan(e, "min_metric", limit, comparison, f"{m['name']} in onnxruntime")
    return _result(e["name"], "min_metric", limit, m["onnxruntime"], comparison,
                   f"{m['name']} in onnxruntime, {'higher' if m['higher_is_better'] else 'lower'} is better")


def _metric_drop(e: dict[str, Any], base: dict[str, Any], limit: float) -> BudgetResult:
    if e["name"] == base["name"]:  # (it would pass vacuously, measured against itself)
        raise _NotApplicable("max_metric_drop", e["name"], "it is the baseline the drop is measured from (name "
                                                           "other models with --model, or bench a candidate beside it).")
    m = _metric(e, "max_metric_drop")
    try:
        b = _metric(base, "max_metric_drop")
    except _NotApplicable:
        raise _NotApplicable("max_metric_drop", e["name"], f"the baseline {base['name']!r} has no onnxruntime "
                                                           "metric in the report.") from None
    if (m["name"], e.get("task")) != (b["name"], base.get("task")):
        raise _NotApplicable("max_metric_drop", e["name"], f"its task or metric differs from the baseline "
                                                           f"{base['name']!r}'s, so the metrics are not comparable.")
    check_limit_fits(m, "max_metric_drop", limit)
    what = f"{m['name']} worse than {base['name']}"
    if _not_finite(m) or _not_finite(b):
        return _broken_by_nan(e, "max_metric_drop", limit, "<=", what,
                              "its" if _not_finite(m) else f"the baseline {base['name']!r}'s")
    drop = b["onnxruntime"] - m["onnxruntime"] if m["higher_is_better"] else m["onnxruntime"] - b["onnxruntime"]
    better = "higher" if m["higher_is_better"] else "lower"
    return _result(e["name"], "max_metric_drop", limit, drop, "<=", what,
                   f"{better} is better; baseline {b['onnxruntime']:.6g}, model {m['onnxruntime']:.6g}")


def _evaluate(e: dict[str, Any], base: dict[str, Any], budget: str, limit: float) -> BudgetResult:
    """One budget for one model; ``_NotApplicable`` when the report cannot answer it."""
    if budget == "max_p50_ms":
        return _latency(e, budget, "p50", limit)
    if budget == "max_p99_ms":
        return _latency(e, budget, "p99", limit)
    if budget in ("max_latency_ratio", "max_step_latency_ratio"):
        return _ratio(e, base, budget, limit)
    if budget == "min_metric":
        return _min_metric(e, limit)
    if budget == "max_metric_drop":
        return _metric_drop(e, base, limit)
    if e["size_bytes"] is None:  # max_size_kb
        raise _NotApplicable(budget, e["name"], "no size in the report.")
    return _result(e["name"], budget, limit, e["size_bytes"] / 1024.0, "<=", "size KB (1 KB = 1024 B)")


def check_report(report: dict[str, Any], budgets: Budgets, models: Sequence[str] | None = None) -> list[BudgetResult]:
    """Evaluate every given budget for the chosen models (default: all but the baseline).

    With the default models, a budget that does not apply to one of them (no per-step
    ratio, no metric, ...) gives a row with ``applicable`` False instead of an error.

    Returns:
        One ``BudgetResult`` per (model, budget).

    Raises:
        ConfigError: no budget given, or a model name not in the report.
        ReportError: an invalid report; a budget the report cannot answer for a model named
        in ``models``, or (default models) for any of them.

    Example:
        >>> results = check_report(load_report("bench/report.json"), Budgets(max_latency_ratio=0.8))
        >>> ok = all(r.passed for r in results)
    """
    validate_report(report)
    if not isinstance(budgets, Budgets):
        raise param_error("budgets", "a Budgets (e.g. Budgets(max_latency_ratio=0.8))", type(budgets).__name__)
    given = budgets.given()
    if not given:
        raise ConfigError("No budget given: set at least one of " + ", ".join(f.name for f in fields(Budgets)) + ".")
    base = next(e for e in report["models"] if e["name"] == report["baseline"])
    chosen = _select(report, models)
    out: list[BudgetResult] = []
    not_applicable: dict[str, list[_NotApplicable]] = {b: [] for b in given}
    for e in chosen:
        for budget, limit in given.items():
            try:
                out.append(_evaluate(e, base, budget, limit))
            except _NotApplicable as na:
                if models:  # the user named this model: it must answer every budget
                    raise
                not_applicable[budget].append(na)
                out.append(BudgetResult(e["name"], budget, float(limit), None, True, "", "not applicable", na.why,
                                        applicable=False))
    for budget, reasons in not_applicable.items():
        if len(reasons) == len(chosen):
            if len(chosen) == 1:
                raise reasons[0]
            names = ", ".join(e["name"] for e in chosen)
            raise ReportError(f"Budget {budget} cannot be checked for any of the {len(chosen)} models checked "
                              f"({names}); for {reasons[0].model!r}: {reasons[0].why}")
    return out


def describe_failure(r: BudgetResult) -> str:
    """e.g. ``m.int8.onnx: full-sequence p50 / baseline 1.31 > 1.2``."""
    if not r.applicable:
        return f"{r.model}: {r.budget} does not apply ({r.note})"
    if r.measured is None:
        return f"{r.model}: {r.what} is NaN/Inf, budget {r.comparison} {r.limit:.4g} ({r.note})"
    op = ">" if r.comparison == "<=" else "<"
    return f"{r.model}: {r.what} {r.measured:.4g} {op} {r.limit:.4g}"


def measured_text(r: BudgetResult, digits: int = 6) -> str:
    """The measured value as the tables print it: NaN/Inf when the model's outputs were not finite."""
    return "NaN/Inf" if r.measured is None else f"{r.measured:.{digits}g}"


def is_junit_xml(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a JUnit XML file: XML whose root is testsuites or testsuite."""
    try:
        return ET.parse(path).getroot().tag in ("testsuites", "testsuite")
    except (ET.ParseError, OSError, ValueError):
        return False


def check_junit_path(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (),
                     option: str = "junit path") -> Path:
    """Refuse, before any work, a JUnit path that must not be written: one of ``inputs``, a
    directory, in a missing or read-only directory, or an existing file that is not JUnit
    XML. An existing JUnit file is replaced: CI reruns write the same path every time.

    Raises:
        ConfigError: naming ``option`` and the path.
    """
    p = check_output_file(path, option, inputs, force=True, error=ConfigError)
    if p.exists() and not is_junit_xml(p):
        raise ConfigError(f"{option} {p} exists and is not a JUnit XML file; choose another path (it is never replaced).")
    return p


def _xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold (control characters, lone
    surrogates) replaced by U+FFFD: a parser refuses the whole file otherwise."""
    return re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", text)


def write_junit(results: Sequence[BudgetResult], path: str | os.PathLike, suite: str = "rnncompress.check") -> None:
    """JUnit XML: one testsuite, one testcase per result, a ``failure`` for each broken
    budget, ``skipped`` for one that does not apply. Written atomically; an existing file
    is replaced only when it is JUnit XML itself.

    Raises:
        ConfigError: ``path`` is a directory, its directory is missing or read-only, or it
        is an existing file that is not JUnit XML.
    """
    check_junit_path(path)
    failures = sum(not r.passed for r in results)
    skipped = sum(not r.applicable for r in results)
    root, ts = _junit_suite(suite, len(results), failures, 0, skipped)
    for r in results:
        # CI systems identify a test by classname + name, so both stay the same from run to run
        # (what was measured goes in the text), and Jenkins reads the classname's last dot as
        # package.class: a model's own dots (m.int8.onnx) become underscores.
        case = ET.SubElement(ts, "testcase", classname=_xml_text(f"{suite}.{r.model.replace('.', '_')}"),
                             name=r.budget, time="0")
        if not r.applicable:
            ET.SubElement(case, "skipped", message=_xml_text(f"{r.model}: {r.note}"))
            continue
        text = _xml_text(f"{r.model}: {r.what}: measured {measured_text(r)}, budget {r.comparison} {r.limit:.6g}"
                         + (f" ({r.note})" if r.note else ""))
        if r.passed:
            ET.SubElement(case, "system-out").text = text
        else:
            ET.SubElement(case, "failure", message=_xml_text(describe_failure(r)), type="BudgetExceeded").text = text
    _write_xml(root, path)


def write_junit_error(message: str, path: str | os.PathLike, suite: str = "rnncompress.check") -> None:
    """JUnit XML for a check that could not be made (bad input: exit 2): one testcase
    ``report`` with an ``error``, so a CI job that publishes the file shows the error, not
    an earlier run's passes. Same path rules as ``write_junit``."""
    check_junit_path(path)
    root, ts = _junit_suite(suite, 1, 0, 1, 0)
    case = ET.SubElement(ts, "testcase", classname=suite, name="report", time="0")
    ET.SubElement(case, "error", message=_xml_text(message), type="InputError").text = _xml_text(message)
    _write_xml(root, path)


def _junit_suite(suite: str, tests: int, failures: int, errors: int, skipped: int) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("testsuites", name=suite, tests=str(tests), failures=str(failures), errors=str(errors))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(tests), failures=str(failures), errors=str(errors),
                       skipped=str(skipped), time="0")
    return root, ts


def _write_xml(root: ET.Element, path: str | os.PathLike) -> None:
    ET.indent(root)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
