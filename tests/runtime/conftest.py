"""A tiny trained checkpoint (adding task, 6 steps, LSTM hidden 6) and its exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.training import TrainConfig, model_config_for, train_new
from exporters import export_checkpoint
from models.checkpoint import load_checkpoint
from models.tasks import make_task

ADDING = {"seq_len": 6, "samples": 64, "val_samples": 16, "test_samples": 24}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Paths: "ckpt" (m.pt), "dense" (m.onnx), "step" (m.step.onnx), "chunk" (m.chunk.onnx),
    "int8" (m.int8.onnx)."""
    root = tmp_path_factory.mktemp("tiny")
    task = make_task("adding", ADDING)
    data = task.load()
    ckpt = root / "m.pt"
    train_new(task, data, model_config_for(data, "lstm", 6, 1), TrainConfig(epochs=1, batch_size=32), ckpt)
    export_checkpoint(load_checkpoint(ckpt), "dense,step,chunk,int8", root / "onnx")
    return {"ckpt": ckpt, "dense": root / "onnx" / "m.onnx", "step": root / "onnx" / "m.step.onnx",
            "chunk": root / "onnx" / "m.chunk.onnx", "int8": root / "onnx" / "m.int8.onnx"}
