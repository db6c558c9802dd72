"""Training: resume reproduces an uninterrupted run; checkpoints every epoch."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from compressor.magnitude import PruneSchedule
from compressor.moduli import ModuliConfig
from compressor.training import TrainConfig, model_config_for, resume_training, train_new
from models.checkpoint import load_checkpoint
from models.tasks import make_task


def setup(cell: str = "gru", learn: bool = False, weight_decay: float = 0.0):
    task = make_task("adding", {"seq_len": 8, "samples": 96, "val_samples": 32, "test_samples": 32})
    data = task.load()
    mc = model_config_for(data, cell, 12, 2)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, weight_decay=weight_decay,
                      regularizer=ModuliConfig(space="klein", strength=0.5, learn_embedding=learn),
                      pruning=PruneSchedule(sparsity=0.8, start=0.0, end=0.9))
    return task, data, mc, cfg


@pytest.mark.parametrize("cell, learn, weight_decay", [("gru", False, 0.0), ("lstm", True, 0.0), ("rnn", True, 0.1)])
def test_resume_equals_uninterrupted(tmp_path: Path, cell: str, learn: bool, weight_decay: float) -> None:
    # (learned positions with weight decay: the optimizer has a second parameter group)
    task, data, mc, cfg = setup(cell, learn, weight_decay)
    full = train_new(task, data, mc, cfg, tmp_path / "full.pt")

    # Interrupt after epoch 1: keep the epoch-1 checkpoint, as a killed process would.
    class Stop(Exception):
        pass

    from compressor import training

    part = tmp_path / "part.pt"
    trainer = training.Trainer(task, data, cfg, part)
    model, reg = trainer.new_model(mc)

    def stop_after_first(entry):
        if entry["epoch"] == 2:
            raise Stop

    trainer.on_epoch = stop_after_first
    with pytest.raises(Stop):
        trainer.fit(model, reg)
    interrupted = load_checkpoint(part)
    assert interrupted.state == "training" and interrupted.resume["epoch"] == 1

    # the library takes the checkpoint or its path, and None for no progress
    resumed = resume_training(interrupted if cell == "gru" else str(part), task, data, part, progress=None)
    for k, v in full.state_dict.items():
        assert torch.equal(v, resumed.state_dict[k]), k
    for k, v in full.masks.items():
        assert torch.equal(v, resumed.masks[k]), k
    assert full.metrics == resumed.metrics
    assert [h["val_mse"] for h in full.history] == [h["val_mse"] for h in resumed.history]
    assert load_checkpoint(part).state == "complete"
    if learn:
        assert not torch.equal(full.regularizer["positions"][0], interrupted.regularizer["positions"][0])

    # an optimizer state that does not fit (hand-edited, or another parameter grouping)
    from models.errors import ConfigError

    for bad in ({}, {"state": {}, "param_groups": "x"}, {"state": {}, "param_groups": [{}, {}, {}]}):
        with pytest.raises(ConfigError, match="cannot be resumed, train it again"):
            resume_training(replace(interrupted, resume={**interrupted.resume, "optimizer": bad}), task, data, None)


def test_same_config_gives_identical_checkpoint_bytes(tmp_path: Path) -> None:
    task, data, mc, cfg = setup()
    train_new(task, data, mc, cfg, tmp_path / "a.pt")
    train_new(task, data, mc, cfg, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_training_learns_and_reaches_sparsity(tmp_path: Path) -> None:
    task = make_task("adding", {"seq_len": 10, "samples": 3000, "val_samples": 200, "test_samples": 200})
    data = task.load()
    mc = model_config_for(data, "lstm", 24, 1)
    cfg = TrainConfig(epochs=8, batch_size=32, lr=0.01,
                      regularizer=ModuliConfig(space="torus", strength=0.1),
                      pruning=PruneSchedule(sparsity=0.5))
    ckpt = train_new(task, data, mc, cfg, None)
    assert ckpt.metrics["test_mse"] < 0.05  # a constant predictor scores 0.167
    assert ckpt.metrics["recurrent_sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_wrong_arguments_are_config_errors_before_any_training(tmp_path: Path) -> None:
    from models.errors import ConfigError

    task, data, mc, cfg = setup()
    for kwargs, match in [({"eval_batch_size": -5}, "'eval_batch_size' parameter must be a positive int"),
                          ({"regularizer": {"strength": 1.0}}, "'regularizer' parameter must be a ModuliConfig"),
                          ({"pruning": None}, "'pruning' parameter must be a PruneSchedule"),
                          # torch's optimizers take these as float32: 1e39 overflowed in the first step
                          ({"lr": 1e39}, "'lr' parameter must be a positive float (at most 3.4e38"),
                          ({"weight_decay": 1e39}, "'weight_decay' parameter must be a float >= 0 (at most 3.4e38")]:
        with pytest.raises(ConfigError, match=re.escape(match)):
            TrainConfig(**kwargs)
    with pytest.raises(ConfigError, match="'p' parameter must be a finite float > 0. Got inf"):
        ModuliConfig(p=float("inf"))  # |w|^inf: every weight's penalty 0 or inf
    with pytest.raises(ConfigError, match="'seed' parameter must be an int in"):
        ModuliConfig(space="torus", seed=-1)
    with pytest.raises(ConfigError, match="Unknown regularizer parameter 'foo'"):
        TrainConfig.from_dict({"regularizer": {"foo": 1}})
    with pytest.raises(ConfigError, match="does not fit task 'adding': its output_size is 3, the task's data needs 1"):
        train_new(task, data, replace(mc, output_size=3), cfg, tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="'model_config' parameter must be a ModelConfig"):
        train_new(task, data, {"cell": "gru"}, cfg, None)
    assert not (tmp_path / "m.pt").exists()
    ckpt = train_new(task, data, mc, replace(cfg, epochs=1), None, progress=None)
    nav = make_task("navigation", {"seq_len": 5, "samples": 32, "val_samples": 8, "test_samples": 8, "place_cells": 8})
    with pytest.raises(ConfigError, match="checkpoint was trained on another task \\(task 'adding', not 'navigation'\\)"):
        resume_training(replace(ckpt, state="training", resume={"epoch": 0}), nav, nav.load(), None)
    with pytest.raises(ConfigError, match="data: loaded by another task than the one given \\(task 'navigation'\\)"):
        train_new(task, nav.load(), mc, cfg, None)
    other = make_task("adding", {**task.to_dict()["params"], "data_seed": 5})
    with pytest.raises(ConfigError, match="data: loaded by another task than the one given \\(parameters "):
        train_new(other, data, mc, cfg, None)
    with pytest.raises(ConfigError, match="does not fit task 'navigation': its output_size is 1, the task's data needs 8"):
        train_new(nav, nav.load(), mc, cfg, None)
    for epoch in (1, 7, -1, "2"):  # a 1-epoch run stops after no epoch but its last (which is complete)
        with pytest.raises(ConfigError, match=f"records resume epoch {epoch!r} of 1 epochs"):
            resume_training(replace(ckpt, state="training", resume={"epoch": epoch}), task, data, None)
