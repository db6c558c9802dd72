"""The adding problem (Hochreiter & Schmidhuber): two channels per step, a random value
in [0, 1) and a marker; the target is the sum of the two marked values (one marker in
each half of the sequence). A constant predictor (0.5 + 0.5 = 1) has MSE 1/6 = 0.167."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from models.errors import check_field_types, check_seed, param_error
from models.tasks.base import ModelSpec, Split, Task, TaskData, check_memory, generated_sizes

CONSTANT_PREDICTOR_MSE = 1.0 / 6.0


@dataclass(frozen=True)
class AddingParams:
    seq_len: int = 50
    samples: int = 20000
    val_samples: int = 2000
    test_samples: int = 2000
    data_seed: int = 0

    def __post_init__(self):
        check_field_types(self)
        check_seed(self.data_seed, "data_seed")
        if self.seq_len < 2:
            raise param_error("seq_len", "an int >= 2", self.seq_len)
        for name in ("samples", "val_samples", "test_samples"):
            if getattr(self, name) < 1:
                raise param_error(name, "a positive int", getattr(self, name))


def make_adding(n: int, length: int, generator: torch.Generator) -> Split:
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = (values[rows, first] + values[rows, second]).unsqueeze(-1)
    return Split(x, y)


class AddingTask(Task):
    name = "adding"
    metric_name = "mse"
    higher_is_better = False
    Params = AddingParams

    def interface(self) -> dict[str, Any]:
        return {"input": "x: per step 2 float32, a value in [0, 1) and a marker (1.0 at the two steps whose values "
                         "are added, one in each half of the sequence, else 0.0)",
                "output": "y after the last step: the sum of the two marked values"}

    def _load(self) -> TaskData:
        p = self.params
        # float32 values, markers and the stacked input: four sequences' worth per sample
        check_memory(4 * 4 * (p.samples + p.val_samples + p.test_samples) * p.seq_len,
                     f"The adding data ({generated_sizes(p)})",
                     "lower --samples or --seq-len")
        g = torch.Generator().manual_seed(p.data_seed)
        train = make_adding(p.samples, p.seq_len, g)
        val = make_adding(p.val_samples, p.seq_len, g)
        test = make_adding(p.test_samples, p.seq_len, g)
        spec = ModelSpec(input_size=2, output_size=1, head="last")
        return TaskData(train, val, test, spec, {"train": p.samples, "baseline_mse": CONSTANT_PREDICTOR_MSE})

    outputs_logits = False  # type: ignore[assignment]

    def loss(self, out: Tensor, batch: Split) -> Tensor:
        return F.mse_loss(out, batch.y)

    def metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        return float(((out.detach() - batch.y) ** 2).sum()), float(batch.y.numel())
