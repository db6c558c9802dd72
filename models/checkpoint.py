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
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from models.errors import CheckpointError, clip, param_error
from models.io import atomic_write_bytes, looks_like_a_model, model_file_kind, sha256_file
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
        mismatch = _state_dict_mismatch(model.state_dict(), self.state_dict)
        try:
            if mismatch is None:
                model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as e:  # a mismatch the key and shape comparison does not see
            mismatch = str(e).strip().splitlines()[0].rstrip(":.")
        if mismatch is not None:
            raise CheckpointError(f"Checkpoint {self.path or ''} does not match its model config: {mismatch}.")
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
    """Write ``ckpt`` atomically and return the file's sha256; ``ckpt.path`` and
    ``ckpt.sha256`` then name the written file (what provenance of later stages records).

    Raises:
        CheckpointError: ``path`` is a directory. RnnCompressError: its directory is missing
        or cannot be written.
    """
    if Path(path).is_dir():
        raise CheckpointError(f"Cannot write the checkpoint: {path} is a directory; give a file name.")
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


def check_model_file(path: str | os.PathLike) -> None:
    """For commands that take a checkpoint or an ONNX model (info, bench): CheckpointError
    for an existing file that is neither, instead of calling it a broken checkpoint."""
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():  # (reading a pipe's first bytes would wait forever)
        raise CheckpointError(f"{p} is not a regular file (a device, pipe or socket); give a checkpoint or an "
                              "ONNX file.")
    if p.is_file() and not looks_like_a_model(p):
        raise CheckpointError(f"{p} is neither a torch checkpoint nor an ONNX model{_looks_like(p)}.")


_MISSING = object()


def _found(value: Any) -> str:
    """What a field holds, short and on one line, for an error message."""
    if value is _MISSING:
        return "nothing (the key is missing)"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if value is None:
        return "None"
    if isinstance(value, (str, bool, int, float)):
        return f"{clip(repr(value))} ({type(value).__name__})"
    return f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _require(ok: bool, p: Path, where: str, rule: str, value: Any) -> None:
    if not ok:
        raise CheckpointError(f"Checkpoint {p} is corrupt: {where} must be {rule}; got {_found(value)}.")


def _require_plain(value: Any, p: Path, where: str) -> None:
    """``value`` is the JSON-like data save_checkpoint writes: str-keyed dicts, lists, text,
    numbers, bools and None (a tensor or an int key there breaks the next save)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _require(isinstance(k, str), p, f"every key of {where}", "a str", k)
            _require_plain(v, p, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _require_plain(v, p, f"{where}[{i}]")
    else:
        _require(value is None or isinstance(value, (str, int, float)), p, where,
                 "plain data (text, a number, a bool, None, a list or a dict)", value)


# Fields of the file that hold a dict (when present), and the metrics that are not numbers.
_DICT_FIELDS = ("config", "state_dict", "masks", "task", "metrics", "provenance", "training", "regularizer",
                "pruning")
_METRIC_RULES = {"metric": (str, "a str (the metric's name)"), "higher_is_better": (bool, "a bool")}


def _check_fields(raw: dict[str, Any], p: Path) -> None:
    """Every field holds what the code reading it relies on (the layout in the module
    docstring), so a hand-edited or corrupt file is refused here, in one line naming the
    field, and not as a TypeError later in info, export, prune or train --resume."""
    def require(ok: bool, where: str, rule: str, value: Any) -> None:
        _require(ok, p, where, rule, value)

    def get(d: dict[str, Any], key: str) -> Any:
        return d.get(key, _MISSING)

    for key in _DICT_FIELDS:
        require(isinstance(raw.get(key, {}), dict), key, "a dict", raw.get(key))
    for key in ("state_dict", "masks"):  # their values are checked once the Checkpoint is built
        for name in raw.get(key, {}):
            require(isinstance(name, str), f"every key of {key}", "a str (a weight's name)", name)
    state = raw.get("state", "complete")
    require(isinstance(state, str) and state in ("training", "complete"), "state", "'training' or 'complete'", state)

    task = raw.get("task", {})
    require(isinstance(task.get("name", ""), str), "task['name']", "a str", task.get("name"))
    require(isinstance(task.get("params", {}), dict), "task['params']", "a dict", task.get("params"))
    _require_plain(task, p, "task")
    metrics = raw.get("metrics", {})
    for k, v in metrics.items():
        kind, rule = _METRIC_RULES.get(k, (None, "a number"))
        require(isinstance(v, kind) if kind else _is_number(v), f"metrics[{k!r}]", rule, v)
    history = raw.get("history", [])
    require(isinstance(history, list), "history", "a list (one dict per epoch)", history)
    for i, entry in enumerate(history):
        require(isinstance(entry, dict), f"history[{i}]", "a dict of str -> number", entry)
        for k, v in entry.items():
            require(isinstance(k, str), f"every key of history[{i}]", "a str", k)
            require(_is_number(v), f"history[{i}][{k!r}]", "a number", v)

    training = raw.get("training", {})
    for key in ("pruning", "regularizer"):
        require(isinstance(training.get(key, {}), dict), f"training[{key!r}]", "a dict", training.get(key))
    pruning = raw.get("pruning", {})
    layers = pruning.get("layers", [])
    require(isinstance(layers, list), "pruning['layers']", "a list (one dict per layer)", layers)
    for i, layer in enumerate(layers):
        require(isinstance(layer, dict), f"pruning['layers'][{i}]", "a dict", layer)
        for key in ("layer", "before", "after"):
            require(_is_count(get(layer, key)), f"pruning['layers'][{i}][{key!r}]", "an int >= 0", get(layer, key))
    require(isinstance(pruning.get("teachers", []), list), "pruning['teachers']", "a list", pruning.get("teachers"))
    for key in ("provenance", "training", "pruning"):
        _require_plain(raw.get(key, {}), p, key)

    reg = raw.get("regularizer", {})
    if reg:  # ModuliRegularizer.to_state()
        require(isinstance(get(reg, "config"), dict), "regularizer['config']", "a dict", get(reg, "config"))
        _require_plain(reg["config"], p, "regularizer['config']")
        require(_is_count(get(reg, "gates")), "regularizer['gates']", "an int >= 0", get(reg, "gates"))
        for key in ("positions", "kept", "perm"):
            require(isinstance(get(reg, key), list), f"regularizer[{key!r}]", "a list (one tensor per layer)",
                    get(reg, key))
            for i, t in enumerate(reg[key]):
                require(isinstance(t, torch.Tensor), f"regularizer[{key!r}][{i}]", "a tensor", t)

    resume = raw.get("resume")
    # (training writes its resume point beside every unfinished checkpoint: one without it is edited)
    require(state != "training" or resume is not None, "resume", "the resume point of an unfinished ('training') "
            "checkpoint", raw.get("resume", _MISSING))
    if resume is not None:  # train --resume: where the interrupted run stopped
        require(isinstance(resume, dict), "resume", "a dict with 'epoch', 'step' and 'optimizer' (or absent)",
                resume)
        for key in ("epoch", "step"):
            require(_is_count(get(resume, key)), f"resume[{key!r}]", "an int >= 0", get(resume, key))
        require(isinstance(get(resume, "optimizer"), dict), "resume['optimizer']", "a dict (the optimizer's state)",
                get(resume, "optimizer"))


def _state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """The first difference in names or shapes between the weights the config makes and
    those of the file, with how many more there are (None when they agree)."""
    problems = [f"state_dict lacks {k!r}, which the config makes" for k in expected if k not in given]
    problems += [f"state_dict has {k!r}, which the config does not make" for k in given if k not in expected]
    problems += [f"state_dict[{k!r}] has shape {tuple(given[k].shape)} where the config makes {tuple(v.shape)}"
                 for k, v in expected.items() if k in given and given[k].shape != v.shape]
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more mismatch{'es' if more > 1 else ''})" if more else "")


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
        with warnings.catch_warnings():  # torch warns about legacy formats; the error below says it in one line
            warnings.simplefilter("ignore")
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
        raise CheckpointError(f"Checkpoint {p} is truncated or not a torch file ({clip(msg, 80)}).") from None
    except Exception:  # torch raises assorted types (KeyError, ...) on garbage input
        raise CheckpointError(f"Checkpoint {p} is not a torch checkpoint{_looks_like(p)}.") from None
    if not isinstance(raw, dict) or "format" not in raw:
        raise CheckpointError(f"{p} is not an rnncompress checkpoint (no 'format' key).")
    if raw["format"] != FORMAT:
        shown = repr(raw["format"]) if isinstance(raw["format"], str) else _found(raw["format"])
        raise CheckpointError(f"{p} has checkpoint format {shown}; this version reads {FORMAT!r}.")
    for key in ("config", "state_dict"):
        if key not in raw:
            raise CheckpointError(f"Checkpoint {p} is incomplete: missing {key!r}.")
    _check_fields(raw, p)
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
