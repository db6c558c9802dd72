"""The check command on hand-built reports: exit 0 / 1 for each budget, the table,
JUnit XML, and exit 2 for bad input. No timing is measured here."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run

SAMPLE = Path(__file__).resolve().parents[1] / "runtime" / "sample_report.json"


@pytest.fixture
def report_dict() -> dict:
    """See tests/runtime/sample_report.json: baseline "dense"; "int8" (full p50 1.5 ms,
    p99 2.367, ratio 0.75, accuracy 0.94 vs 0.95, 2 KB); "stream" (step only, p50 0.12 ms,
    step ratio 1.2, accuracy 0.95, 4.1 KB)."""
    return copy.deepcopy(json.loads(SAMPLE.read_text()))


@pytest.fixture
def report(tmp_path, report_dict) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report_dict))
    return path


@pytest.mark.parametrize("option, ok, bad", [
    ("--max-p50-ms", "1.6", "1.4"),
    ("--max-p99-ms", "2.4", "2.3"),
    ("--max-latency-ratio", "0.8", "0.7"),
    ("--min-metric", "0.93", "0.945"),
    ("--max-metric-drop", "0.011", "0.009"),
    ("--max-size-kb", "2", "1.99"),
])
def test_each_budget_exit_codes(report, option, ok, bad):
    r = run(["check", str(report), option, ok, "--model", "int8"])
    assert r.exit_code == 0, r.output
    assert "pass" in r.stdout and "the budget passes" in r.stdout and option in r.stdout
    r = run(["check", str(report), option, bad, "--model", "int8"])
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.stdout
    assert r.stderr.startswith("error: 1 of 1 budget broken: int8: ") and len(r.stderr.splitlines()) == 1


def test_table_lists_every_model_except_the_baseline(report):
    r = run(["check", str(report), "--max-latency-ratio", "1.1", "--max-size-kb", "5"])
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["model", "budget", "limit", "measured", "result", "what"]
    rows = [ln.split()[:5] for ln in lines[2:]]
    assert rows == [["int8", "--max-latency-ratio", "<=", "1.1", "0.75"],
                    ["int8", "--max-size-kb", "<=", "5", "2"],
                    ["stream", "--max-latency-ratio", "<=", "1.1", "1.2"],
                    ["stream", "--max-size-kb", "<=", "5", "4.10156"]]
    assert [ln.split()[5] for ln in lines[2:]] == ["pass", "pass", "FAIL", "pass"]
    assert "stream: per-step p50 / baseline 1.2 > 1.1" in r.stderr


def test_quiet_shows_only_what_is_broken(report, tmp_path):
    r = run(["check", str(report), "--max-latency-ratio", "1.1", "--max-size-kb", "5", "-q"])
    assert r.exit_code == 1
    rows = [ln.split()[:2] for ln in r.stdout.splitlines()[2:]]
    assert rows == [["stream", "--max-latency-ratio"]]
    r = run(["check", str(report), "--max-size-kb", "5", "-q", "--junit", str(tmp_path / "j.xml")])
    assert r.exit_code == 0 and r.stdout == "all 2 budgets pass\n"
    assert (tmp_path / "j.xml").exists()


def test_lower_is_better_metric(tmp_path, report_dict):
    for e, value in zip(report_dict["models"], (0.10, 0.12, 0.09)):
        e["metric"].update(name="mse", higher_is_better=False, onnxruntime=value)
    path = tmp_path / "mse.json"
    path.write_text(json.dumps(report_dict))
    r = run(["check", str(path), "--min-metric", "0.11", "--model", "int8"])
    assert r.exit_code == 1 and "<= 0.11" in r.stdout and "lower is better" in r.stdout
    assert run(["check", str(path), "--min-metric", "0.13", "--model", "int8"]).exit_code == 0
    assert run(["check", str(path), "--max-metric-drop", "0.015", "--model", "stream"]).exit_code == 0
    assert run(["check", str(path), "--max-metric-drop", "0.015", "--model", "int8"]).exit_code == 1


def test_junit(report, tmp_path):
    junit = tmp_path / "ci" / "check.xml"
    junit.parent.mkdir()
    r = run(["check", str(report), "--max-p50-ms", "1.55", "--max-size-kb", "3", "--junit", str(junit)])
    assert r.exit_code == 1 and f"wrote {junit}" in r.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert len(suite.findall("testcase/failure")) == 1
    r = run(["check", str(report), "--max-size-kb", "5", "--junit", str(junit), "--json"])
    assert r.exit_code == 0 and ET.parse(junit).getroot().get("failures") == "0"
    assert [x["passed"] for x in json.loads(r.stdout)] == [True, True]


def test_junit_path_is_reused_by_ci_reruns_but_other_files_are_kept(report, tmp_path):
    """A rerun replaces its own JUnit file; an existing file of any other kind is refused
    (exit 2, one line), kept byte for byte, and nothing is checked or written."""
    junit = tmp_path / "check.xml"
    for _ in range(2):
        assert run(["check", str(report), "--max-size-kb", "5", "--junit", str(junit)]).exit_code == 0
    assert ET.parse(junit).getroot().tag == "testsuites"
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"PK\x03\x04 a torch checkpoint")
    r = run(["check", str(report), "--max-size-kb", "5", "--junit", str(ckpt)])
    assert_one_line_error(r, code=2, match=f"--junit {ckpt} exists and is not a JUnit XML file; choose another "
                                           "path (it is never replaced)")
    assert r.stdout == "" and ckpt.read_bytes() == b"PK\x03\x04 a torch checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.xml", "model.pt", "report.json"]


def test_a_check_that_cannot_be_made_replaces_the_last_junit_file_with_its_error(report, tmp_path):
    """Exit 2 after a green run: the JUnit file CI publishes holds the error, not the passes."""
    junit = tmp_path / "check.xml"
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "rnncompress-report/1.2", "trunc')
    for args, match in [([str(bad), "--max-size-kb", "5"], f"Report {bad} is not valid JSON"),
                        ([str(report), "--max-size-kb", "5", "--model", "nope.onnx"], "nope.onnx"),
                        ([str(report)], "No budget given")]:
        assert run(["check", str(report), "--max-size-kb", "5", "--junit", str(junit)]).exit_code == 0
        r = run(["check", *args, "--junit", str(junit)])
        assert_one_line_error(r, code=2, match=match)
        root = ET.parse(junit).getroot()
        assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "1")
        [error] = root.iter("error")
        assert r.stderr.strip() == f"error: {error.get('message')}"


def test_budget_that_does_not_apply_to_a_default_model_is_na(report, report_dict, tmp_path):
    """int8 was measured without its step model: --max-step-latency-ratio checks stream and
    marks int8 n/a (exit by the budgets that apply); naming int8 is an error."""
    r = run(["check", str(report), "--max-step-latency-ratio", "1.25", "--json"])
    assert r.exit_code == 0, r.output
    rows = {x["model"]: x for x in json.loads(r.stdout)}
    assert (rows["int8"]["applicable"], rows["int8"]["measured"], rows["int8"]["passed"]) == (False, None, True)
    assert rows["stream"]["applicable"] and rows["stream"]["passed"]
    r = run(["check", str(report), "--max-step-latency-ratio", "1.1"])
    assert r.exit_code == 1 and "1 of 1 budget broken: stream" in r.stderr
    assert [ln.split()[:5] for ln in r.stdout.splitlines()[2:]] == [
        ["int8", "--max-step-latency-ratio", "<=", "1.1", "-"],
        ["stream", "--max-step-latency-ratio", "<=", "1.1", "1.2"]]
    assert_one_line_error(run(["check", str(report), "--max-step-latency-ratio", "1.25", "--model", "int8"]),
                          code=2, match="cannot be checked for 'int8': no per-step ratio to 'dense': it has no step "
                                        "latency (a full-sequence ONNX file")
    r = run(["check", str(report), "--max-step-latency-ratio", "1.25"])
    assert r.exit_code == 0 and "the budget passes (1 not applicable)" in r.stdout


def test_help_says_ratios_are_the_robust_gate():
    text = " ".join(run(["check", "--help"]).stdout.split())
    assert "robust gate" in text and "noisy CI machines" in text and "depend on the machine" in text
    assert "0 every budget passes, 1 a budget is broken, 2 bad input" in text
    assert "marked n/a" in text and "named with --model" in text


def test_bad_check_input(report, tmp_path, report_dict):
    def write(name: str, content: str | bytes) -> str:
        p = tmp_path / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
        return str(p)

    other = copy.deepcopy(report_dict)
    other["schema"] = "rnncompress-report/2"
    foreign = {"schema": "something-else/1", "models": []}
    no_metric = copy.deepcopy(report_dict)
    for e in no_metric["models"]:
        e["metric"] = None
    cases = [
        ([write("v2.json", json.dumps(other)), "--max-size-kb", "1"], "this rnncompress reads 'rnncompress-report/1.2'"),
        ([write("foreign.json", json.dumps(foreign)), "--max-size-kb", "1"], "is not an rnncompress report"),
        ([write("cut.json", report.read_text()[:300]), "--max-size-kb", "1"], "is not valid JSON"),
        ([write("bin.json", b"\x89PNG\r\n\x1a\n\xff"), "--max-size-kb", "1"], "not a JSON text file"),
        ([str(tmp_path / "missing.json"), "--max-size-kb", "1"], "does not exist"),
        ([str(report), "--max-p50-ms", "fast"], "Invalid value for '--max-p50-ms': 'fast' is not a valid float"),
        ([str(report), "--max-latency-ratio", "nan"], "--max-latency-ratio must be a positive finite number"),
        ([str(report), "--max-size-kb", "-3"], "--max-size-kb must be a positive finite number"),
        ([str(report)], "No budget given: pass at least one of --max-p50-ms"),
        ([str(report), "--max-size-kb", "1", "--model", "nope"], "Model 'nope' is not in the report"),
        ([str(report), "--max-latency-ratio", "1", "--model", "dense"], "it is the baseline"),
        ([write("nometric.json", json.dumps(no_metric)), "--min-metric", "0.5"], "no onnxruntime metric"),
        ([str(tmp_path / "nometric.json"), "--min-metric", "0.5", "--model", "int8"],
         "Budget --min-metric cannot be checked for 'int8': the report has no onnxruntime metric"),
        ([str(report), "--min-metric", "98"], "Budget --min-metric = 98 cannot hold: accuracy is a fraction in [0, 1]"),
        ([str(report), "--max-size-kb", "1", "--junit", str(tmp_path / "no" / "j.xml")], "for --junit does not exist"),
        ([str(report), "--max-size-kb", "1", "--junit", str(report)], "is one of the inputs; inputs are never"),
        ([str(report), "--max-size-kb", "1", "--junit", str(tmp_path)], "is a directory"),
    ]
    before = report.read_bytes()
    for args, match in cases:
        assert_one_line_error(run(["check", *args]), code=2, match=match)
    assert report.read_bytes() == before


def test_an_empty_junit_path_is_refused(report):
    assert_one_line_error(run(["check", str(report), "--max-size-kb", "10", "--junit", ""]),
                          match="Invalid value for '--junit': an empty path")
    assert_one_line_error(run(["check", str(report), "--max-size-kb", "10", "--junit", "."]),
                          match="--junit must name a file (got '.')")


def test_an_unforeseen_failure_is_exit_2_not_a_broken_budget(report, monkeypatch):
    """CI reads exit 1 as "budget broken": a report that trips anything the validation did
    not foresee must not exit 1 (Python's code for an uncaught exception)."""
    import cli.check

    def trips(*args, **kwargs):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(cli.check, "check_report", trips)
    assert_one_line_error(run(["check", str(report), "--max-size-kb", "2"]), code=2,
                          match="cannot be checked (TypeError: unhashable type: 'list'); it is not a report")
