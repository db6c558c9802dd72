"""The prune command: the report it prints, the PNG, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from models.checkpoint import load_checkpoint, save_checkpoint
from helpers import TINY, assert_one_line_error, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prune") / "m.pt"
    r = run(["train", *TINY, "--hidden", "10", "--space", "klein", "--sparsity", "0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_prune_prints_the_report_and_writes_a_plot(tmp_path: Path, trained: Path) -> None:
    out, png = tmp_path / "p.pt", tmp_path / "w.png"
    r = run(["prune", str(trained), "--keep", "5", "--finetune-epochs", "1", "--out", str(out), "--plot", str(png), "-q"])
    assert r.exit_code == 0, r.output
    for text in ("neurons before", "meet-irreducible", "parameters", "recurrent sparsity", "after fine-tuning"):
        assert text in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads(run(["info", str(out), "--json"]).stdout)
    assert info["model"]["hidden_sizes"] == [5] and info["pruning"]["method"] == "lattice"
    # info shows what prune printed: the policy, neurons, and the metric before and after
    text = run(["info", str(out)]).output
    assert "pruning: method lattice (binary, quantile 0.97, degree centrality), keep 5" in text
    p = info["pruning"]
    assert f"  layer 0: {p['layers'][0]['before']} -> 5 neurons ({p['layers'][0]['meet_irreducible']} " \
           "meet-irreducible)" in text
    assert (f"  test {p['metric']}: before {p['test_before']:.4f}, after shrink {p['test_after_shrink']:.4f}, "
            f"after fine-tuning {p['test_after_finetune']:.4f}") in text


def test_info_of_a_norm_pruned_checkpoint_without_fine_tuning(tmp_path: Path, trained: Path) -> None:
    out = tmp_path / "n.pt"
    assert run(["prune", str(trained), "--method", "norm", "--keep", "5", "--finetune-epochs", "0", "--out", str(out),
                "-q"]).exit_code == 0
    text = run(["info", str(out)]).output
    assert "pruning: method norm, keep 5\n" in text and "no fine-tuning" in text
    assert "meet-irreducible" not in text and "variant" not in text and "fine-tuning:" not in text


def test_prune_json_and_auto(tmp_path: Path, trained: Path) -> None:
    r = run(["prune", str(trained), "--keep", "auto", "--finetune-epochs", "0", "--out", str(tmp_path / "a.pt"),
             "--json", "-q"])
    rep = json.loads(r.stdout)
    assert rep["layers"][0]["after"] == rep["layers"][0]["meet_irreducible"]


def test_prune_with_distillation_and_released_masks(tmp_path: Path, trained: Path) -> None:
    out = tmp_path / "d.pt"
    r = run(["prune", str(trained), "--keep", "5", "--finetune-epochs", "1", "--distill", "0.5",
             "--distill-temperature", "3", "--release-masks", "--finetune-strength", "0", "--out", str(out),
             "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["recurrent_sparsity_after"] < 0.05
    info = json.loads(run(["info", str(out), "--json"]).stdout)
    assert info["pruning"]["distill"] == 0.5 and info["pruning"]["release_masks"] is True
    text = run(["info", str(out)]).output
    assert "masks released, regularizer strength 0.0, distilled from the parent (weight 0.5, temperature 3.0)" in text


def test_bad_prune_input(tmp_path: Path, trained: Path) -> None:
    out = tmp_path / "p.pt"
    cases = [
        (["--keep", "11"], "at most the hidden size"),
        (["--keep", "0"], "--keep"),
        (["--keep", "-0.5"], "--keep"),
        (["--keep", "1e-9"], "must be a fraction that keeps at least 1 of the 10 neurons of layer 0"),
        (["--method", "magic"], "Invalid value for '--method'"),
        (["--variant", "fuzzy"], "Invalid value for '--variant'"),
        (["--threshold", "1e9"], "relation is empty"),
        (["--method", "random", "--keep", "auto"], "lattice only"),
        (["--distill", "2"], "--distill"),
        (["--distill", "0.5", "--distill-temperature", "0"], "--distill-temperature"),
        (["--teacher", str(trained)], "distill > 0"),
        (["--distill", "0.5", "--teacher", str(tmp_path / "missing.pt")], "missing.pt"),
        (["--finetune-strength", "-1"], "--finetune-strength"),
        (["--plot", str(tmp_path / "no" / "m.png")], "for --plot does not exist"),  # refused before fine-tuning
        (["--plot", str(tmp_path)], "is a directory"),
        (["--plot", str(tmp_path / "w.pt")], "must be a .png file name"),
        (["--plot", str(trained)], "is one of the inputs"),
        (["--data", str(tmp_path)], "does not apply to task 'adding'"),
        (["--variant", "continuous", "--thresholds", "100000"], "--thresholds must be an int in [1, 1024]"),
        (["--thresholds", "8"], "--thresholds applies to --variant continuous only"),
        (["--method", "norm", "--quantile", "0.9"], "--quantile applies to --method lattice only"),
        (["--variant", "continuous", "--quantile", "0.9"], "--quantile applies to --variant binary only"),
        (["--seed", "3"], "--seed applies to --method random only"),
        (["--method", "norm", "--seed", "3"], "--seed applies to --method random only"),
        (["--finetune-epochs", "0", "--distill", "0.5"], "--distill applies to fine-tuning (--finetune-epochs > 0) only"),
        (["--finetune-epochs", "0", "--release-masks"], "--release-masks applies to fine-tuning"),
        (["--finetune-epochs", "1", "--distill-temperature", "2"],
         "--distill-temperature applies to distillation (--distill > 0) only; drop it."),
        (["--quantile", "0.9", "--threshold", "0.1"], "--threshold (absolute) replaces --quantile"),
        (["--threads", "100000"], "--threads must be an int in [0, 256]"),
    ]
    for args, match in cases:
        assert_one_line_error(run(["prune", str(trained), *args, "--out", str(out), "-q"]), match=match)
        assert not out.exists()
    assert_one_line_error(run(["prune", str(trained), "--out", str(trained), "-q"]), match="is one of the inputs")
    other = tmp_path / "other.pt"
    other.write_text("not mine")
    for flag in ("--out", "--plot"):
        args = ["--out", str(other)] if flag == "--out" else ["--plot", str(other.with_suffix(".png")), "--out", str(out)]
        if flag == "--plot":
            other.with_suffix(".png").write_text("not mine")
        assert_one_line_error(run(["prune", str(trained), *args, "-q"]), match="already exists; pass --force to overwrite it.")
    assert other.read_text() == "not mine" and not out.exists()
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(trained.read_bytes())
    assert_one_line_error(run(["prune", str(trained), "--distill", "0.5", "--teacher", str(teacher), "--out",
                               str(teacher), "-q"]), match="is one of the inputs")
    assert teacher.read_bytes() == trained.read_bytes()


def test_prune_with_a_further_teacher(tmp_path: Path, trained: Path) -> None:
    out = tmp_path / "e.pt"
    r = run(["prune", str(trained), "--keep", "5", "--finetune-epochs", "1", "--distill", "0.5",
             "--teacher", str(trained), "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    info = json.loads(run(["info", str(out), "--json"]).stdout)
    assert info["pruning"]["teachers"] == [{"path": str(trained), "sha256": load_checkpoint(trained).sha256}]
    assert "distilled from the parent and 1 further teacher(s)" in run(["info", str(out)]).output


def test_nan_and_foreign_checkpoints(tmp_path: Path, trained: Path) -> None:
    ckpt = load_checkpoint(trained)
    ckpt.state_dict["rnn.0.weight_hh_l0"][0, 0] = float("nan")
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, ckpt)
    out = tmp_path / "p.pt"
    assert_one_line_error(run(["prune", str(bad), "--out", str(out), "-q"]), match="NaN or Inf")
    import torch

    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "rnncompress-checkpoint/1", "config": {"cell": "lstm", "input_size": 2, "hidden_sizes": [],
                                                                 "output_size": 1}, "state_dict": {}}, foreign)
    assert_one_line_error(run(["prune", str(foreign), "--out", str(out), "-q"]), match="invalid model config")
    assert not out.exists()


def test_prune_names_the_missing_input_and_outputs_that_clash(trained: Path, tmp_path: Path) -> None:
    taken = tmp_path / "p.pt"
    taken.write_bytes(b"mine")
    r = run(["prune", str(tmp_path / "none.pt"), "--out", str(taken), "-q"])
    assert_one_line_error(r, match="does not exist")
    r = run(["prune", str(trained), "--out", str(tmp_path / "q.png"), "--plot", str(tmp_path / "q.png"), "-q"])
    assert_one_line_error(r, match="--plot " + str(tmp_path / "q.png") + " is also --out")
    assert taken.read_bytes() == b"mine" and not (tmp_path / "q.png").exists()


def test_a_pruned_checkpoint_records_the_prune_command(trained: Path, tmp_path: Path) -> None:
    from models.checkpoint import load_checkpoint

    out = tmp_path / "p.pt"
    r = run(["prune", str(trained), "--keep", "5", "--finetune-epochs", "0", "--out", str(out), "-q"])
    assert r.exit_code == 0 and "no fine-tuning (--finetune-epochs 0)" in r.stdout and "after fine" not in r.stdout
    parent, pruned = load_checkpoint(trained), load_checkpoint(out)
    assert pruned.provenance["parent_command"] == parent.provenance["command"]
    assert pruned.provenance["command"].startswith("rnncompress ")
    assert pruned.provenance["parent_sha256"] == parent.sha256


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prune2") / "m2.pt"
    r = run(["train", *TINY, "--layers", "2", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


def test_every_layer_plot_of_a_deep_model_is_checked_before_work(two_layers: Path, tmp_path: Path) -> None:
    taken = tmp_path / "w-1.png"  # layer 1's plot of --plot w.png
    taken.write_bytes(b"mine")
    r = run(["prune", str(two_layers), "--keep", "3", "--out", str(tmp_path / "p.pt"), "--plot", str(tmp_path / "w.png"),
             "-q"])
    assert_one_line_error(r, match=f"--plot {taken} already exists")
    assert taken.read_bytes() == b"mine" and not (tmp_path / "p.pt").exists() and not (tmp_path / "w-0.png").exists()
    parent = tmp_path / "ck-1.png"  # a checkpoint whose name is layer 1's plot: an input, never written over
    parent.write_bytes(two_layers.read_bytes())
    r = run(["prune", str(parent), "--keep", "3", "--out", str(tmp_path / "q.pt"), "--plot", str(tmp_path / "ck.png"),
             "-q", "--force"])
    assert_one_line_error(r, match="is one of the inputs")
    assert parent.read_bytes() == two_layers.read_bytes()
    r = run(["prune", str(two_layers), "--keep", "3", "--finetune-epochs", "0", "--out", str(tmp_path / "p.pt"),
             "--plot", str(tmp_path / "v.png"), "-q"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.glob("v*.png")) == ["v-0.png", "v-1.png"]
    mine = tmp_path / "u.png"  # the name given, which a deep model does not write: no reason to refuse
    mine.write_bytes(b"mine")
    r = run(["prune", str(two_layers), "--keep", "3", "--finetune-epochs", "0", "--out", str(tmp_path / "u.pt"),
             "--plot", str(mine), "-q"])
    assert r.exit_code == 0, r.output
    assert mine.read_bytes() == b"mine" and (tmp_path / "u-1.png").exists()


def test_a_prune_that_fails_writing_leaves_nothing(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.prune

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.prune, "save_checkpoint", full_disk)
    out, png = tmp_path / "p.pt", tmp_path / "w.png"
    r = run(["prune", str(trained), "--keep", "5", "--finetune-epochs", "0", "--out", str(out), "--plot", str(png), "-q"])
    assert_one_line_error(r, match="No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_fine_tuning_strength_needs_a_regularized_parent(tmp_path: Path) -> None:
    parent = tmp_path / "plain.pt"
    assert run(["train", *TINY, "--hidden", "6", "--out", str(parent)]).exit_code == 0  # no --space
    r = run(["prune", str(parent), "--keep", "3", "--finetune-epochs", "1", "--finetune-strength", "2",
             "--out", str(tmp_path / "p.pt"), "-q"])
    assert_one_line_error(r, match=f"--finetune-strength applies to a parent trained with a regularizer ({parent} "
                                   "was not) only; drop it.")
    assert not (tmp_path / "p.pt").exists()
