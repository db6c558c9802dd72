"""Tiny seeded models and checkpoints for the exporter tests (factories as fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from models.checkpoint import Checkpoint, save_checkpoint
from models.sequence import ModelConfig, SequenceModel

ADDING = {"name": "adding", "params": {"seq_len": 6, "samples": 64, "val_samples": 16, "test_samples": 16}}
NAVIGATION = {"name": "navigation", "params": {"seq_len": 5, "samples": 16, "val_samples": 8, "test_samples": 16,
                                               "place_cells": 8}}


def tiny_model(cell: str = "lstm", hidden: tuple[int, ...] = (8,), sparsity: float = 0.0, seed: int = 0,
               **config: Any) -> SequenceModel:
    """A seeded model with random masks at ``sparsity`` on every weight matrix (so the
    sparse format has something to store) and non-zero biases."""
    config.setdefault("input_size", 2)
    config.setdefault("output_size", 1)
    torch.manual_seed(seed)
    model = SequenceModel(ModelConfig(cell=cell, hidden_sizes=hidden, **config)).eval()
    if sparsity > 0:
        g = torch.Generator().manual_seed(seed + 1)
        for name, p in model.prunable_weights("all").items():
            model.set_mask(name, torch.rand(p.shape, generator=g) >= sparsity)
        model.apply_masks()
    return model


@pytest.fixture
def make_model() -> Callable[..., SequenceModel]:
    return tiny_model


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """``make_checkpoint(model, task=ADDING, name="m")`` -> path of a saved checkpoint."""

    def make(model: SequenceModel, task: dict | None = None, name: str = "m", nan: bool = False) -> Path:
        ckpt = Checkpoint.from_model(model, task=ADDING if task is None else task,
                                     metrics={"metric": "mse", "test_mse": 0.25})
        if nan:
            key = next(k for k in ckpt.state_dict if "weight_hh" in k)
            ckpt.state_dict[key][0, 0] = float("nan")
        path = tmp_path / "ckpt" / f"{name}.pt"
        path.parent.mkdir(exist_ok=True)
        save_checkpoint(path, ckpt)
        return path

    return make
