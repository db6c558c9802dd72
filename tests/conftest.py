"""Shared fixtures: tiny generated datasets so the suite never needs a download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_mnist_dir

# Tiny models: one intra-op thread is as fast and does not fight whatever else runs.
torch.set_num_threads(1)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return make_mnist_dir(tmp_path / "mnist")


@pytest.fixture
def shared_mnist() -> Path:
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    p = tmp_path / "text.txt"
    p.write_text("In the beginning was the word, and the word was with rnncompress. " * 40, encoding="utf-8")
    return p


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(1) > 0).astype(np.int64)
    p = tmp_path / "data.npz"
    np.savez(p, X=X, y=y)
    return p
