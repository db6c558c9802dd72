"""report.json / report.md / PNGs: the schema round trip and refusals of foreign,
incompatible or damaged reports."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from models.errors import ReportError, RnnCompressError
from runtime.report import SCHEMA, dumps, load_report, markdown, validate_report, write_report

SAMPLE = Path(__file__).with_name("sample_report.json")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report() -> dict:
    return copy.deepcopy(json.loads(SAMPLE.read_text()))


def test_a_report_that_cannot_be_written_leaves_nothing(report, tmp_path, monkeypatch):
    import runtime.report

    real = runtime.report.atomic_write_text

    def full_disk(path, text):
        if Path(path).name == "report.json":
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(runtime.report, "atomic_write_text", full_disk)
    with pytest.raises(OSError):
        write_report(report, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"  # an existing folder stays, with only what was there
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    with pytest.raises(OSError):
        write_report(report, kept)
    assert [p.name for p in kept.iterdir()] == ["mine.txt"]


def test_round_trip(report, tmp_path):
    paths = write_report(report, tmp_path / "out")
    names = [p.name for p in paths]
    assert names == ["report.json", "report.md", "latency_full.png", "latency_step.png", "accuracy_latency.png",
                     "accuracy_sparsity.png"]
    assert load_report(paths[0]) == report
    for p in paths[2:]:
        assert p.read_bytes()[:8] == PNG
    md = paths[1].read_text()
    assert "| model | kind | format | size KB | accuracy (ORT) | accuracy (torch) | full p50 ms" in md
    assert "| int8 | onnx | int8 | 2.0 | 0.94 | - | 1.5 |" in md and "| dense |" in md and "baseline" in md
    assert "![latency_full](latency_full.png)" in md
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_markdown_links_images_only_when_given(report):
    """``run`` prints the report to a terminal without images: links only in report.md."""
    assert "![" not in markdown(report)
    assert markdown(report, ["latency_full.png"]) == markdown(report) + "\n![latency_full](latency_full.png)\n"


def test_samples_are_one_line_each(report):
    text = dumps(report)
    assert json.loads(text) == report
    sample_lines = [ln for ln in text.splitlines() if ln.strip().startswith(('"full": [', '"step": ['))]
    assert len(sample_lines) == 4 and all(ln.rstrip(",").endswith("]") for ln in sample_lines)


def test_plots_need_data(report, tmp_path):
    for e in report["models"]:
        e["metric"] = None
    names = [p.name for p in write_report(report, tmp_path / "a")]
    assert names == ["report.json", "report.md", "latency_full.png", "latency_step.png"]
    report["models"] = report["models"][:2]
    report["models"][0]["metric"] = {"name": "mse", "higher_is_better": False, "onnxruntime": 0.1, "torch": 0.1}
    names = [p.name for p in write_report(report, tmp_path / "b")]
    assert "accuracy_latency.png" in names and "accuracy_sparsity.png" not in names  # one scored model


def test_markdown_mixed_metrics(report):
    report["models"][1]["metric"]["name"] = "mse"
    report["models"][1]["metric"]["higher_is_better"] = False
    md = markdown(report)
    assert "| metric (ORT) |" in md and "mse 0.94" in md and "mse (lower is better)" in md


def test_the_call_floor_is_optional_and_shown_as_a_share_of_the_step(report):
    assert "call floor" not in markdown(report)  # a 1.0 report has none
    e = report["models"][0]
    summary = dict(e["latency_ms"]["full"])
    e["call_floor_ms"] = {"full": {**summary, "p50": 0.01}, "step": {**summary, "p50": e["latency_ms"]["step"]["p50"] / 4}}
    assert validate_report(report) is report
    md = markdown(report)
    assert "onnxruntime call floor" in md and f"| {e['name']} | 0.01 |" in md and "| 25% |" in md


def test_minor_versions_are_compatible(report):
    report["schema"] = "rnncompress-report/1.3"
    report["future_key"] = {"ignored": True}
    assert validate_report(report) is report


def _mutate(report: dict, how: str) -> dict:
    r = copy.deepcopy(report)
    if how == "no schema":
        del r["schema"]
    elif how == "foreign schema":
        r["schema"] = "pytest-report/1"
    elif how == "version 2":
        r["schema"] = "rnncompress-report/2"
    elif how == "garbage version":
        r["schema"] = "rnncompress-report/x"
    elif how == "no models":
        del r["models"]
    elif how == "empty models":
        r["models"] = []
    elif how == "duplicate names":
        r["models"][1]["name"] = "dense"
    elif how == "unknown baseline":
        r["baseline"] = "gone"
    elif how == "no latency":
        del r["models"][1]["latency_ms"]
    elif how == "string p50":
        r["models"][1]["latency_ms"]["full"]["p50"] = "fast"
    elif how == "string floor":
        r["models"][1]["call_floor_ms"] = {"full": {"p50": "0.01"}, "step": None}
    elif how == "floor not an object":
        r["models"][1]["call_floor_ms"] = [0.01]
    elif how == "string ratio":
        r["models"][1]["ratio_to_baseline"]["p50"] = "0.7"
    elif how == "negative size":
        r["models"][1]["size_bytes"] = -1
    elif how == "metric without direction":
        del r["models"][1]["metric"]["higher_is_better"]
    elif how == "string direction":
        r["models"][1]["metric"]["higher_is_better"] = "no"
    elif how == "negative p50":
        r["models"][1]["latency_ms"]["full"]["p50"] = -3
    elif how == "negative ratio":
        r["models"][1]["ratio_to_baseline"]["p50"] = -0.5
    elif how == "list baseline":
        r["baseline"] = [r["baseline"]]
    elif how == "huge size":
        r["models"][1]["size_bytes"] = 10 ** 400
    elif how == "int notes":
        r["models"][1]["notes"] = 5
    elif how == "fractional runs":
        r["models"][1]["latency_ms"]["full"]["runs"] = 1.5
    elif how == "no min":
        del r["models"][1]["latency_ms"]["full"]["min"]
    elif how == "accuracy above 1":
        r["models"][1]["metric"] = {**r["models"][1]["metric"], "name": "accuracy", "onnxruntime": 1.6}
    elif how == "control character name":
        r["models"][1]["name"] = "bad\x01name"
    elif how == "string sparsity":
        r["models"][1]["sparsity"] = {"recurrent": "x", "overall": 0.1}
    elif how == "sparsity above 1":
        r["models"][1]["sparsity"] = {"recurrent": 0.5, "overall": 7}
    elif how == "sparsity not an object":
        r["models"][1]["sparsity"] = 0.5
    elif how == "leading zero version":
        r["schema"] = "rnncompress-report/01.2"
    elif how == "non-ASCII digit version":
        r["schema"] = "rnncompress-report/\u0661.2"  # ARABIC-INDIC DIGIT ONE: int() reads it as 1
    elif how == "environment list":
        r["environment"] = []
    elif how == "settings null":
        r["settings"] = None
    elif how == "ratio without p50":
        del r["models"][1]["ratio_to_baseline"]["p50"]
    return r


@pytest.mark.parametrize("how, match", [
    ("no schema", "not an rnncompress report (schema None"),
    ("foreign schema", "not an rnncompress report (schema 'pytest-report/1'"),
    ("version 2", "has report schema 'rnncompress-report/2'; this rnncompress reads 'rnncompress-report/1.2'"),
    ("garbage version", "has report schema 'rnncompress-report/x'"),
    ("leading zero version", "has report schema 'rnncompress-report/01.2'"),
    ("non-ASCII digit version", "has report schema 'rnncompress-report/\u0661.2'"),
    ("environment list", "'environment' must be an object; got []"),
    ("settings null", "'settings' must be an object; got null"),
    ("ratio without p50", "has a ratio_to_baseline without 'p50' (null where it was not measured)"),
    ("no models", "incomplete: missing key 'models'"),
    ("empty models", "'models' must be a non-empty list"),
    ("duplicate names", "duplicate name 'dense'"),
    ("unknown baseline", "baseline 'gone' is not one of its models"),
    ("no latency", "models[1] has no 'latency_ms'"),
    ("string p50", "latency_ms.full without numbers"),
    ("string floor", "call_floor_ms.full without numbers"),
    ("floor not an object", "has no call_floor_ms object"),
    ("string ratio", "ratio_to_baseline.p50 = '0.7'"),
    ("negative size", "size_bytes -1"),
    ("metric without direction", "metric.higher_is_better = None (true or false is expected)"),
    ("string direction", "metric.higher_is_better = 'no' (true or false is expected)"),
    ("negative p50", "latency_ms.full.p50 = -3 (a time or count >= 0 is expected)"),
    ("negative ratio", "ratio_to_baseline.p50 = -0.5 (a number >= 0 or null is expected)"),
    ("list baseline", "baseline ['dense'] is not one of its models"),
    ("huge size", "has size_bytes 1000"),
    ("int notes", "has notes that are not a list of strings"),
    ("fractional runs", "latency_ms.full.runs = 1.5 (a count >= 1 is expected)"),
    ("no min", "latency_ms.full without numbers"),
    ("accuracy above 1", "metric.onnxruntime = 1.6 (an accuracy is a fraction in [0, 1])"),
    ("control character name", "unprintable or duplicate name 'bad\\x01name'"),
    ("string sparsity", "sparsity.recurrent = 'x' (a fraction in [0, 1] or null is expected)"),
    ("sparsity above 1", "sparsity.overall = 7 (a fraction in [0, 1] or null is expected)"),
    ("sparsity not an object", "has a sparsity that is not an object"),
])
def test_load_report_refuses(report, tmp_path, how, match):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_mutate(report, how)))
    with pytest.raises(ReportError, match=re.escape(match)):
        load_report(path)


def test_load_report_refuses_files_that_are_not_reports(report, tmp_path):
    cases = {
        "truncated.json": (dumps(report)[:200], "is not valid JSON (line"),
        "list.json": ("[1, 2]", "a JSON object is expected, got list"),
        "empty.json": ("", "is not valid JSON"),
        "deep.json": ("[" * 100000 + "]" * 100000, "nested too deeply"),
    }
    for name, (text, match) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ReportError, match=re.escape(match)):
            load_report(tmp_path / name)
    (tmp_path / "binary.json").write_bytes(b"PK\x03\x04\xff\xfe\x00")
    with pytest.raises(ReportError, match="not a JSON text file"):
        load_report(tmp_path / "binary.json")
    with pytest.raises(ReportError, match="does not exist"):
        load_report(tmp_path / "missing.json")
    with pytest.raises(ReportError, match="is not a file"):
        load_report(tmp_path)


def test_write_report_refuses_invalid_reports_and_writes_nothing(report, tmp_path):
    report["schema"] = "other"
    with pytest.raises(ReportError, match="not an rnncompress report"):
        write_report(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert SCHEMA == "rnncompress-report/1.2"
    report["schema"] = SCHEMA
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(RnnCompressError, match="exists and is not a directory"):
        write_report(report, tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_write_report_keeps_an_old_report_when_it_fails(report, tmp_path):
    out = tmp_path / "out"
    write_report(report, out)
    before = (out / "report.json").read_bytes()
    bad = copy.deepcopy(report)
    bad["models"][1]["parameters"] = float("nan")  # JSON cannot hold NaN
    with pytest.raises(ReportError, match="cannot be written as JSON"):
        write_report(bad, out)
    assert (out / "report.json").read_bytes() == before


def test_a_rewrite_cut_short_leaves_no_mix_of_old_and_new_files(report, tmp_path, monkeypatch):
    """Ctrl-C after the new plots and before report.json: the old report does not stay
    beside plots of another run (a report.md embedding pictures its table did not make)."""
    import runtime.report as module

    out = tmp_path / "out"
    written = write_report(report, out)
    assert len(written) > 2
    (out / "notes.txt").write_text("mine")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(report, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
