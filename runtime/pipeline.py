"""``rnncompress run``: train -> prune -> export -> bench -> check, as one resumable job.

Every stage writes its artifacts atomically into the output directory and records them in
``manifest.json`` (file, sha256, bytes, the stage that produced it, the stage's input hash).
A stage whose input hash — its own settings plus the hashes of the files it reads — matches
the manifest, and whose outputs are still present and unchanged, is skipped. Training
writes a checkpoint every epoch, so a run interrupted during training resumes where it
stopped; every other stage is short and simply runs again. Nothing half-written is ever
used: files appear only complete (temp file + rename) and the manifest is updated last.

Inputs are checked before anything is created (``check_inputs``): an output directory that
cannot be written or holds a foreign manifest or a file of the user's where a stage writes,
missing task data or a missing [prune] teacher stop the run (and a dry run) with one line.
The manifest also names the stages that started writing and have not recorded
(``unfinished``): what a killed stage left is ours, not a file of the user's. Each stage creates the subfolder it
writes into when it writes, so a refused or failed run leaves no empty folders behind.

Layout of the output directory::

    manifest.json
    pipeline.toml             the resolved pipeline the folder was made with (every default
                              filled in): `rnncompress run pipeline.toml --out DIR` remakes it
    model/trained.pt          train
    model/pruned.pt           prune  (when the pipeline has a [prune] table)
    model/prune.json          prune  (neurons before/after per layer, parameters, metric)
    model/pruning.png         prune  (recurrent weights in space order, kept neurons marked;
                                      pruning-<layer>.png for several layers)
    onnx/model.*.onnx         export (the final model in every requested format)
    onnx/baseline.onnx        export (dense ONNX of the trained model, when pruned)
    bench/report.json|md|png  bench  (baseline: the trained model)
    check/check.json, junit.xml  check
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from compressor.prune import check_teacher_task, prune_checkpoint
from compressor.training import (check_resumable, check_training_memory, model_config_for, resume_training,
                                 train_new)
from models.checkpoint import Checkpoint, load_checkpoint, package_version
from models.errors import ConfigError, DataError, RnnCompressError, param_error
from models.io import (atomic_leftover_target, atomic_write_text, is_atomic_leftover, probe_writable_dir, same_file,
                       sha256_file)
from models.progress import SILENT, Progress
from models.sequence import ModelConfig
from models.tasks import TaskData, make_task, task_from_checkpoint
from runtime.pipeline_config import Pipeline, is_benched_export, resolved_toml

MANIFEST = "manifest.json"
PIPELINE_FILE = "pipeline.toml"
MANIFEST_SCHEMA = "rnncompress-manifest/1"
STAGES = ("train", "prune", "export", "bench", "check")
# Pictures a stage draws besides its planned files (how many depends on its results).
PLOTS = {"prune": "model/pruning*.png", "bench": "bench/*.png"}
# Every file a run may write, planned or not (a format a later pipeline dropped, ...).
WRITTEN = (MANIFEST, PIPELINE_FILE, *PLOTS.values(), "model/*.pt", "model/*.json", "onnx/*.onnx", "bench/report.*",
           "check/*")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StagePlan:
    name: str
    inputs: dict[str, str]  # label -> path (hashed into the input hash)
    # Paths relative to the output directory. A stage whose files depend on its results
    # (the bench plots) adds them when it runs, so the manifest lists every file written.
    outputs: list[str]
    settings: dict[str, Any]
    action: str = "run"  # run | skip | resume
    reason: str = ""
    input_hash: str = ""


@dataclass
class PipelineResult:
    out_dir: Path
    stages: list[StagePlan]
    report: dict[str, Any] | None = None
    check: list[Any] = field(default_factory=list)
    budgets_ok: bool = True


class Manifest:
    """``manifest.json``: every stage's input hash, settings and outputs. Given the resolved
    pipeline (``resolved``), each save also writes it as ``pipeline.toml`` and lists it."""

    def __init__(self, out_dir: Path, resolved: str | None = None):
        self.path = out_dir / MANIFEST
        self.out_dir = out_dir
        self.resolved = resolved  # None: pipeline.toml is not written (it is this run's input)
        self._config_recorded = False  # pipeline.toml is written and hashed at the first save of a run
        self.data: dict[str, Any] = {"schema": MANIFEST_SCHEMA, "stages": {}}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                data = None
            if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
                raise ConfigError(f"{self.path} is not an rnncompress manifest; choose another --out directory.")
            if (damage := _manifest_damage(data)) is not None:
                raise ConfigError(f"{self.path} is damaged ({damage}); choose another --out directory.")
            self.data = data

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)

    def changed_output(self, plan: StagePlan) -> str | None:
        """The first file the stage recorded that is gone or no longer what it wrote."""
        for f in (self.stage(plan.name) or {}).get("outputs", []):
            p = self.out_dir / f["file"]
            if not p.exists() or p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
                return f["file"]
        return None

    def forget(self, name: str) -> list[str]:
        """Delete the files stage ``name`` recorded and its record; returns the files removed."""
        removed = []
        for f in self.data["stages"].pop(name, {}).get("outputs", []):
            with contextlib.suppress(OSError):
                (self.out_dir / f["file"]).unlink()
                removed.append(f["file"])
            with contextlib.suppress(OSError):  # its folder too, when nothing else is in it
                (self.out_dir / f["file"]).parent.rmdir()
        self.save()
        return removed

    def start(self, plan: StagePlan) -> None:
        """Note that ``plan``'s stage is writing: if the run is killed before ``record``, what
        it wrote is still known as ours (``_refuse_unrecorded_outputs``), not taken for the user's."""
        self.data["unfinished"] = sorted({*self._unfinished(), plan.name})
        self.save()

    def _unfinished(self) -> list[str]:
        names = self.data.get("unfinished", [])
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def unrecorded(self, rel: str, stage: str) -> bool:
        """Whether ``rel``, a file of ``stage``, is neither listed here nor of that stage stopped before its record."""
        return rel not in self.files() and stage not in self._unfinished()

    def record(self, plan: StagePlan, seconds: float, extra: dict[str, Any] | None = None) -> None:
        if plan.name in self._unfinished():
            self.data["unfinished"] = [n for n in self._unfinished() if n != plan.name]
        outputs = []
        for rel in plan.outputs:
            p = self.out_dir / rel
            if p.exists():
                outputs.append({"file": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size,
                                "produced_by": plan.name})
        # What the stage wrote last time and not this time (a format dropped, a plot of a
        # layer that is gone) is stale: it must not sit beside this run's files.
        for f in (self.stage(plan.name) or {}).get("outputs", []):
            if f["file"] not in plan.outputs:
                with contextlib.suppress(OSError):
                    (self.out_dir / f["file"]).unlink()
        self.data["stages"][plan.name] = {
            "input_hash": plan.input_hash, "complete": True, "outputs": outputs, "seconds": round(seconds, 2),
            "settings": plan.settings, **(extra or {}),
        }
        # Stages after this one must rerun: their inputs changed.
        later = STAGES[STAGES.index(plan.name) + 1:]
        for name in later:
            if name in self.data["stages"]:
                self.data["stages"][name]["complete"] = False
        self.save()

    def files(self) -> list[str]:
        """Every file the recorded stages wrote (and ``pipeline.toml``), relative to the output directory."""
        config = [self.data["pipeline"]["file"]] if "pipeline" in self.data else []
        return config + [f["file"] for rec in self.data["stages"].values() for f in rec.get("outputs", [])]

    def save(self) -> None:
        self.data["rnncompress"] = package_version()
        config = self.out_dir / PIPELINE_FILE
        if not self._config_recorded:
            if self.resolved is not None:
                atomic_write_text(config, self.resolved)
            if config.is_file():
                self.data["pipeline"] = {"file": PIPELINE_FILE, "bytes": config.stat().st_size,
                                         "sha256": sha256_file(config)}
            self._config_recorded = True
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True))


def _manifest_damage(data: dict[str, Any]) -> str | None:
    """What in a manifest of our schema is not shaped as ``Manifest`` writes it (None: nothing)."""
    entry = {"file": str, "sha256": str, "bytes": int}

    def bad_entry(f: Any) -> bool:
        return (not isinstance(f, dict) or any(not isinstance(f.get(k), t) for k, t in entry.items())
                or not _inside(f["file"]))

    stages = data.get("stages")
    if not isinstance(stages, dict):
        return "'stages' is not an object"
    for name, rec in stages.items():
        if name not in STAGES or not isinstance(rec, dict):
            return f"stages.{name} is not a stage record"
        outputs = rec.get("outputs", [])
        if not isinstance(outputs, list) or any(bad_entry(f) for f in outputs):
            return f"stages.{name}.outputs is not a list of {{file, sha256, bytes}} inside the folder"
    if "pipeline" in data and bad_entry(data["pipeline"]):
        return "'pipeline' is not a {file, sha256, bytes} entry"
    return None


def _inside(rel: str) -> bool:
    """Whether a manifest's file name stays inside the output folder: the run deletes and
    rewrites the files its manifest lists, so a hand-edited '../x' or '/etc/x' must never count."""
    path = PurePosixPath(rel)
    return bool(rel) and "\\" not in rel and not path.is_absolute() and ".." not in path.parts and rel == path.as_posix()


def _relative_to(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` (both resolved, symlinks followed), if it lies inside."""
    path, folder = path.resolve(), folder.resolve()
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else None


def _load_data(p: Pipeline) -> TaskData:
    """The pipeline's task data; a DataError names the TOML line of [task] data (of [task]
    for a task that generates its data: its sizes, not a file, are what to change)."""
    task = make_task(p.task["name"], p.task["params"])
    try:
        return task.load()
    except DataError as e:
        raise DataError(f"{p.where('task', 'data' if 'data' in p.task['params'] else None)}: {e}") from None


def _model_config(p: Pipeline, data: TaskData) -> ModelConfig:
    return model_config_for(data, p.model["cell"], p.model["hidden"], p.model["layers"], p.model["nonlinearity"])


def _file_hash(path: Path) -> str:
    return sha256_file(path) if path.exists() else "missing"


def export_files(p: Pipeline) -> list[tuple[str, Any]]:
    """(path relative to the output directory, variant) of every file the export stage writes;
    the variant is None for the baseline (dense export of the trained model)."""
    from exporters.export import parse_formats

    files: list[tuple[str, Any]] = [(f"onnx/{v.filename('model')}", v) for v in parse_formats(p.export["formats"])]
    if p.prune:
        files.append(("onnx/baseline.onnx", None))
    return files


def _refuse_foreign_folder(p: Pipeline, out_dir: Path) -> None:
    """A folder without a manifest is ours to fill only when it is empty or holds nothing but
    the checkpoint of a first run of these settings stopped in training (and temporary files
    of a write that was killed): anything else may be the user's, and a stage would write
    over it."""
    if not out_dir.is_dir() or (out_dir / MANIFEST).exists():
        return
    theirs = sorted(f.relative_to(out_dir).as_posix() for f in out_dir.rglob("*")
                    if not f.is_dir() and not is_atomic_leftover(f))
    ours = "model/trained.pt" in theirs and _run_state(p, out_dir / "model/trained.pt")[0] is not None
    if ours:
        theirs.remove("model/trained.pt")
    if theirs:
        shown = ", ".join(theirs[:3]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3 else "")
        also = (" (model/trained.pt is no training run of this pipeline's settings: a first run stopped before "
                "a settings change leaves one; delete it to start again)") if theirs == ["model/trained.pt"] else ""
        raise ConfigError(f"--out {out_dir} already holds files ({shown}) but no {MANIFEST} of an earlier run{also}; "
                          "choose a new or empty directory.")


def _refuse_unrecorded_outputs(p: Pipeline, out_dir: Path) -> None:
    """In the folder of an earlier run, a file where this run writes that its manifest does
    not list (a format this pipeline adds, where the user put a file of their own) is not
    ours to overwrite: refused. What a stage killed before its record wrote is ours (the
    manifest names the stage that was writing), as is a training run of these settings."""
    from runtime.plots import pruning_plot_paths
    from runtime.report import FILES

    manifest = Manifest(out_dir)
    outputs = stage_outputs(p)
    plots = {"prune": [f.as_posix() for f in pruning_plot_paths(Path("model/pruning.png"), p.model["layers"])],
             "bench": [f"bench/{name}" for name in FILES.values() if name.endswith(".png")]}
    for stage, files in outputs.items():
        for name in files + plots.get(stage, []):
            f = out_dir / name
            if (f.is_file() and manifest.unrecorded(name, stage)
                    and not (name == "model/trained.pt" and _run_state(p, f)[0] is not None)):
                raise ConfigError(f"--out {out_dir}: {name} is not a file an earlier run wrote (its {MANIFEST} "
                                  f"does not list it), but this run's {stage} stage writes it; move it away or "
                                  "choose another --out directory.")


def stage_outputs(p: Pipeline) -> dict[str, list[str]]:
    """Stage -> the files it writes whatever its results, relative to the output directory
    (plots, whose names depend on the model, are added when they are written)."""
    outputs = {"train": ["model/trained.pt"]}
    if p.prune:
        outputs["prune"] = ["model/pruned.pt", "model/prune.json"]
    outputs["export"] = [f for f, _ in export_files(p)]
    outputs["bench"] = ["bench/report.json", "bench/report.md"]
    if p.check is not None:
        outputs["check"] = ["check/check.json", "check/junit.xml"]
    return outputs


def _refuse_blocked_outputs(p: Pipeline, out_dir: Path) -> None:
    """A folder damaged where a stage writes (a file where its subfolder goes, a folder where
    its file or one of its plots goes) is refused before any work, not by the operating
    system after minutes."""
    outputs = stage_outputs(p)
    for rel in [f for files in outputs.values() for f in files] + [PLOTS[s] for s in PLOTS if s in outputs]:
        target = out_dir / rel
        for parent in reversed(target.relative_to(out_dir).parents):
            where = out_dir / parent
            if parent != Path(".") and where.exists() and not where.is_dir():
                raise ConfigError(f"--out {out_dir}: {parent.as_posix()} is a file, but the run writes {rel} into a "
                                  "folder of that name; move it away or choose another --out directory.")
        # (a plot's name follows the model and the report: any folder its pattern matches is in the way)
        folder = next((f for f in sorted(out_dir.glob(rel)) if f.is_dir()), None)
        if folder is not None:
            raise ConfigError(f"--out {out_dir}: {folder.relative_to(out_dir).as_posix()} is a folder, but the run "
                              "writes a file of that name; move it away or choose another --out directory.")


def check_inputs(p: Pipeline, out_dir: Path) -> None:
    """Refuse a run that cannot complete before any work, creating nothing: ``out_dir``
    cannot be created or written or holds files no earlier run wrote, the task's data is
    missing or not what its loader reads (a directory for a file, an MNIST directory without
    its four idx files), or a [prune] teacher is missing or not a checkpoint. (A foreign manifest is
    refused by ``Manifest``.)

    Raises:
        ConfigError, DataError, CheckpointError: one line naming the path.
    """
    probe_writable_dir(out_dir, ConfigError)
    _refuse_foreign_folder(p, out_dir)
    _refuse_blocked_outputs(p, out_dir)
    if (out_dir / MANIFEST).is_file():
        _refuse_unrecorded_outputs(p, out_dir)
    try:
        make_task(p.task["name"], p.task["params"]).check_data_location()
    except DataError as e:
        raise DataError(f"{p.where('task', 'data')}: {e}") from None
    data = p.task["params"].get("data")
    for (section, key), path in [(("task", "data"), data)] * (data is not None) + [(("prune", "teachers"), t)
                                                                                 for t in p.teachers]:
        rel = _relative_to(Path(path), out_dir)
        if rel is not None and any(fnmatch.fnmatchcase(rel, pattern) for pattern in WRITTEN):
            raise ConfigError(f"{p.where(section, key)}: {path} is {rel} of the --out folder {out_dir}, which this "
                              "run writes; an input must live elsewhere (copy it out first).")
    for teacher in p.teachers:
        try:
            check_teacher_task(task_from_checkpoint(p.task), load_checkpoint(teacher), "this pipeline's")
        except RnnCompressError as e:
            raise type(e)(f"{p.where('prune', 'teachers')}: {e}") from None


def plan_pipeline(p: Pipeline, out_dir: Path) -> list[StagePlan]:
    """The stages to run, each with its input hash and whether it can be skipped. Checks
    the inputs first (``check_inputs``); creates nothing."""
    check_inputs(p, out_dir)
    manifest = Manifest(out_dir) if (out_dir / MANIFEST).exists() else None
    task = make_task(p.task["name"], p.task["params"])
    data_hashes = task.data_hashes()  # every source file exists: check_inputs refused a missing one
    final = "model/pruned.pt" if p.prune else "model/trained.pt"
    outputs = stage_outputs(p)
    stages = [StagePlan("train", {}, outputs["train"],
                        {"task": p.task, "model": p.model, "train": p.train.to_dict(), "data": data_hashes})]
    if p.prune:
        teachers = {f"teacher{i}": t for i, t in enumerate(p.teachers)}  # absolute: out_dir / t == t
        stages.append(StagePlan("prune", {"checkpoint": "model/trained.pt", **teachers}, outputs["prune"],
                                p.prune.to_dict()))
    onnx_files = outputs["export"]
    stages.append(StagePlan("export", {"checkpoint": final, "baseline": "model/trained.pt"}, onnx_files, p.export))
    stages.append(StagePlan("bench", {"checkpoint": final, "baseline": "model/trained.pt",
                                      **{f: f for f in onnx_files}}, outputs["bench"], p.bench))
    if p.check is not None:
        stages.append(StagePlan("check", {"report": "bench/report.json"}, outputs["check"], p.check))
    upstream_changed = False
    for s in stages:
        s.input_hash = _hash({"settings": s.settings, "version": package_version(),
                              "inputs": {k: _file_hash(out_dir / v) for k, v in s.inputs.items()}})
        rec = manifest.stage(s.name) if manifest else None
        same_inputs = rec is not None and rec.get("input_hash") == s.input_hash
        # Hash the recorded outputs once (they include checkpoints), and only when they matter.
        changed = manifest.changed_output(s) if same_inputs and not upstream_changed and s.name != "check" else None
        if s.name == "check":
            s.action, s.reason = "run", "budgets are always checked"
        elif upstream_changed:
            s.action, s.reason = "run", "an earlier stage reruns"
        elif same_inputs and rec.get("complete") and changed is None:
            s.action, s.reason = "skip", "inputs and outputs unchanged"
        elif s.name == "train" and (out_dir / "model/trained.pt").exists() and not (same_inputs and changed):
            # Training writes its checkpoint every epoch: an interrupted run of these settings
            # continues, whatever the manifest last recorded (a run stopped after a settings
            # change); a finished one the manifest never recorded (stopped between the last
            # epoch and the manifest) is kept; anything else in its place is trained again.
            state, _ = _run_state(p, out_dir / "model/trained.pt")
            if state == "interrupted":
                s.action, s.reason = "resume", "an interrupted training run of these settings is on disk"
            elif state == "finished":
                s.action, s.reason = "keep", "model/trained.pt is a finished run of these settings"
            else:
                s.action, s.reason = "run", "model/trained.pt is not a run of these settings"
        elif same_inputs and changed:
            s.action, s.reason = "run", f"output missing or changed: {changed}"
        elif rec is not None:
            s.action, s.reason = "run", "settings or inputs changed"
        else:
            s.action, s.reason = "run", "new output directory" if manifest is None else "not run yet"
        if s.action not in ("skip", "keep"):
            upstream_changed = True
    return stages


def _tidy(out_dir: Path, manifest: Manifest, stages: list[StagePlan], progress: Progress) -> None:
    """Before a run: remove the temporary files of our writes that were killed, the files and
    records of stages this pipeline no longer has ([prune] or [check] dropped), and those of
    every stage about to run again (but training, which may resume), so the folder holds what
    a fresh run of this pipeline would write and no stale report, model or green JUnit file,
    also when this run is cancelled half-way."""
    def our_leftover(f: Path) -> bool:  # a temporary file of a write of ours (a user's own .tmp files stay)
        target = atomic_leftover_target(f)
        if target is None or not f.is_file():
            return False
        rel = (f.parent / target).relative_to(out_dir).as_posix()
        return any(fnmatch.fnmatchcase(rel, pattern) for pattern in WRITTEN)

    for f in [f for f in out_dir.rglob(".*.tmp") if our_leftover(f)]:
        f.unlink(missing_ok=True)
    planned = {s.name for s in stages}
    gone = [name for name in manifest.data["stages"] if name not in planned]
    for name in gone:
        removed = manifest.forget(name)
        progress.message(f"[{name}] removed: this pipeline has no {name} stage ({', '.join(removed) or 'no files'})")
    for st in stages:
        if st.action == "run" and st.name != "train" and manifest.stage(st.name) is not None:
            manifest.forget(st.name)


def _add_outputs(plan: StagePlan, out_dir: Path, written: list[Path]) -> None:
    """Record files a stage wrote beyond its planned outputs (so the manifest lists them)."""
    for path in written:
        rel = Path(path).relative_to(out_dir).as_posix()
        if rel not in plan.outputs:
            plan.outputs.append(rel)


def _of_these_settings(p: Pipeline, path: Path) -> Checkpoint | None:
    """The checkpoint at ``path`` if this rnncompress trained it with ``p``'s settings on
    ``p``'s data (finished or not)."""
    try:
        ckpt = load_checkpoint(path)
    except RnnCompressError:
        return None
    task = make_task(p.task["name"], p.task["params"])
    m = p.model
    same = (ckpt.training == p.train.to_dict() and ckpt.task == task.to_dict() and ckpt.config.cell == m["cell"]
            and list(ckpt.config.hidden_sizes) == [m["hidden"]] * m["layers"]
            and m["nonlinearity"] in (None, ckpt.config.nonlinearity)
            and ckpt.provenance.get("rnncompress") == package_version()
            and ckpt.provenance.get("data_sha256", {}) == task.data_hashes())
    return ckpt if same else None


def _run_state(p: Pipeline, path: Path) -> tuple[str | None, Checkpoint | None]:
    """("interrupted" or "finished", the checkpoint) for a training run of ``p``'s settings
    at ``path``; (None, None) for anything else. The checkpoint is read once."""
    ckpt = _of_these_settings(p, path)
    if ckpt is None:
        return None, None
    try:
        check_resumable(ckpt)  # the one rule for what an interrupted run is
    except RnnCompressError:
        return ("finished", ckpt) if ckpt.state == "complete" else (None, None)
    return "interrupted", ckpt


def _train(p: Pipeline, out_dir: Path, plan: StagePlan, progress: Progress, data: TaskData) -> None:
    path = out_dir / "model/trained.pt"
    task = make_task(p.task["name"], p.task["params"])
    state, ckpt = _run_state(p, path) if plan.action == "resume" else (None, None)
    if state == "interrupted":
        progress.message(f"train: resuming after epoch {ckpt.resume['epoch']}")
        resume_training(ckpt, task, data, path, progress)
        return
    mc = _model_config(p, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No pipeline name or file in the provenance: the same settings from any file (the folder's
    # own pipeline.toml included, renamed or not) give the same bytes.
    train_new(task, data, mc, p.train, path, progress)


def _prune(p: Pipeline, out_dir: Path, plan: StagePlan, progress: Progress, data: TaskData) -> None:
    # The parent as the folder names it: the pruned checkpoint must not depend on where the
    # output folder lives (same config, same artifacts; the folder can be moved).
    ckpt = replace(load_checkpoint(out_dir / "model/trained.pt"), path=Path("model/trained.pt"))
    task = task_from_checkpoint(ckpt.task)
    teachers = tuple(load_checkpoint(t) for t in p.teachers)
    # (``data`` is the pipeline's task's, the one a trained.pt of this pipeline records)
    res = prune_checkpoint(ckpt, p.prune, task, data, out_dir / "model/pruned.pt", progress, teachers=teachers)
    r = res.report
    from runtime.plots import plot_pruning

    plots = plot_pruning(out_dir / "model/pruning.png", res.parent_model, res.selections, ckpt.regularizer,
                         ckpt.config.gates)
    atomic_write_text(out_dir / "model/prune.json", json.dumps(r, indent=2, sort_keys=True, default=str) + "\n")
    _add_outputs(plan, out_dir, plots)
    progress.message(f"prune: {[l['before'] for l in r['layers']]} -> {[l['after'] for l in r['layers']]} neurons, "
                     f"test {r['metric']} {r['test_before']:.4f} -> {r['test_after_finetune']:.4f}")


def _export(p: Pipeline, out_dir: Path, plan: StagePlan, progress: Progress) -> None:
    from exporters.export import export_checkpoint, export_notes, export_options

    options = export_options(**{k: v for k, v in p.export.items() if k != "formats"})
    final = out_dir / plan.inputs["checkpoint"]
    results = export_checkpoint(load_checkpoint(final), p.export["formats"], out_dir / "onnx", name="model",
                                options=options, force=True, progress=progress)
    if p.prune:
        results += export_checkpoint(load_checkpoint(out_dir / "model/trained.pt"), ["dense"], out_dir / "onnx",
                                     name="baseline", options=options, force=True, progress=progress)
    for r in results:
        progress.message(f"export: {r.path.name} {r.bytes:,} bytes, {r.parity.describe()}")
    for note in export_notes(results, options.min_gain):
        progress.message(f"export: note: {note}")


def _bench(p: Pipeline, out_dir: Path, plan: StagePlan, progress: Progress) -> dict[str, Any]:
    from runtime.bench import BenchConfig, bench
    from runtime.report import write_report

    config = BenchConfig(**p.bench)
    # Candidates: the final model (dense, built from its checkpoint, with its step model),
    # then every other file the export wrote (sparse, int8, chunk, step+int8, ...).
    extra = [(f, v) for f, v in export_files(p) if is_benched_export(v)]
    # Named as their files are (onnx/model.*.onnx, onnx/baseline.onnx).
    paths = [out_dir / plan.inputs["checkpoint"]] + [out_dir / f for f, _ in extra]
    names = ["model"] + [f"model {v.name}" for _, v in extra]
    report = bench(paths, baseline=out_dir / "model/trained.pt", config=config, names=names, progress=progress,
                   baseline_name="baseline")
    _add_outputs(plan, out_dir, write_report(report, out_dir / "bench"))
    return report


def _check(p: Pipeline, out_dir: Path, plan: StagePlan, progress: Progress) -> list[Any]:
    from runtime.check import Budgets, check_report, write_junit
    from runtime.report import load_report

    report = load_report(out_dir / "bench/report.json")
    results = check_report(report, Budgets(**p.check))
    (out_dir / "check").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "check/check.json",
                      json.dumps([asdict(r) for r in results], indent=2, sort_keys=True, default=str))
    write_junit(results, out_dir / "check/junit.xml")
    return results


def _missing_input(p: Pipeline, stages: list[StagePlan], stage: StagePlan, label: str, path: str) -> DataError:
    """The advice depends on where the file comes from: an earlier stage, or the user."""
    producer = next((s.name for s in stages if path in s.outputs), None)
    if producer is not None:
        return DataError(f"Stage '{stage.name}' needs {path} ({label}), written by stage '{producer}', but it is "
                         f"missing (removed while the pipeline ran?); run the pipeline again: it redoes '{producer}'.")
    return DataError(f"Stage '{stage.name}' needs {path} ({label}), which is missing; no stage writes it: it is an "
                     f"input of {p.source}, so restore it or fix the path there.")


def run_pipeline(p: Pipeline, out_dir: Path, progress: Progress = SILENT, dry_run: bool = False,
                 on_plan: Callable[[list[StagePlan]], None] | None = None) -> PipelineResult:
    """Run (or, with ``dry_run``, only plan) every stage of ``p`` into ``out_dir``.

    Raises:
        RnnCompressError: bad inputs (``check_inputs``, a foreign manifest), before anything
        is created; or the error of the stage that failed.
    """
    if not isinstance(p, Pipeline):
        raise ConfigError(f"run_pipeline needs a Pipeline (load_pipeline(path) or parse_pipeline(text)); got "
                          f"{type(p).__name__}.")
    if not isinstance(dry_run, bool):  # (dry_run="no" would be true: nothing run)
        raise param_error("dry_run", "a bool (true or false)", dry_run)
    out_dir = Path(out_dir)
    if dry_run:
        # A folder another run is changing has no plan that holds (its training looks interrupted).
        with _exclusive(out_dir) if out_dir.is_dir() else contextlib.nullcontext():
            stages = plan_pipeline(p, out_dir)
        if on_plan:
            on_plan(stages)
        return PipelineResult(out_dir, stages)
    stages = plan_pipeline(p, out_dir)  # refuses bad inputs before anything is created
    created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir):  # (refused: another run holds the folder, and this one touches nothing)
        try:
            stages = plan_pipeline(p, out_dir)  # again: the folder is ours now, no other run can change it
            if on_plan:
                on_plan(stages)
            return _run_stages(p, out_dir, stages, progress)
        finally:  # a failed or cancelled run leaves no empty folders behind
            for d in [out_dir / sub for sub in ("model", "onnx", "bench", "check")] + created:
                with contextlib.suppress(OSError):
                    d.rmdir()


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir`` for one run: a second run into the same folder at the same time is
    refused (the two would interleave their files and manifests), not let in."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock to take
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"--out {out_dir} is in use by another rnncompress run right now; wait for it to "
                              "finish or choose another --out directory.") from None
        yield
    finally:
        os.close(fd)  # (releases the lock)


def _run_stages(p: Pipeline, out_dir: Path, stages: list[StagePlan], progress: Progress) -> PipelineResult:
    result = PipelineResult(out_dir, stages)
    resolved = (f"# The pipeline this folder was made with, every default filled in (rnncompress {package_version()})."
                "\n# rnncompress run pipeline.toml --out DIR makes the same artifacts in DIR.\n\n" + resolved_toml(p))
    data = None  # read once, for training and pruning
    if any(s.action != "skip" and s.name != "check" for s in stages):
        data = _load_data(p)  # bad data fails here, before _tidy removes the outputs of the stages to rerun
        if any(s.name == "train" and s.action == "run" for s in stages):  # and a model too large to train
            check_training_memory(_model_config(p, data), f"lower {p.where('model', 'hidden')} or layers")
    # Rerun from the folder's own pipeline.toml (perhaps edited): an input, never overwritten.
    manifest = Manifest(out_dir, None if same_file(p.source, out_dir / PIPELINE_FILE) else resolved)
    _tidy(out_dir, manifest, stages, progress)
    runners = {"train": functools.partial(_train, data=data), "prune": functools.partial(_prune, data=data),
               "export": _export, "bench": _bench, "check": _check}
    for s in stages:
        # Recompute: an earlier stage may have just rewritten this stage's inputs.
        s.input_hash = _hash({"settings": s.settings, "version": package_version(),
                              "inputs": {k: _file_hash(out_dir / v) for k, v in s.inputs.items()}})
        if s.action == "skip":
            progress.message(f"[{s.name}] skipped: {s.reason}")
            if s.name == "bench":
                from runtime.report import load_report

                result.report = load_report(out_dir / "bench/report.json")
            continue
        if s.action == "keep":
            progress.message(f"[{s.name}] kept: {s.reason}")
            manifest.record(s, 0.0)
            continue
        for label, rel in s.inputs.items():
            if not (out_dir / rel).exists():
                raise _missing_input(p, stages, s, label, rel)
        progress.message(f"[{s.name}] {s.action}: {s.reason}")
        t0 = time.monotonic()
        if s.name != "train":  # (a training run of these settings is known by its checkpoint; and a
            manifest.start(s)  # first run stopped in its first epoch leaves nothing behind)
        out = runners[s.name](p, out_dir, s, progress)
        extra = None
        if s.name == "bench":
            result.report = out
        if s.name == "check":
            result.check = out
            result.budgets_ok = all(r.passed for r in out)
            extra = {"passed": result.budgets_ok}
        manifest.record(s, time.monotonic() - t0, extra)
    return result
