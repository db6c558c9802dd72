"""The train and info commands: a working run, and bad input as one line + exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY, assert_one_line_error, run, training_interrupted_at


def test_train_then_info(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    r = run(["train", *TINY, "--space", "torus", "--sparsity", "0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "recurrent sparsity 0.500" in r.output
    r = run(["info", str(out), "--json"])
    d = json.loads(r.stdout)
    assert d["state"] == "complete" and d["sparsity"]["recurrent"] == pytest.approx(0.5, abs=0.01)
    assert len(d["history"]) == 2 and d["regularizer"]["space"] == "torus"
    r = run(["info", str(out)])
    assert "rnn.0.weight_hh_l0" in r.output and "val_mse" in r.output


def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert run(["train", *TINY, "--out", str(out)]).exit_code == 0
    before = out.read_bytes()
    r = run(["train", *TINY, "--out", str(out)])
    assert_one_line_error(r, match="already exists (complete checkpoint); pass --force to overwrite it.")
    assert out.read_bytes() == before
    link = tmp_path / "link.pt"
    link.symlink_to(tmp_path / "not-yet.pt")  # a link the user made, to nothing (yet)
    assert_one_line_error(run(["train", *TINY, "--out", str(link)]), match="(a symbolic link to nothing: dangling, "
                                                                         "or a loop); pass --force to replace it.")
    assert link.is_symlink()
    r = run(["train", *TINY, "--out", str(out), "--resume"])
    assert_one_line_error(r, match="--resume continues the stored run")
    r = run(["train", "--out", str(out), "--resume", "-q"])
    assert_one_line_error(r, match="finished run")
    r = run(["train", "--out", str(out), "--resume", "--force", "-q"])
    assert_one_line_error(r, match="--force does not apply to --resume, which continues the checkpoint at --out")
    for changed in (["--optimizer", "sgd"], ["--weight-decay", "0.5"], ["--p", "2"], ["--prune-mode", "global"],
                    ["--no-invert"], ["--seq-len", "9"]):
        r = run(["train", "--out", str(out), "--resume", "-q", *changed])
        option = "--invert/--no-invert" if changed[0] == "--no-invert" else changed[0]
        assert_one_line_error(r, match=f"--resume continues the stored run with its own settings; drop {option}.")
    assert out.read_bytes() == before


@pytest.mark.parametrize("args, match", [
    (["--space", "donut"], "--space must be one of"),
    (["--space", "torus", "--inhibitor", "mexican-hat"], "--inhibitor must be one of"),
    (["--sparsity", "1.0"], "--sparsity must be a float in [0, 1)"),
    (["--sparsity", "-0.2"], "--sparsity"),
    (["--hidden", "0"], "--hidden must be a positive int"),
    (["--hidden", "-3"], "--hidden"),
    (["--layers", "0"], "--layers"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "-1"], "--lr"),
    (["--permute-pixels"], "does not apply to task 'adding'"),
    (["--weight-decay", "nan"], "--weight-decay must be a float >= 0 (at most 3.4e38"),
    (["--weight-decay", "inf"], "--weight-decay must be a float >= 0 (at most 3.4e38"),
    (["--weight-decay", "1e39"], "--weight-decay must be a float >= 0 (at most 3.4e38"),
    (["--lr", "1e39", "--optimizer", "sgd"], "--lr must be a positive float (at most 3.4e38"),
    (["--grad-clip", "nan"], "--grad-clip must be a finite float >= 0"),
    (["--cell", "lstm", "--nonlinearity", "relu"], "--nonlinearity applies to --cell rnn only"),
    (["--threads", "100000"], "--threads must be an int in [0, 256]"),
    (["--strength", "5"], "--strength applies to a regularizer (space; the default none trains without one)"),
    (["--learn-embedding"], "--learn-embedding applies to a regularizer"),
    (["--space", "l1", "--inhibitor", "gauss"], "--inhibitor applies to a space with geometry"),
    (["--schedule", "linear"], "--schedule applies to magnitude pruning (sparsity > 0) only; drop it."),
    (["--sparsity", "0", "--prune-end", "0.5"], "--prune-end applies to magnitude pruning (sparsity > 0) only"),
    (["--hidden", "100000000"], "--hidden must be an int in [1, 65536]"),
    (["--layers", "100000"], "--layers must be an int in [1, 128]"),
    (["--hidden", "60000"], "Training a model of"),  # refused before torch allocates (and the kernel kills it)
    (["--seed", "-1"], "--seed must be an int in [0, 4294967295]"),
    (["--seed", str(2**63 - 1)], "--seed must be an int in [0, 4294967295]"),
    (["--sparsity", "0.5", "--prune-start", "0.8", "--prune-end", "0.2"], "--prune-start must be below prune_end (0.2), "
                                                                          "where magnitude pruning ends. Got 0.8"),
    (["--sparsity", "0.5", "--prune-start", "0.8"], "--prune-start must be below prune_end (0.7)"),  # (the default end)
    (["--sparsity", "0.5", "--prune-end", "1.5"], "--prune-end must be a fraction of training in (0, 1]"),
])
def test_bad_training_options(tmp_path: Path, args: list[str], match: str) -> None:
    out = tmp_path / "m.pt"
    r = run(["train", *TINY, *args, "--out", str(out)])
    assert_one_line_error(r, match=match)
    assert not out.exists()


def test_bad_data_paths(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    r = run(["train", "--task", "smnist", "--data", str(tmp_path / "nothing"), "--out", str(out), "-q"])
    assert_one_line_error(r, match="does not exist")
    (tmp_path / "partial").mkdir()
    r = run(["train", "--task", "smnist", "--data", str(tmp_path / "partial"), "--out", str(out), "-q"])
    assert_one_line_error(r, match="incomplete: missing")
    r = run(["train", "--task", "charlm", "--data", str(tmp_path), "--out", str(out), "-q"])
    assert_one_line_error(r, match="is a directory; give the file itself")
    (tmp_path / "file.txt").write_text("x")
    r = run(["train", "--task", "smnist", "--data", str(tmp_path / "file.txt"), "--out", str(out), "-q"])
    assert_one_line_error(r, match="is a file; --data must be the directory holding the four idx files")
    assert not out.exists()


def test_info_on_bad_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    assert_one_line_error(run(["info", str(junk)]), match="junk.pt is neither a torch checkpoint nor an ONNX model")
    toml = tmp_path / "p.toml"
    toml.write_text("[a]")
    for command in (["info", str(toml)], ["bench", str(toml), "--out-dir", str(tmp_path / "b")]):  # either kind
        assert_one_line_error(run(command), match="p.toml is neither a torch checkpoint nor an ONNX model (a TOML "
                                                  "file: pipelines go to `rnncompress run`)")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert_one_line_error(run(["info", str(legacy)]), match="legacy.pt is not an rnncompress checkpoint")
    assert_one_line_error(run(["info", str(tmp_path / "none.pt")]), match="does not exist")


def test_smnist_cli_on_generated_mnist(tmp_path: Path, mnist_dir: Path) -> None:
    out = tmp_path / "s.pt"
    r = run(["train", "--task", "smnist", "--data", str(mnist_dir), "--hidden", "16", "--epochs", "2",
             "--space", "klein", "--sparsity", "0.5", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.output


def test_unwritable_output_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An --out that cannot be written is refused up front (not after the training it would
    lose), including where os.access lies (root on a read-only or virtual file system)."""
    import models.io

    real_mkstemp = models.io.tempfile.mkstemp
    ro = tmp_path / "ro"
    ro.mkdir()

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == ro:
            raise OSError(30, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(models.io.tempfile, "mkstemp", mkstemp)
    r = run(["train", *TINY, "--out", str(ro / "m.pt")])
    assert_one_line_error(r, match="for --out is not writable")
    assert "epoch" not in r.output
    assert_one_line_error(run(["train", *TINY, "--out", str(tmp_path)]), match="is a directory")
    # and a write that fails anyway (the probe passed, the disk filled up) is one line too
    with pytest.raises(models.io.RnnCompressError, match="Cannot write .*read-only file system"):
        models.io.atomic_write_text(ro / "x.txt", "x")
    assert list(ro.iterdir()) == []


def test_file_system_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cli.train

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "m.pt"))

    monkeypatch.setattr(cli.train, "train_new", full)
    r = run(["train", *TINY, "--out", str(tmp_path / "m.pt")])
    assert_one_line_error(r, match="No space left on device: ")
    assert "m.pt" in r.stderr
    assert r.exit_code == 2


def test_navigation_needs_three_place_cells(tmp_path: Path) -> None:
    r = run(["train", "--task", "navigation", "--place-cells", "2", "--out", str(tmp_path / "m.pt"), "-q"])
    assert_one_line_error(r, match="--place-cells must be an int >= 3")


def test_navigation_task_options_reach_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    r = run(["train", "--task", "navigation", "--tuning", "dog", "--place-cells", "16", "--samples", "64",
             "--seq-len", "5", "--hidden", "4", "--epochs", "1", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    params = json.loads(run(["info", str(out), "--json"]).stdout)["task"]["params"]
    assert (params["tuning"], params["place_cells"], params["samples"], params["seq_len"]) == ("dog", 16, 64, 5)
    r = run(["train", *TINY, "--tuning", "dog", "--out", str(tmp_path / "a.pt"), "-q"])
    assert_one_line_error(r, match="--tuning does not apply to task 'adding'")


def test_output_never_replaces_the_data(tmp_path: Path) -> None:
    import numpy as np

    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.standard_normal((20, 4, 3)).astype(np.float32), y_train=np.arange(20) % 2)
    before = data.read_bytes()
    r = run(["train", "--task", "npz", "--data", str(data), "--epochs", "1", "--force", "--out", str(data), "-q"])
    assert_one_line_error(r, match="is one of the inputs")
    assert data.read_bytes() == before


def test_a_run_that_diverges_writes_nothing(tmp_path: Path) -> None:
    """The loss of the only step is finite; the weights it leaves are not: no checkpoint."""
    out = tmp_path / "m.pt"
    r = run(["train", "--task", "adding", "--seq-len", "5", "--samples", "32", "--batch-size", "64", "--hidden", "8",
             "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30", "--grad-clip", "0", "--out", str(out), "-q"])
    assert_one_line_error(r, match="Training diverged at epoch 1")
    assert r.stderr.rstrip().endswith("; lower the learning rate.")  # (no regularizer: no strength to lower)
    assert not out.exists()
    r = run(["train", "--task", "adding", "--seq-len", "5", "--samples", "32", "--batch-size", "64", "--hidden", "8",
             "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30", "--grad-clip", "0", "--space", "torus",
             "--out", str(out), "-q"])
    assert_one_line_error(r, match="lower the learning rate or the regularizer's strength.")
    assert not out.exists()


def test_data_path_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_dir: Path) -> None:
    monkeypatch.chdir(mnist_dir.parent)
    out = tmp_path / "m.pt"
    r = run(["train", "--task", "smnist", "--data", mnist_dir.name, "--hidden", "4", "--epochs", "1", "--limit", "64",
             "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path.parent)
    info = json.loads(run(["info", str(out), "--json"]).stdout)
    assert info["task"]["params"]["data"] == str(mnist_dir)


def test_a_limit_too_small_for_the_data_names_limit(tmp_path: Path, mnist_dir: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("abcdefgh " * 300)
    cases = [(["--task", "charlm", "--data", str(text), "--limit", "50"], "--limit must be at least 1001 characters"),
             (["--task", "smnist", "--data", str(mnist_dir), "--limit", "1"], "--limit must be at least 2 images")]
    for args, match in cases:
        r = run(["train", *args, "--hidden", "4", "--epochs", "1", "-q", "--out", str(tmp_path / "m.pt")])
        assert_one_line_error(r, match=match)
    (tmp_path / "empty.txt").write_text("")
    r = run(["train", "--task", "charlm", "--data", str(tmp_path / "empty.txt"), "-q", "--out", str(tmp_path / "m.pt")])
    assert_one_line_error(r, match="0 characters give 0 windows of 100 characters; at least 10 are needed")


@pytest.mark.parametrize("stop_at_epoch, hint", [
    (2, "train --resume --out {out} continues where it stopped"),  # epoch 1 was written
    (0, "it stopped before its first epoch ended, so there is nothing to resume: start it again"),
])
def test_an_interrupted_train_says_whether_it_can_resume(tmp_path: Path, stop_at_epoch: int, hint: str) -> None:
    out = tmp_path / "m.pt"
    with training_interrupted_at(stop_at_epoch):
        r = run(["train", *TINY, "--out", str(out)])
    assert r.exit_code == 130 and out.exists() == (stop_at_epoch > 0)
    assert r.stderr.strip() == f"interrupted: files already written are complete and kept ({hint.format(out=out)})."


def test_an_interrupted_force_run_does_not_offer_to_resume_the_run_it_replaces(tmp_path: Path) -> None:
    """--force over an unfinished checkpoint, stopped before its own first epoch: the file is
    still the old run, which --resume would continue instead; --resume stopped at once is
    its own run and can be resumed again."""
    out = tmp_path / "m.pt"
    with training_interrupted_at(2):
        run(["train", *TINY, "--out", str(out)])
    with training_interrupted_at(0):
        r = run(["train", *TINY, "--cell", "gru", "--force", "--out", str(out)])
    assert r.exit_code == 130 and "so there is nothing to resume" in r.stderr
    with training_interrupted_at(0):
        r = run(["train", "--resume", "--out", str(out)])
    assert r.exit_code == 130 and f"train --resume --out {out} continues where it stopped" in r.stderr
