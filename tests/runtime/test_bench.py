"""bench on a tiny checkpoint and its exports: the report's content (not its timings),
baselines, foreign ONNX files, and refusals."""

from __future__ import annotations

import re

import onnx
import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import CheckpointError, ConfigError, DataError, ExportError, ParityError
from models.sequence import SequenceModel
from runtime.bench import BenchConfig, bench
from runtime.report import load_report, validate_report, write_report

FAST = BenchConfig(runs=5, warmup=1)
LATENCY_ONLY = BenchConfig(runs=3, warmup=0, step=False, torch_reference=False, accuracy=False)


def test_checkpoint_and_onnx_inputs(tiny, tmp_path):
    report = bench([tiny["ckpt"], tiny["dense"], tiny["step"], tiny["int8"]], config=FAST)
    validate_report(report)
    assert report["baseline"] == "m.pt"
    m = {e["name"]: e for e in report["models"]}
    assert list(m) == ["m.pt", "m.onnx", "m.step.onnx", "m.int8.onnx"]
    ck, dense, step, int8 = m.values()
    sha = load_checkpoint(tiny["ckpt"]).sha256

    assert (ck["kind"], ck["format"], ck["sha256"]) == ("checkpoint", "dense", sha)
    assert ck["latency_ms"]["full"]["runs"] == ck["latency_ms"]["step"]["runs"] == 5
    assert ck["torch_latency_ms"]["full"]["runs"] == ck["torch_latency_ms"]["step"]["runs"] == 5
    assert ck["ratio_to_baseline"] is None
    assert sorted(ck["samples_us"]) == ["full", "step", "torch_full", "torch_step"]
    assert ck["call_floor_ms"]["full"]["runs"] == ck["call_floor_ms"]["step"]["runs"] == 5
    assert all(len(v) == 5 for v in ck["samples_us"].values())
    metric = ck["metric"]
    assert (metric["name"], metric["higher_is_better"], metric["samples"]) == ("mse", False, 24)
    assert metric["onnxruntime"] == pytest.approx(metric["torch"], abs=1e-5)

    # the in-memory dense model is the exported file: same bytes, same metric
    assert dense["size_bytes"] == ck["size_bytes"] == tiny["dense"].stat().st_size
    assert dense["metric"]["onnxruntime"] == pytest.approx(metric["onnxruntime"], abs=1e-6)
    assert dense["metric"]["torch"] is None and dense["source_sha256"] == sha
    assert dense["latency_ms"]["step"] is None and dense["torch_latency_ms"] is None
    assert dense["call_floor_ms"]["step"] is None and dense["call_floor_ms"]["full"]["runs"] == 5
    assert dense["ratio_to_baseline"]["p50"] > 0 and dense["ratio_to_baseline"]["step_p50"] is None

    assert (step["format"], step["latency_ms"]["full"], step["call_floor_ms"]["full"]) == ("step", None, None)
    assert step["call_floor_ms"]["step"]["runs"] == 5
    assert step["latency_ms"]["step"]["runs"] == 5 and step["ratio_to_baseline"]["step_p50"] > 0
    assert step["ratio_to_baseline"]["p50"] is None
    assert step["metric"]["onnxruntime"] == pytest.approx(metric["onnxruntime"], abs=1e-5)

    assert int8["format"] == "int8" and int8["metric"]["onnxruntime"] == pytest.approx(metric["onnxruntime"], rel=0.05)
    for e in m.values():
        assert e["hidden_sizes"] == [6] and e["cell"] == "lstm" and e["sparsity"]["recurrent"] == 0.0
        assert e["parameters"] == ck["parameters"] and e["task"]["name"] == "adding"
        assert e["inputs"] == {"data": "task test split", "seq_len": 6}
    env = report["environment"]
    assert env["intra_op_threads"] == 1 and env["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert env["onnxruntime"] and env["cpu"] and env["logical_cores"] >= 1
    assert report["settings"]["runs"] == 5 and report["settings"]["interleaved"] is True

    paths = write_report(report, tmp_path / "out")
    assert load_report(paths[0]) == report


def test_chunk_models_report_latency_per_step(tiny):
    r = bench([tiny["step"], tiny["chunk"]], config=BenchConfig(runs=3, warmup=0, chunk=4))
    step, chunk = r["models"]
    assert chunk["format"] == "chunk" and chunk["inputs"]["steps_per_call"] == 4
    assert "steps_per_call" not in step["inputs"]
    assert chunk["latency_ms"]["step"]["runs"] == 3 and chunk["latency_ms"]["full"] is None
    assert chunk["call_floor_ms"]["step"]["runs"] == 3 and chunk["ratio_to_baseline"]["step_p50"] > 0
    assert any("one call feeds 4 steps" in n for n in chunk["notes"])
    assert chunk["metric"]["onnxruntime"] == pytest.approx(step["metric"]["onnxruntime"], abs=1e-6)
    # a chunk longer than the sequence (6 steps) is the whole sequence
    [e] = bench([tiny["chunk"]], config=BenchConfig(runs=2, warmup=0, chunk=50, accuracy=False))["models"]
    assert e["inputs"]["steps_per_call"] == 6
    assert "--chunk 50 is longer than the 6-step sequences: timed 6 per call" in e["notes"]


def test_options_switch_measurements_off(tiny):
    report = bench([tiny["ckpt"]], config=LATENCY_ONLY)
    [e] = report["models"]
    assert e["latency_ms"]["full"]["runs"] == 3 and e["latency_ms"]["step"] is None
    assert e["torch_latency_ms"] is None and e["metric"] is None and list(e["samples_us"]) == ["full"]
    [e] = bench([tiny["ckpt"]], config=BenchConfig(runs=2, warmup=0, step=False, max_eval=5))["models"]
    assert e["metric"]["samples"] == 5 and e["torch_latency_ms"]["step"] is None
    assert e["call_floor_ms"]["full"]["runs"] == 2
    [e] = bench([tiny["ckpt"]], config=BenchConfig(runs=2, warmup=0, call_floor=False, accuracy=False))["models"]
    assert e["call_floor_ms"] is None and e["latency_ms"]["step"]["runs"] == 2


def test_baselines(tiny):
    r = bench([tiny["dense"], tiny["int8"]], baseline=tiny["ckpt"], config=LATENCY_ONLY)
    assert [e["name"] for e in r["models"]] == ["m.pt", "m.onnx", "m.int8.onnx"] and r["baseline"] == "m.pt"
    r = bench([tiny["dense"], tiny["int8"]], config=LATENCY_ONLY)
    assert r["baseline"] == "m.onnx" and r["models"][0]["ratio_to_baseline"] is None
    r = bench([tiny["ckpt"], tiny["int8"]], baseline=tiny["int8"], config=LATENCY_ONLY, names=["dense", "q"])
    assert r["baseline"] == "q" and [e["name"] for e in r["models"]] == ["dense", "q"]
    assert r["models"][0]["ratio_to_baseline"]["p50"] > 0


def test_a_baseline_timed_on_other_sequences_gives_no_full_sequence_ratio(tiny, tmp_path):
    foreign = _strip_metadata(tiny["dense"], tmp_path / "foreign.onnx")
    config = BenchConfig(runs=3, warmup=0, seq_len=9, accuracy=False, torch_reference=False)
    base, e = bench([foreign], baseline=tiny["ckpt"], config=config)["models"]
    assert (base["inputs"]["seq_len"], e["inputs"]["seq_len"]) == (6, 9)
    assert e["ratio_to_baseline"]["p50"] is None and e["ratio_to_baseline"]["p99"] is None
    assert any("timed on 9-step sequences, the baseline 'm.pt' on 6" in n for n in e["notes"])
    [e] = bench([foreign], baseline=tiny["ckpt"], config=BenchConfig(**{**config.to_dict(), "seq_len": 6}))["models"][1:]
    assert e["ratio_to_baseline"]["p50"] > 0 and not any("timed on" in n for n in e["notes"])


def _strip_metadata(src, dst):
    model = onnx.load(str(src))
    del model.metadata_props[:]
    onnx.save(model, str(dst))
    return dst


def test_foreign_onnx_gets_latency_only(tiny, tmp_path):
    foreign = _strip_metadata(tiny["dense"], tmp_path / "foreign.onnx")
    r = bench([foreign], config=BenchConfig(runs=3, warmup=0, seq_len=6))
    [e] = r["models"]
    assert e["format"] is None and e["metric"] is None and e["task"] is None and e["sparsity"] is None
    assert e["inputs"] == {"data": "random", "seq_len": 6, "shapes": {"x": [1, 6, 2]}}
    assert e["latency_ms"]["full"]["runs"] == 3 and e["parameters"] > 0 and "no rnncompress metadata" in e["notes"][0]
    assert e["call_floor_ms"]["full"]["runs"] == 3
    with pytest.raises(ConfigError, match="'seq_len' parameter must be an int >= 1 for .*foreign.onnx.*'seq'"):
        bench([foreign], config=LATENCY_ONLY)


@pytest.mark.parametrize("kwargs, match", [
    ({"threads": 0}, r"'threads' parameter must be an int in \[1, 256\]"),
    ({"threads": 100_000}, r"'threads' parameter must be an int in \[1, 256\]"),
    ({"runs": 0}, "'runs' parameter must be an int >= 1"),
    ({"warmup": -1}, "'warmup' parameter must be an int >= 0"),
    ({"max_eval": 0}, "'max_eval' parameter must be an int >= 1"),
    ({"seq_len": 0}, r"'seq_len' parameter must be an int >= 1 \(or unset\)"),
    ({"runs": 2.0}, "'runs' parameter must be an int. Got 2.0"),
    ({"step": "no"}, "'step' parameter must be a bool"),
    ({"call_floor": 1}, "'call_floor' parameter must be a bool"),
    ({"chunk": 0}, "'chunk' parameter must be an int >= 1"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BenchConfig(**kwargs)


def test_bad_inputs(tiny, tmp_path):
    with pytest.raises(ConfigError, match="'names' parameter must be a list of 2 names"):
        bench([tiny["ckpt"], tiny["dense"]], names=["a"], config=LATENCY_ONLY)
    with pytest.raises(ConfigError, match="unique per model"):
        bench([tiny["dense"], tiny["dense"]], config=LATENCY_ONLY)
    with pytest.raises(ConfigError, match="'paths' parameter"):
        bench([], config=LATENCY_ONLY)
    with pytest.raises(ConfigError, match="'name' parameter must be printable text"):
        bench([tiny["dense"]], names=["two\nlines"], config=LATENCY_ONLY)
    with pytest.raises(CheckpointError, match="does not exist"):
        bench([tmp_path / "missing.pt"], config=LATENCY_ONLY)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ExportError, match="garbage.onnx is not"):
        bench([garbage], config=LATENCY_ONLY)
    ckpt = load_checkpoint(tiny["ckpt"])
    ckpt.task = {"name": "npz", "params": {"data": str(tmp_path / "gone.npz")}}
    save_checkpoint(tmp_path / "nodata.pt", ckpt)
    with pytest.raises(DataError, match="Cannot load the test data of .*nodata.pt \\(task 'npz'\\)"):
        bench([tmp_path / "nodata.pt"], config=LATENCY_ONLY)


def test_a_model_that_disagrees_with_torch_is_refused(tiny, monkeypatch):
    import runtime.bench as rb

    original = rb.build_variant

    def broken(model, variant, metadata=None):
        torch.manual_seed(123)
        return original(SequenceModel(model.config), variant, metadata)  # other weights

    monkeypatch.setattr(rb, "build_variant", broken)
    with pytest.raises(ParityError, match="disagrees with its torch model.*refusing to benchmark"):
        bench([tiny["ckpt"]], config=LATENCY_ONLY)


def test_large_outputs_are_held_to_a_relative_tolerance_as_in_export(tiny, tmp_path):
    # outputs ~1e5: float32 summation order alone moves them by more than any fixed atol
    ckpt = load_checkpoint(tiny["ckpt"])
    for name in ("head.weight", "head.bias"):
        ckpt.state_dict[name] = ckpt.state_dict[name] * 1e5
    save_checkpoint(tmp_path / "loud.pt", ckpt)
    [e] = bench([tmp_path / "loud.pt"], config=BenchConfig(runs=2, warmup=0, torch_reference=False))["models"]
    assert e["metric"]["onnxruntime"] == pytest.approx(e["metric"]["torch"], rel=1e-5)


def _with_metadata(src, dst, **changes):
    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    meta.update({f"rnncompress.{k}": v for k, v in changes.items()})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(dst))
    return dst


def test_models_without_a_task_are_timed_on_random_inputs(tiny, tmp_path):
    ckpt = load_checkpoint(tiny["ckpt"])
    ckpt.task = {}
    save_checkpoint(tmp_path / "notask.pt", ckpt)
    notask_onnx = _with_metadata(tiny["dense"], tmp_path / "notask.onnx", task="")
    config = BenchConfig(runs=2, warmup=0, seq_len=4)
    r = bench([tmp_path / "notask.pt", notask_onnx], config=config)
    for e in r["models"]:
        assert e["inputs"] == {"data": "random", "seq_len": 4} and e["metric"] is None and e["task"] is None
        assert "records no task" in e["notes"][0] and e["latency_ms"]["full"]["runs"] == 2
    assert r["models"][0]["latency_ms"]["step"]["runs"] == 2
    with pytest.raises(ConfigError, match="'seq_len' parameter must be an int >= 1 for .*notask.pt, which records no"):
        bench([tmp_path / "notask.pt"], config=LATENCY_ONLY)


def test_seq_len_is_refused_when_every_model_records_its_task(tiny):
    # the test sequences set the length: a --seq-len nothing uses would look like it was applied
    with pytest.raises(ConfigError, match=r"'seq_len' parameter must be unset when no model has a sequence length "
                                          r"to set.*Got 9 instead"):
        bench([tiny["ckpt"], tiny["dense"]], config=BenchConfig(**{**LATENCY_ONLY.to_dict(), "seq_len": 9}))


def test_a_file_with_fixed_input_shapes_records_no_seq_len(tiny, tmp_path):
    """Without metadata but with every axis fixed, the file sets its own length: --seq-len
    sizes nothing, so it is refused rather than recorded as if it had been applied."""
    model = onnx.load(str(_strip_metadata(tiny["dense"], tmp_path / "foreign.onnx")))
    for dim, size in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 5, 2)):
        dim.ClearField("dim_param")
        dim.dim_value = size
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    [e] = bench([fixed], config=BenchConfig(runs=2, warmup=0))["models"]
    assert e["inputs"] == {"data": "random", "seq_len": None, "shapes": {"x": [1, 5, 2]}}
    with pytest.raises(ConfigError, match=r"'seq_len' parameter must be unset when no model has a sequence length"):
        bench([fixed], config=BenchConfig(runs=2, warmup=0, seq_len=9))


def test_metadata_that_does_not_match_the_graph_is_one_error(tiny, tmp_path):
    import json

    meta = {p.key: p.value for p in onnx.load(str(tiny["dense"])).metadata_props}
    config = json.loads(meta["rnncompress.model_config"])
    lying = _with_metadata(tiny["dense"], tmp_path / "lying.onnx", task="",
                           model_config=json.dumps({**config, "input_size": 3}))
    with pytest.raises(ExportError, match="onnxruntime cannot run .*lying.onnx \\(one sequence\\)"):
        bench([lying], config=BenchConfig(runs=2, warmup=0, seq_len=4))
    corrupt = _with_metadata(tiny["dense"], tmp_path / "corrupt.onnx", sparsity="{not json")
    with pytest.raises(ExportError, match="corrupt rnncompress metadata: rnncompress.sparsity must be a JSON object; "
                                          "got {not json"):
        bench([corrupt], config=LATENCY_ONLY)
    for key in ("sparsity", "model_config", "task", "session_config"):  # JSON, but not an object
        wrong = _with_metadata(tiny["dense"], tmp_path / f"{key}.onnx", **{key: "3"})
        with pytest.raises(ExportError, match=f"rnncompress.{key} must be a JSON object; got 3"):
            bench([wrong], config=LATENCY_ONLY)
    # A sparsity that is no fraction is refused before timing (it crashed the sparsity plot after it).
    for value, key, shown in (('{"recurrent": "x", "overall": 0.1}', "recurrent", "x"),
                              ('{"recurrent": 0.5, "overall": 7}', "overall", "7")):
        odd = _with_metadata(tiny["dense"], tmp_path / "odd.onnx", sparsity=value)
        with pytest.raises(ExportError, match=re.escape(f"rnncompress.sparsity's '{key}' must be a fraction in [0, 1]; "
                                                        f"got {shown}.")):
            bench([odd, tiny["dense"]], config=LATENCY_ONLY)
    # A format or width the graph does not have is refused, not copied into the report.
    for edit, match in [({"format": "bogus"}, "rnncompress.format 'bogus' is not a format rnncompress writes"),
                        ({"format": "step"}, "rnncompress.format 'step' is a step model's format, but the graph is a "
                                             "full model's"),
                        ({"model_config": json.dumps({**config, "hidden_sizes": [999]})},
                         "rnncompress.model_config says hidden sizes [999], but the graph's recurrent layers have [6]")]:
        odd = _with_metadata(tiny["dense"], tmp_path / "odd.onnx", **edit)
        with pytest.raises(ExportError, match=re.escape(match)):
            bench([odd], config=LATENCY_ONLY)
    for name in ("step", "chunk", "int8"):  # every format rnncompress writes passes
        assert bench([tiny[name]], config=LATENCY_ONLY)["models"][0]["format"] == name


def test_a_renamed_model_file_is_read_for_what_it_is(tiny, tmp_path):
    """Content decides where it tells: an ONNX file named .bin, a checkpoint named .onnx."""
    import shutil

    from models.io import model_file_kind

    onnx_bin, ckpt_onnx = tmp_path / "m.bin", tmp_path / "ckpt.onnx"
    shutil.copy(tiny["dense"], onnx_bin)
    shutil.copy(tiny["ckpt"], ckpt_onnx)
    assert (model_file_kind(onnx_bin), model_file_kind(ckpt_onnx)) == ("onnx", "checkpoint")
    r = bench([onnx_bin, ckpt_onnx], config=LATENCY_ONLY)
    assert [e["kind"] for e in r["models"]] == ["onnx", "checkpoint"]
    with pytest.raises(CheckpointError, match="it is an ONNX model"):
        load_checkpoint(onnx_bin)
    garbage = tmp_path / "x.onnx"
    garbage.write_bytes(b"hello")
    assert model_file_kind(garbage) == "onnx" and model_file_kind(tmp_path / "missing.pt") == "checkpoint"


def test_a_file_name_that_is_not_utf8_is_reported_and_plotted(tiny, tmp_path):
    """A name byte that is not UTF-8 (held by Python as a surrogate) cannot go into JSON,
    Markdown, PNG text or ONNX metadata as it is: it becomes U+FFFD there."""
    import shutil

    odd = tmp_path / "bad\udcffname.pt"
    shutil.copy(tiny["ckpt"], odd)
    report = bench([odd], config=LATENCY_ONLY)
    assert report["models"][0]["name"] == "bad\ufffdname.pt"
    assert write_report(report, tmp_path / "out")[0].exists()


@pytest.fixture(scope="module")
def navigation(tmp_path_factory):
    """A tiny navigation RNN (it has an init layer: the start state comes from the start
    position) with its full, step and chunk files."""
    from compressor.training import TrainConfig, model_config_for, train_new
    from exporters import export_checkpoint
    from models.tasks import make_task

    root = tmp_path_factory.mktemp("nav")
    task = make_task("navigation", {"seq_len": 5, "samples": 64, "val_samples": 16, "test_samples": 24,
                                    "place_cells": 16})
    data = task.load()
    ckpt = root / "nav.pt"
    train_new(task, data, model_config_for(data, "rnn", 8, 1), TrainConfig(epochs=1, batch_size=32), ckpt)
    export_checkpoint(load_checkpoint(ckpt), "dense,step,chunk", root)
    return {"ckpt": ckpt, "dense": root / "nav.onnx", "step": root / "nav.step.onnx", "chunk": root / "nav.chunk.onnx"}


def test_step_files_of_a_model_with_an_init_layer_are_scored_beside_their_checkpoint(navigation):
    """The step graph has no init layer: its start states come from the checkpoint it was
    exported from, and the streaming metric then equals the full model's."""
    config = BenchConfig(runs=2, warmup=0, torch_reference=False, call_floor=False, chunk=2)
    files = [navigation[k] for k in ("dense", "step", "chunk")]
    ck, dense, step, chunk = bench([navigation["ckpt"], *files], config=config)["models"]
    assert ck["metric"]["name"] == "position_error_cm"
    for e in (dense, step, chunk):
        assert e["metric"]["onnxruntime"] == pytest.approx(ck["metric"]["torch"], rel=1e-4), e["name"]
    for e in (step, chunk):
        assert "start states from the init layer of nav.pt: the step graph has none" in e["notes"], e["notes"]
    # without it: timed from zero states, and no metric (a zero start would give a wrong one)
    sha = load_checkpoint(navigation["ckpt"]).sha256
    _, step, chunk = bench(files, config=config)["models"]
    for e in (step, chunk):
        assert e["metric"] is None and e["latency_ms"]["step"]["runs"] == 2
        assert any(f"nav.pt (sha256 {sha[:12]}...) is not among the models; bench it beside that checkpoint" in n
                   for n in e["notes"]), e["notes"]
        assert any("zero states" in n for n in e["notes"]), e["notes"]


def test_the_source_of_a_step_file_is_its_bytes_not_its_name(navigation, tmp_path):
    """A copy of the source checkpoint under another name serves (the note says whose bytes
    they are); another checkpoint under the source's name does not (the note says so)."""
    import shutil

    config = BenchConfig(runs=2, warmup=0, torch_reference=False, call_floor=False, step=False)
    copy = shutil.copy(navigation["ckpt"], tmp_path / "copy.pt")
    _, step = bench([copy, navigation["step"]], config=config)["models"]
    assert step["metric"] is not None
    assert "start states from the init layer of copy.pt (the bytes of nav.pt, its recorded source): the step graph " \
           "has none" in step["notes"]
    other = tmp_path / "other" / "nav.pt"
    other.parent.mkdir()
    ckpt = load_checkpoint(navigation["ckpt"])
    recorded = ckpt.sha256
    ckpt.history = ckpt.history + [{"epoch": 99}]  # the same model, other bytes
    save_checkpoint(other, ckpt)
    _, step = bench([other, navigation["step"]], config=config)["models"]
    assert step["metric"] is None
    assert any(f"the nav.pt among the models is not that one (the file records sha256 {recorded[:12]}...; its "
               "bytes differ)" in n for n in step["notes"]), step["notes"]


@pytest.mark.parametrize("which", ["tiny", "navigation"])
def test_a_model_that_outputs_nan_is_reported_so_and_fails_metric_budgets(which, request, tmp_path):
    """bench records the NaN metric as null listed in metric.not_finite (JSON has no NaN), and
    check fails min_metric on it instead of calling it not applicable. Also where the metric
    of NaN outputs would be a number (navigation decodes the top place cells, which NaN
    activity still has; an argmax of NaN logits is class 0)."""
    from runtime.check import Budgets, check_report

    files = request.getfixturevalue(which)
    model = onnx.load(str(files["dense"]))
    head = next(t for t in model.graph.initializer if "head" in t.name and len(t.dims) == 2)
    w = onnx.numpy_helper.to_array(head).copy()
    w[:] = float("nan")
    head.CopyFrom(onnx.numpy_helper.from_array(w, head.name))
    broken = tmp_path / "nan.onnx"
    onnx.save(model, str(broken))
    report = bench([files["dense"], broken], config=BenchConfig(runs=2, warmup=0, step=False, torch_reference=False))
    validate_report(report)
    e = report["models"][1]
    assert e["metric"]["onnxruntime"] is None and e["metric"]["not_finite"] == ["onnxruntime"]
    assert any("not finite in onnxruntime" in n for n in e["notes"])
    [r] = check_report(report, Budgets(min_metric=10.0), ["nan.onnx"])
    assert r.applicable and not r.passed
    paths = write_report(report, tmp_path / "out")
    assert "NaN/Inf" in paths[1].read_text()


def test_an_input_too_large_to_generate_is_one_error_naming_it(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [100000, 100000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [100000, 100000])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "huge", [x], [y])
    huge = tmp_path / "huge.onnx"
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)]), str(huge))
    with pytest.raises(ExportError, match=r"huge.onnx: input 'x' of shape \[100000, 100000\] has 10,000,000,000 "
                                          r"elements; bench generates random inputs of at most 268,435,456"):
        bench([huge], config=BenchConfig(runs=2, warmup=0))
