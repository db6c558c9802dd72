"""What a task is: data splits, the model shape it needs, a loss and a metric."""

from __future__ import annotations

import os
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from models.errors import ConfigError, DataError, param_error
from models.io import sha256_file


def check_memory(nbytes: float, what: str, advice: str) -> None:
    """DataError when generating ``what`` would take more than half this machine's memory
    (instead of being killed by the kernel halfway through)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform: no guard
        return
    if nbytes > total / 2:
        raise DataError(f"{what} would need {nbytes / 2**30:,.1f} GiB, more than half of this machine's "
                        f"{total / 2**30:,.0f} GiB; {advice}.")


def generated_sizes(p: Any) -> str:
    """How much a generated task makes, for a memory error: its three splits and their length."""
    return (f"{p.samples:,} training + {p.val_samples:,} validation + {p.test_samples:,} test sequences of "
            f"{p.seq_len:,} steps")


def require_file(path: Path, what: str) -> None:
    """DataError unless ``path`` is an existing file (``what`` names it: "npz file")."""
    if path.is_dir():
        raise DataError(f"{what} {path} is a directory; give the file itself.")
    if not path.exists():
        raise DataError(f"{what} {path} does not exist.")
    if not path.is_file():  # a device or pipe: the data is read more than once and hashed
        raise DataError(f"{what} {path} is not a regular file; give a file on disk.")


def require_dir(path: Path, what: str, holds: str) -> None:
    """DataError unless ``path`` is an existing directory (that ``holds`` the named files)."""
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file; --data must be the directory holding {holds}.")
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist (--data must be the directory holding {holds}).")


@dataclass
class Split:
    """One split of a task's data, in memory. ``init``/``aux`` are task-specific extras
    (navigation: the start's place code and the true positions)."""

    x: Tensor
    y: Tensor
    init: Tensor | None = None
    aux: Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: Tensor | slice) -> "Split":
        return Split(
            self.x[index],
            self.y[index],
            None if self.init is None else self.init[index],
            None if self.aux is None else self.aux[index],
        )

    def batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            yield self.take(slice(start, start + batch_size))


@dataclass(frozen=True)
class ModelSpec:
    """What the task dictates about the model (the rest is the user's choice)."""

    input_size: int
    output_size: int
    head: str = "last"
    input_layer: str = "none"
    input_dim: int = 0
    init_size: int = 0
    nonlinearity: str = "tanh"
    bias: bool = True


@dataclass
class TaskData:
    train: Split
    val: Split
    test: Split
    spec: ModelSpec
    info: dict[str, Any]
    # Task.origin of the task that loaded it (None: built by hand), so a function given a
    # task and data can tell data loaded by another task from the task's own.
    origin: tuple[str, str, tuple[str, ...]] | None = field(default=None, compare=False, repr=False)


class Task:
    """Base class. Subclasses set ``name``, ``Params`` and implement ``_load``/``loss``/``metric_sums``."""

    name: ClassVar[str]
    interface_reads_data: ClassVar[bool] = False  # ``interface`` builds a table from the data files
    metric_name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    Params: ClassVar[type]

    def __init__(self, params: Any):
        self.params = params
        self._data_hashes: dict[str, str] | None = None

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "Task":
        names = {f.name for f in fields(cls.Params)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ConfigError(
                f"Task '{cls.name}' has no parameter {unknown[0]!r}; its parameters are {sorted(names)}."
            )
        if isinstance(params.get("data"), (str, os.PathLike)) and str(params["data"]):
            # Stored absolute: the task (and checkpoints) must not depend on the working directory.
            params = {**params, "data": os.path.abspath(params["data"])}
        return cls(cls.Params(**params))

    def with_data(self, data: str | os.PathLike) -> "Task":
        """This task reading its files from ``data`` (the data moved since training)."""
        if not any(f.name == "data" for f in fields(self.Params)):
            raise ConfigError(f"The 'data' parameter does not apply to task '{self.name}': it generates its data "
                              "from a seed.")
        return type(self).from_dict({**self.to_dict()["params"], "data": str(data)})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": {f.name: getattr(self.params, f.name) for f in fields(self.params)}}

    def ignored_params(self) -> dict[str, str]:
        """Parameter -> the setting it applies to only, for parameters these settings ignore
        (navigation's surround with gauss tuning): a pipeline that gives one is refused."""
        return {}

    def interface(self) -> dict[str, Any]:
        """How a deployed model's inputs are made and its outputs read, for a service that
        runs the ONNX file without rnncompress: ``input`` and ``output`` in words, and the
        constants and tables the task applies (a normalisation, a pixel permutation, a
        vocabulary, place-cell centres). JSON-ready; ``rnncompress info`` prints it.

        Raises:
            DataError: a table comes from the task's data (charlm's vocabulary) and the
                data cannot be read.
        """
        raise NotImplementedError

    def check_data_location(self) -> None:
        """DataError when the data is not where ``load`` looks, found without reading it (a
        missing path, a directory for a file): a pipeline checks this before any work.
        Generated data has no location."""

    def load(self) -> TaskData:
        """The train, validation and test splits (seeded: the same parameters and files give
        the same data), tagged with this task's ``origin``."""
        data = self._load()
        data.origin = self.origin()
        return data

    def _load(self) -> TaskData:
        raise NotImplementedError

    def origin(self) -> tuple[str, str, tuple[str, ...]]:
        """What data this task gives, wherever its files are: its name, its parameters but the
        data location (a moved copy is the same data), and the sha256 of its files."""
        return (*self.identity(), tuple(sorted(self.data_hashes().values())))

    def identity(self) -> tuple[str, str]:
        """This task's name and its parameters but the data location, as JSON."""
        params = {k: v for k, v in self.to_dict()["params"].items() if k != "data"}
        return self.name, json.dumps(params, sort_keys=True, default=str)

    def loss(self, out: Tensor, batch: Split) -> Tensor:
        raise NotImplementedError

    def metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        """(sum, count) of the metric over a batch, so batches aggregate exactly."""
        raise NotImplementedError

    def finite_metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        """``metric_sums``, with a NaN sum when an output is NaN or Inf: the argmax of NaN
        logits is class 0, an accuracy that looks like a number; a model that outputs NaN
        must have a metric that is not one (bench records it, check fails its budgets)."""
        s, c = self.metric_sums(out, batch)
        return (s if bool(torch.isfinite(out).all()) else float("nan")), c

    @property
    def outputs_logits(self) -> bool:
        """True when the model's outputs are logits of a softmax (the loss is a cross-entropy);
        False when they are values regressed with MSE. Decides the distillation loss."""
        return True

    def distill_loss(self, out: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """How far a student's outputs are from a teacher's on the same batch.

        Logits: KL(softmax(teacher / T) || softmax(out / T)) * T^2 (Hinton et al. 2015; the T^2
        keeps gradient scale independent of T), averaged over every output position. Values:
        the MSE between the two outputs (T plays no part)."""
        if not self.outputs_logits:
            return F.mse_loss(out, teacher)
        t = float(temperature)
        log_p = torch.log_softmax(out.reshape(-1, out.shape[-1]) / t, dim=-1)
        log_q = torch.log_softmax(teacher.reshape(-1, teacher.shape[-1]) / t, dim=-1)
        return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * (t * t)

    def source_files(self) -> list[str]:
        """Files the data comes from (hashed into provenance)."""
        return []

    def guarded_files(self) -> list[str]:
        """Paths no output may take: the source files, and any other file the loader would
        read in their place (an uncompressed idx file beside its .gz is read first)."""
        return self.source_files()

    def data_hashes(self) -> dict[str, str]:
        """File name -> sha256 of every source file (recorded in checkpoints as ``data_sha256``),
        read once per task: training records them at every epoch's checkpoint, and a command
        that checks a checkpoint's data records them again."""
        if self._data_hashes is None:
            self._data_hashes = {Path(f).name: sha256_file(f) for f in self.source_files() if Path(f).is_file()}
        return dict(self._data_hashes)

    def check_data_is(self, recorded: dict[str, str] | None, whose: str,
                      hint: str = "give --data the files it was trained on") -> None:
        """DataError when this task's files are not the ones ``whose`` recorded (``data_sha256``):
        another text for charlm means another vocabulary, another MNIST copy another test set,
        and a metric computed on them is not that model's. Renamed or moved copies pass; so
        does a model that recorded nothing (generated data, or none recorded)."""
        if not isinstance(recorded, dict) or not recorded or not self.source_files():
            return
        self.check_data_location()  # (gone is gone: not "another content, among no files")
        now = self.data_hashes()
        if sorted(now.values()) != sorted(recorded.values()):
            where = self.to_dict()["params"].get("data")
            found = set(now.values())
            missing = sorted(name for name, h in recorded.items() if h not in found)
            differs = (f"the recorded content of {', '.join(missing)} is not among the files read "
                       f"({', '.join(sorted(now))})" if missing else
                       f"its files ({', '.join(sorted(now))}) are not the recorded ones ({', '.join(sorted(recorded))})")
            shadowed = sorted(n for n in now if n + ".gz" in missing and any(
                Path(f).name == n and Path(f).with_name(n + ".gz").is_file() for f in self.source_files()))
            if shadowed:  # (the loader reads a plain file before its .gz: the recorded .gz is there, unread)
                differs += (f"; {', '.join(shadowed)} {'is' if len(shadowed) == 1 else 'are'} read in place of the "
                            ".gz beside it (an uncompressed file comes first): remove it or give another folder")
            raise DataError(f"The data at {where} is not the data {whose} was trained on: {differs} (sha256 compared, "
                            f"so a decompressed or recompressed copy differs too); {hint}.")


def check_data_fits(test: Split, c: Any, task_name: str, hint: str = "") -> None:
    """Refuse a split whose shapes or tokens do not fit the model of config ``c`` (e.g. a
    checkpoint whose task data changed on disk): torch and onnxruntime fail with an opaque
    shape or index error otherwise."""
    if c.input_layer == "embedding":  # tokens index the embedding: one past it fails inside onnxruntime's Gather
        ok = (test.x.dim() == 2 and not test.x.is_floating_point()
              and (test.x.numel() == 0 or 0 <= int(test.x.min()) <= int(test.x.max()) < c.input_size))
    else:
        ok = test.x.dim() == 3 and test.x.shape[-1] == c.input_size
    if not ok or (c.init_size and (test.init is None or test.init.shape[-1] != c.init_size)):
        tokens = (f", tokens {int(test.x.min())}..{int(test.x.max())}" if c.input_layer == "embedding"
                  and test.x.numel() and not test.x.is_floating_point() else "")
        raise DataError(f"The test data of task '{task_name}' (x {tuple(test.x.shape)}{tokens}) does not fit the "
                        f"model (input size {c.input_size}, input layer {c.input_layer}){'; ' + hint if hint else ''}.")
    if len(test) == 0:
        raise DataError(f"The test split of task '{task_name}' is empty.")


@torch.no_grad()
def evaluate(model, task: Task, split: Split, batch_size: int = 1000) -> dict[str, float]:
    """Loss and metric of ``model`` on ``split``."""
    was_training = model.training
    model.eval()
    total = count = loss_sum = 0.0
    for b in split.batches(batch_size):
        out = model(b.x, b.init)
        s, c = task.finite_metric_sums(out, b)
        total += s
        count += c
        loss_sum += float(task.loss(out, b)) * len(b)
    model.train(was_training)
    return {"loss": loss_sum / max(1, len(split)), task.metric_name: total / max(count, 1)}


def check_finite(name: str, t: Tensor) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contains NaN or Inf values.")


def split_off(split: Split, count: int, seed: int) -> tuple[Split, Split]:
    """Seeded split of ``split`` into (rest, ``count`` held-out samples)."""
    n = len(split)
    k = int(count)
    if not 0 < k < n:
        raise DataError(f"Cannot hold out {k} of {n} samples: need at least one on each side.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return split.take(perm[k:]), split.take(perm[:k])


def check_task_data(task: Any, data: Any) -> None:
    """Library callers pass ``(task, task.load())``: say so when they pass something else."""
    if not isinstance(task, Task):
        raise param_error("task", "a Task (models.tasks.make_task)", type(task).__name__)
    if not isinstance(data, TaskData):
        raise param_error("data", "the TaskData that task.load() returns", type(data).__name__)
    if data.origin is None:  # (built by hand: the caller vouches for it)
        return
    ours = task.origin()
    if data.origin != ours:
        name, params, files = data.origin
        what = (f"task '{name}'" if name != ours[0] else f"parameters {params}, not {ours[1]}" if params != ours[1]
                else "files of other content (sha256)")
        raise ConfigError(f"data: loaded by another task than the one given ({what}); pass the data that "
                          f"task.load() returns for task '{ours[0]}'.")

