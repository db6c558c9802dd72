"""The pipeline: configs parse with line-precise errors; unchanged stages are skipped,
changed ones rerun; an interrupted run resumes to the uninterrupted result."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers import assert_one_line_error, run, training_interrupted_at
from models.checkpoint import load_checkpoint
from models.errors import ConfigError, DataError
from models.progress import Progress
from runtime.default_pipeline import DEFAULT_PIPELINE
from runtime.pipeline import plan_pipeline, run_pipeline
from compressor.prune import ignored_settings
from runtime.pipeline_config import SCHEMA, Pipeline, load_pipeline, parse_pipeline, resolved_toml

ROOT = Path(__file__).resolve().parents[2]

TINY = """\
[task]
name = "adding"
seq_len = 6
samples = 200
val_samples = 50
test_samples = 50

[model]
cell = "gru"
hidden = 12

[train]
epochs = 3
batch_size = 50
lr = 1e-2
space = "torus"
sparsity = 0.5

[prune]
keep = 0.5
finetune_epochs = 1

[export]
formats = ["dense", "step", "int8", "step+int8"]

[bench]
runs = 5
warmup = 1
torch_reference = false

[check]
max_size_kb = 1000
"""

WITH_SPARSE = TINY.replace('"step+int8"]', '"step+int8", "sparse"]')  # (min_gain applies)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_parse(path: Path) -> None:
    p = load_pipeline(path)
    assert p.train.epochs >= 1 and p.export["formats"]


def test_default_pipeline_parses() -> None:
    p = parse_pipeline(DEFAULT_PIPELINE, "<default>")
    assert p.task["name"] == "navigation" and p.prune is not None and p.check


def test_bench_streaming_keys() -> None:
    p = parse_pipeline(TINY.replace("[bench]", "[bench]\nchunk = 3\ncall_floor = false"), "<t>")
    assert (p.bench["chunk"], p.bench["call_floor"]) == (3, False)
    with pytest.raises(ConfigError, match="<t>:27: \\[bench\\] chunk: must be int"):
        parse_pipeline(TINY.replace("[bench]", "[bench]\nchunk = \"4\""), "<t>")


def test_the_navigation_example_is_the_embedded_default() -> None:
    # the README and the example say so; every stage's settings must agree
    default, example = parse_pipeline(DEFAULT_PIPELINE, "<default>"), load_pipeline(ROOT / "examples/navigation_torus.toml")
    for stage in ("task", "model", "train", "prune", "export", "bench", "check"):
        assert getattr(example, stage) == getattr(default, stage), stage


@pytest.mark.parametrize("edit, match", [
    (("lr = 1e-2", "lrr = 1e-2"), "<t>:15: [train] lrr: unknown key; did you mean 'lr'?"),
    (("[bench]", "[bnech]"), "<t>:26: [bnech]: unknown table; did you mean [bench]?"),
    (("hidden = 12", 'hidden = "12"'), "<t>:10: [model] hidden: must be int; got '12'."),
    (("sparsity = 0.5", "sparsity = 1.5"), "<t>:17: [train] sparsity: The 'sparsity' parameter must be a float in [0, 1)"),
    (("keep = 0.5", 'keep = "most"'), "<t>:20: [prune] keep:"),
    (("space = \"torus\"", "space = \"donut\""), "<t>:16: [train] space:"),
    (("samples = 200", "sampels = 200"), "has no parameter 'sampels'"),
    (("max_size_kb = 1000", "max_size_kb = true"), "<t>:32: [check] max_size_kb: must be number; got True."),
    (('formats = ["dense", "step", "int8", "step+int8"]', 'formats = ["dense", "fp16"]'), "<t>:24: [export] formats:"),
    (('formats = ["dense", "step", "int8", "step+int8"]', 'formats = ["int8"]\nint8_float_below = -1'),
     "<t>:25: [export] int8_float_below: The 'int8_float_below' parameter must be an int >= 0"),
    (("[train]", "[train\n"), "invalid TOML"),
    (("[bench]", "[bench]\naccuracy = false\nmax_eval = 3"), "<t>:28: [bench] max_eval: applies to the metric"),
    (("keep = 0.5", "keep = 100"), "<t>:20: [prune] keep: must be at most [model] hidden (12) neurons; got 100."),
    (("keep = 0.5", "keep = 0.04"), "<t>:20: [prune] keep: must keep at least 1 of the [model] hidden (12) "
                                    "neurons; got 0.04, which rounds to 0."),
    # beyond TOML 1.0's 64-bit integers (Python's reader takes them; numpy and other readers do not)
    (("[export]", "[export]\natol = 99999999999999999999"), "<t>:24: [export] atol: 99999999999999999999 is outside "
                                                           "TOML's integer range"),
    (("seq_len = 6", "seq_len = 99999999999999999999"), "<t>:3: [task] seq_len: 99999999999999999999 is outside"),
    (("[bench]", "[bench]\nmax_eval = -9999999999999999999"), "<t>:27: [bench] max_eval: -9999999999999999999 is"),
])
def test_bad_config_names_the_line(edit, match: str) -> None:
    text = TINY.replace(*edit)
    with pytest.raises(ConfigError) as e:
        parse_pipeline(text, "<t>")
    assert match in str(e.value)


def test_fine_tuning_recipe_keys_reach_the_prune_stage() -> None:
    text = TINY.replace("keep = 0.5", "keep = 0.5\ndistill = 0.8\ndistill_temperature = 4\nrelease_masks = true\n"
                                      "finetune_strength = 0")
    p = parse_pipeline(text, "<t>")
    assert (p.prune.distill, p.prune.distill_temperature, p.prune.release_masks) == (0.8, 4, True)
    assert p.prune.finetune_strength == 0
    with pytest.raises(ConfigError, match=r"\[prune\] distill: The 'distill' parameter must be a weight in \[0, 1\]"):
        parse_pipeline(TINY.replace("keep = 0.5", "keep = 0.5\ndistill = 3"), "<t>")


def test_export_and_bench_keys_reach_their_stages(first_run, tmp_path: Path) -> None:
    """Every [export] and [bench] key is the export / bench command's option: a changed one
    reruns its stage with it, and the trained and pruned models are kept."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    text = WITH_SPARSE.replace("[export]", "[export]\nir_version = 9\nmin_gain = 0.5\nint8_accuracy_drop = 2\n"
                                    "int8_relative = 0.2\nparity_samples = 20\nmetric_samples = 30")
    p = parse_pipeline(text.replace("[bench]", "[bench]\nseed = 7"), "<t>")
    assert (p.export["int8_accuracy_drop"], p.export["metric_samples"], p.bench["seed"]) == (2, 30, 7)
    log = io.StringIO()
    res = run_pipeline(p, out, progress=Progress(log))
    assert [s.action for s in res.stages] == ["skip", "skip", "run", "run", "run"]
    assert {onnx.load(f, load_external_data=False).ir_version for f in (out / "onnx").glob("*.onnx")} == {9}
    # the notes export prints: this dense model's sparse file is its dense file
    assert "export: note: model.sparse.onnx stores nothing sparse (no initializer saves the --min-gain 0.5" in \
           log.getvalue()
    assert json.loads((out / "bench/report.json").read_text())["settings"]["seed"] == 7


@pytest.mark.parametrize("text, lines, key, match", [
    (TINY, "int8_relative = -0.1", "int8_relative", "The 'int8_relative' parameter must be a finite float >= 0"),
    (TINY, "ir_version = 14", "ir_version", "onnxruntime 1.31 reads at most 13"),
    (TINY, "metric_samples = 0", "metric_samples", "The 'metric_samples' parameter must be a positive int"),
    (TINY, 'verify_data = "random"\nmetric_samples = 100', "metric_samples", "applies to verification on task data"),
    (TINY, 'verify_data = "random"\nint8_relative = 0', "int8_relative", "applies to verification on task data"),
    (TINY, "min_gain = 0.5", "min_gain", "applies to a sparse format (sparse, int8+sparse, ...) only; drop it."),
    (WITH_SPARSE, "min_gain = 1", "min_gain", "The 'min_gain' parameter must be a float in [0, 1)"),
], ids=lambda v: v if isinstance(v, str) and "\n[" not in v else "")
def test_bad_export_keys_name_their_line(text: str, lines: str, key: str, match: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_pipeline(text.replace("[export]", "[export]\n" + lines), "<t>")
    assert f"] {key}: " in str(e.value) and match in str(e.value), str(e.value)


def test_missing_required_table() -> None:
    with pytest.raises(ConfigError, match="missing required table \\[model\\]"):
        parse_pipeline(TINY.replace('[model]\ncell = "gru"\nhidden = 12\n', ""), "<t>")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pipe") / "out"
    res = run_pipeline(parse_pipeline(TINY, "<t>"), out)
    assert [s.action for s in res.stages] == ["run"] * 5
    return out, json.loads((out / "manifest.json").read_text())


def test_manifest_lists_every_artifact(first_run) -> None:
    out, manifest = first_run
    files = {f["file"]: f for s in manifest["stages"].values() for f in s["outputs"]}
    for rel in ("model/trained.pt", "model/pruned.pt", "onnx/model.onnx", "onnx/model.step.onnx",
                "onnx/model.int8.onnx", "onnx/baseline.onnx", "bench/report.json", "check/junit.xml"):
        assert rel in files and (out / rel).exists(), rel
    assert files["model/pruned.pt"]["produced_by"] == "prune"
    assert manifest["stages"]["check"]["passed"] is True
    # Every file in the folder is in the manifest (plots included), and nothing else.
    on_disk = {f.relative_to(out).as_posix() for f in out.rglob("*") if f.is_file()} - {"manifest.json"}
    assert on_disk == set(files) | {"pipeline.toml"}
    assert manifest["pipeline"]["file"] == "pipeline.toml"
    assert manifest["pipeline"]["sha256"] == hashlib.sha256((out / "pipeline.toml").read_bytes()).hexdigest()
    assert {"model/prune.json", "model/pruning.png", "bench/latency_full.png"} <= on_disk


def test_the_folder_keeps_the_pipeline_that_made_it(first_run, tmp_path: Path) -> None:
    """pipeline.toml, run into a copy of the folder, plans the same stages and skips them all."""
    out, _ = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    kept = load_pipeline(copy / "pipeline.toml")
    assert resolved_toml(kept) == resolved_toml(parse_pipeline(TINY, "<t>"))
    # Into a new folder it makes the same models and ONNX files, byte for byte.
    again = tmp_path / "again"
    run_pipeline(kept, again)
    for rel in ("model/trained.pt", "model/pruned.pt", "onnx/model.onnx", "onnx/model.int8.onnx", "pipeline.toml"):
        assert (again / rel).read_bytes() == (out / rel).read_bytes(), rel
    assert [s.action for s in plan_pipeline(kept, copy)] == ["skip"] * 4 + ["run"]  # check always runs
    # Run from the folder's own file, edited: it is an input, so it stays as the user left it.
    edited = (copy / "pipeline.toml").read_text().replace("max_size_kb = 1000", "max_size_kb = 900  # tighter")
    assert "# tighter" in edited
    (copy / "pipeline.toml").write_text(edited)
    run_pipeline(load_pipeline(copy / "pipeline.toml"), copy)
    assert (copy / "pipeline.toml").read_text() == edited
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["pipeline"]["sha256"] == hashlib.sha256(edited.encode()).hexdigest()


def test_the_name_changes_no_artifact_and_any_name_round_trips(first_run, tmp_path: Path) -> None:
    out, _ = first_run
    named = parse_pipeline('[pipeline]\nname = "tiny \U0001f680 \\u007f"\n\n' + TINY, "other.toml")
    run_pipeline(named, tmp_path / "named")
    for rel in ("model/trained.pt", "model/pruned.pt", "onnx/model.onnx"):
        assert (tmp_path / "named" / rel).read_bytes() == (out / rel).read_bytes(), rel
    assert load_pipeline(tmp_path / "named" / "pipeline.toml").name == "tiny \U0001f680 \x7f"


def test_the_report_names_models_as_their_files(first_run) -> None:
    out, _ = first_run
    report = json.loads((out / "bench/report.json").read_text())
    assert report["baseline"] == "baseline"
    # the step+int8 file too: a streaming budget must measure the quantized streaming file
    assert [e["name"] for e in report["models"]] == ["baseline", "model", "model int8", "model step+int8"]
    step_int8 = report["models"][-1]
    assert step_int8["latency_ms"]["full"] is None and step_int8["ratio_to_baseline"]["step_p50"] > 0


def test_prune_report_matches_the_pruned_checkpoint(first_run) -> None:
    out, _ = first_run
    rep = json.loads((out / "model/prune.json").read_text())
    info = json.loads(run(["info", str(out / "model/pruned.pt"), "--json"]).stdout)
    assert [l["after"] for l in rep["layers"]] == info["model"]["hidden_sizes"]
    assert rep["layers"] == info["pruning"]["layers"]
    assert rep["parameters_after"] == info["parameters"]
    assert rep["test_after_finetune"] == info["pruning"]["test_after_finetune"]


def test_unchanged_stages_are_skipped_and_changed_ones_rerun(first_run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)  # the fixture's folder stays the reference run
    before = {p: (out / p).read_bytes() for p in ("model/trained.pt", "model/pruned.pt")}
    (out / "notes.txt").write_text("mine")  # a file of the user's beside the run's own
    (out / "bench" / "mine.png").write_bytes(b"mine")
    again = run_pipeline(parse_pipeline(TINY, "<t>"), out)
    assert [s.action for s in again.stages] == ["skip", "skip", "skip", "skip", "run"]
    changed = run_pipeline(parse_pipeline(TINY.replace("keep = 0.5", "keep = 0.25"), "<t>"), out)
    assert [s.action for s in changed.stages] == ["skip", "run", "run", "run", "run"]
    assert (out / "model/trained.pt").read_bytes() == before["model/trained.pt"]
    assert (out / "model/pruned.pt").read_bytes() != before["model/pruned.pt"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "bench" / "mine.png").read_bytes() == b"mine"


def test_further_teachers_are_inputs_of_the_prune_stage(first_run, tmp_path: Path) -> None:
    """[prune] teachers (relative to the TOML) are hashed like any input: a changed teacher
    reruns pruning, an unchanged one lets it be skipped."""
    reference, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    teacher = tmp_path / "teacher.pt"
    shutil.copy(reference / "model/trained.pt", teacher)
    text = TINY.replace("keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = ["teacher.pt"]')
    with_teacher = run_pipeline(parse_pipeline(text, "<t>", base_dir=tmp_path), out)
    assert [s.action for s in with_teacher.stages][:2] == ["skip", "run"]
    pruned = json.loads(run(["info", str(out / "model/pruned.pt"), "--json"]).stdout)
    assert pruned["pruning"]["teachers"][0]["path"] == str(teacher)
    assert run_pipeline(parse_pipeline(text, "<t>", base_dir=tmp_path), out).stages[1].action == "skip"
    shutil.copy(reference / "model/pruned.pt", teacher)  # same task and outputs, other weights
    assert run_pipeline(parse_pipeline(text, "<t>", base_dir=tmp_path), out).stages[1].action == "run"
    with pytest.raises(ConfigError, match=r"\[prune\] teachers: further teachers are only used by distillation"):
        parse_pipeline(TINY.replace("keep = 0.5", 'keep = 0.5\nteachers = ["teacher.pt"]'), "<t>")
    with pytest.raises(ConfigError, match=r"\[prune\] teachers: must be a list of checkpoint paths"):
        parse_pipeline(TINY.replace("keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = [3]'), "<t>")


def test_interrupted_pipeline_resumes_to_the_same_result(first_run, tmp_path: Path) -> None:
    reference, _ = first_run
    out = tmp_path / "out"
    with training_interrupted_at(2), pytest.raises(KeyboardInterrupt):
        run_pipeline(parse_pipeline(TINY, "<t>"), out)
    assert (out / "model/trained.pt").exists() and not (out / "model/pruned.pt").exists()
    resumed = run_pipeline(parse_pipeline(TINY, "<t>"), out)
    assert resumed.stages[0].action == "resume"
    # Same config, same artifacts: every file but the timings (bench, check) is byte-identical
    # to the uninterrupted run's.
    def artifacts(d: Path) -> dict[str, bytes]:
        return {f.relative_to(d).as_posix(): f.read_bytes() for f in d.rglob("*")
                if f.is_file() and f.parts[len(d.parts)] in ("model", "onnx", "pipeline.toml")}

    assert artifacts(out) == artifacts(reference)
    assert {"model/pruning.png", "pipeline.toml"} <= set(artifacts(out))


def test_a_finished_model_the_manifest_never_recorded_is_kept(first_run, tmp_path: Path) -> None:
    """A run killed between the last epoch and the manifest write: the finished checkpoint
    of these settings is kept (not trained again, nor called a resume). Without a manifest,
    a checkpoint of other settings may be the user's: refused, not trained over; with one,
    it is trained again."""
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    shutil.copy(first_run[0] / "model/trained.pt", out / "model/trained.pt")
    stages = run_pipeline(parse_pipeline(TINY, "<t>"), out, dry_run=True).stages
    assert (stages[0].action, stages[0].reason) == ("keep", "model/trained.pt is a finished run of these settings")
    assert stages[1].action == "run"
    run_pipeline(parse_pipeline(TINY, "<t>"), out)
    assert (out / "model/pruned.pt").read_bytes() == (first_run[0] / "model/pruned.pt").read_bytes()
    other = parse_pipeline(TINY.replace("lr = 1e-2", "lr = 2e-2"), "<t>")
    stages = run_pipeline(other, out, dry_run=True).stages
    assert (stages[0].action, stages[0].reason) == ("run", "model/trained.pt is not a run of these settings")
    bare = tmp_path / "bare"
    (bare / "model").mkdir(parents=True)
    shutil.copy(first_run[0] / "model/trained.pt", bare / "model/trained.pt")
    for dry_run in (True, False):
        with pytest.raises(ConfigError, match=r"holds files \(model/trained.pt\) but no manifest.json of an earlier "
                                              r"run \(model/trained.pt is no training run of this pipeline's settings"):
            run_pipeline(other, bare, dry_run=dry_run)
    assert (bare / "model/trained.pt").read_bytes() == (first_run[0] / "model/trained.pt").read_bytes()



def rerun_with_another_lr_interrupted(first_run, tmp_path: Path) -> tuple[Path, Pipeline]:
    """A copy of the first run's folder, rerun with another lr and stopped by Ctrl-C after
    training's epoch-1 checkpoint; returns the folder and the changed pipeline."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    changed = parse_pipeline(TINY.replace("lr = 1e-2", "lr = 2e-2"), "<t>")
    with training_interrupted_at(2), pytest.raises(KeyboardInterrupt):
        run_pipeline(changed, out)
    return out, changed


def test_a_rerun_interrupted_after_a_settings_change_resumes(first_run, tmp_path: Path) -> None:
    out, changed = rerun_with_another_lr_interrupted(first_run, tmp_path)
    assert run_pipeline(changed, out, dry_run=True).stages[0].action == "resume"
    fresh = tmp_path / "fresh"
    run_pipeline(changed, fresh)
    run_pipeline(changed, out)
    assert (out / "model/trained.pt").read_bytes() == (fresh / "model/trained.pt").read_bytes()


def test_the_folder_holds_only_what_this_pipeline_writes(first_run, tmp_path: Path) -> None:
    """Dropped formats, a dropped [check], and the temporary file of a killed write do not
    stay beside a rerun's files; a damaged folder is refused before any work."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    (out / "bench" / ".report.md.x1y2z3w4.tmp").write_text("half")
    (out / "onnx" / ".model.int8.onnx.abcd1234.tmp").write_text("half")  # of a format this pipeline drops
    (out / "bench" / ".notes.tmp").write_text("mine")  # a user's own temporary files are not ours
    (out / "mine").mkdir()
    (out / "mine" / ".session.ab12cd34.tmp").write_text("mine")
    fewer = TINY.replace('formats = ["dense", "step", "int8", "step+int8"]', 'formats = ["dense", "step"]')
    fewer = fewer[:fewer.index("[check]")]
    run_pipeline(parse_pipeline(fewer, "<t>"), out)
    assert sorted(p.name for p in (out / "onnx").iterdir()) == ["baseline.onnx", "model.onnx", "model.step.onnx"]
    assert not (out / "check").exists()
    assert not (out / "bench" / ".report.md.x1y2z3w4.tmp").exists()
    assert not (out / "onnx" / ".model.int8.onnx.abcd1234.tmp").exists()
    assert (out / "bench" / ".notes.tmp").exists() and (out / "mine" / ".session.ab12cd34.tmp").exists()
    (out / "bench" / ".notes.tmp").unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "check" not in manifest["stages"]
    files = {f["file"] for rec in manifest["stages"].values() for f in rec["outputs"]}
    assert all((out / f).exists() for f in files) and "onnx/model.int8.onnx" not in files
    shutil.rmtree(out / "bench")
    (out / "bench").write_text("not a folder")
    with pytest.raises(ConfigError, match="bench is a file, but the run writes bench/report.json into a folder"):
        run_pipeline(parse_pipeline(fewer, "<t>"), out, dry_run=True)
    (out / "bench").unlink()
    for blocking in ("bench/latency_full.png", "bench/report.md", "model/pruning-7.png"):  # a folder where a file goes
        (out / blocking).mkdir(parents=True)
        with pytest.raises(ConfigError, match=f"{blocking} is a folder, but the run writes a file of that name"):
            run_pipeline(parse_pipeline(fewer, "<t>"), out, dry_run=True)
        (out / blocking).rmdir()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY)
    r = run(["run", str(cfg), "--out", str(tmp_path / "out"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "train" in r.stdout and "new output directory" in r.stdout
    assert not (tmp_path / "out").exists()


def _every_pipeline() -> list[tuple[str, Pipeline]]:
    pipelines = [(p.name, load_pipeline(p)) for p in sorted((ROOT / "examples").glob("*.toml"))]
    random_inputs = TINY.replace("[export]", '[export]\nverify_data = "random"')
    random_inputs = random_inputs[:random_inputs.index("[check]")].replace("[bench]", "[bench]\naccuracy = false")
    return pipelines + [("default", parse_pipeline(DEFAULT_PIPELINE, "<default>")), ("tiny", parse_pipeline(TINY)),
                        ("tiny-random", parse_pipeline(random_inputs))]


@pytest.mark.parametrize("name, p", _every_pipeline(), ids=lambda x: x if isinstance(x, str) else "")
def test_the_resolved_settings_are_the_same_pipeline(name: str, p: Pipeline, tmp_path: Path) -> None:
    resolved = resolved_toml(p)
    again = parse_pipeline(resolved, "resolved.toml", base_dir=tmp_path)  # paths in it are absolute
    fields = ("name", "task", "model", "train", "prune", "export", "bench", "check", "teachers")
    assert {f: getattr(again, f) for f in fields} == {f: getattr(p, f) for f in fields}
    assert resolved_toml(again) == resolved
    # every key that applies is listed, a value-less one as a comment
    shown = {table: set(re.findall(r"^(?:# )?(\w+)(?: =|: not set)", body, re.M))
             for table, body in re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", resolved, re.M | re.S)}
    from compressor.training import ignored_train_settings
    ignored = ignored_train_settings(p.train.regularizer.space, p.train.pruning.sparsity)
    assert shown["train"] == set(SCHEMA["train"]) - set(ignored)
    assert shown["bench"] == set(SCHEMA["bench"]) - ({"max_eval"} if not p.bench["accuracy"] else set())
    # without the keys its formats and verification would not use (the parser refuses them)
    from exporters.export import inapplicable_export_settings, parse_formats
    unused = inapplicable_export_settings(parse_formats(p.export["formats"]), p.export["verify_data"])
    assert shown["export"] == set(SCHEMA["export"]) - set(unused)
    if p.prune is not None:
        skipped = set(ignored_settings(p.prune.method, p.prune.variant, p.prune.edge_prune, p.prune.finetune_epochs,
                                       p.prune.distill)) | ({"quantile"} if p.prune.threshold else set())
        assert shown["prune"] == set(SCHEMA["prune"]) - skipped
    data = p.task["params"].get("data")
    if data is None or Path(data).exists():  # (the npz template names a file the user supplies)
        hashes = [[(s.name, s.input_hash) for s in plan_pipeline(q, tmp_path / "out")] for q in (p, again)]
        assert hashes[0] == hashes[1]


def test_dry_run_prints_the_resolved_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY)
    r = run(["run", str(cfg), "--out", str(tmp_path / "out"), "--dry-run"])
    assert r.exit_code == 0, r.output
    resolved = r.stdout[r.stdout.index("# resolved settings"):]
    assert "warmup = 1" in resolved and "prune_mode = " in resolved  # given, and defaulted
    assert parse_pipeline(resolved).train == parse_pipeline(TINY).train
    # -q: the TOML alone, a pipeline file as it is
    quiet = run(["run", str(cfg), "--out", str(tmp_path / "out"), "--dry-run", "-q"])
    assert quiet.exit_code == 0 and quiet.stdout.startswith("# resolved settings")
    assert resolved_toml(parse_pipeline(quiet.stdout)) == resolved_toml(parse_pipeline(TINY, "p.toml"))


def test_cli_bad_inputs(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace("lr = 1e-2", "lrr = 1e-2"))
    assert_one_line_error(run(["run", str(cfg), "--out", str(tmp_path / "o")]), match="p.toml:15: [train] lrr")
    assert_one_line_error(run(["run", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]),
                          match="does not exist")
    npz = tmp_path / "npz.toml"
    npz.write_text(TINY.replace('name = "adding"\nseq_len = 6\nsamples = 200\nval_samples = 50\ntest_samples = 50',
                                'name = "npz"\ndata = "missing.npz"'))
    r = run(["run", str(npz), "--out", str(tmp_path / "o2"), "-q"])
    assert_one_line_error(r, match="missing.npz does not exist")


NPZ_TASK = 'name = "npz"\ndata = "my_data.npz"'
ADDING_TASK = 'name = "adding"\nseq_len = 6\nsamples = 200\nval_samples = 50\ntest_samples = 50'


def _write_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5, 3)).astype(np.float32)
    np.savez(path, X=X, y=(X[:, :, 0].sum(1) > 0).astype(np.int64))
    return path


def _tree(d: Path) -> dict[str, bytes | None]:
    """Every path under ``d`` with its bytes (None for a directory)."""
    return {p.relative_to(d).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(d.rglob("*"))}


def test_npz_regression_is_trained_and_pruned_as_regression(tmp_path: Path) -> None:
    """Each stage rebuilds the task from its parameters: a float y is MSE in every one of
    them (an unloaded npz task once defaulted to classification, and a [N, K] target crashed)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "my_data.npz", X=X, y=np.stack([X[:, :, 0].sum(1), X[:, :, 1].mean(1)], 1))
    (tmp_path / "p.toml").write_text(TINY.replace(ADDING_TASK, NPZ_TASK).replace(
        '["dense", "step", "int8", "step+int8"]', '["dense"]').replace("max_size_kb = 1000", "min_metric = 100.0"))  # an mse <= 100
    res = run_pipeline(load_pipeline(tmp_path / "p.toml"), tmp_path / "out")
    assert [s.action for s in res.stages] == ["run"] * 5
    for name in ("trained.pt", "pruned.pt"):
        ckpt = load_checkpoint(tmp_path / "out/model" / name)
        assert (ckpt.metrics["metric"], ckpt.metrics["higher_is_better"]) == ("mse", False), name
        assert ckpt.history[-1]["train_loss"] > 0
    report = json.loads((tmp_path / "out/bench/report.json").read_text())
    assert {r["metric"]["name"] for r in report["models"] if r.get("metric")} == {"mse"}


def test_relative_paths_mean_the_same_from_any_working_directory(tmp_path: Path, monkeypatch) -> None:
    """The task's data and [prune] teachers are relative to the TOML and stored absolute:
    a run from one directory is skipped (but for the check) when planned from another, and
    the checkpoints name absolute paths."""
    d = tmp_path / "w" / "npz"
    d.mkdir(parents=True)
    data = _write_npz(d / "my_data.npz")
    r = run(["train", "--task", "npz", "--data", str(data), "--hidden", "4", "--epochs", "1", "--batch-size", "40",
             "--out", str(d / "teacher.pt"), "-q"])
    assert r.exit_code == 0, r.output
    (d / "p.toml").write_text(TINY.replace(ADDING_TASK, NPZ_TASK).replace(
        "keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = ["teacher.pt"]'))
    monkeypatch.chdir(tmp_path / "w")
    p = load_pipeline("npz/p.toml")
    assert (p.task["params"]["data"], p.teachers) == (str(data), (str(d / "teacher.pt"),))
    first = run_pipeline(p, Path("npz/out"))
    assert [s.action for s in first.stages] == ["run"] * 5
    trained, pruned = (load_checkpoint(d / "out/model" / f) for f in ("trained.pt", "pruned.pt"))
    assert trained.task["params"]["data"] == str(data)
    assert pruned.pruning["teachers"][0]["path"] == str(d / "teacher.pt")
    monkeypatch.chdir(d)
    again = plan_pipeline(load_pipeline("p.toml"), Path("out"))
    assert [s.action for s in again] == ["skip", "skip", "skip", "skip", "run"]
    assert run(["run", "p.toml", "--out", "out", "--dry-run"]).stdout.count("inputs and outputs unchanged") == 4


def test_a_teacher_of_another_task_is_refused_before_any_work(first_run, tmp_path: Path) -> None:
    from models.checkpoint import save_checkpoint

    other = load_checkpoint(first_run[0] / "model/trained.pt")
    other.task = {**other.task, "name": "navigation"}
    save_checkpoint(tmp_path / "teacher.pt", other)
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace("keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = ["teacher.pt"]'))
    for args in (["--dry-run"], []):
        r = run(["run", str(cfg), "--out", str(tmp_path / "out"), *args])
        assert_one_line_error(r, match="[prune] teachers: Teacher " + str(tmp_path / "teacher.pt") +
                              " was trained on task 'navigation', this pipeline's on 'adding'")
    assert not (tmp_path / "out").exists()


def _bad_inputs(tmp_path: Path) -> list[tuple[str, list[str], str]]:
    """(name, run arguments, message) of runs refused before any work."""
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY)
    npz = tmp_path / "npz.toml"
    npz.write_text(TINY.replace(ADDING_TASK, NPZ_TASK))
    empty = tmp_path / "empty.toml"
    empty.write_text(TINY.replace(ADDING_TASK, 'name = "npz"\ndata = ""'))
    teacher = tmp_path / "teacher.toml"
    teacher.write_text(TINY.replace("keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = ["t/nope.pt"]'))
    not_ckpt = tmp_path / "notckpt.toml"
    not_ckpt.write_text(TINY.replace("keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = ["p.toml"]'))
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/manifest.json").write_text('{"name": "someone else\'s"}')
    from runtime.pipeline import MANIFEST_SCHEMA

    damaged = {"stages": {"stages": "x"}, "outputs": {"stages": {"train": {"outputs": "x"}}},
               "entry": {"stages": {"train": {"outputs": [{"file": 1}]}}},
               "stage": {"stages": {"deploy": {}}}, "pipeline": {"stages": {}, "pipeline": []}}
    for name, manifest in damaged.items():
        (tmp_path / f"damaged-{name}").mkdir()
        manifest = {"schema": MANIFEST_SCHEMA, **manifest}
        (tmp_path / f"damaged-{name}/manifest.json").write_text(json.dumps(manifest))
    out = str(tmp_path / "out")
    cases = [
        ("missing data", [str(npz), "--out", out], f"npz.toml:3: [task] data: npz file {tmp_path / 'my_data.npz'} "
                                                   "does not exist"),
        ("no data", [str(empty), "--out", out], "[task] data: Task 'npz' needs a data file"),
        ("missing teacher", [str(teacher), "--out", out],
         f"teacher.toml:22: [prune] teachers: Checkpoint {tmp_path / 't/nope.pt'} does not exist"),
        ("teacher not a checkpoint", [str(not_ckpt), "--out", out], "[prune] teachers: Checkpoint"),
        ("out under a file", [str(cfg), "--out", str(tmp_path / "a_file/out")], "is not a directory"),
        ("out is a file", [str(cfg), "--out", str(tmp_path / "a_file")], "exists and is not a directory"),
        ("pipeline is a directory", [str(tmp_path), "--out", out], "is a directory; give the .toml file"),
        ("foreign manifest", [str(cfg), "--out", str(tmp_path / "foreign")], "is not an rnncompress manifest"),
        *((f"damaged manifest ({name})", [str(cfg), "--out", str(tmp_path / f"damaged-{name}")],
           "manifest.json is damaged") for name in damaged),
    ]
    if Path("/proc/self").is_dir():  # a directory root itself may not write to
        cases.append(("out not writable", [str(cfg), "--out", "/proc/rnncompress-out"], "is not writable"))
    return cases


def test_bad_inputs_are_refused_before_anything_is_created(tmp_path: Path) -> None:
    """With --dry-run and for a real run: one line, exit 2, and no file or folder created."""
    for name, args, match in _bad_inputs(tmp_path):
        before = _tree(tmp_path)
        for dry in (["--dry-run"], []):
            r = run(["run", *args, *dry, "-q"])
            assert_one_line_error(r, code=2, match=match)
            assert "Traceback" not in r.output and _tree(tmp_path) == before, (name, dry)


def test_a_folder_of_other_files_is_refused_untouched(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY)
    # (a file where the checkpoint goes too: only a stopped first run of these settings is ours)
    for mine in ("bench/report.json", "model/trained.pt"):
        out = tmp_path / "mine" / mine.split("/")[0]
        (out / mine).parent.mkdir(parents=True)
        (out / mine).write_text('{"mine": 1}')
        for args in ([], ["--dry-run"]):
            r = run(["run", str(cfg), "--out", str(out), "-q", *args])
            assert_one_line_error(r, match=f"already holds files ({mine}) but no manifest.json")
        assert sorted(f.relative_to(out).as_posix() for f in out.rglob("*")) == [mine.split("/")[0], mine]
        assert (out / mine).read_text() == '{"mine": 1}'
    assert_one_line_error(run(["run", str(cfg), "--out", "", "-q"]), match="Invalid value for '--out': an empty path")
    # What a first run killed mid-write leaves (the checkpoint, a temp file) is ours: accepted.
    killed = tmp_path / "killed"
    (killed / "model").mkdir(parents=True)
    (killed / "model/.trained.pt.x1y2z3w4.tmp").write_bytes(b"half")
    assert run(["run", str(cfg), "--out", str(killed), "--dry-run", "-q"]).exit_code == 0


def test_a_run_failing_in_a_stage_leaves_no_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "my_data.npz").write_bytes(b"not an npz")  # exists: only loading it fails
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace(ADDING_TASK, NPZ_TASK))
    assert_one_line_error(run(["run", str(cfg), "--out", str(tmp_path / "out"), "-q"]), code=2,
                          match=str(tmp_path / "my_data.npz"))
    assert not (tmp_path / "out").exists()


def test_a_missing_stage_input_gets_the_advice_for_where_it_comes_from(first_run, tmp_path: Path) -> None:
    """A file an earlier stage writes: rerun, that stage redoes it. A file the user gives
    (a teacher): restore it or fix the path. (Both removed after planning, as by another
    process: the inputs are checked before the plan.)"""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    changed = parse_pipeline(TINY.replace("keep = 0.5", "keep = 0.25"), "<t>")
    with pytest.raises(DataError, match=r"Stage 'prune' needs model/trained.pt \(checkpoint\), written by stage "
                                        r"'train', but it is missing .*run the pipeline again: it redoes 'train'"):
        run_pipeline(changed, out, on_plan=lambda stages: (out / "model/trained.pt").unlink())
    shutil.rmtree(out)
    shutil.copytree(first_run[0], out)
    teacher = tmp_path / "teacher.pt"
    shutil.copy(out / "model/trained.pt", teacher)
    text = TINY.replace("keep = 0.5", 'keep = 0.5\ndistill = 0.5\nteachers = ["teacher.pt"]')
    with pytest.raises(DataError, match=f"Stage 'prune' needs {teacher} \\(teacher0\\), which is missing; no stage "
                                        "writes it: it is an input of <t>, so restore it or fix the path there"):
        run_pipeline(parse_pipeline(text, "<t>", base_dir=tmp_path), out, on_plan=lambda stages: teacher.unlink())


def test_run_prints_the_tables_without_image_links(first_run, tmp_path: Path) -> None:
    """-q: the budget table, the artifacts line and the verdict only. Otherwise also the
    plan and the benchmark table, with the plots named (no markdown image links)."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY)
    quiet = run(["run", str(cfg), "--out", str(out), "-q"])
    assert quiet.exit_code == 0, quiet.output
    lines = quiet.stdout.splitlines()
    assert lines[0].split() == ["model", "budget", "limit", "measured", "result", "what"]
    assert [ln.split()[-1] for ln in lines[-2:]] == ["sha256)", "pass"] and lines[-1] == "all 3 budgets pass"
    assert "![" not in quiet.stdout and "| model |" not in quiet.stdout and "stage" not in quiet.stdout
    full = run(["run", str(cfg), "--out", str(out)])
    assert full.exit_code == 0, full.output
    assert "![" not in full.stdout and "| model | kind |" in full.stdout and "stage" in full.stdout
    [plots] = [ln for ln in full.stdout.splitlines() if ln.startswith("plots in ")]
    assert "bench/latency_full.png" in plots and "model/pruning.png" in plots
    assert lines[0] in full.stdout.splitlines()  # the same budget table


def test_run_help_names_the_default_budgets() -> None:
    text = " ".join(run(["run", "--help"]).stdout.split())
    for key, value in parse_pipeline(DEFAULT_PIPELINE, "<default>").check.items():
        assert f"{key} = {value}" in text, key


def test_broken_budget_exits_1(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace("max_size_kb = 1000", "max_size_kb = 0.001"))
    r = run(["run", str(cfg), "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and "artifacts:" in r.stdout
    assert r.stderr.startswith("error: 3 of 3 budgets broken: model: size KB") and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("budget, formats, ok", [
    ("max_latency_ratio = 0.5", '["dense"]', False),
    ("max_metric_drop = 0.1", '["dense", "step"]', False),
    ("max_step_latency_ratio = 0.5", '["dense", "int8"]', False),
    ("max_latency_ratio = 0.5", '["dense", "int8"]', True),
    ("max_p50_ms = 100", '["dense"]', True),
])
def test_relative_budgets_without_prune_need_something_to_compare(budget: str, formats: str, ok: bool) -> None:
    text = ('[task]\nname = "adding"\n[model]\ncell = "gru"\nhidden = 4\n[train]\nepochs = 1\n'
            f'[export]\nformats = {formats}\n[check]\n{budget}\n')
    if ok:
        parse_pipeline(text, "<t>")
    else:
        with pytest.raises(ConfigError, match=r"<t>:11: \[check\] .*without \[prune\] is the final model itself"):
            parse_pipeline(text, "<t>")


def test_a_refused_run_prints_only_its_error(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace('name = "adding"\nseq_len = 6\nsamples = 200\nval_samples = 50\ntest_samples = 50',
                                'name = "npz"\ndata = "missing.npz"'))
    r = run(["run", str(cfg), "--out", str(tmp_path / "o"), "--dry-run"])
    assert_one_line_error(r, match="missing.npz does not exist")
    assert r.stdout == ""


def test_a_deleted_output_is_named_as_the_reason_to_rerun(first_run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    (out / "onnx/model.step.onnx").unlink()
    stages = run_pipeline(parse_pipeline(TINY, "<t>"), out, dry_run=True).stages
    assert [(s.action, s.reason) for s in stages[:3]] == [
        ("skip", "inputs and outputs unchanged"), ("skip", "inputs and outputs unchanged"),
        ("run", "output missing or changed: onnx/model.step.onnx")]


def test_a_manifest_naming_files_outside_the_folder_is_refused(first_run, tmp_path: Path) -> None:
    # The run deletes the stale files its manifest lists: a hand-edited (or cached, or
    # foreign) manifest must never make it delete anything outside --out.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for bad in ("../victim.txt", str(victim), "model/../../victim.txt", "", "model\\..\\x"):
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(first_run[0], out)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["stages"]["prune"]["outputs"].append({"file": bad, "sha256": "0" * 64, "bytes": 8})
        (out / "manifest.json").write_text(json.dumps(manifest))
        no_prune = TINY[:TINY.index("[prune]")] + TINY[TINY.index("[export]"):]
        with pytest.raises(ConfigError, match="manifest.json is damaged .*inside the folder"):
            run_pipeline(parse_pipeline(no_prune, "<t>"), out)
        assert victim.read_text() == "precious"


def test_a_second_run_into_a_folder_in_use_is_refused(first_run, tmp_path: Path) -> None:
    import fcntl
    import os

    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    before = {f: f.read_bytes() for f in out.rglob("*") if f.is_file()}
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the first run holds it
        shutil.rmtree(out / "check")
        (out / "check").mkdir()  # empty, as the holder's folder is between its mkdir and its first file
        with pytest.raises(ConfigError, match=f"--out {out} is in use by another rnncompress run"):
            run_pipeline(parse_pipeline(TINY.replace("lr = 1e-2", "lr = 2e-2"), "<t>"), out)
        assert (out / "check").is_dir()  # the refused run touched nothing of the holder's
        # nor is a dry run planned: the folder is mid-change (the holder's training would look interrupted)
        with pytest.raises(ConfigError, match=f"--out {out} is in use by another rnncompress run"):
            run_pipeline(parse_pipeline(TINY, "<t>"), out, dry_run=True)
    finally:
        os.close(fd)
    before = {f: v for f, v in before.items() if f.parent.name != "check"}
    assert {f: f.read_bytes() for f in out.rglob("*") if f.is_file()} == before
    assert [s.action for s in run_pipeline(parse_pipeline(TINY, "<t>"), out).stages][:4] == ["skip"] * 4


def test_a_cancelled_rerun_leaves_no_earlier_verdict_behind(first_run, tmp_path: Path) -> None:
    # CI publishes check/junit.xml even when the job is cancelled: the earlier run's green
    # verdict must not be there once this run's training has started over.
    out, changed = rerun_with_another_lr_interrupted(first_run, tmp_path)
    for stale in ("check/junit.xml", "check/check.json", "bench/report.json", "onnx/model.onnx", "model/pruned.pt"):
        assert not (out / stale).exists(), stale
    assert sorted(json.loads((out / "manifest.json").read_text())["stages"]) == ["train"]
    assert [s.action for s in run_pipeline(changed, out).stages] == ["resume"] + ["run"] * 4
    # A first run stopped in its first epoch leaves no folder at all, nor the parents it made.
    with training_interrupted_at(0), pytest.raises(KeyboardInterrupt):
        run_pipeline(changed, tmp_path / "new" / "nested")
    assert not (tmp_path / "new").exists()


def test_an_interrupted_run_this_version_cannot_resume_is_trained_again(first_run, tmp_path: Path) -> None:
    import torch

    out, changed = rerun_with_another_lr_interrupted(first_run, tmp_path)
    raw = torch.load(out / "model/trained.pt", weights_only=True)
    groups = raw["resume"]["optimizer"]["param_groups"]
    raw["resume"]["optimizer"]["param_groups"] = groups + [dict(groups[0], params=[])]  # an earlier grouping
    torch.save(raw, out / "model/trained.pt")
    plan = run_pipeline(changed, out, dry_run=True).stages[0]
    assert plan.action == "run"  # not "resume", which would fail on every rerun


def test_a_rerun_whose_data_cannot_be_read_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    """The data is read before the outputs of the stages to rerun are removed: a rerun on a
    data file that exists but is not what the task reads fails with the file's error and
    every artifact of the last good run (report, models, manifest, pipeline.toml) kept."""
    data = _write_npz(tmp_path / "d.npz")
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace(ADDING_TASK, NPZ_TASK.replace("my_data.npz", str(data))))
    out = tmp_path / "out"
    run_pipeline(load_pipeline(cfg), out)
    before = _tree(out)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    cfg.write_text(TINY.replace(ADDING_TASK, NPZ_TASK.replace("my_data.npz", str(bad))).replace("lr = 1e-2", "lr = 2e-2"))
    r = run(["run", str(cfg), "--out", str(out), "-q"])
    assert r.exit_code == 2 and str(bad) in r.output, r.output
    assert _tree(out) == before


@pytest.mark.parametrize("where", ["teacher", "data"])
def test_an_input_among_the_files_the_run_writes_is_refused(first_run, tmp_path: Path, where: str) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    before = _tree(out)
    cfg = tmp_path / "p.toml"
    if where == "teacher":
        cfg.write_text(TINY.replace("keep = 0.5", f'keep = 0.5\ndistill = 0.5\nteachers = ["{out}/model/trained.pt"]'))
        match = "[prune] teachers: " + str(out / "model/trained.pt") + " is model/trained.pt of the --out folder"
    else:
        cfg.write_text(TINY.replace(ADDING_TASK, NPZ_TASK.replace("my_data.npz", str(out / "bench/report.md"))))
        match = "[task] data: " + str(out / "bench/report.md") + " is bench/report.md of the --out folder"
    assert_one_line_error(run(["run", str(cfg), "--out", str(out)]), match=match)
    assert _tree(out) == before


def test_bench_rounds_are_bounded_before_any_work() -> None:
    with pytest.raises(ConfigError, match="runs"):
        parse_pipeline(TINY.replace("runs = 5", "runs = 99999999999999"), "<t>")


def test_a_model_too_large_to_train_is_refused_before_the_folder_changes(first_run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    before = _tree(out)
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace("hidden = 12", "hidden = 60000"))
    r = run(["run", str(cfg), "--out", str(out), "-q"])
    assert r.exit_code == 2 and "Training a model of" in r.output and "; lower " in r.output, r.output
    assert "[model] hidden or layers." in r.output
    assert _tree(out) == before


def test_generated_data_too_large_names_the_task_table_not_a_data_key(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(TINY.replace("test_samples = 50", f"test_samples = {2**62}"))
    r = run(["run", str(cfg), "--out", str(tmp_path / "out"), "-q"])
    assert_one_line_error(r, match=f"p.toml:{TINY.splitlines().index('[task]') + 1}: [task]: The adding data (200 training + 50 validation + "
                                   f"{2**62:,} test sequences of 6 steps) would need")
    assert "[task] data" not in r.output and not (tmp_path / "out").exists()


def test_a_file_the_manifest_does_not_list_is_not_written_over(first_run, tmp_path: Path, monkeypatch) -> None:
    """A format the pipeline adds, where the user keeps a file of their own: refused, the file
    untouched. What a stage killed before its record wrote is ours: the rerun takes it over."""
    fewer = TINY.replace('formats = ["dense", "step", "int8", "step+int8"]', 'formats = ["dense", "step"]')
    out = tmp_path / "out"
    run_pipeline(parse_pipeline(fewer, "<t>"), out)
    (out / "onnx/model.int8.onnx").write_bytes(b"my own model")
    for dry_run in (True, False):
        with pytest.raises(ConfigError, match=r"onnx/model.int8.onnx is not a file an earlier run wrote \(its "
                                              r"manifest.json does not list it\), but this run's export stage"):
            run_pipeline(parse_pipeline(TINY, "<t>"), out, dry_run=dry_run)
    assert (out / "onnx/model.int8.onnx").read_bytes() == b"my own model"
    (out / "onnx/model.int8.onnx").unlink()

    import runtime.pipeline as pipeline
    record = pipeline.Manifest.record

    def killed_after_export_wrote(self, plan, *args, **kwargs):
        if plan.name == "export":
            raise KeyboardInterrupt
        return record(self, plan, *args, **kwargs)

    monkeypatch.setattr(pipeline.Manifest, "record", killed_after_export_wrote)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(parse_pipeline(TINY, "<t>"), out)
    monkeypatch.setattr(pipeline.Manifest, "record", record)
    assert (out / "onnx/model.int8.onnx").exists()
    assert json.loads((out / "manifest.json").read_text())["unfinished"] == ["export"]
    stages = run_pipeline(parse_pipeline(TINY, "<t>"), out).stages
    assert [s.action for s in stages] == ["skip", "skip", "run", "run", "run"]
    assert "unfinished" not in json.loads((out / "manifest.json").read_text()) or \
        json.loads((out / "manifest.json").read_text())["unfinished"] == []
    assert (out / "onnx/model.int8.onnx").read_bytes() == (first_run[0] / "onnx/model.int8.onnx").read_bytes()
