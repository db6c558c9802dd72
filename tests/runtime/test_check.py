"""Budgets over hand-built reports: every budget passes and fails, metric direction,
model selection, refusals, and JUnit XML. No timing: the numbers are written by hand."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from models.errors import ConfigError, ReportError
from runtime.check import Budgets, check_report, write_junit

SAMPLE = Path(__file__).with_name("sample_report.json")


@pytest.fixture
def report() -> dict:
    """baseline "dense" (full p50 2.0, step p50 0.1, accuracy 0.95, 4096 B); "int8" (full p50
    1.5, p99 2.367, ratio 0.75, accuracy 0.94, 2048 B); "stream" (step only: p50 0.12,
    step ratio 1.2, accuracy 0.95, 4200 B)."""
    return copy.deepcopy(json.loads(SAMPLE.read_text()))


def by(results, model, budget=None):
    return [r for r in results if r.model == model and (budget is None or r.budget == budget)]


# budget, pass limit, fail limit, model, measured
CASES = [
    ("max_p50_ms", 1.6, 1.4, "int8", 1.5),
    ("max_p99_ms", 2.4, 2.3, "int8", 2.367),
    ("max_latency_ratio", 0.8, 0.7, "int8", 0.75),
    ("min_metric", 0.93, 0.945, "int8", 0.94),
    ("max_metric_drop", 0.011, 0.009, "int8", 0.01),
    ("max_size_kb", 2.0, 1.99, "int8", 2.0),
    ("max_p50_ms", 0.13, 0.11, "stream", 0.12),  # step-only model: its per-step latency
    ("max_latency_ratio", 1.25, 1.1, "stream", 1.2),  # step-only model: its step ratio
    ("max_step_latency_ratio", 1.25, 1.1, "stream", 1.2),
]


@pytest.mark.parametrize("budget, ok, bad, model, measured", CASES)
def test_each_budget_passes_and_fails(report, budget, ok, bad, model, measured):
    [good] = by(check_report(report, Budgets(**{budget: ok}), [model]), model)
    [broken] = by(check_report(report, Budgets(**{budget: bad}), [model]), model)
    assert good.passed and not broken.passed
    assert good.budget == budget and good.measured == pytest.approx(measured) and good.limit == ok


def test_latency_kind_is_named(report):
    results = check_report(report, Budgets(max_p50_ms=10))
    assert by(results, "int8")[0].what == "full-sequence p50 ms"
    assert by(results, "stream")[0].what == "per-step p50 ms" and "step model" in by(results, "stream")[0].note


def test_full_and_step_ratios_are_separate_budgets(report):
    report["models"][1]["ratio_to_baseline"]["step_p50"] = 1.5
    [full] = by(check_report(report, Budgets(max_latency_ratio=1.0)), "int8")
    assert (full.what, full.passed) == ("full-sequence p50 / baseline", True)
    [step] = by(check_report(report, Budgets(max_step_latency_ratio=1.0)), "int8")
    assert (step.what, step.passed, step.measured) == ("per-step p50 / baseline", False, 1.5)
    [ok] = by(check_report(report, Budgets(max_step_latency_ratio=1.6)), "int8")
    assert ok.passed


def test_default_models_are_all_but_the_baseline(report):
    results = check_report(report, Budgets(max_size_kb=100))
    assert [r.model for r in results] == ["int8", "stream"]
    only = check_report(report, Budgets(max_size_kb=100), ["dense"])
    assert [r.model for r in only] == ["dense"]
    report["models"] = report["models"][:1]
    assert [r.model for r in check_report(report, Budgets(max_size_kb=100))] == ["dense"]


def test_lower_is_better_metrics_flip_the_direction(report):
    for e, value in zip(report["models"], (0.10, 0.12, 0.09)):
        e["metric"].update(name="mse", higher_is_better=False, onnxruntime=value)
    # min_metric on mse is a ceiling: mse <= limit
    [r] = check_report(report, Budgets(min_metric=0.11), ["int8"])
    assert (r.comparison, r.passed) == ("<=", False) and "lower is better" in r.what
    [r] = check_report(report, Budgets(min_metric=0.13), ["int8"])
    assert r.passed
    # drop = model - baseline for lower-is-better: int8 is 0.02 worse, stream 0.01 better
    drops = {r.model: r for r in check_report(report, Budgets(max_metric_drop=0.015))}
    assert drops["int8"].measured == pytest.approx(0.02) and not drops["int8"].passed
    assert drops["stream"].measured == pytest.approx(-0.01) and drops["stream"].passed


def test_higher_is_better_drop_sign(report):
    drops = {r.model: r.measured for r in check_report(report, Budgets(max_metric_drop=0.0))}
    assert drops == pytest.approx({"int8": 0.01, "stream": 0.0})
    [r] = check_report(report, Budgets(min_metric=0.9), ["int8"])
    assert r.comparison == ">=" and "higher is better" in r.what


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0, True, "1.0"])
def test_bad_budget_values(value):
    with pytest.raises(ConfigError, match="'max_p50_ms' parameter must be a positive finite number"):
        Budgets(max_p50_ms=value)


def test_metric_budgets_accept_any_finite_number():
    assert Budgets(max_metric_drop=-0.01, min_metric=0.0).given() == {"min_metric": 0.0, "max_metric_drop": -0.01}
    with pytest.raises(ConfigError, match="'min_metric' parameter must be a finite number"):
        Budgets(min_metric=float("nan"))


def test_refusals(report):
    with pytest.raises(ConfigError, match="No budget given"):
        check_report(report, Budgets())
    with pytest.raises(ConfigError, match="Model 'nope' is not in the report; its models are: dense, int8, stream"):
        check_report(report, Budgets(max_size_kb=1), ["nope"])
    with pytest.raises(ReportError, match="'dense': it is the baseline"):
        check_report(report, Budgets(max_latency_ratio=1), ["dense"])
    report["models"][1]["metric"] = None
    with pytest.raises(ReportError, match="no onnxruntime metric for it"):
        check_report(report, Budgets(min_metric=0.5), ["int8"])
    with pytest.raises(ReportError, match="baseline 'dense' has no onnxruntime metric"):
        bad = copy.deepcopy(report)
        bad["models"][0]["metric"]["onnxruntime"] = None
        check_report(bad, Budgets(max_metric_drop=0.1), ["stream"])
    report["models"][2]["task"] = {"name": "adding", "params": {"seq_len": 50}}
    with pytest.raises(ReportError, match="not comparable"):
        check_report(report, Budgets(max_metric_drop=0.1), ["stream"])
    report["models"][2]["ratio_to_baseline"] = {"p50": None, "p99": None, "step_p50": None, "step_p99": None}
    with pytest.raises(ReportError, match="no latency ratio to the baseline"):
        check_report(report, Budgets(max_latency_ratio=1), ["stream"])
    with pytest.raises(ReportError, match="not an rnncompress report"):
        check_report({"schema": "other/1"}, Budgets(max_size_kb=1))


def test_junit_xml(report, tmp_path):
    results = check_report(report, Budgets(max_p50_ms=1.55, max_size_kb=3.0))
    out = tmp_path / "junit.xml"
    write_junit(results, out)
    root = ET.parse(out).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1
    cases = suites[0].findall("testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    # int8: p50 1.5 pass, size 2.0 pass; stream: step p50 0.12 pass, size 4.1 KB fail
    assert len(cases) == 4 and len(failed) == 1
    assert suites[0].get("tests") == "4" and suites[0].get("failures") == "1" == root.get("failures")
    assert failed[0].get("classname") == "rnncompress.check.stream" and "max_size_kb" in failed[0].get("name")
    assert "4.102 > 3" in failed[0].find("failure").get("message")
    assert not list(tmp_path.glob(".*.tmp"))
