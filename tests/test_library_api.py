"""The library as a pipeline step uses it: the package exports, and misuse that a caller can
make (a path for a checkpoint, a task for its data, a dict for a config, one model for a
list) answered with the library's own errors, and inputs never written over."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import compressor
import models
import runtime
from compressor import PruneConfig, TrainConfig, model_config_for, prune_checkpoint, train_new
from exporters import export_checkpoint
from models import ConfigError, load_checkpoint, make_task
from runtime.bench import BenchConfig, bench
from runtime.check import Budgets, check_report

ADDING = {"seq_len": 6, "samples": 128, "val_samples": 32, "test_samples": 32}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object, object]:
    task = make_task("adding", ADDING)
    data = task.load()
    path = tmp_path_factory.mktemp("lib") / "m.pt"
    train_new(task, data, model_config_for(data, "lstm", 8, 1), TrainConfig(epochs=1, batch_size=32), path)
    return path, task, data


def test_the_entry_points_are_exported() -> None:
    for package, names in ((models, ["make_task", "load_checkpoint", "InvariantError", "Progress"]),
                           (compressor, ["train_new", "prune_checkpoint", "meet_irreducible", "TrainConfig"]),
                           (runtime, ["run_pipeline", "load_pipeline", "parse_pipeline", "check_report"])):
        assert all(hasattr(package, n) and n in package.__all__ for n in names), package.__name__


def test_a_path_is_taken_for_a_checkpoint_and_inputs_are_never_written_over(trained, tmp_path: Path) -> None:
    path, task, data = trained
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="is one of the inputs"):
        prune_checkpoint(str(path), PruneConfig(keep=4, finetune_epochs=0), task, data, path)
    assert path.read_bytes() == before
    res = prune_checkpoint(str(path), PruneConfig(keep=4, finetune_epochs=0), task, data, tmp_path / "p.pt")
    assert res.checkpoint.config.hidden_sizes == (4,)
    (r,) = export_checkpoint(tmp_path / "p.pt", "dense", tmp_path / "onnx")
    assert r.path.exists()


@pytest.mark.parametrize("call, match", [
    (lambda p, t, d, tmp: prune_checkpoint(p, PruneConfig(keep=4), t, None, None), "'data' parameter must be the TaskData"),
    (lambda p, t, d, tmp: train_new(t, t, model_config_for(d, "lstm", 4, 1), TrainConfig(epochs=1), None),
     "'data' parameter must be the TaskData"),
    (lambda p, t, d, tmp: train_new(t, d, model_config_for(d, "lstm", 4, 1), TrainConfig(epochs=1), tmp),
     "is a directory"),
    (lambda p, t, d, tmp: export_checkpoint(p, "dense", tmp / "o", options={"atol": 1e-4}),
     "'options' parameter must be an ExportOptions"),
    (lambda p, t, d, tmp: prune_checkpoint(p, {"keep": 4}, t, d, None), "'config' parameter must be a PruneConfig"),
    (lambda p, t, d, tmp: bench([p], config={"runs": 3}), "'config' parameter must be a BenchConfig"),
    (lambda p, t, d, tmp: export_checkpoint(3, "dense", tmp / "o"), "'ckpt' parameter must be a Checkpoint or"),
    (lambda p, t, d, tmp: export_checkpoint(p, "dense", tmp / "o", force="no"), "'force' parameter must be a bool"),
    (lambda p, t, d, tmp: runtime.run_pipeline(runtime.load_pipeline(Path("examples/ci_tiny.toml")), tmp / "r",
                                               dry_run="no"), "'dry_run' parameter must be a bool"),
    (lambda p, t, d, tmp: model_config_for(d, "lstm", 4, 1, "relu"),
     "'nonlinearity' parameter must be unset for cell 'lstm' \\(its gates have fixed nonlinearities"),
])
def test_misuse_gets_the_librarys_own_error(trained, tmp_path: Path, call, match: str) -> None:
    path, task, data = trained
    with pytest.raises(ConfigError, match=match):
        call(path, task, data, tmp_path)


def test_one_model_is_not_read_as_a_list_of_letters(trained) -> None:
    path, _, _ = trained
    report = bench(str(path), config=BenchConfig(runs=3, warmup=0, step=False, torch_reference=False,
                                                 accuracy=False, call_floor=False))
    assert [e["name"] for e in report["models"]] == ["m.pt"]
    [r] = check_report(report, Budgets(max_size_kb=1000), models="m.pt")
    assert r.model == "m.pt" and r.passed
    with pytest.raises(ConfigError, match="'budgets' parameter must be a Budgets"):
        check_report(report, {"max_size_kb": 1000})
    with pytest.raises(ConfigError, match="run_pipeline needs a Pipeline"):
        runtime.run_pipeline({"task": 1}, Path("x"))
    with pytest.raises(ConfigError, match="for a file: load_pipeline"):
        runtime.parse_pipeline(Path("examples/ci_tiny.toml"))
    assert load_checkpoint(path).config.hidden_sizes == (8,)


@pytest.mark.parametrize("make, match", [
    (lambda: TrainConfig(epochs="2"), "'epochs' parameter must be an int. Got '2'"),
    (lambda: TrainConfig(epochs=1.5), "'epochs' parameter must be an int. Got 1.5"),
    (lambda: TrainConfig(lr="1e-3"), "'lr' parameter must be a number. Got '1e-3'"),
    (lambda: TrainConfig(seed=True), "'seed' parameter must be an int. Got True"),
    (lambda: PruneConfig(finetune_lr="1e-3"), "'finetune_lr' parameter must be a number"),
    (lambda: make_task("adding", {"seq_len": "20"}), "'seq_len' parameter must be an int"),
    (lambda: make_task("adding", {"seq_len": 20.5}), "'seq_len' parameter must be an int"),
    (lambda: compressor.ModuliConfig(invert="yes"), "'invert' parameter must be a bool (true or false) (or unset)"),
    (lambda: BenchConfig(step="no"), "'step' parameter must be a bool"),
])
def test_a_config_value_of_the_wrong_kind_is_refused_where_it_enters(make, match: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        make()


def test_numpy_scalars_in_a_config_are_stored_as_python_numbers(tmp_path: Path) -> None:
    """A value computed with numpy (np.int64 from an array, np.float32 from a sweep) passes as
    the number it is and is stored as Python's: it used to pass validation and then fail as a
    TypeError where the checkpoint's config is written as JSON."""
    np = pytest.importorskip("numpy")
    cfg = TrainConfig(epochs=np.int64(1), batch_size=np.int32(32), lr=np.float32(0.5), seed=np.uint16(3),
                      regularizer=compressor.ModuliConfig(space="torus", strength=np.float64(0.1), seed=np.int8(2)),
                      pruning=compressor.PruneSchedule(sparsity=np.float32(0.5), every=np.int64(0)))
    prune = PruneConfig(keep=np.int64(4), finetune_epochs=np.int64(0), seed=np.int64(1))
    task = make_task("adding", {**ADDING, "seq_len": np.int64(6), "samples": np.int32(128)})
    for obj in (cfg, cfg.regularizer, cfg.pruning, prune, task.params):
        assert all(type(v) in (int, float, str, bool, type(None)) for v in vars(obj).values()
                   if not hasattr(v, "__dataclass_fields__")), obj
    data = task.load()
    ckpt = train_new(task, data, model_config_for(data, "lstm", np.int64(8), np.int64(1)), cfg, tmp_path / "m.pt")
    res = prune_checkpoint(ckpt, prune, task, data, tmp_path / "p.pt")
    assert load_checkpoint(tmp_path / "p.pt").config.hidden_sizes == (4,) == res.checkpoint.config.hidden_sizes
    assert load_checkpoint(tmp_path / "m.pt").training["seed"] == 3
