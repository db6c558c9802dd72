"""Pipeline configuration: one TOML file, validated with line-precise errors.

    [pipeline]  name = "..."                      (optional)
    [task]      name = "smnist", data = "...", and any parameter of that task
    [model]     cell, hidden, layers, nonlinearity
    [train]     epochs, batch_size, lr, lr_schedule, optimizer, weight_decay, grad_clip, seed,
                space, inhibitor, invert, strength, p, learn_embedding,
                sparsity, schedule, prune_mode, prune_scope, prune_start, prune_end
    [prune]     method, variant, keep, quantile, threshold, thresholds, feed_forward,
                centrality, edge_prune, finetune_epochs, finetune_lr, distill,
                distill_temperature, release_masks, finetune_strength, seed,
                teachers (list of checkpoint paths: further distillation teachers) (omit to skip)
    [export]    formats, verify_data, atol, rtol, int8_accuracy_drop, int8_relative, min_gain,
                int8_float_below, parity_samples, metric_samples, ir_version      (omit: dense + step)
    [bench]     threads, warmup, runs, step, torch_reference, call_floor, accuracy, max_eval, chunk, seed
    [check]     max_p50_ms, max_p99_ms, max_latency_ratio, max_step_latency_ratio, min_metric, max_metric_drop,
                max_size_kb                                              (omit to skip)

Relative paths (the task's ``data``, ``[prune] teachers``) are relative to the TOML file and stored absolute, so
the pipeline (and every checkpoint it writes) means the same from any working directory. Every value is checked
where it enters: a typo'd key is named with its line and the closest valid key.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from compressor.magnitude import PruneSchedule
from compressor.moduli import ModuliConfig
from compressor.prune import PruneConfig
from compressor.selection import kept_count, parse_keep
from compressor.training import TrainConfig, ignored_train_settings, model_config_from_spec
from models.errors import ConfigError, DataError, RnnCompressError
from models.tasks import TASKS, ModelSpec, Task, make_task

NUM = (int, float)
SCHEMA: dict[str, dict[str, tuple]] = {
    "pipeline": {"name": (str,)},
    "model": {"cell": (str,), "hidden": (int,), "layers": (int,), "nonlinearity": (str,)},
    "train": {
        "epochs": (int,), "batch_size": (int,), "lr": NUM, "lr_schedule": (str,), "optimizer": (str,),
        "weight_decay": NUM, "grad_clip": NUM, "seed": (int,), "space": (str,), "inhibitor": (str,),
        "invert": (bool,), "strength": NUM, "p": NUM, "learn_embedding": (bool,), "sparsity": NUM,
        "schedule": (str,), "prune_mode": (str,), "prune_scope": (str,), "prune_start": NUM, "prune_end": NUM,
    },
    "prune": {
        "method": (str,), "variant": (str,), "keep": (int, float, str), "quantile": NUM, "threshold": NUM,
        "thresholds": (int,), "feed_forward": (bool,), "centrality": (str,), "edge_prune": (bool,), "finetune_epochs": (int,),
        "finetune_lr": NUM, "distill": NUM, "distill_temperature": NUM, "release_masks": (bool,),
        "finetune_strength": NUM, "seed": (int,), "teachers": (list,),
    },
    "export": {"formats": (list,), "verify_data": (str,), "atol": NUM, "rtol": NUM, "int8_accuracy_drop": NUM,
               "int8_relative": NUM, "min_gain": NUM, "int8_float_below": (int,), "parity_samples": (int,),
               "metric_samples": (int,), "ir_version": (int,)},
    "bench": {"threads": (int,), "warmup": (int,), "runs": (int,), "step": (bool,), "torch_reference": (bool,),
              "call_floor": (bool,), "accuracy": (bool,), "max_eval": (int,), "chunk": (int,), "seed": (int,)},
    "check": {"max_p50_ms": NUM, "max_p99_ms": NUM, "max_latency_ratio": NUM, "max_step_latency_ratio": NUM,
              "min_metric": NUM,
              "max_metric_drop": NUM, "max_size_kb": NUM},
}
REQUIRED_TABLES = ("task", "model", "train")


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline: plain data, one field per stage (None = stage skipped)."""

    name: str
    source: str  # the file it came from ("<default>" for the embedded one)
    task: dict[str, Any]
    model: dict[str, Any]
    train: TrainConfig
    prune: PruneConfig | None
    export: dict[str, Any]
    bench: dict[str, Any]
    check: dict[str, Any] | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    teachers: tuple[str, ...] = ()  # [prune] teachers, absolute paths
    # "table.key" -> "file:line: [table] key", for errors found after parsing (missing data).
    locations: dict[str, str] = field(default_factory=dict, compare=False)

    def where(self, table: str, key: str | None = None) -> str:
        """Where ``[table] key`` (or the table) is written, to begin an error message with."""
        name = f"{table}.{key}" if key else table
        return self.locations.get(name, f"{self.source}: [{table}]" + (f" {key}" if key else ""))


class _Locator:
    """Line numbers of tables and keys in the TOML text, for error messages."""

    def __init__(self, text: str, source: str):
        self.lines = text.splitlines()
        self.source = source

    def line(self, table: str, key: str | None = None) -> int | None:
        header = re.compile(r"^\s*\[\s*" + re.escape(table) + r"\s*\]")
        start = None
        for i, ln in enumerate(self.lines):
            if header.match(ln):
                start = i
                break
        if start is None:
            return None
        if key is None:
            return start + 1
        key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start + 1, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[i]):
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1

    def where(self, table: str, key: str | None) -> str:
        """``file:line: [table] key``."""
        ln = self.line(table, key)
        where = f"{self.source}:{ln}" if ln else self.source
        return f"{where}: [{table}] {key}" if key else f"{where}: [{table}]"

    def error(self, table: str, key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{self.where(table, key)}: {message}")


def _check_types(doc: dict[str, Any], loc: _Locator) -> None:
    for table, value in doc.items():
        if table not in SCHEMA and table != "task":
            close = difflib.get_close_matches(table, list(SCHEMA) + ["task"], n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise loc.error(table, None, f"unknown table{hint} Known tables: {sorted(list(SCHEMA) + ['task'])}.")
        if not isinstance(value, dict):
            raise ConfigError(f"{loc.source}: '{table}' must be a table ([{table}]), not a value.")
        if table == "task":  # the task checks its own keys; only the TOML integer range here
            for key, v in value.items():
                _check_toml_int(v, loc, table, key)
            continue
        for key, v in value.items():
            allowed = SCHEMA[table]
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {sorted(allowed)}"
                raise loc.error(table, key, f"unknown key{hint}")
            types = allowed[key]
            ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
            if not ok:
                kinds = ["number"] if types == NUM else [t.__name__ for t in types]
                names = " or ".join(dict.fromkeys(kinds))
                raise loc.error(table, key, f"must be {names}; got {v!r}.")
            _check_toml_int(v, loc, table, key)


# TOML 1.0 integers are signed 64-bit; Python's reader takes any size, which other readers (and
# numpy, deep inside a check) refuse: a larger one is an error here, where it is written.
_TOML_INT = (-2 ** 63, 2 ** 63 - 1)


def _check_toml_int(value: Any, loc: "_Locator", table: str, key: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and not _TOML_INT[0] <= v <= _TOML_INT[1]:
            raise loc.error(table, key, f"{v} is outside TOML's integer range (signed 64-bit, -2^63 to 2^63 - 1).")


def _build(table: str, key_of_error: str | None, loc: _Locator, fn, *args, **kwargs):
    """Run a constructor; turn its ConfigError into one with the TOML line."""
    try:
        return fn(*args, **kwargs)
    except RnnCompressError as e:
        m = re.search(r"The '([a-z0-9_/]+)' parameter", str(e))
        key = key_of_error or (m.group(1).split("/")[0] if m else None)
        raise loc.error(table, key, str(e)) from None
    except TypeError as e:
        raise loc.error(table, key_of_error, f"invalid value ({e}).") from None


def is_benched_export(variant: Any) -> bool:
    """Whether the bench stage measures this export of the final model as a model of its own:
    every file but the plain dense and step ones (the checkpoint itself is measured as
    those: dense, with its step model). A step+int8 file is measured per step."""
    return variant is not None and variant.name not in ("dense", "step")


def _check_budgets_without_prune(check: dict[str, Any], variants: list[Any], loc: "_Locator") -> None:
    """Without [prune] the final model is the trained one, which is the baseline of every
    comparison: a relative budget needs another full-sequence export to compare (int8,
    sparse, ...), and a per-step ratio has nothing it could be measured on."""
    others = [v for v in variants if is_benched_export(v) and not v.step]
    for key in ("max_latency_ratio", "max_metric_drop", "max_step_latency_ratio"):
        if check.get(key) is None:
            continue
        if key == "max_step_latency_ratio" or not others:
            needs = "add [prune]" if key == "max_step_latency_ratio" else (
                "add [prune], or another full-sequence format (e.g. int8) to [export] formats")
            raise loc.error("check", key, f"compares with the trained model, which without [prune] is the final "
                                          f"model itself: {needs}.")


def _refuse_inapplicable_prune_keys(given: dict[str, Any], prune: PruneConfig, loc: "_Locator") -> None:
    ignored = prune.ignored_settings()
    for key in given:
        if key in ignored:
            raise loc.error("prune", key, f"applies to {ignored[key].as_key()} only; drop it.")
    if "quantile" in given and "threshold" in given:
        raise loc.error("prune", "threshold", "an absolute threshold replaces quantile; give one of them.")


# Tasks whose metric follows their data: npz gives accuracy for class labels and MSE for float
# targets. Every other task's metric is fixed by its class.
_METRICS_BY_DATA = {"npz": (("accuracy", True), ("mse", False))}


def _possible_metrics(task: Task) -> tuple[tuple[str, bool], ...]:
    """(name, higher_is_better) of the metric ``task`` will report, or of each it may report
    when that follows data not readable yet (its absence is refused where the data is loaded)."""
    try:
        return ((task.metric_name, task.higher_is_better),)  # (npz reads its file to know)
    except DataError:
        return _METRICS_BY_DATA[task.name]


def _check_budgets_answerable(check: dict[str, Any], bench: dict[str, Any], task: Task, loc: "_Locator") -> None:
    """Refuse a budget the bench stage will never measure, or one no model could meet (or every
    model meets) for the task's metric: found here, not after training."""
    from runtime.check import check_limit_fits  # the rule check_report applies to the report

    for key in ("min_metric", "max_metric_drop"):
        if key in check and not bench["accuracy"]:
            raise loc.error("check", key, "needs the onnxruntime metric, which [bench] accuracy = false does not "
                                          "measure; drop one of them.")
    if "max_step_latency_ratio" in check and not bench["step"]:
        raise loc.error("check", "max_step_latency_ratio", "needs per-step latencies, which [bench] step = false "
                                                           "does not measure; drop one of them.")
    metrics = _possible_metrics(task)
    for key in ("min_metric", "max_metric_drop"):
        if key not in check:
            continue
        refusals = []
        for name, higher_is_better in metrics:
            try:
                check_limit_fits({"name": name, "higher_is_better": higher_is_better}, key, check[key])
            except ConfigError as e:
                refusals.append(str(e))
        if len(refusals) == len(metrics):  # whichever metric the data gives
            prefix = "" if len(metrics) == 1 else (f"the metric of task {task.name!r} is "
                                                  f"{' or '.join(n for n, _ in metrics)}, by its data: ")
            raise loc.error("check", key, prefix + " ".join(refusals))


def parse_pipeline(text: str, source: str = "<pipeline>", base_dir: Path | None = None) -> Pipeline:
    """Parse and validate pipeline TOML text (see the module docstring for the keys).

    Relative paths are resolved against ``base_dir`` (default: the working directory) and
    stored absolute."""
    if not isinstance(text, str):
        raise ConfigError(f"parse_pipeline takes the TOML text; got {type(text).__name__} (for a file: load_pipeline).")
    text = text.removeprefix("\ufeff")  # a byte order mark, as editors on Windows write: not TOML, no meaning
    loc = _Locator(text, source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None
    _check_types(doc, loc)
    for t in REQUIRED_TABLES:
        if t not in doc:
            raise ConfigError(f"{source}: missing required table [{t}].")
    base = os.path.abspath(base_dir or ".")

    def absolute(path: str) -> str:
        return os.path.abspath(os.path.join(base, path))  # an absolute path stays as it is

    task = dict(doc["task"])
    if "name" not in task:
        raise loc.error("task", None, "needs name = one of " + ", ".join(sorted(TASKS)) + ".")
    name = task.pop("name")
    if name not in TASKS:
        raise loc.error("task", "name", f"unknown task {name!r}; one of {sorted(TASKS)}.")
    if "data" in task:
        if not isinstance(task["data"], str):
            raise loc.error("task", "data", f"must be a path string; got {task['data']!r}.")
        task["data"] = absolute(task["data"]) if task["data"] else ""  # empty: the task says it needs data
    t = _build("task", None, loc, make_task, name, task)  # validates the parameters (not the data)
    for key, applies_to in t.ignored_params().items():
        if key in task:
            raise loc.error("task", key, f"applies to {applies_to} only; drop it.")
    task_dict = t.to_dict()

    m = doc["model"]
    model = {"cell": m.get("cell", "lstm"), "hidden": m.get("hidden", 128), "layers": m.get("layers", 1),
             "nonlinearity": m.get("nonlinearity")}
    if model["cell"] not in ("rnn", "lstm", "gru"):
        raise loc.error("model", "cell", f"must be one of ['gru', 'lstm', 'rnn']; got {model['cell']!r}.")
    if model["nonlinearity"] is not None and model["cell"] != "rnn":
        cell = {"lstm": "an LSTM", "gru": "a GRU"}[model["cell"]]
        raise loc.error("model", "nonlinearity", f'applies to cell = "rnn" only ({cell} has fixed gate '
                                                 "nonlinearities); drop it.")
    # The model config training builds (the same function), with a stand-in for the input and
    # output sizes: the task's data gives those, and they are not the user's to get wrong.
    _build("model", None, loc, model_config_from_spec, ModelSpec(input_size=1, output_size=1), model["cell"],
           model["hidden"], model["layers"], model["nonlinearity"])

    tr = dict(doc["train"])
    space, sparsity = tr.get("space", ModuliConfig.space), tr.get("sparsity", PruneSchedule.sparsity)
    for key, applies_to in ignored_train_settings(space, sparsity).items():  # as train refuses its options
        if key in tr:
            raise loc.error("train", key, f"applies to {applies_to} only; drop it.")
    seed = tr.get("seed", 0)
    reg = _build("train", None, loc, ModuliConfig, seed=seed,
                 **{v: tr.pop(k) for k, v in _REGULARIZER_KEYS.items() if k in tr})
    sched = _build("train", None, loc, PruneSchedule,
                   **{v: tr.pop(k) for k, v in _SCHEDULE_KEYS.items() if k in tr})
    train = _build("train", None, loc, TrainConfig, regularizer=reg, pruning=sched, **tr)

    prune, teachers = None, ()
    if "prune" in doc:
        pr = dict(doc["prune"])
        teachers = pr.pop("teachers", [])
        if not all(isinstance(t, str) for t in teachers):
            raise loc.error("prune", "teachers", f"must be a list of checkpoint paths; got {teachers!r}.")
        teachers = tuple(absolute(t) for t in teachers)
        if "keep" in pr:
            pr["keep"] = _build("prune", "keep", loc, parse_keep, pr["keep"])
        prune = _build("prune", None, loc, PruneConfig, **pr)
        _refuse_inapplicable_prune_keys(pr, prune, loc)
        if isinstance(prune.keep, int) and prune.keep > model["hidden"]:
            raise loc.error("prune", "keep", f"must be at most [model] hidden ({model['hidden']}) neurons; "
                                             f"got {prune.keep}.")
        if isinstance(prune.keep, float) and kept_count(prune.keep, model["hidden"]) < 1:
            raise loc.error("prune", "keep", f"must keep at least 1 of the [model] hidden ({model['hidden']}) neurons; "
                                             f"got {prune.keep:g}, which rounds to 0.")
        if "finetune_strength" in pr and train.regularizer.space == "none":
            raise loc.error("prune", "finetune_strength", 'applies to a model trained with a regularizer ([train] '
                                                          'space; "none" trains without one); drop it.')
        if teachers and not prune.distill > 0:
            raise loc.error("prune", "teachers", "further teachers are only used by distillation: set distill > 0.")

    from exporters.export import export_options, inapplicable_export_settings, parse_formats

    given_export = doc.get("export", {})
    ex = {"formats": ["dense", "step"], **export_defaults(), **given_export}
    if not ex["formats"] or not all(isinstance(f, str) for f in ex["formats"]):
        raise loc.error("export", "formats", f"must be a non-empty list of format names; got {ex['formats']!r}.")
    variants = _build("export", "formats", loc, parse_formats, ex["formats"])
    # A key the formats or the verification would not use is refused, as the export command
    # refuses its option, and left out (so the resolved TOML, which lists the rest, parses again).
    for key, applies_to in inapplicable_export_settings(variants, ex["verify_data"]).items():
        if key in given_export:
            raise loc.error("export", key, f"applies to {applies_to} only; drop it.")
        ex.pop(key, None)
    _build("export", None, loc, export_options, **{k: v for k, v in ex.items() if k != "formats"})

    from runtime.bench import BenchConfig

    # Defaults filled in, so a pipeline and its resolved form (``resolved_toml``) plan alike.
    given_bench = doc.get("bench", {})
    bench_config = _build("bench", None, loc, BenchConfig, **given_bench)
    bench = {k: getattr(bench_config, k) for k in SCHEMA["bench"]}
    if not bench["accuracy"]:  # as bench --no-accuracy refuses --max-eval
        if "max_eval" in given_bench:
            raise loc.error("bench", "max_eval", "applies to the metric (accuracy = true) only; drop it.")
        del bench["max_eval"]

    check = None
    if "check" in doc:
        check = dict(doc["check"])
        if not check:
            raise loc.error("check", None, "has no budget; give at least one (e.g. max_latency_ratio = 0.5).")
        from runtime.check import Budgets

        _build("check", None, loc, Budgets, **check)
        if prune is None:
            _check_budgets_without_prune(check, parse_formats(ex["formats"]), loc)
        _check_budgets_answerable(check, bench, t, loc)

    return Pipeline(
        name=doc.get("pipeline", {}).get("name", Path(source).stem), source=source, task=task_dict, model=model,
        train=train, prune=prune, export=ex, bench=bench, check=check, raw=doc, teachers=teachers,
        locations={"task": loc.where("task", None), "task.data": loc.where("task", "data"),
                   "prune.teachers": loc.where("prune", "teachers")},
    )


def export_defaults() -> dict[str, Any]:
    """[export]'s keys (but formats) with the export command's defaults."""
    from exporters.export import INT8_TOLERANCE_KEYS, ExportOptions

    defaults = ExportOptions()
    return {k: getattr(defaults.int8, INT8_TOLERANCE_KEYS[k]) if k in INT8_TOLERANCE_KEYS else getattr(defaults, k)
            for k in SCHEMA["export"] if k != "formats"}


# [train] keys that live in the regularizer and the magnitude-pruning schedule: TOML key -> field.
_REGULARIZER_KEYS = {"space": "space", "inhibitor": "inhibitor", "invert": "invert", "strength": "strength",
                     "p": "p", "learn_embedding": "learn_embedding"}
_SCHEDULE_KEYS = {"sparsity": "sparsity", "schedule": "schedule", "prune_mode": "mode", "prune_scope": "scope",
                  "prune_start": "start", "prune_end": "end"}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # TOML spells ints, floats, inf and nan as Python does
    if isinstance(value, str):
        # A JSON string is a TOML basic string, once characters beyond U+FFFF are written as
        # themselves (JSON escapes them as surrogate pairs, which TOML refuses) and DEL,
        # which JSON leaves bare, is escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def resolved_toml(p: Pipeline) -> str:
    """The pipeline as TOML with every default filled in and every path absolute: what
    ``run --dry-run`` shows. Parsing it gives the same pipeline (and the same plan)."""
    tables: list[tuple[str, dict[str, Any]]] = [("pipeline", {"name": p.name})]
    ignored = make_task(p.task["name"], p.task["params"]).ignored_params()  # (refused by the parser)
    tables.append(("task", {"name": p.task["name"], **{k: v for k, v in p.task["params"].items() if k not in ignored}}))
    tables.append(("model", {k: v for k, v in p.model.items() if k != "nonlinearity" or p.model["cell"] == "rnn"}))
    train = {k: getattr(p.train, k) for k in SCHEMA["train"] if k not in _REGULARIZER_KEYS and k not in _SCHEDULE_KEYS}
    train.update({k: getattr(p.train.regularizer, f) for k, f in _REGULARIZER_KEYS.items()})
    train.update({k: getattr(p.train.pruning, f) for k, f in _SCHEDULE_KEYS.items()})
    for key in ignored_train_settings(p.train.regularizer.space, p.train.pruning.sparsity):
        del train[key]  # (the parser refuses them: they can only hold their defaults)
    tables.append(("train", train))
    if p.prune is not None:
        # Without the keys its method, variant or fine-tuning ignore (the parser refuses them: they can only
        # hold their defaults), nor quantile beside an absolute threshold.
        ignored = set(p.prune.ignored_settings())
        if p.prune.threshold is not None:
            ignored.add("quantile")
        prune = {k: v for k, v in p.prune.to_dict().items() if k not in ignored}
        tables.append(("prune", {**prune, "teachers": list(p.teachers)}))
    tables.append(("export", dict(p.export)))
    tables.append(("bench", dict(p.bench)))
    if p.check is not None:
        tables.append(("check", dict(p.check)))
    lines = []
    for name, values in tables:
        lines.append(f"[{name}]")
        # None is TOML's missing key: the parser gives it its default (None) back. The key is
        # still shown, as a comment, so the listing names every key that applies.
        lines += [f"# {k}: not set" if v is None or v == [] else f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def load_pipeline(path: str | Path) -> Pipeline:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"Pipeline file {p} is a directory; give the .toml file.")
    if not p.is_file():
        raise ConfigError(f"Pipeline file {p} " + ("is not a regular file (a device, pipe or socket); give the .toml "
                                                   "file." if p.exists() else "does not exist."))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Pipeline file {p} cannot be read ({type(e).__name__}).") from None
    return parse_pipeline(text, str(p), p.parent)
