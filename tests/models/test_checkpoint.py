"""Checkpoints round-trip; truncated, foreign and code-carrying files are refused."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import CheckpointError
from models.sequence import ModelConfig, SequenceModel


@pytest.fixture
def ckpt() -> Checkpoint:
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig("gru", input_size=3, hidden_sizes=(8, 6), output_size=4, head="every"))
    model.set_mask("rnn.0.weight_hh_l0", torch.rand(24, 8) > 0.5)
    model.apply_masks()
    return Checkpoint.from_model(model, task={"name": "adding", "params": {}}, history=[{"epoch": 1, "val_mse": 0.1}],
                                 metrics={"metric": "mse", "test_mse": 0.1}, provenance={"rnncompress": "x"})


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_round_trip_preserves_everything(tmp_path: Path, cell: str) -> None:
    torch.manual_seed(1)
    model = SequenceModel(ModelConfig(cell, input_size=5, hidden_sizes=(7, 3), output_size=2, init_size=4))
    model.set_mask("rnn.1.weight_hh_l0", torch.rand(model.rnn[1].weight_hh_l0.shape) > 0.3)
    model.apply_masks()
    c = Checkpoint.from_model(model, history=[{"epoch": 1}], metrics={"a": 1.0})
    save_checkpoint(tmp_path / "m.pt", c)
    back = load_checkpoint(tmp_path / "m.pt")
    assert back.config == model.config
    rebuilt = back.build_model()
    for k, v in model.state_dict().items():
        assert torch.equal(v, rebuilt.state_dict()[k])
    assert set(rebuilt.masks()) == {"rnn.1.weight_hh_l0"}
    assert torch.equal(rebuilt.masks()["rnn.1.weight_hh_l0"], model.masks()["rnn.1.weight_hh_l0"])
    x, init = torch.randn(2, 4, 5), torch.randn(2, 4)
    model.eval()
    assert torch.equal(model(x, init), rebuilt(x, init))
    assert back.history == [{"epoch": 1}] and back.metrics == {"a": 1.0}


def test_truncated_checkpoint(tmp_path: Path, ckpt: Checkpoint) -> None:
    p = tmp_path / "m.pt"
    save_checkpoint(p, ckpt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch file"):
        load_checkpoint(p)


@pytest.mark.parametrize("masks, match", [
    ({"rnn.0.weight_hh_l0": torch.ones(3, 3, dtype=torch.bool)}, "mask 'rnn.0.weight_hh_l0' is (3, 3) and does "
                                                                 "not match its weight (24, 8)"),
    ({"rnn.9.weight": torch.ones(2, dtype=torch.bool)}, "mask 'rnn.9.weight' is (2,) and there is no such weight"),
    ({"rnn.0.weight_hh_l0": [1, 0]}, "mask 'rnn.0.weight_hh_l0' is list"),
])
def test_a_corrupt_mask_is_refused_at_load(tmp_path: Path, ckpt: Checkpoint, masks, match) -> None:
    p = tmp_path / "m.pt"
    d = ckpt.to_dict()
    d["masks"] = masks
    torch.save(d, p)
    with pytest.raises(CheckpointError, match=re.escape(match)):
        load_checkpoint(p)


def test_foreign_checkpoints(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not an rnncompress checkpoint"):
        load_checkpoint(plain)
    future = tmp_path / "future.pt"
    torch.save({"format": "rnncompress-checkpoint/99", "config": {}, "state_dict": {}}, future)
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(future)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="is not a torch checkpoint"):
        load_checkpoint(text)
    noise = tmp_path / "noise.pt"  # not pickle opcodes: another format, not "pickled code"
    noise.write_bytes(bytes(range(8, 256)) * 4)
    with pytest.raises(CheckpointError, match="is not a torch checkpoint"):
        load_checkpoint(noise)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "evil.pt"
    torch.save({"format": "rnncompress-checkpoint/1", "config": {}, "state_dict": {}, "x": Evil()}, p)
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(p)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Evil(), protocol=2))  # torch.load's own protocol: no warning about it
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)


def test_state_dict_that_does_not_match_config(tmp_path: Path, ckpt: Checkpoint) -> None:
    ckpt.state_dict["rnn.0.weight_hh_l0"] = torch.zeros(3, 3)
    save_checkpoint(tmp_path / "bad.pt", ckpt)
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "bad.pt").build_model()


def test_failed_write_keeps_the_old_file(tmp_path: Path, ckpt: Checkpoint, monkeypatch) -> None:
    p = tmp_path / "m.pt"
    save_checkpoint(p, ckpt)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", boom)
    with pytest.raises(OSError):
        save_checkpoint(p, ckpt)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.pt"]
