"""The bench command: files written, the printed table, JSON, bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY, assert_one_line_error, run

FAST = ["--runs", "3", "--warmup", "1"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench_cli")
    ckpt = root / "m.pt"
    assert run(["train", *TINY, "--out", str(ckpt)]).exit_code == 0
    r = run(["export", str(ckpt), "--format", "dense,step", "--out-dir", str(root / "onnx"), "-q"])
    assert r.exit_code == 0, r.output
    return {"ckpt": ckpt, "dense": root / "onnx" / "m.onnx", "step": root / "onnx" / "m.step.onnx"}


def test_bench_writes_the_report_and_prints_the_table(models, tmp_path):
    out = tmp_path / "bench"
    r = run(["bench", str(models["ckpt"]), str(models["dense"]), str(models["step"]), "--out-dir", str(out), *FAST])
    assert r.exit_code == 0, r.output
    for name in ("report.json", "report.md", "latency_full.png", "latency_step.png", "accuracy_latency.png",
                 "accuracy_sparsity.png"):
        assert (out / name).is_file(), name
        assert f"wrote {out / name}" in r.stdout
    assert "| model | kind | format | size KB | mse (ORT) | mse (torch) |" in r.stdout
    assert "| m.pt | checkpoint | dense |" in r.stdout and "m.pt (torch)" in r.stdout
    assert "onnxruntime call floor" in r.stdout and "| m.step.onnx | - |" in r.stdout
    assert "per-step latency" in r.stderr  # progress while measuring
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"] == "m.pt" and [e["name"] for e in report["models"]] == ["m.pt", "m.onnx", "m.step.onnx"]
    # the report feeds check: sizes and metrics are not timings
    r = run(["check", str(out / "report.json"), "--max-size-kb", "1000", "--min-metric", "100"])
    assert r.exit_code == 0, r.output


def test_bench_json_names_and_quiet(models, tmp_path):
    r = run(["bench", str(models["ckpt"]), str(models["step"]), "--name", "base", "--name", "stream",
             "--out-dir", str(tmp_path), "--no-torch", "--no-accuracy", "--threads", "1", "--seed", "3", "--json",
             *FAST])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert [e["name"] for e in rep["models"]] == ["base", "stream"] and rep["settings"]["seed"] == 3
    assert all("samples_us" not in e and e["metric"] is None for e in rep["models"])
    assert rep["settings"]["call_floor"] is True and rep["models"][1]["call_floor_ms"]["step"]["runs"] == 3
    assert r.stderr == ""
    r = run(["bench", str(models["dense"]), "--out-dir", str(tmp_path / "q"), "-q", *FAST])
    assert r.exit_code == 0 and r.stderr == ""


def test_bench_baseline_option(models, tmp_path):
    r = run(["bench", str(models["dense"]), "--baseline", str(models["ckpt"]), "--out-dir", str(tmp_path),
             "--no-step", "--no-torch", "--no-call-floor", "--no-accuracy", "--json", *FAST])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["settings"]["call_floor"] is False and all(e["call_floor_ms"] is None for e in rep["models"])
    assert rep["baseline"] == "m.pt" and [e["name"] for e in rep["models"]] == ["m.pt", "m.onnx"]
    assert rep["models"][1]["ratio_to_baseline"]["p50"] > 0


def test_bad_bench_input(models, tmp_path):
    out = tmp_path / "out"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01garbage")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        ([str(tmp_path / "missing.pt")], "does not exist"),
        ([str(garbage)], "is not an ONNX model"),
        ([str(models["ckpt"]), "--runs", "0"], "--runs must be an int >= 1"),
        ([str(models["ckpt"]), "--threads", "0"], "--threads must be an int in [1, 256]"),
        ([str(models["ckpt"]), "--threads", "100000"], "--threads must be an int in [1, 256]"),
        ([str(models["ckpt"]), "--runs", "many"], "Invalid value for '--runs'"),
        ([str(models["ckpt"]), str(models["dense"]), "--name", "a"], "--name must be a list of 2 names"),
        ([str(models["dense"]), str(models["dense"])], "unique per model"),
        ([str(models["ckpt"]), "--no-accuracy", "--max-eval", "5"], "--max-eval applies to the metric"),
    ]
    for args, match in cases:
        assert_one_line_error(run(["bench", *FAST, *args, "--out-dir", str(out), "-q"]), match=match)
    assert not out.exists()
    assert_one_line_error(run(["bench", str(models["dense"]), "--out-dir", str(a_file), "-q"]),
                          match="is not a directory")
    assert_one_line_error(run(["bench", "--out-dir", str(out)]), match="Missing argument 'MODEL...'")
    # a missing input is found before any other is loaded or measured (no progress lines)
    assert_one_line_error(run(["bench", str(models["ckpt"]), str(tmp_path / "gone.onnx"), "--out-dir", str(out)]),
                          match="ONNX file " + str(tmp_path / "gone.onnx") + " does not exist")
    assert_one_line_error(run(["bench", str(models["dense"]), "--baseline", str(tmp_path), "--out-dir", str(out)]),
                          match="is not a file")
    # the report never replaces an input, whatever its name
    named = tmp_path / "in" / "report.json"
    named.parent.mkdir()
    named.write_bytes(models["dense"].read_bytes())
    assert_one_line_error(run(["bench", str(named), "--out-dir", str(named.parent), "-q"]),
                          match=f"--out-dir's {named} is one of the inputs")
    assert named.read_bytes() == models["dense"].read_bytes()


def test_an_earlier_report_is_replaced_only_with_force(models, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "report.md").write_text("# my notes")
    args = ["bench", str(models["dense"]), *FAST, "--no-torch", "--no-call-floor", "--out-dir", str(out), "-q"]
    assert_one_line_error(run(args), match=f"--out-dir's {out / 'report.md'} already exists; pass --force")
    assert (out / "report.md").read_text() == "# my notes" and not (out / "report.json").exists()
    (out / "accuracy_sparsity.png").write_bytes(b"a plot of an earlier run")  # one model: not drawn again
    assert run([*args, "--force"]).exit_code == 0
    assert (out / "report.json").exists() and not (out / "accuracy_sparsity.png").exists()
