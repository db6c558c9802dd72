"""Budgets over hand-built reports: every budget passes and fails, metric direction,
model selection, refusals, and JUnit XML. No timing: the numbers are written by hand."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from models.errors import ConfigError, ReportError
from runtime.check import (BudgetResult, Budgets, check_junit_path, check_report, describe_failure, is_junit_xml,
                           write_junit)

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


@pytest.mark.parametrize("metric, budgets, match", [
    ("accuracy", {"min_metric": 98}, r"min_metric = 98 cannot hold: accuracy is a fraction in \[0, 1\] \(did you mean 0.98\?\)"),
    ("accuracy", {"min_metric": -0.1}, "cannot hold: accuracy is a fraction"),
    ("accuracy", {"max_metric_drop": 1}, "max_metric_drop = 1 allows any accuracy"),
    ("mse", {"min_metric": -1}, "min_metric = -1 cannot hold: mse is never negative"),
])
def test_metric_limits_no_model_could_meet_are_bad_input(report, metric, budgets, match):
    for e in report["models"]:
        e["metric"].update(name=metric, higher_is_better=metric == "accuracy")
    with pytest.raises(ConfigError, match=match):
        check_report(report, Budgets(**budgets))


def test_higher_is_better_drop_sign(report):
    drops = {r.model: r.measured for r in check_report(report, Budgets(max_metric_drop=0.0))}
    assert drops == pytest.approx({"int8": 0.01, "stream": 0.0})
    [r] = check_report(report, Budgets(min_metric=0.9), ["int8"])
    assert r.comparison == ">=" and "higher is better" in r.what


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0, True, "1.0", 10 ** 400])
def test_bad_budget_values(value):
    with pytest.raises(ConfigError, match=r"'max_p50_ms' parameter must be a (positive finite )?number"):
        Budgets(max_p50_ms=value)


def test_metric_budgets_accept_any_finite_number():
    import numpy as np

    assert Budgets(max_size_kb=np.float32(3.0), max_p50_ms=np.int64(2)).given() == {"max_p50_ms": 2.0, "max_size_kb": 3.0}
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
    with pytest.raises(ReportError, match="no onnxruntime metric for it \\(bench ran with --no-accuracy"):
        check_report(report, Budgets(min_metric=0.5), ["int8"])
    # the reason bench noted, when it noted one
    report["models"][1]["notes"] = ["no metric: the step graph has no init layer, so the start states ..."]
    with pytest.raises(ReportError, match="no onnxruntime metric for it \\(the step graph has no init layer, so"):
        check_report(report, Budgets(min_metric=0.5), ["int8"])
    bad = copy.deepcopy(report)
    bad["models"][0]["metric"]["onnxruntime"] = None
    with pytest.raises(ReportError, match="baseline 'dense' has no onnxruntime metric"):
        check_report(bad, Budgets(max_metric_drop=0.1), ["stream"])
    with pytest.raises(ReportError, match="max_metric_drop cannot be checked for any of the 2 models checked"):
        check_report(bad, Budgets(max_metric_drop=0.1))
    report["models"][2]["task"] = {"name": "adding", "params": {"seq_len": 50}}
    with pytest.raises(ReportError, match="not comparable"):
        check_report(report, Budgets(max_metric_drop=0.1), ["stream"])
    report["models"][2]["ratio_to_baseline"] = {"p50": None, "p99": None, "step_p50": None, "step_p99": None}
    with pytest.raises(ReportError, match=r"no per-step ratio to 'dense': the report records none \(ratio_to_baseline "
                                          r"is null\)"):
        check_report(report, Budgets(max_latency_ratio=1), ["stream"])
    report["models"][0]["latency_ms"]["step"] = None  # the baseline was timed without its step model
    with pytest.raises(ReportError, match=r"no per-step ratio to 'dense': the baseline has no step latency"):
        check_report(report, Budgets(max_latency_ratio=1), ["stream"])
    with pytest.raises(ReportError, match="not an rnncompress report"):
        check_report({"schema": "other/1"}, Budgets(max_size_kb=1))


def _no_latency(e):
    e["latency_ms"] = {"full": None, "step": None}


def _no_metric(e):
    e["metric"] = None


def _other_task(e):
    e["task"] = {"name": "adding", "params": {"seq_len": 50}}


def _no_ratio(e):
    e["ratio_to_baseline"] = None


def _no_size(e):
    e["size_bytes"] = None


# budget, limit, how a model loses what the budget needs, the reason given
MAY_NOT_APPLY = [
    ("max_p50_ms", 10.0, _no_latency, "no latency"),
    ("max_p99_ms", 10.0, _no_latency, "no latency"),
    ("max_latency_ratio", 2.0, _no_ratio, "no (full-sequence|per-step) ratio"),  # stream is a step model
    ("max_step_latency_ratio", 2.0, _no_ratio, "no per-step ratio"),
    ("min_metric", 0.5, _no_metric, "no onnxruntime metric"),
    ("max_metric_drop", 0.5, _no_metric, "no onnxruntime metric"),
    ("max_metric_drop", 0.5, _other_task, "not comparable"),
    ("max_size_kb", 100.0, _no_size, "no size"),
]


@pytest.mark.parametrize("budget, limit, lose, why", MAY_NOT_APPLY, ids=lambda v: getattr(v, "__name__", str(v)))
def test_a_budget_that_does_not_apply_to_a_default_model_is_a_row(report, budget, limit, lose, why):
    """Default models: the model without what the budget needs gets an n/a row (neither
    failed nor an error) and the others are checked; a model named explicitly must answer
    the budget; a budget that applies to no model at all is an error."""
    report["models"][1]["ratio_to_baseline"]["step_p50"] = 0.9  # int8 answers every budget
    lose(report["models"][2])  # "stream"
    results = check_report(report, Budgets(**{budget: limit}))
    [na] = by(results, "stream")
    assert (na.applicable, na.passed, na.measured, na.limit) == (False, True, None, limit) and re.search(why, na.note)
    [checked] = by(results, "int8")
    assert checked.applicable and checked.measured is not None
    with pytest.raises(ReportError, match=f"Budget {budget} cannot be checked for 'stream': .*{why}"):
        check_report(report, Budgets(**{budget: limit}), ["stream"])
    lose(report["models"][1])  # now "int8" cannot answer it either
    with pytest.raises(ReportError, match=f"Budget {budget} cannot be checked for any of the 2 models checked "
                                          f"\\(int8, stream\\); for 'int8': .*{why}"):
        check_report(report, Budgets(**{budget: limit}))


def test_step_ratio_budget_on_a_report_mixing_step_and_full_only_models(report):
    """The user review's case: int8 was measured without its step model."""
    results = check_report(report, Budgets(max_step_latency_ratio=0.5, max_size_kb=100))
    assert [(r.model, r.budget, r.applicable, r.passed) for r in results] == [
        ("int8", "max_step_latency_ratio", False, True), ("int8", "max_size_kb", True, True),
        ("stream", "max_step_latency_ratio", True, False), ("stream", "max_size_kb", True, True)]
    # a report holding the baseline alone: its own ratio applies to no model
    report["models"] = report["models"][:1]
    with pytest.raises(ReportError, match="'dense': it is the baseline"):
        check_report(report, Budgets(max_latency_ratio=1))
    with pytest.raises(ReportError, match="'dense': it is the baseline the drop is measured from"):
        check_report(report, Budgets(max_metric_drop=0.1))


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
    assert failed[0].get("classname") == "rnncompress.check.stream" and failed[0].get("name") == "max_size_kb"
    assert "4.102 > 3" in failed[0].find("failure").get("message")
    assert not list(tmp_path.glob(".*.tmp"))
    assert is_junit_xml(out)


def test_junit_test_identity_is_stable_and_the_file_always_parses(tmp_path):
    """CI systems track a test by classname + name: neither depends on what was measured
    or on whether it applied, Jenkins' package.class split sees the model as one class, and
    characters XML cannot hold do not make the file unreadable for the next run."""
    runs = [[BudgetResult("m.int8.onnx", "max_latency_ratio", 0.8, 0.5, True, "<=", "full-sequence p50 / baseline")],
            [BudgetResult("m.int8.onnx", "max_latency_ratio", 0.8, 0.9, False, "<=", "per-step p50 / baseline")],
            [BudgetResult("m.int8.onnx", "max_latency_ratio", 0.8, None, True, "", "not applicable",
                          "no ratio", applicable=False)]]
    ids = []
    for i, results in enumerate(runs):
        write_junit(results, tmp_path / f"j{i}.xml")
        [case] = ET.parse(tmp_path / f"j{i}.xml").getroot().iter("testcase")
        ids.append((case.get("classname"), case.get("name")))
    assert ids == [("rnncompress.check.m_int8_onnx", "max_latency_ratio")] * 3
    odd = BudgetResult("bad\x01name\ud800", "max_size_kb", 1.0, 2.0, False, "<=", "size KB", "note\x1b")
    write_junit([odd], tmp_path / "odd.xml")
    case = ET.parse(tmp_path / "odd.xml").getroot().find("testsuite/testcase")
    assert case.get("classname") == "rnncompress.check.bad\ufffdname\ufffd" and is_junit_xml(tmp_path / "odd.xml")


def test_junit_marks_budgets_that_do_not_apply_as_skipped(report, tmp_path):
    results = check_report(report, Budgets(max_step_latency_ratio=1.25))
    write_junit(results, tmp_path / "j.xml")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == ("2", "1", "0")
    [skipped] = suite.findall("testcase/skipped")
    assert "no per-step ratio" in skipped.get("message")
    [na] = [r for r in results if not r.applicable]
    assert describe_failure(na).startswith(f"{na.model}: max_step_latency_ratio does not apply (")


def test_junit_replaces_only_junit_files(report, tmp_path):
    """CI reruns write the same path: a JUnit file is replaced; any other file (a
    checkpoint, a report, text) is refused and kept byte for byte."""
    results = check_report(report, Budgets(max_size_kb=3.0))
    junit = tmp_path / "junit.xml"
    write_junit(results, junit)
    write_junit(check_report(report, Budgets(max_size_kb=100)), junit)
    assert ET.parse(junit).getroot().get("failures") == "0"
    single = tmp_path / "single.xml"  # a bare <testsuite> root (other tools write that)
    single.write_text('<?xml version="1.0"?><testsuite name="x" tests="0"/>')
    write_junit(results, single)
    assert ET.parse(single).getroot().tag == "testsuites"
    foreign = {"model.pt": b"PK\x03\x04\x00\x00binary", "report.json": SAMPLE.read_bytes(),
               "notes.txt": b"hello", "other.xml": b"<project><build/></project>", "empty.xml": b""}
    for name, content in foreign.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert not is_junit_xml(path)
        with pytest.raises(ConfigError, match=f"{name} exists and is not a JUnit XML file; choose another"):
            write_junit(results, path)
        assert path.read_bytes() == content
    with pytest.raises(ConfigError, match="is one of the inputs"):
        check_junit_path(tmp_path / "report.json", [tmp_path / "report.json"], "--junit")
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_full_sequence_budget_never_gates_a_full_model_on_its_per_step_ratio(report):
    """A model timed on the full sequence whose full-sequence ratio is missing (bench drops it
    when the baseline ran other sequence lengths) is n/a, with bench's reason: not a pass on
    its per-step ratio."""
    int8 = report["models"][1]
    int8["ratio_to_baseline"].update(p50=None, p99=None, step_p50=0.5)
    int8["notes"] = ["timed on 9-step sequences, the baseline 'dense' on 6: no full-sequence ratio (the per-step "
                     "ratios compare)"]
    [r] = by(check_report(report, Budgets(max_latency_ratio=0.8)), "int8")
    assert not r.applicable and "no full-sequence ratio to 'dense': timed on 9-step" in r.note
    [r] = by(check_report(report, Budgets(max_step_latency_ratio=0.8)), "int8")
    assert r.applicable and r.measured == 0.5


def _nan_metric(entry: dict) -> None:
    """What bench writes for a model whose outputs are NaN: null values listed as not finite."""
    entry["metric"].update(onnxruntime=None, torch=None, not_finite=["onnxruntime", "torch"])


@pytest.mark.parametrize("budgets", [Budgets(min_metric=0.5), Budgets(max_metric_drop=0.5)])
def test_a_model_whose_metric_is_nan_breaks_metric_budgets(report, budgets, tmp_path):
    """Not 'not applicable' (which passes CI): a model that outputs NaN fails every metric
    budget, and the tables, the failure line and JUnit say why."""
    _nan_metric(next(e for e in report["models"] if e["name"] == "int8"))
    [r] = by(check_report(report, budgets, ["int8"]), "int8")
    assert r.applicable and not r.passed and r.measured is None and "NaN or Inf" in r.note
    assert "is NaN/Inf, budget" in describe_failure(r)
    write_junit([r], tmp_path / "j.xml")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1" and "measured NaN/Inf" in suite.find("testcase/failure").text


def test_a_baseline_whose_metric_is_nan_breaks_the_metric_drop(report):
    _nan_metric(next(e for e in report["models"] if e["name"] == "dense"))
    [r] = by(check_report(report, Budgets(max_metric_drop=0.5), ["int8"]), "int8")
    assert not r.passed and "the baseline 'dense''s onnxruntime metric is NaN or Inf" in r.note


@pytest.mark.parametrize("not_finite", [["onnxruntime"], ["gpu"], "onnxruntime", [1]])
def test_not_finite_must_list_null_values(report, not_finite):
    from runtime.report import validate_report
    entry = next(e for e in report["models"] if e["name"] == "int8")
    entry["metric"]["not_finite"] = not_finite  # its onnxruntime and torch values are numbers
    with pytest.raises(ReportError, match="metric.not_finite"):
        validate_report(report)
