"""Test helpers importable from any test module (tests/ is on pythonpath)."""

from __future__ import annotations

import contextlib
import gzip
import struct
from pathlib import Path
from typing import Iterator

import numpy as np
from click.testing import CliRunner


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def make_mnist_dir(directory: Path, n_train: int = 300, n_test: int = 100, gz: bool = True, seed: int = 0) -> Path:
    """A tiny MNIST look-alike: class c lights up row band c, so it is learnable."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4 : 2 * c + 6, :] = 250
        write_idx(directory / f"{split}-images-idx3-ubyte", images, gz)
        write_idx(directory / f"{split}-labels-idx1-ubyte", labels, gz)
    return directory


def train_adding_parent(directory: Path, cell: str, layers: int, sparsity: float):
    """A small torus-regularized, magnitude-pruned model of the adding task to prune:
    (checkpoint, task, data); hidden 12 per layer, two epochs."""
    from compressor.magnitude import PruneSchedule
    from compressor.moduli import ModuliConfig
    from compressor.training import TrainConfig, model_config_for, train_new
    from models.checkpoint import load_checkpoint
    from models.tasks import make_task

    path = directory / "parent.pt"
    task = make_task("adding", {"seq_len": 8, "samples": 256, "val_samples": 64, "test_samples": 64})
    data = task.load()
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.01, regularizer=ModuliConfig(space="torus"),
                      pruning=PruneSchedule(sparsity=sparsity))
    train_new(task, data, model_config_for(data, cell, 12, layers), cfg, path)
    return load_checkpoint(path), task, data


# ------------------------------------------------------------------ CLI helpers
TINY = ["--task", "adding", "--seq-len", "6", "--samples", "64", "--hidden", "6", "--epochs", "2",
        "--batch-size", "32", "-q"]


def run(args: list[str]):
    from cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def assert_one_line_error(result, code: int = 2, match: str = "") -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert match in lines[0], lines[0]


@contextlib.contextmanager
def training_interrupted_at(epoch: int) -> Iterator[None]:
    """Inside the block, training raises KeyboardInterrupt (as Ctrl-C would) when epoch
    ``epoch`` ends, before that epoch's checkpoint is written; 0: before the first epoch."""
    from compressor.training import Trainer

    original = Trainer.fit

    def fit_then_die(self, *args, **kwargs):
        if epoch == 0:
            raise KeyboardInterrupt

        def stop(entry):
            if entry["epoch"] == epoch:
                raise KeyboardInterrupt

        self.on_epoch = stop
        return original(self, *args, **kwargs)

    Trainer.fit = fit_then_die
    try:
        yield
    finally:
        Trainer.fit = original
