"""Sequential MNIST: each image's 28 rows are 28 time steps of 28 features."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from models.errors import DataError, check_field_types, check_seed, param_error
from models.tasks.base import ModelSpec, Split, Task, TaskData, require_dir, split_off

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MEAN, _STD = 0.1307, 0.3081


def idx_file_names(stem: str) -> tuple[str, ...]:
    """The names an idx file is looked up by, in order: the standard one, gzipped or not, and
    the ``train-images.idx3-ubyte`` spelling."""
    dotted = stem.replace("-idx", ".idx")
    return stem, stem + ".gz", dotted, dotted + ".gz"


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """The first of ``idx_file_names(stem)`` in ``directory``."""
    return next((directory / name for name in idx_file_names(stem) if (directory / name).is_file()), None)


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (gzipped or raw) into a uint8 array, validating the header."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable idx file ({e.__class__.__name__}: corrupt or truncated gzip).") from None
    if len(data) < 4:
        raise DataError(f"{path} is not an idx file (only {len(data)} bytes).")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path} is not an unsigned-byte idx file (bad magic number {data[:4].hex()}).")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header incomplete).")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataError(
            f"{path} is truncated or corrupt: header says {dims} ({expected} bytes), file has {len(data) - header}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def mnist_files(directory: str | Path) -> dict[str, Path]:
    """The four idx files of an MNIST directory (.gz or not), or a DataError naming what is missing."""
    d = Path(directory)
    require_dir(d, "MNIST directory", "the four idx files")
    paths = {key: find_idx_file(d, stem) for key, stem in FILES.items()}
    missing = [FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"MNIST directory {d} is incomplete: missing {', '.join(missing)} (.gz or not).")
    return paths  # type: ignore[return-value]


def load_mnist(directory: str | Path) -> dict[str, np.ndarray]:
    arrays = {k: read_idx(p) for k, p in mnist_files(directory).items()}
    for split in ("train", "test"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3 or imgs.shape[1:] != (28, 28):
            raise DataError(f"MNIST {split} images have shape {imgs.shape}; expected (N, 28, 28).")
        if labels.ndim != 1 or labels.shape[0] != imgs.shape[0]:
            raise DataError(f"MNIST {split} labels ({labels.shape}) do not match images ({imgs.shape[0]}).")
        if labels.max() > 9:
            raise DataError(f"MNIST {split} labels contain {int(labels.max())}; expected 0-9.")
    return arrays


@dataclass(frozen=True)
class SmnistParams:
    data: str = ""  # directory with the four standard idx files
    permute: bool = False  # fixed pixel permutation (permuted sequential MNIST)
    permute_seed: int = 0
    val_size: int = 0  # 0 = auto: 1/12 of the training images (5000 of MNIST's 60000)
    limit: int = 0  # use only the first N training images (0 = all); for quick runs
    split_seed: int = 0

    def __post_init__(self):
        check_field_types(self)
        check_seed(self.permute_seed, "permute_seed")
        check_seed(self.split_seed, "split_seed")
        if self.val_size < 0:
            raise param_error("val_size", "an int >= 0 (0 = auto)", self.val_size)
        if self.limit < 0:
            raise param_error("limit", "an int >= 0 (0 = all)", self.limit)


class SmnistTask(Task):
    name = "smnist"
    metric_name = "accuracy"
    higher_is_better = True
    Params = SmnistParams

    def ignored_params(self) -> dict[str, str]:
        return {} if self.params.permute else {"permute_seed": "permute = true"}

    def _permutation(self) -> Tensor:
        return torch.randperm(784, generator=torch.Generator().manual_seed(self.params.permute_seed))

    def _to_sequences(self, images: np.ndarray) -> Tensor:
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        x = (x - _MEAN) / _STD
        if self.params.permute:
            x = x.reshape(-1, 784)[:, self._permutation()]
        return x.reshape(-1, 28, 28).contiguous()

    def interface(self) -> dict[str, Any]:
        v = "v = (pixel / 255 - mean) / std for the 784 pixels of the 28x28 image in row-major order"
        if self.params.permute:
            steps = f"{v}, reordered as v[pixel_permutation]; step t is entries 28t..28t+27"
        else:
            steps = f"{v}; step t is row t of the image"
        out = {"input": f"x: 28 steps of 28 float32, {steps}", "mean": _MEAN, "std": _STD,
               "output": "y after the last step: logits of the digits 0-9 (the class is the argmax)"}
        if self.params.permute:
            out["pixel_permutation"] = self._permutation().tolist()
        return out

    def check_data_location(self) -> None:
        if not self.params.data:
            raise DataError("Task 'smnist' needs a data directory (--data DIR holding the four MNIST idx files).")
        mnist_files(self.params.data)

    def _load(self) -> TaskData:
        p = self.params
        self.check_data_location()
        a = load_mnist(p.data)
        x_train, y_train = self._to_sequences(a["train_images"]), torch.from_numpy(a["train_labels"].astype(np.int64))
        if p.limit:
            x_train, y_train = x_train[: p.limit], y_train[: p.limit]
        val_size = p.val_size or max(1, len(x_train) // 12)
        if val_size >= len(x_train):
            if p.val_size:
                raise param_error("val_size", f"smaller than the {len(x_train)} training images", p.val_size)
            raise param_error("limit", "at least 2 images (one to train on, one to validate)", p.limit)
        train, val = split_off(Split(x_train, y_train), val_size, p.split_seed)
        test = Split(self._to_sequences(a["test_images"]), torch.from_numpy(a["test_labels"].astype(np.int64)))
        spec = ModelSpec(input_size=28, output_size=10, head="last")
        return TaskData(train, val, test, spec, {"train": len(train), "val": len(val), "test": len(test)})

    def loss(self, out: Tensor, batch: Split) -> Tensor:
        return F.cross_entropy(out, batch.y)

    def metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        return float((out.argmax(-1) == batch.y).sum()), float(len(batch))

    def source_files(self) -> list[str]:
        d = Path(self.params.data)
        return [str(find_idx_file(d, s)) for s in FILES.values() if find_idx_file(d, s)]

    def guarded_files(self) -> list[str]:
        # Every name the loader looks up: a file written at the plain name of an idx file whose
        # .gz is the one read now would be read instead of it from then on.
        d = Path(self.params.data)
        return [str(d / name) for s in FILES.values() for name in idx_file_names(s)]
