"""Every field of a checkpoint is checked at load: a hand-edited or corrupt file is refused
with one CheckpointError line naming the file, the field, the rule and the value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import CheckpointError
from models.sequence import ModelConfig, SequenceModel

DELETE = object()  # a table value: remove the key instead of setting it


def full_checkpoint() -> Checkpoint:
    """A checkpoint with every optional field filled, as training and pruning write them."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig("lstm", input_size=2, hidden_sizes=(6,), output_size=1))
    model.set_mask("rnn.0.weight_hh_l0", torch.rand(24, 6) > 0.5)
    model.apply_masks()
    regularizer = {"config": {"space": "torus", "strength": 1.0}, "gates": 4, "positions": [torch.zeros(6, 2)],
                   "kept": [torch.arange(6)], "perm": [torch.arange(6)]}
    return Checkpoint.from_model(
        model, task={"name": "adding", "params": {"seq_len": 6}},
        history=[{"epoch": 1, "step": 2, "lr": 0.001, "val_mse": 0.5}],
        metrics={"metric": "mse", "higher_is_better": False, "test_mse": 0.5, "test_loss": float("nan")},
        provenance={"rnncompress": "0.1.0", "data_sha256": {}, "command": "rnncompress train"},
        training={"epochs": 2, "pruning": {"sparsity": 0.0}, "regularizer": {"space": "torus"}},
        regularizer=regularizer,
        pruning={"layers": [{"layer": 0, "before": 8, "after": 6, "kept_index": [0, 1, 2, 3, 4, 5]}],
                 "teachers": [{"path": None, "sha256": None}], "keep": 6},
        resume={"epoch": 1, "step": 2, "optimizer": {"state": {}, "param_groups": []}}, state="training")


def write_edited(path: Path, where: tuple[Any, ...], value: Any) -> Path:
    """The full checkpoint with the entry at ``where`` (keys / indices) set to ``value``."""
    d = full_checkpoint().to_dict()
    parent = d
    for key in where[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    torch.save(d, path)
    return path


def test_a_checkpoint_with_every_field_round_trips(tmp_path: Path) -> None:
    ckpt = full_checkpoint()
    save_checkpoint(tmp_path / "m.pt", ckpt)
    back = load_checkpoint(tmp_path / "m.pt")
    for name in ("task", "history", "provenance", "training", "pruning", "resume", "state"):
        assert getattr(back, name) == getattr(ckpt, name), name
    assert back.metrics["test_mse"] == 0.5 and back.metrics["test_loss"] != back.metrics["test_loss"]  # NaN kept
    assert back.regularizer["gates"] == 4 and torch.equal(back.regularizer["kept"][0], torch.arange(6))
    back.build_model()


@pytest.mark.parametrize("where, value, message", [
    # the containers
    (("task",), None, "task must be a dict; got None"),
    (("task",), "adding", "task must be a dict; got 'adding' (str)"),
    (("metrics",), [0.5], "metrics must be a dict; got a list"),
    (("provenance",), "x", "provenance must be a dict; got 'x' (str)"),
    (("training",), None, "training must be a dict; got None"),
    (("regularizer",), [], "regularizer must be a dict; got a list"),
    (("pruning",), 3, "pruning must be a dict; got 3 (int)"),
    (("masks",), ["rnn.0.weight_hh_l0"], "masks must be a dict; got a list"),
    (("state_dict",), None, "state_dict must be a dict; got None"),
    (("config",), "lstm", "config must be a dict; got 'lstm' (str)"),
    (("history",), {"epoch": 1}, "history must be a list (one dict per epoch); got a dict"),
    (("state",), "done", "state must be 'training' or 'complete'; got 'done' (str)"),
    # the values the readers rely on
    (("history", 0), "abc", "history[0] must be a dict of str -> number; got 'abc' (str)"),
    (("history", 0, "val_mse"), "0.5", "history[0]['val_mse'] must be a number; got '0.5' (str)"),
    (("history", 0, "epoch"), None, "history[0]['epoch'] must be a number; got None"),
    (("metrics", "test_mse"), "x", "metrics['test_mse'] must be a number; got 'x' (str)"),
    (("metrics", "test_mse"), True, "metrics['test_mse'] must be a number; got True (bool)"),
    (("metrics", "metric"), 3, "metrics['metric'] must be a str (the metric's name); got 3 (int)"),
    (("metrics", "higher_is_better"), "no", "metrics['higher_is_better'] must be a bool; got 'no' (str)"),
    (("task", "name"), 3, "task['name'] must be a str; got 3 (int)"),
    (("task", "params"), [6], "task['params'] must be a dict; got a list"),
    (("task", "params", "seq_len"), torch.zeros(2), "task['params']['seq_len'] must be plain data"),
    (("resume",), "x", "resume must be a dict with 'epoch', 'step' and 'optimizer' (or absent); got 'x' (str)"),
    (("resume", "epoch"), "1", "resume['epoch'] must be an int >= 0; got '1' (str)"),
    (("resume", "step"), DELETE, "resume['step'] must be an int >= 0; got nothing (the key is missing)"),
    (("resume", "optimizer"), None, "resume['optimizer'] must be a dict (the optimizer's state); got None"),
    (("resume",), DELETE, "resume must be the resume point of an unfinished ('training') checkpoint; got nothing (the key "
                         "is missing)"),
    (("training", "pruning"), "cubic", "training['pruning'] must be a dict; got 'cubic' (str)"),
    (("pruning", "layers"), "x", "pruning['layers'] must be a list (one dict per layer); got 'x' (str)"),
    (("pruning", "layers", 0), 6, "pruning['layers'][0] must be a dict; got 6 (int)"),
    (("pruning", "layers", 0, "after"), None, "pruning['layers'][0]['after'] must be an int >= 0; got None"),
    (("pruning", "teachers"), "t.pt", "pruning['teachers'] must be a list; got 't.pt' (str)"),
    (("regularizer", "config"), DELETE, "regularizer['config'] must be a dict; got nothing (the key is missing)"),
    (("regularizer", "gates"), "4", "regularizer['gates'] must be an int >= 0; got '4' (str)"),
    (("regularizer", "positions"), None, "regularizer['positions'] must be a list (one tensor per layer); got None"),
    (("regularizer", "kept", 0), [0, 1], "regularizer['kept'][0] must be a tensor; got a list"),
    (("provenance", "created"), torch.zeros(2, 2), "provenance['created'] must be plain data (text, a number, a "
                                                  "bool, None, a list or a dict); got a tensor of shape (2, 2)"),
    (("provenance",), {1: "x"}, "every key of provenance must be a str; got 1 (int)"),
    (("state_dict", 3), torch.zeros(1), "every key of state_dict must be a str (a weight's name); got 3 (int)"),
])
def test_a_corrupt_field_is_refused_at_load(tmp_path: Path, where, value, message: str) -> None:
    p = write_edited(tmp_path / "m.pt", where, value)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    text = str(e.value)
    assert text.startswith(f"Checkpoint {p} is corrupt: ") and message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d["config"].update(hidden_sizes=[7]),
     r": state_dict\['rnn\.0\.weight_ih_l0'\] has shape \(24, 2\) where the config makes \(28, 2\) "
     r"\(and 4 more mismatches\)\.$"),
    (lambda d: d["state_dict"].pop("head.bias"), r": state_dict lacks 'head\.bias', which the config makes\.$"),
    (lambda d: d["state_dict"].update({"head.extra": torch.zeros(1)}),
     r": state_dict has 'head\.extra', which the config does not make\.$"),
    (lambda d: (d["state_dict"].pop("head.bias"), d["state_dict"].update({"head.weight": torch.zeros(2, 6)})),
     r": state_dict lacks 'head\.bias', which the config makes \(and 1 more mismatch\)\.$"),
])
def test_a_state_dict_that_does_not_fit_its_config_says_what_differs(tmp_path: Path, edit, pattern: str) -> None:
    d = full_checkpoint().to_dict()
    d["masks"] = {}
    edit(d)
    p = tmp_path / "m.pt"
    torch.save(d, p)
    ckpt = load_checkpoint(p)
    with pytest.raises(CheckpointError, match=re.escape(f"Checkpoint {p} does not match its model config") + pattern):
        ckpt.build_model()
