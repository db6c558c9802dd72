"""``rnncompress export`` and ``rnncompress sparsify``: output, and bad input as one line
on stderr, a non-zero exit code and no file left behind."""

from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner

from cli.main import cli
from exporters.graph import build_full_graph


def _run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def _one_error_line(result, code=2):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr  # progress lines may precede it
    assert "Traceback" not in result.output
    return errors[0]


def test_export_prints_a_line_per_file(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (8,), 0.9))
    r = _run("export", path, "--format", "dense,sparse,step,int8", "--out-dir", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""  # --quiet: no progress
    for name in ("m.onnx", "m.sparse.onnx", "m.step.onnx", "m.int8.onnx"):
        assert name in r.stdout and (tmp_path / "o" / name).exists()
    assert "stored sparsity" in r.stdout and "17/8" in r.stdout and "max abs" in r.stdout


def test_export_json(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("gru", (6,), 0.5))
    r = _run("export", path, "--format", "dense,int8", "--out-dir", tmp_path / "o", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["format"] for row in rows] == ["dense", "int8"]
    assert rows[0]["parity_error"] <= rows[0]["parity_tolerance"] and rows[0]["opset"] == 17


def test_help_explains_every_option():
    for command in ("export", "sparsify"):
        r = _run(command, "--help")
        assert r.exit_code == 0
        text = r.stdout
        for option in ({"export": ["--format", "--out-dir", "--verify-data", "--atol", "--int8-accuracy-drop",
                                   "--int8-relative", "--min-gain", "--force", "--quiet"],
                        "sparsify": ["--out", "--min-gain", "--force", "--quiet"]}[command]):
            assert option in text


def test_bad_nan_checkpoint(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (4,)), nan=True)
    line = _one_error_line(_run("export", path, "--out-dir", tmp_path / "o"))
    assert "NaN or Inf" in line
    assert not (tmp_path / "o").exists()


def test_bad_format_name(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (4,)))
    line = _one_error_line(_run("export", path, "--format", "dense,onnx16", "--out-dir", tmp_path / "o"))
    assert "--format" in line and "onnx16" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, match", [
    (["--data", "/tmp"], "--data does not apply to task 'adding': it generates its data from a seed."),
    (["--format", "int8", "--int8-accuracy-drop", "-1"], "--int8-accuracy-drop must be a finite float >= 0"),
    (["--format", "int8", "--int8-relative", "nan"], "--int8-relative must be a finite float >= 0"),
    (["--verify-data", "random", "--data", "/tmp"], "--data applies to verification on task data"),
    (["--verify-data", "random", "--metric-samples", "5"], "--metric-samples applies to verification on task data"),
    # a setting the formats or the verification would not use is refused, not recorded as applied
    (["--verify-data", "random", "--int8-relative", "0"], "--int8-relative applies to verification on task data"),
    (["--verify-data", "random", "--parity-samples", "1"], "--parity-samples applies to verification on task data"),
    (["--format", "dense,int8", "--min-gain", "0.5"], "--min-gain applies to a sparse format (sparse, int8+sparse"),
    (["--format", "dense", "--int8-accuracy-drop", "3"], "--int8-accuracy-drop applies to an int8 format"),
    (["--format", "sparse", "--int8-float-below", "0"], "--int8-float-below applies to an int8 format"),
    (["--format", "step,int8", "--parity-samples", "9"], "--parity-samples applies to a float full-sequence format"),
])
def test_bad_option_names_the_option(make_model, make_checkpoint, tmp_path, args, match):
    path = make_checkpoint(make_model("lstm", (4,), input_size=2))
    line = _one_error_line(_run("export", path, *args, "--out-dir", tmp_path / "o"))
    assert match in line, line
    assert "--data PATH" not in line and not (tmp_path / "o").exists()


def test_bad_out_dir(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (4,)))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _one_error_line(_run("export", path, "--out-dir", blocker / "sub"))
    assert "not a directory" in line
    assert blocker.read_text() == ""


def test_missing_data_suggests_random(make_model, make_checkpoint, tmp_path):
    model = make_model("lstm", (4,), input_size=28, output_size=10)
    path = make_checkpoint(model, {"name": "smnist", "params": {"data": str(tmp_path / "gone")}})
    line = _one_error_line(_run("export", path, "--out-dir", tmp_path / "o"))
    assert "--verify-data random" in line
    r = _run("export", path, "--out-dir", tmp_path / "o", "--verify-data", "random", "--format", "dense", "-q")
    assert r.exit_code == 0 and "random inputs only" in r.stdout


def test_data_that_moved_is_named_with_data(make_model, make_checkpoint, tmp_path, mnist_dir):
    model = make_model("lstm", (4,), input_size=28, output_size=10)
    path = make_checkpoint(model, {"name": "smnist", "params": {"data": str(tmp_path / "gone")}})
    assert "pass --data PATH if the data moved" in _one_error_line(_run("export", path, "--out-dir", tmp_path / "o"))
    r = _run("export", path, "--out-dir", tmp_path / "o", "--data", mnist_dir, "--format", "dense", "-q")
    assert r.exit_code == 0 and "the task's test data" in r.stdout


def test_export_never_overwrites_its_checkpoint(make_model, make_checkpoint, tmp_path):
    src = make_checkpoint(make_model("gru", (4,)), name="m")
    named_onnx = src.with_name("m.onnx")  # a checkpoint whose name is the export's
    named_onnx.write_bytes(src.read_bytes())
    before = named_onnx.read_bytes()
    line = _one_error_line(_run("export", named_onnx, "--out-dir", src.parent, "--name", "m", "--format", "dense",
                                "--force"))
    assert "is one of the inputs" in line
    assert named_onnx.read_bytes() == before


def test_parity_failure_exits_3(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("gru", (8,), 0.0, seed=1))
    result = _run("export", path, "--format", "dense,sparse", "--atol", "1e-15", "--rtol", "0",
                  "--out-dir", tmp_path / "o", "-q")
    line = _one_error_line(result, code=3)
    assert result.stderr.strip() == line  # --quiet: the error is the only output
    assert "disagrees with the torch model" in line
    assert not (tmp_path / "o").exists()


def test_bad_option_value(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("gru", (4,)))
    line = _one_error_line(_run("export", path, "--min-gain", "2", "--out-dir", tmp_path / "o"))
    assert "--min-gain must be a float in [0, 1)" in line


def test_missing_checkpoint(tmp_path):
    line = _one_error_line(_run("export", tmp_path / "nope.pt", "--out-dir", tmp_path / "o"))
    assert "does not exist" in line


# ----------------------------------------------------------------------- sparsify
def test_sparsify_cli(make_model, tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(build_full_graph(make_model("lstm", (16,), 0.9)), str(src))
    r = _run("sparsify", src, "--out", tmp_path / "s.onnx")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("wrote ") and "initializers sparse" in r.stdout
    assert (tmp_path / "s.onnx").stat().st_size < src.stat().st_size


@pytest.mark.parametrize("content", [b"not an onnx file at all", b""])
def test_sparsify_not_onnx(tmp_path, content):
    src = tmp_path / "x.onnx"
    src.write_bytes(content)
    line = _one_error_line(_run("sparsify", src, "--out", tmp_path / "y.onnx"))
    assert "not an ONNX model" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx"]


def test_sparsify_refuses_overwriting_input(make_model, tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(build_full_graph(make_model("rnn", (4,))), str(src))
    before = src.read_bytes()
    line = _one_error_line(_run("sparsify", src, "--out", src))
    assert "is one of the inputs; inputs are never overwritten" in line
    assert src.read_bytes() == before


def test_sparsify_missing_input(tmp_path):
    line = _one_error_line(_run("sparsify", tmp_path / "none.onnx", "--out", tmp_path / "y.onnx"))
    assert "does not exist" in line


def test_info_describes_an_exported_onnx_file(make_model, make_checkpoint, tmp_path):
    """``info`` on .onnx: interface, ops, how int8 is used, storage and provenance, as text
    and JSON; the step+int8 LSTM shows weight-only storage and the session config."""
    path = make_checkpoint(make_model("lstm", (16,), 0.9))
    out = tmp_path / "o"
    r = _run("export", path, "--format", "sparse,step+int8", "--out-dir", out, "-q")
    assert r.exit_code == 0 and "note:" not in r.stdout, r.output
    r = _run("info", out / "m.step.int8.onnx")
    assert r.exit_code == 0, r.output
    assert "format step+int8 of m.pt" in r.stdout and "verified against torch" in r.stdout
    assert "inputs:  x float32 [batch, 2]; h0 float32 [1, batch, 16]; c0 float32 [1, batch, 16]" in r.stdout
    assert "int8:    weights stored int8, arithmetic float: 2 tensors of LSTM" in r.stdout
    assert "session: session.disable_quant_qdq=1" in r.stdout
    d = json.loads(_run("info", out / "m.sparse.onnx", "--json").stdout)
    assert d["metadata"]["format"] == "sparse" and d["metadata"]["source"] == "m.pt"
    assert d["initializers"]["sparse"] > 0 and d["initializers"]["stored_sparsity"] > 0.5
    assert d["ops"]["LSTM"] == 1 and d["int8"] == [] and d["bytes"] == (out / "m.sparse.onnx").stat().st_size


def test_sizes_count_external_weights(make_model, tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save_model(build_full_graph(make_model("lstm", (16,), 0.9)), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    on_disk = path.stat().st_size + (tmp_path / "ext.data").stat().st_size
    assert json.loads(_run("info", path, "--json").stdout)["bytes"] == on_disk
    r = _run("sparsify", path, "--out", tmp_path / "s.onnx")
    assert f"{on_disk:,} -> {(tmp_path / 's.onnx').stat().st_size:,} bytes" in r.stdout
    # The external data file is an input too: never the output, even with --force.
    weights = (tmp_path / "ext.data").read_bytes()
    r = _run("sparsify", path, "--out", tmp_path / "ext.data", "--force")
    assert r.exit_code == 2 and f"--out {tmp_path / 'ext.data'} is one of the inputs" in r.output
    assert (tmp_path / "ext.data").read_bytes() == weights


def test_bench_reads_external_weights_and_explains_external_shape_constants(make_model, tmp_path):
    graph = build_full_graph(make_model("lstm", (16,)))
    for threshold in (1024, 0):  # onnx's default keeps small constants (Squeeze axes) in the file
        path = tmp_path / f"ext{threshold}.onnx"
        onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"ext{threshold}.data", size_threshold=threshold)
        r = _run("bench", path, "--seq-len", "5", "--runs", "3", "--warmup", "0", "--out-dir", tmp_path / f"b{threshold}",
                 "-q")
        if threshold:
            assert r.exit_code == 0, r.output
        else:
            assert "save it with onnx.save(..., save_as_external_data=True) and the default size_threshold, not 0" in (
                _one_error_line(r))


def test_onnx_whose_external_weights_are_gone(make_model, tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save_model(build_full_graph(make_model("gru", (4,))), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    (tmp_path / "ext.data").unlink()
    for cmd in (["info", path], ["sparsify", path, "--out", tmp_path / "s.onnx"]):
        assert "keeps its weights in an external data file that cannot be read" in _one_error_line(_run(*cmd))


def test_info_on_foreign_and_broken_onnx(make_model, tmp_path):
    foreign = tmp_path / "foreign.onnx"
    onnx.save(build_full_graph(make_model("gru", (4,))), str(foreign))  # no rnncompress metadata
    r = _run("info", foreign)
    assert r.exit_code == 0 and "not written by rnncompress" in r.stdout and "GRU 1" in r.stdout
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    assert "is not" in _one_error_line(_run("info", broken))


def test_a_checkpoint_command_given_onnx_names_the_mix_up(make_model, tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(build_full_graph(make_model("lstm", (4,))), str(model))
    line = _one_error_line(_run("prune", model, "--out", tmp_path / "p.pt", "-q"))
    assert "is not a torch checkpoint (it is an ONNX model" in line


def test_int8_of_a_tiny_model_says_it_holds_nothing_int8(make_model, make_checkpoint, tmp_path):
    """Every matrix of a 3-neuron RNN is too small for int8 to shrink the file: the int8
    export is the float model, and export and info say so instead of implying int8."""
    path = make_checkpoint(make_model("rnn", (3,)))
    out = tmp_path / "o"
    r = _run("export", path, "--format", "dense,int8", "--out-dir", out, "-q")
    assert r.exit_code == 0, r.output
    assert "note: m.int8.onnx holds nothing int8" in r.stdout
    assert (out / "m.int8.onnx").stat().st_size <= (out / "m.onnx").stat().st_size + 200  # metadata only
    r = _run("info", out / "m.int8.onnx")
    assert "int8:    none" in r.stdout
    r = _run("export", make_checkpoint(make_model("lstm", (16,)), name="big"), "--format", "int8",
             "--out-dir", out, "-q")
    assert r.exit_code == 0 and "holds nothing int8" not in r.stdout


def test_an_int8_file_no_smaller_than_its_float_twin_is_noted(make_model, make_checkpoint, tmp_path):
    """A 4-neuron LSTM: one recurrent matrix stored int8 saves fewer bytes than the int8
    metadata adds. Export says so; info names both float rules, and none with 0."""
    path, out = make_checkpoint(make_model("lstm", (4,))), tmp_path / "o"
    r = _run("export", path, "--format", "dense,int8,step,step+int8", "--out-dir", out, "-q")
    assert r.exit_code == 0, r.output
    for int8, twin in (("m.int8.onnx", "m.onnx"), ("m.step.int8.onnx", "m.step.onnx")):
        grew = (out / int8).stat().st_size >= (out / twin).stat().st_size
        assert grew == (f"note: {int8} is not smaller than {twin}" in r.stdout)
    assert "note: m.int8.onnx is not smaller than m.onnx" in r.stdout
    r = _run("export", path, "--format", "sparse", "--out-dir", tmp_path / "sp", "-q")  # a dense model
    assert "note: m.sparse.onnx stores nothing sparse" in r.stdout
    assert "(kept float: ops on one row per call with < 65,536 weights" in _run("info", out / "m.int8.onnx").stdout
    r = _run("export", path, "--format", "int8", "--int8-float-below", "0", "--out-dir", tmp_path / "all", "-q")
    assert r.exit_code == 0, r.output
    shown = _run("info", tmp_path / "all" / "m.int8.onnx").stdout
    assert "LSTM with int8 arithmetic" in shown and "kept float" not in shown


def test_an_empty_name_is_refused(make_model, make_checkpoint, tmp_path):
    path = make_checkpoint(make_model("lstm", (4,), input_size=2))
    line = _one_error_line(_run("export", path, "--name", "", "--out-dir", tmp_path / "o"))
    assert "--name must be a non-empty file stem" in line and not (tmp_path / "o").exists()
    line = _one_error_line(_run("export", path, "--name", ".hidden", "--out-dir", tmp_path / "o"))
    assert "not starting with '.'" in line and not (tmp_path / "o").exists()
    line = _one_error_line(_run("export", path, "--name", "a\nb", "--out-dir", tmp_path / "o"))
    assert "without control characters" in line and "Got 'a\\nb' instead" in line and not (tmp_path / "o").exists()


def test_a_checkpoint_name_that_is_not_utf8_exports(make_model, make_checkpoint, tmp_path):
    import shutil

    import onnx

    odd = tmp_path / "bad\udcffname.pt"
    shutil.copy(make_checkpoint(make_model("gru", (4,), input_size=2)), odd)
    r = _run("export", odd, "--format", "dense", "--out-dir", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    meta = {p.key: p.value for p in onnx.load(tmp_path / "o" / "bad\udcffname.onnx").metadata_props}
    assert meta["rnncompress.source"] == "bad\ufffdname.pt"
