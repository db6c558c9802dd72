"""Checkpoint files: one torch file holding plain data and tensors only.

Layout (``format`` = ``rnncompress-checkpoint/1``)::

    {"format": str, "state": "training" | "complete",
     "config": ModelConfig dict, "state_dict": {name: tensor}, "masks": {name: bool tensor},
     "task": {"name": str, "params": {...}},           # how to rebuild the data and metric
     "history": [{"epoch": int, ...metrics}],         # one entry per epoch / stage
     "metrics": {...},                                  # final test metrics
     "provenance": {"rnncompress": version, "created": iso time, "parent": sha256, ...},
     "training": {...TrainConfig}, "regularizer": {...}, "pruning": {...},
     "resume": {"epoch", "step", "optimizer"}}          # only while training

Loading always uses ``torch.load(weights_only=True)``: a checkpoint that carries pickled
code is refused, never executed. Writing is atomic (temp file + rename).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from models.errors import CheckpointError, param_error
from models.io import atomic_write_bytes, model_file_kind, sha256_file
from models.sequence import ModelConfig, SequenceModel

FORMAT = "rnncompress-checkpoint/1"


def package_version() -> str:
    try:
        return metadata.version("rnncompress")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, with helpers to rebuild the model."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    regularizer: dict[str, Any] = field(default_factory=dict)
    pruning: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None
    state: str = "complete"
    path: Path | None = None
    sha256: str | None = None

    def unfinished(self) -> str | None:
        """A sentence saying this is an interrupted training run (None for a finished one)."""
        if self.state != "training":
            return None
        done, total = (self.resume or {}).get("epoch", 0), self.training.get("epochs", "?")
        return (f"{self.path or 'the checkpoint'} is an unfinished training run ({done} of {total} epochs; "
                "finish it with train --resume)")

    def build_model(self) -> SequenceModel:
        model = SequenceModel(self.config)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"Checkpoint {self.path or ''} does not match its model config: {first}") from None
        for name, mask in self.masks.items():
            model.set_mask(name, mask)
        model.eval()
        return model

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format": FORMAT,
            "state": self.state,
            "config": self.config.to_dict(),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
            "masks": {k: v.detach().cpu().bool().contiguous() for k, v in self.masks.items()},
            "task": self.task,
            "history": self.history,
            "metrics": self.metrics,
            "provenance": self.provenance,
            "training": self.training,
            "regularizer": self.regularizer,
            "pruning": self.pruning,
        }
        if self.resume is not None:
            d["resume"] = self.resume
        return d

    @classmethod
    def from_model(cls, model: SequenceModel, **kwargs: Any) -> "Checkpoint":
        return cls(
            config=model.config,
            state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
            masks={k: v.detach().clone() for k, v in model.masks().items()},
            **kwargs,
        )


_PLAIN = ("config", "task", "history", "metrics", "provenance", "training", "pruning")


def _canonical(d: dict[str, Any]) -> dict[str, Any]:
    """Plain-data fields rebuilt from sorted JSON: pickle's output depends on object identity
    (equal strings are written once or twice), so a resumed run would otherwise give other
    bytes than an uninterrupted one with the same content."""
    plain = {k: d[k] for k in _PLAIN}
    plain["regularizer_config"] = d["regularizer"].get("config", {})
    canon = json.loads(json.dumps(plain, sort_keys=True))
    reg = dict(d["regularizer"])
    if reg:
        reg["config"] = canon.pop("regularizer_config")
    else:
        canon.pop("regularizer_config")
    return {**d, **canon, "regularizer": reg}


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> str:
    """Write ``ckpt`` atomically; returns the file's sha256."""
    buf = io.BytesIO()
    torch.save(_canonical(ckpt.to_dict()), buf)
    atomic_write_bytes(path, buf.getvalue())
    ckpt.path = Path(path)
    ckpt.sha256 = sha256_file(path)
    return ckpt.sha256


def _looks_like(p: Path) -> str:
    """A hint for a file that is not a checkpoint: what it probably is instead."""
    if model_file_kind(p) == "onnx":
        return " (it is an ONNX model: `rnncompress info`, `bench` and `sparsify` read those)"
    hints = {".json": " (a JSON file: reports go to `rnncompress check`)",
             ".toml": " (a TOML file: pipelines go to `rnncompress run`)"}
    return hints.get(p.suffix.lower(), "")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint.

    Raises:
        CheckpointError: missing, truncated, foreign, pickled code, or inconsistent.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"Checkpoint {p} does not exist.")
    if not p.is_file():
        raise CheckpointError(f"Checkpoint {p} is not a file.")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses a global it does not allow (code or custom objects); an
        # "Unsupported operand" means the bytes are not a pickle at all (another format).
        if "Unsupported operand" in str(e) or "Weights only load failed" not in str(e):
            raise CheckpointError(f"Checkpoint {p} is not a torch checkpoint{_looks_like(p)}.") from None
        raise CheckpointError(
            f"Checkpoint {p} carries pickled code or objects (refused: only tensors and plain data are loaded)."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        msg = str(e).split("\n")[0] or type(e).__name__
        if "weights_only" in msg.lower() or "Weights only" in msg:
            raise CheckpointError(f"Checkpoint {p} carries pickled code or objects (refused).") from None
        raise CheckpointError(f"Checkpoint {p} is truncated or not a torch file ({msg[:80]}).") from None
    except Exception:  # torch raises assorted types (KeyError, ...) on garbage input
        raise CheckpointError(f"Checkpoint {p} is not a torch checkpoint{_looks_like(p)}.") from None
    if not isinstance(raw, dict) or "format" not in raw:
        raise CheckpointError(f"{p} is not an rnncompress checkpoint (no 'format' key).")
    if raw["format"] != FORMAT:
        raise CheckpointError(f"{p} has checkpoint format {raw['format']!r}; this version reads {FORMAT!r}.")
    for key in ("config", "state_dict"):
        if key not in raw:
            raise CheckpointError(f"Checkpoint {p} is incomplete: missing {key!r}.")
    try:
        config = ModelConfig.from_dict(dict(raw["config"]))
    except Exception as e:
        raise CheckpointError(f"Checkpoint {p} has an invalid model config: {e}") from None
    ckpt = Checkpoint(
        config=config,
        state_dict=dict(raw["state_dict"]),
        masks=dict(raw.get("masks", {})),
        task=dict(raw.get("task", {})),
        history=list(raw.get("history", [])),
        metrics=dict(raw.get("metrics", {})),
        provenance=dict(raw.get("provenance", {})),
        training=dict(raw.get("training", {})),
        regularizer=dict(raw.get("regularizer", {})),
        pruning=dict(raw.get("pruning", {})),
        resume=raw.get("resume"),
        state=raw.get("state", "complete"),
        path=p,
        sha256=sha256_file(p),
    )
    for name, t in ckpt.state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"Checkpoint {p} is corrupt: state_dict entry {name!r} is not a tensor.")
    for name, m in ckpt.masks.items():  # a mask belongs to a weight of the same shape
        w = ckpt.state_dict.get(name)
        if not isinstance(m, torch.Tensor) or w is None or tuple(m.shape) != tuple(w.shape):
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            want = "there is no such weight" if w is None else f"does not match its weight {tuple(w.shape)}"
            raise CheckpointError(f"Checkpoint {p} is corrupt: mask {name!r} is {got} and {want}.")
    return ckpt


def as_checkpoint(value: Any, name: str = "ckpt") -> Checkpoint:
    """A ``Checkpoint`` as given, or loaded from a path (library callers may pass either).

    Raises:
        ConfigError: neither. CheckpointError: a path that is not a valid checkpoint.
    """
    if isinstance(value, Checkpoint):
        return value
    if isinstance(value, (str, os.PathLike)):
        return load_checkpoint(value)
    raise param_error(name, "a Checkpoint or the path of one", type(value).__name__)


def check_finite(ckpt: Checkpoint) -> None:
    """Refuse weights with NaN or Inf: every later stage would propagate them silently."""
    for name, t in ckpt.state_dict.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"Checkpoint {ckpt.path} has NaN or Inf values in {name}.")
