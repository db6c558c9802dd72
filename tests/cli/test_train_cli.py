"""The train and info commands: a working run, and bad input as one line + exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY, assert_one_line_error, run

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
    assert_one_line_error(r, match="already exists")
    assert out.read_bytes() == before
    r = run(["train", *TINY, "--out", str(out), "--resume"])
    assert_one_line_error(r, match="--resume continues the stored run")
    r = run(["train", "--out", str(out), "--resume", "-q"])
    assert_one_line_error(r, match="finished run")


@pytest.mark.parametrize("args, match", [
    (["--space", "donut"], "'space' parameter must be one of"),
    (["--inhibitor", "mexican-hat"], "'inhibitor' parameter must be one of"),
    (["--sparsity", "1.0"], "'sparsity' parameter must be a float in [0, 1)"),
    (["--sparsity", "-0.2"], "'sparsity' parameter"),
    (["--hidden", "0"], "'hidden' parameter must be a positive int"),
    (["--hidden", "-3"], "'hidden' parameter"),
    (["--layers", "0"], "'layers' parameter"),
    (["--epochs", "0"], "'epochs' parameter"),
    (["--lr", "-1"], "'lr' parameter"),
    (["--permute-pixels"], "does not apply to task 'adding'"),
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
    assert_one_line_error(r, match="does not exist")
    assert not out.exists()


def test_info_on_bad_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    assert_one_line_error(run(["info", str(junk)]), match="junk.pt")
    assert_one_line_error(run(["info", str(tmp_path / "none.pt")]), match="does not exist")


def test_smnist_cli_on_generated_mnist(tmp_path: Path, mnist_dir: Path) -> None:
    out = tmp_path / "s.pt"
    r = run(["train", "--task", "smnist", "--data", str(mnist_dir), "--hidden", "16", "--epochs", "2",
             "--space", "klein", "--sparsity", "0.5", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.output
