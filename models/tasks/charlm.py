"""Character-level language modelling on any UTF-8 text file (gzipped or not).

The text is cut into non-overlapping windows of ``seq_len`` characters; the model reads
each window and predicts the next character at every step. Metric: bits per character.
The last ``val_fraction`` and ``test_fraction`` of the text (contiguous) are held out.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from models.errors import DataError, check_field_types, param_error
from models.tasks.base import ModelSpec, Split, Task, TaskData, require_file


@dataclass(frozen=True)
class CharlmParams:
    data: str = ""
    seq_len: int = 100
    limit_chars: int = 0  # use only the first N characters (0 = all)
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    embed_dim: int = 32

    def __post_init__(self):
        check_field_types(self)
        if self.seq_len < 2:
            raise param_error("seq_len", "an int >= 2", self.seq_len)
        if self.embed_dim < 1:
            raise param_error("embed_dim", "a positive int (the width of the input embedding)", self.embed_dim)
        if self.limit_chars < 0:
            raise param_error("limit_chars", "an int >= 0 (0 = all)", self.limit_chars)
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0 < v < 0.5:
                raise param_error(name, "a float in (0, 0.5)", v)


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path`` (an existing file: ``CharlmTask.check_data_location``)."""
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"Text file {path} cannot be read ({type(e).__name__}: corrupt or truncated).") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"Text file {path} is not UTF-8 (invalid byte at offset {e.start}).") from None


class CharlmTask(Task):
    name = "charlm"
    interface_reads_data = True  # the vocabulary
    metric_name = "bpc"
    higher_is_better = False
    Params = CharlmParams

    def check_data_location(self) -> None:
        if not self.params.data:
            raise DataError("Task 'charlm' needs a text file (--data FILE, UTF-8, .gz allowed).")
        require_file(Path(self.params.data), "Text file")

    def _text(self) -> str:
        p = self.params
        self.check_data_location()
        full = read_text(Path(p.data))
        return full[: p.limit_chars] if p.limit_chars else full

    def interface(self) -> dict[str, Any]:
        vocab = "".join(sorted(set(self._text())))
        return {"input": "x: per step one int64, the character's index in vocabulary (onnxruntime does not check "
                         "the range: a negative id wraps around, as ONNX Gather does)",
                "vocabulary": vocab,
                "output": "y at every step: logits over vocabulary of the next character"}

    def _load(self) -> TaskData:
        p = self.params
        self.check_data_location()
        full = read_text(Path(p.data))
        text = full[: p.limit_chars] if p.limit_chars else full
        vocab = sorted(set(text))
        n = len(text)
        n_windows = max(0, n - 1) // p.seq_len
        if n_windows < 10:
            need = 10 * p.seq_len + 1
            if p.limit_chars and p.limit_chars < need <= len(full):
                raise param_error("limit_chars", f"at least {need} characters (10 windows of seq_len "
                                                 f"{p.seq_len}, + 1), or 0 for the whole file", p.limit_chars)
            raise DataError(f"Text file {p.data} is too short: {n} characters give {n_windows} windows of "
                            f"{p.seq_len} characters; at least 10 are needed ({need} characters).")
        index = {c: i for i, c in enumerate(vocab)}
        ids = torch.tensor([index[c] for c in text[: n_windows * p.seq_len + 1]], dtype=torch.long)
        x = ids[:-1].view(n_windows, p.seq_len)
        y = ids[1:].view(n_windows, p.seq_len)
        n_test = max(1, int(n_windows * p.test_fraction))
        n_val = max(1, int(n_windows * p.val_fraction))
        n_train = n_windows - n_val - n_test
        train = Split(x[:n_train], y[:n_train])
        val = Split(x[n_train : n_train + n_val], y[n_train : n_train + n_val])
        test = Split(x[n_train + n_val :], y[n_train + n_val :])
        spec = ModelSpec(input_size=len(vocab), output_size=len(vocab), head="every",
                         input_layer="embedding", input_dim=p.embed_dim)
        return TaskData(train, val, test, spec, {"chars": n, "vocab": len(vocab), "train": n_train})

    def loss(self, out: Tensor, batch: Split) -> Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1))

    def metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        nats = F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1), reduction="sum")
        return float(nats.detach()) / math.log(2), float(batch.y.numel())

    def source_files(self) -> list[str]:
        return [self.params.data] if self.params.data else []
