"""Test helpers importable from any test module (tests/ is on pythonpath)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

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
