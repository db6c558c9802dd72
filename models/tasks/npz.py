"""The user's own data in one ``.npz`` file.

Keys: ``X`` float [N, T, F] (features per step) or int [N, T] (tokens); ``y`` int [N]
(class labels -> accuracy) or float [N] / [N, K] (regression on the last step -> MSE).
Optional ``X_test``, ``y_test`` with the same layout; without them a seeded fraction of
the data is held out as the test split. A validation split is always held out of train.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from models.errors import DataError, check_field_types, check_seed, param_error
from models.tasks.base import ModelSpec, Split, Task, TaskData, require_file, split_off


@dataclass(frozen=True)
class NpzParams:
    data: str = ""
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # used only when the file has no X_test / y_test
    split_seed: int = 0
    embed_dim: int = 32  # for token inputs

    def __post_init__(self):
        check_field_types(self)
        check_seed(self.split_seed, "split_seed")
        if self.embed_dim < 1:
            raise param_error("embed_dim", "a positive int (the width of the input embedding)", self.embed_dim)
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise param_error(name, "a float in (0, 1)", v)


# Class labels and token ids index the output layer and the embedding: larger is a mistake.
MAX_CLASSES = 1_000_000


def _read_npz(path: Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays of ``path`` (an existing file: ``NpzTask.check_data_location``); only
    ``keys`` when given (numpy reads each array on demand)."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"{path} is not readable ({e.strerror}).") from None
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{path} is a single .npy array; save X and y together with numpy.savez(path, X=..., y=...).")
    if not head.startswith(b"PK"):  # an .npz is a zip archive; numpy would try to unpickle anything else
        raise DataError(f"{path} is not an .npz file (not a zip archive of arrays); save one with "
                        "numpy.savez(path, X=..., y=...).")
    if head.startswith(b"PK\x05\x06"):  # an empty zip (numpy.savez of no arrays)
        raise DataError(f"{path} holds no arrays; save X and y with numpy.savez(path, X=..., y=...).")
    if not head.startswith(b"PK\x03\x04"):  # numpy opens only this as a zip (a damaged one it would unpickle)
        raise DataError(f"{path} is not a readable .npz file (File is not a zip file).")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"{path} has no array {missing[0]!r}; found {sorted(f.files)}.")
            return {k: f[k] for k in keys or f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in msg.lower():
            raise DataError(f"{path} holds object arrays (pickled data is refused); store numeric arrays.") from None
        raise DataError(f"{path} is not a readable .npz file ({msg[:80]}).") from None


def _validate_pair(path: Path, xk: str, yk: str, X: np.ndarray, y: np.ndarray) -> None:
    if X.ndim == 3:
        if not np.issubdtype(X.dtype, np.floating):
            raise DataError(f"{path}: {xk} with shape [N, T, F] must be float; got dtype {X.dtype}.")
        if not np.isfinite(X).all():
            raise DataError(f"{path}: {xk} contains NaN or Inf values.")
    elif X.ndim == 2:
        if not np.issubdtype(X.dtype, np.integer):
            raise DataError(f"{path}: {xk} with shape [N, T] must hold integer tokens; got dtype {X.dtype}.")
        if X.size and X.min() < 0:
            raise DataError(f"{path}: {xk} holds negative token ids (min {X.min()}).")
        if X.size and X.max() >= MAX_CLASSES:
            raise DataError(f"{path}: {xk} holds token id {X.max()}; ids must be 0..V-1 with V <= {MAX_CLASSES:,} "
                            "(the embedding has V rows).")
    else:
        raise DataError(f"{path}: {xk} must have shape [N, T, F] (float) or [N, T] (int tokens); got {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: {xk} is empty (shape {X.shape}).")
    if X.ndim == 3 and X.shape[2] == 0:
        raise DataError(f"{path}: {xk} has no features (shape {X.shape}: F = 0).")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise DataError(f"{path}: {yk} must have shape [N] or [N, K] with N = {X.shape[0]}; got {y.shape}.")
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim != 1:
            raise DataError(f"{path}: integer {yk} (class labels) must have shape [N]; got {y.shape}.")
        if y.min() < 0:
            raise DataError(f"{path}: {yk} holds negative class labels (min {y.min()}).")
        if y.size and y.max() >= MAX_CLASSES:
            raise DataError(f"{path}: {yk} holds class label {y.max()}; labels must be 0..K-1 with K <= "
                            f"{MAX_CLASSES:,} (the output layer has K units).")
    elif np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise DataError(f"{path}: {yk} contains NaN or Inf values.")
    else:
        raise DataError(f"{path}: {yk} must be int (classes) or float (regression); got dtype {y.dtype}.")


class NpzTask(Task):
    name = "npz"
    Params = NpzParams

    def __init__(self, params: NpzParams):
        super().__init__(params)
        self._classification: bool | None = None  # known from load(), or read from y's header

    @property
    def classification(self) -> bool:
        """Integer ``y`` (class labels -> accuracy) or float ``y`` (regression -> MSE). Every
        task instance answers from the file, loaded or not: the pipeline's and prune's task,
        rebuilt from the recorded parameters, must not default to classification."""
        if self._classification is None:
            self.check_data_location()
            y = _read_npz(Path(self.params.data), ("y",))["y"]  # (y alone: labels or targets, [N] or [N, K])
            self._classification = bool(np.issubdtype(y.dtype, np.integer))
        return self._classification

    def interface(self) -> dict[str, Any]:
        return {"input": "x as X in the .npz file: per step F float32 features, or one int64 token id",
                "output": "y after the last step: logits of the classes of an integer y (the class is the argmax), "
                          "or the regressed values of a float y"}

    def check_data_location(self) -> None:
        if not self.params.data:
            raise DataError("Task 'npz' needs a data file (--data FILE.npz).")
        require_file(Path(self.params.data), "npz file")

    def _load(self) -> TaskData:
        p = self.params
        self.check_data_location()
        path = Path(p.data)
        arrays = _read_npz(path)
        for k in ("X", "y"):
            if k not in arrays:
                raise DataError(f"{path} has no array {k!r}; found {sorted(arrays)}.")
        if ("X_test" in arrays) != ("y_test" in arrays):
            raise DataError(f"{path} must hold both X_test and y_test, or neither.")
        _validate_pair(path, "X", "y", arrays["X"], arrays["y"])
        has_test = "X_test" in arrays
        if has_test:
            _validate_pair(path, "X_test", "y_test", arrays["X_test"], arrays["y_test"])
            if arrays["X_test"].ndim != arrays["X"].ndim or arrays["X_test"].shape[2:] != arrays["X"].shape[2:]:
                raise DataError(f"{path}: X_test shape {arrays['X_test'].shape} does not match X {arrays['X'].shape}.")
            if arrays["y_test"].dtype.kind != arrays["y"].dtype.kind or arrays["y_test"].shape[1:] != arrays["y"].shape[1:]:
                raise DataError(f"{path}: y_test ({arrays['y_test'].dtype}, {arrays['y_test'].shape}) does not match y.")
        X, y = arrays["X"], arrays["y"]
        tokens = X.ndim == 2
        self._classification = bool(np.issubdtype(y.dtype, np.integer))

        def to_split(Xa: np.ndarray, ya: np.ndarray) -> Split:
            xt = torch.from_numpy(Xa.astype(np.int64 if tokens else np.float32))
            if self.classification:
                yt = torch.from_numpy(ya.astype(np.int64))
            else:
                yt = torch.from_numpy(ya.astype(np.float32))
                yt = yt.unsqueeze(-1) if yt.dim() == 1 else yt
            return Split(xt, yt)

        full = to_split(X, y)
        need = 2 if has_test else 3  # (a sample for each of train and validation, and test unless given)
        if len(full) < need:
            raise DataError(f"{path}: {len(full)} sample(s) in X; at least {need} are needed (one each for training, "
                            f"validation{'' if has_test else ' and test'}).")
        if has_test:
            test = to_split(arrays["X_test"], arrays["y_test"])
        else:
            full, test = split_off(full, max(1, int(len(full) * p.test_fraction)), p.split_seed + 1)
        train, val = split_off(full, max(1, int(len(full) * p.val_fraction)), p.split_seed)
        if self.classification:
            out = int(max(int(y.max()), int(arrays["y_test"].max()) if has_test else 0)) + 1
        else:
            out = int(train.y.shape[-1])
        if tokens:
            vocab = int(max(int(X.max()), int(arrays["X_test"].max()) if has_test else 0)) + 1
            spec = ModelSpec(input_size=vocab, output_size=out, input_layer="embedding", input_dim=p.embed_dim)
        else:
            spec = ModelSpec(input_size=int(X.shape[2]), output_size=out)
        info = {"train": len(train), "val": len(val), "test": len(test),
                "kind": "classification" if self.classification else "regression"}
        return TaskData(train, val, test, spec, info)

    # The metric depends on the data: accuracy for class labels, MSE for float targets.
    @property
    def metric_name(self) -> str:  # type: ignore[override]
        return "accuracy" if self.classification else "mse"

    @property
    def higher_is_better(self) -> bool:  # type: ignore[override]
        return self.classification

    @property
    def outputs_logits(self) -> bool:  # type: ignore[override]
        return self.classification

    def loss(self, out: Tensor, batch: Split) -> Tensor:
        if self.classification:
            return F.cross_entropy(out, batch.y)
        return F.mse_loss(out, batch.y)

    def metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        if self.classification:
            return float((out.argmax(-1) == batch.y).sum()), float(len(batch))
        return float(((out.detach() - batch.y) ** 2).sum()), float(batch.y.numel())

    def source_files(self) -> list[str]:
        return [self.params.data] if self.params.data else []
