"""Prune a trained checkpoint: select neurons (strategy), check mask == shrink, remove them
(surgery), optionally drop recurrent edges outside the lattice relation, fine-tune."""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from compressor.lattice import influence_blocks
from compressor.moduli import ModuliConfig, ModuliRegularizer
from compressor.selection import Keep, LayerSelection, SelectionConfig, select_neurons
from compressor.shrink import mask_neurons, shrink_model
from compressor.training import TeacherEnsemble, check_distill, check_model_fits, finetune
from models.checkpoint import Checkpoint, as_checkpoint, check_finite, save_checkpoint
from models.io import check_output_file
from models.errors import ConfigError, InvariantError, RnnCompressError, check_field_types, is_float32, param_error
from models.progress import SILENT, Progress
from models.sequence import SequenceModel, count_parameters, sparsity_report
from models.tasks import Task, TaskData, check_task_data, check_task_is, evaluate, task_from_checkpoint


# Settings of the lattice criterion alone: norm and random selection ignore them.
LATTICE_ONLY = ("variant", "quantile", "threshold", "thresholds", "centrality", "feed_forward", "edge_prune")


# The settings of fine-tuning: a prune with finetune_epochs = 0 would ignore them.
FINETUNE_ONLY = ("finetune_lr", "distill", "distill_temperature", "release_masks", "finetune_strength")
# ... and those of distillation (distill > 0).
DISTILL_ONLY = ("distill_temperature",)


@dataclass(frozen=True)
class Needs:
    """What an ignored setting would need to apply: ``setting`` at ``value`` (and, for a
    whole stage such as fine-tuning, the ``purpose`` it serves)."""

    setting: str
    value: str
    purpose: str = ""

    def as_option(self) -> str:
        """In ``rnncompress prune``'s terms: '--method lattice', 'fine-tuning (--finetune-epochs > 0)'."""
        option = "--" + self.setting.replace("_", "-")
        return f"{self.purpose} ({option} {self.value})" if self.purpose else f"{option} {self.value}"

    def as_key(self) -> str:
        """In a pipeline's [prune] terms: 'method = "lattice"', 'fine-tuning (finetune_epochs > 0)'."""
        return f"{self.purpose} ({self.setting} {self.value})" if self.purpose else f'{self.setting} = "{self.value}"'


def ignored_settings(method: str, variant: str, edge_prune: bool, finetune_epochs: int,
                     distill: float) -> dict[str, Needs]:
    """Setting -> what it needs, for each PruneConfig setting these ignore: what ``rnncompress
    prune`` and a pipeline's [prune] refuse when given, and the resolved TOML leaves out.
    (The continuous variant's filtration has its own quantile levels: ``quantile`` then only
    sets the relation edge pruning keeps.)"""
    ignored = {} if method == "random" else {"seed": Needs("method", "random")}  # the only random choice
    if method != "lattice":
        ignored.update(dict.fromkeys(LATTICE_ONLY, Needs("method", "lattice")))
    elif variant != "continuous":
        ignored["thresholds"] = Needs("variant", "continuous")
    elif not edge_prune:
        ignored["quantile"] = Needs("variant", "binary")
    if finetune_epochs == 0:
        ignored.update(dict.fromkeys(FINETUNE_ONLY, Needs("finetune_epochs", "> 0", "fine-tuning")))
    elif distill == 0:
        ignored.update(dict.fromkeys(DISTILL_ONLY, Needs("distill", "> 0", "distillation")))
    return ignored


@dataclass(frozen=True)
class PruneConfig:
    method: str = "lattice"
    variant: str = "binary"
    keep: Keep = 0.5
    quantile: float = SelectionConfig.quantile
    threshold: float | None = None
    thresholds: int = 16
    feed_forward: bool = True
    centrality: str = "degree"
    edge_prune: bool = False
    seed: int = 0
    finetune_epochs: int = 3
    finetune_lr: float = 5e-4
    distill: float = 0.0
    distill_temperature: float = 2.0
    release_masks: bool = False
    finetune_strength: float | None = None  # moduli strength while fine-tuning; None = the parent's

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "keep", self.selection().keep)  # validates; '0.5' and np.float64(0.5) as 0.5
        if self.finetune_epochs < 0:
            raise param_error("finetune_epochs", "an int >= 0", self.finetune_epochs)
        if not (self.finetune_lr > 0 and is_float32(self.finetune_lr)):
            raise param_error("finetune_lr", "a positive float (at most 3.4e38: optimizers run in float32)",
                              self.finetune_lr)
        check_distill(self.distill, self.distill_temperature)
        if self.finetune_strength is not None and not 0 <= self.finetune_strength < float("inf"):
            raise param_error("finetune_strength", "a finite float >= 0 (or unset: the parent's)",
                              self.finetune_strength)

    def ignored_settings(self) -> dict[str, Needs]:
        """``ignored_settings`` of this config's method, variant and fine-tuning."""
        return ignored_settings(self.method, self.variant, self.edge_prune, self.finetune_epochs, self.distill)

    def selection(self) -> SelectionConfig:
        return SelectionConfig(method=self.method, variant=self.variant, keep=self.keep, quantile=self.quantile,
                               threshold=self.threshold, thresholds=self.thresholds, centrality=self.centrality,
                               feed_forward=self.feed_forward, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PruneConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown prune parameter {unknown[0]!r}; known: {sorted(known)}.")
        return cls(**d)


@dataclass
class PruneResult:
    checkpoint: Checkpoint
    selections: list[LayerSelection]
    report: dict[str, Any]
    parent_model: SequenceModel


@torch.no_grad()
def check_mask_equals_shrink(model: SequenceModel, small: SequenceModel, keep: list[torch.Tensor],
                             x: torch.Tensor, init: torch.Tensor | None, atol: float = 1e-5,
                             rtol: float = 1.3e-6) -> float:
    """The invariant of the surgery, checked on real inputs before anything is written:
    |masked - shrunk| <= atol + rtol * |masked| everywhere (torch.testing's float32 rule: the
    two sum in another order, which large outputs show). Returns the largest difference."""
    masked = copy.deepcopy(model).eval()
    for l, k in enumerate(keep):
        mask_neurons(masked, l, k)
    small.eval()
    want, got = masked(x, init), small(x, init)
    diff = (want - got).abs()
    excess = float((diff - rtol * want.abs()).max())
    if not excess <= atol:
        raise InvariantError(f"Internal check failed: shrunk model differs from the masked model by "
                             f"{float(diff.max()):.3g} (tolerance {atol:g} + {rtol:g}*|y|); nothing written.")
    return float(diff.max())


@torch.no_grad()
def prune_edges(model: SequenceModel, selection: SelectionConfig) -> None:
    """Mask recurrent connections outside the binary relation (inside the kept neurons). A
    layer whose kept neurons have no recurrent connection among them has none to remove."""
    g = model.config.gates
    for l, name, w in model.recurrent_weights():
        A, blocks = influence_blocks(w.detach(), g)
        if not (A > 0).any():
            continue
        try:
            rel = torch.as_tensor(selection.relation(A, blocks))
        except ConfigError as e:  # (a threshold above every kept influence would remove them all)
            raise ConfigError(f"Edge pruning of layer {l}: {str(e).rstrip('.')}; lower the threshold or "
                              "leave edge pruning off.") from None
        mask = rel.repeat(g, 1)
        old = model.masks().get(name)
        model.set_mask(name, mask if old is None else (old & mask))
    model.apply_masks()


def check_teacher_task(task: Task, teacher: Checkpoint, whose: str = "the pruned checkpoint") -> None:
    """ConfigError unless ``teacher`` was trained on ``task``: the same task with the same
    interface (how inputs are made and outputs read: smnist's pixel permutation, navigation's
    place cells, charlm's vocabulary from its text), or the teacher's inputs and outputs would
    mean other things than the student's."""
    theirs = teacher.task.get("name")
    if theirs != task.name:
        raise ConfigError(f"Teacher {teacher.path} was trained on task {theirs!r}, {whose} on {task.name!r}: "
                          "a teacher must solve the same task.")
    try:
        their_interface = task_from_checkpoint(teacher.task).interface()
    except RnnCompressError as e:
        raise ConfigError(f"Teacher {teacher.path}: its training data cannot be read to compare its "
                          f"{task.name} interface (vocabulary) with {whose}'s: {str(e).rstrip('.')}.") from None
    mine = task.interface()
    differ = sorted(k for k in set(mine) | set(their_interface) if mine.get(k) != their_interface.get(k))
    if differ:
        raise ConfigError(f"Teacher {teacher.path} was trained on other data: its {', '.join(differ)} differs from "
                          f"{whose}'s, so its outputs mean other things; a teacher must solve the same task.")


def _reads_text(c: Any) -> str:
    return f"token ids of a vocabulary of {c.input_size}" if c.input_layer == "embedding" else \
        f"{c.input_size} features per step"


def further_teacher(task: Task, parent: SequenceModel, teacher: Checkpoint, x: torch.Tensor,
                    init: torch.Tensor | None) -> SequenceModel:
    """A further distillation teacher, checked to solve ``task`` (the pruned checkpoint's) with
    the same outputs as its model ``parent``."""
    check_finite(teacher)
    check_teacher_task(task, teacher)
    reads = lambda c: (c.input_layer, c.input_size)  # noqa: E731 -- token ids or features, and how many
    if reads(teacher.config) != reads(parent.config):
        raise ConfigError(f"Teacher {teacher.path} reads inputs of another kind ({_reads_text(teacher.config)}) than "
                          f"the pruned checkpoint ({_reads_text(parent.config)}): a teacher must take the same inputs.")
    model = teacher.build_model()
    with torch.no_grad():
        got, want = tuple(model(x, init).shape), tuple(parent(x, init).shape)
    if got != want:
        raise ConfigError(f"Teacher {teacher.path} gives outputs of shape {got}, the pruned checkpoint {want}: "
                          "a teacher must have the same outputs.")
    return model


def prune_checkpoint(ckpt: Checkpoint, config: PruneConfig, task: Task, data: TaskData, out: Path | None,
                     progress: Progress = SILENT, teachers: tuple[Checkpoint, ...] = (),
                     provenance: dict[str, Any] | None = None) -> PruneResult:
    """Select, verify, shrink and fine-tune; writes the pruned checkpoint to ``out``.

    ``provenance`` (e.g. the command that pruned) goes into the pruned checkpoint, beside the
    parent's path and hash; the parent's own command is kept as ``parent_command``.

    With ``config.distill > 0`` the unpruned parent is the teacher; ``teachers`` adds further
    models of the same task, and the target becomes the mean of all their outputs.

    Returns:
        ``PruneResult``: the pruned checkpoint, the per-layer selections, the report (neurons,
        parameters, sparsity and metric before / after shrinking / after fine-tuning) and the
        parent model.

    Raises:
        ConfigError: bad settings (keep larger than a layer, teachers without distill, a
        teacher of another task). CheckpointError: NaN/Inf weights. InvariantError: the
        shrunk model disagrees with the masked one (nothing is written).

    Example:
        >>> ckpt = load_checkpoint("m.pt"); task = task_from_checkpoint(ckpt.task)
        >>> res = prune_checkpoint(ckpt, PruneConfig(keep=0.5), task, task.load(), Path("pruned.pt"))
    """
    ckpt = as_checkpoint(ckpt)
    if isinstance(teachers, (str, os.PathLike, Checkpoint)):  # one teacher, not its letters
        teachers = (teachers,)
    teachers = tuple(as_checkpoint(t, "teachers") for t in teachers)
    if not isinstance(config, PruneConfig):
        raise param_error("config", "a PruneConfig", type(config).__name__)
    check_task_data(task, data)
    check_task_is(task, ckpt.task, ckpt.provenance.get("data_sha256"), f"checkpoint {ckpt.path or '(in memory)'}",
                  "prune it with the task and files it was trained on (task_from_checkpoint(ckpt.task, data=PATH))")
    check_model_fits(ckpt.config, data, task.name)
    progress = progress or SILENT
    if out is not None:  # the parent and the teachers are inputs: never written over
        check_output_file(out, "out", [ckpt.path, *(t.path for t in teachers)], force=True, error=ConfigError)
    check_finite(ckpt)
    if teachers and not config.distill > 0:
        raise ConfigError("Further teachers are only used by distillation: set distill > 0 (--distill).")
    model = ckpt.build_model()
    if model.config.num_layers < 1:
        raise ConfigError(f"Checkpoint {ckpt.path} has no recurrent layer to prune.")
    reg = (ModuliRegularizer.from_state(ckpt.regularizer) if ckpt.regularizer
           else ModuliRegularizer(ModuliConfig(), model.config.hidden_sizes, model.config.gates))
    metric = task.metric_name
    before = evaluate(model, task, data.test)[metric]
    selections = select_neurons(model, config.selection())
    keep = [s.keep_index for s in selections]
    small = shrink_model(model, keep)
    sample = data.test.take(slice(0, 64))
    extra = [further_teacher(task, model, t, sample.x, sample.init) for t in teachers]
    check_mask_equals_shrink(model, small, keep, sample.x, sample.init)
    for l, k in enumerate(keep):
        reg.shrink(l, k)
    training = ckpt.training
    if config.finetune_strength is not None:
        reg.config = replace(reg.config, strength=config.finetune_strength)
        if training and isinstance(training.get("regularizer"), dict):
            training = {**training, "regularizer": {**training["regularizer"], "strength": config.finetune_strength}}
    if config.release_masks:
        small.clear_masks()  # fine-tuning may use every weight of the smaller dense model
    if config.edge_prune:
        prune_edges(small, config.selection())
    after_shrink = evaluate(small, task, data.test)[metric]
    layers = [s.summary() for s in selections]
    pruning = {
        **config.to_dict(), "parent_sha256": ckpt.sha256, "layers": layers, "metric": metric,
        "test_before": before, "test_after_shrink": after_shrink,
        "parent_metrics": ckpt.metrics,
    }
    if teachers:
        pruning["teachers"] = [{"path": str(t.path) if t.path else None, "sha256": t.sha256} for t in teachers]
    progress.message(f"shrunk {[s.before for s in selections]} -> {[int(k.numel()) for k in keep]} neurons; "
                     f"test {metric} {before:.4f} -> {after_shrink:.4f} before fine-tuning")
    inherited = {k: v for k, v in ckpt.provenance.items() if k != "command"}
    if "command" in ckpt.provenance:
        inherited["parent_command"] = ckpt.provenance["command"]
    made_by = {**inherited, "parent": str(ckpt.path) if ckpt.path else None, "parent_sha256": ckpt.sha256,
               **(provenance or {})}
    result = finetune(small, reg, task, data, training, config.finetune_epochs, config.finetune_lr,
                      out=None, progress=progress, base={"provenance": made_by, "pruning": pruning},
                      teacher=TeacherEnsemble([model, *extra]) if extra else model, distill=config.distill,
                      distill_temperature=config.distill_temperature)
    after = result.metrics[f"test_{metric}"]
    result.pruning["test_after_finetune"] = after
    if out is not None:
        save_checkpoint(out, result)
    report = {
        "method": config.method, "variant": config.variant, "keep": config.keep, "metric": metric,
        "layers": layers, "parameters_before": count_parameters(model),
        "parameters_after": count_parameters(small),
        "recurrent_sparsity_before": sparsity_report(model)["recurrent"],
        "recurrent_sparsity_after": sparsity_report(result.build_model())["recurrent"],
        "test_before": before, "test_after_shrink": after_shrink, "test_after_finetune": after,
    }
    return PruneResult(result, selections, report, model)

