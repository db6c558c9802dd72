"""Compression-aware training: task loss + moduli penalty, gradual magnitude pruning,
a checkpoint every epoch, and resume that reproduces an uninterrupted run exactly.

Determinism: the model is initialised from ``seed``; each epoch's batch order comes from
a generator seeded with (seed, epoch); the learning rate and the pruning targets are pure
functions of the step. So a run resumed from its epoch-k checkpoint (weights, masks,
optimizer state, positions) continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from compressor.magnitude import MagnitudePruner, PruneSchedule
from compressor.moduli import ModuliConfig, ModuliRegularizer
from models.checkpoint import Checkpoint, as_checkpoint, package_version, save_checkpoint
from models.errors import ConfigError, check_field_types, check_seed, is_float32, param_error
from models.io import check_output_file
from models.progress import SILENT, Progress
from models.sequence import ModelConfig, SequenceModel, sparsity_report
from models.tasks import ModelSpec, Task, TaskData, check_task_data, check_task_is, evaluate
from models.tasks.base import check_memory

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")


def diverged_advice(reg: ModuliConfig) -> str:
    """What training or fine-tuning with regularizer ``reg`` can lower when the loss or a weight
    stops being finite (each command and the pipeline name the knobs alike: lr / finetune_lr,
    strength / finetune_strength); no strength to name without a regularizer."""
    if reg.space != "none" and reg.strength > 0:
        return "lower the learning rate or the regularizer's strength"
    return "lower the learning rate"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    eval_batch_size: int = 1000
    distill: float = 0.0
    distill_temperature: float = 2.0
    regularizer: ModuliConfig = field(default_factory=ModuliConfig)
    pruning: PruneSchedule = field(default_factory=PruneSchedule)

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.epochs < 1:
            raise param_error("epochs", "a positive int", self.epochs)
        if self.batch_size < 1:
            raise param_error("batch_size", "a positive int", self.batch_size)
        if self.eval_batch_size < 1:
            raise param_error("eval_batch_size", "a positive int", self.eval_batch_size)
        if not isinstance(self.regularizer, ModuliConfig):
            raise param_error("regularizer", "a ModuliConfig", type(self.regularizer).__name__)
        if not isinstance(self.pruning, PruneSchedule):
            raise param_error("pruning", "a PruneSchedule", type(self.pruning).__name__)
        if not (self.lr > 0 and is_float32(self.lr)):
            raise param_error("lr", "a positive float (at most 3.4e38: optimizers run in float32)", self.lr)
        if self.lr_schedule not in LR_SCHEDULES:
            raise param_error("lr_schedule", f"one of {list(LR_SCHEDULES)}", self.lr_schedule)
        if self.optimizer not in OPTIMIZERS:
            raise param_error("optimizer", f"one of {list(OPTIMIZERS)}", self.optimizer)
        if not (self.weight_decay >= 0 and is_float32(self.weight_decay)):
            raise param_error("weight_decay", "a float >= 0 (at most 3.4e38: optimizers run in float32)",
                              self.weight_decay)
        if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            raise param_error("grad_clip", "a finite float >= 0 (0 = off)", self.grad_clip)
        check_distill(self.distill, self.distill_temperature)
        check_seed(self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown training parameter {unknown[0]!r}; known: {sorted(known)}.")
        for key, kind in (("regularizer", ModuliConfig), ("pruning", PruneSchedule)):
            if isinstance(d.get(key), dict):
                known = {f.name for f in fields(kind)}
                unknown = sorted(set(d[key]) - known)
                if unknown:
                    raise ConfigError(f"Unknown {key} parameter {unknown[0]!r}; known: {sorted(known)}.")
                d[key] = kind(**d[key])
        return cls(**d)


def ignored_train_settings(space: str, sparsity: float) -> dict[str, str]:
    """Training settings (``train``'s option names, a pipeline's [train] keys; ``p`` is
    ``--p``) that ``space`` and ``sparsity`` ignore -> what each applies to: refused where
    given, so that no setting looks applied that is not."""
    out: dict[str, str] = {}
    if space == "none":
        out.update(dict.fromkeys(("strength", "inhibitor", "invert", "p", "learn_embedding"),
                                 "a regularizer (space; the default none trains without one)"))
    elif space == "l1":
        out.update(dict.fromkeys(("inhibitor", "invert", "learn_embedding"),
                                 "a space with geometry (space l1 penalises every weight alike)"))
    if sparsity == 0:
        out.update(dict.fromkeys(("schedule", "prune_mode", "prune_scope", "prune_start", "prune_end"),
                                 "magnitude pruning (sparsity > 0)"))
    return out


def check_distill(distill: float, temperature: float) -> None:
    """The distillation settings of training and of fine-tuning after pruning."""
    if not 0.0 <= distill <= 1.0:
        raise param_error("distill", "a weight in [0, 1] (0 = off)", distill)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise param_error("distill_temperature", "a positive float", temperature)


class TeacherEnsemble(nn.Module):
    """Several frozen teachers as one: the mean of their outputs (logits, for classification).

    Distilling from the mean of two good models of the same task (e.g. a sparse parent and the
    dense model it was compared with) gives a target at least as informative as either."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ConfigError("A teacher ensemble needs at least one model.")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
        out = self.members[0](x, init)
        for m in self.members[1:]:
            out = out + m(x, init)
        return out / len(self.members)


def model_config_for(data: TaskData, cell: str, hidden: int, layers: int, nonlinearity: str | None = None) -> ModelConfig:
    """The model a task needs, with the user's cell, hidden size and depth."""
    return model_config_from_spec(data.spec, cell, hidden, layers, nonlinearity)


def check_model_fits(c: ModelConfig, data: TaskData, task_name: str) -> None:
    """ConfigError when a model of config ``c`` does not take the task's inputs or give its
    outputs (a ModelConfig built by hand, a checkpoint of another task): torch would fail with
    a shape error, or worse, broadcast a wrong output size into the loss."""
    s = data.spec
    wrong = [(k, getattr(c, k), getattr(s, k)) for k in ("input_size", "output_size", "head", "input_layer", "init_size")
             if getattr(c, k) != getattr(s, k)]
    if wrong:
        k, have, need = wrong[0]
        raise ConfigError(f"The model does not fit task '{task_name}': its {k} is {have!r}, the task's data needs "
                          f"{need!r} (build the config with model_config_for(data, ...)).")


def model_config_from_spec(s: ModelSpec, cell: str, hidden: int, layers: int,
                           nonlinearity: str | None = None) -> ModelConfig:
    """``model_config_for`` from the task's model spec alone (a pipeline checks its [model]
    before any data is loaded)."""
    if hidden < 1:
        raise param_error("hidden", "a positive int", hidden)
    if layers < 1:
        raise param_error("layers", "a positive int", layers)
    if nonlinearity is not None and cell != "rnn":  # (the task's default is for an Elman RNN; a gated cell ignores it)
        raise param_error("nonlinearity", f"unset for cell {cell!r} (its gates have fixed nonlinearities; "
                          "it applies to cell 'rnn' only)", nonlinearity)
    return ModelConfig(
        cell=cell, input_size=s.input_size, hidden_sizes=(hidden,) * layers, output_size=s.output_size,
        head=s.head, input_layer=s.input_layer, input_dim=s.input_dim,
        nonlinearity=nonlinearity or s.nonlinearity, bias=s.bias, init_size=s.init_size,
    )


def _make_optimizer(cfg: TrainConfig, weights: list[nn.Parameter],
                    positions: list[nn.Parameter]) -> torch.optim.Optimizer:
    # Weight decay pulls toward the origin, which on a space means nothing (on a torus it
    # drags neurons toward the corner where coordinates wrap): learned positions get none.
    params: list[Any] = weights + positions
    if positions and cfg.weight_decay > 0:  # (``_optimizer_groups`` predicts this from the config)
        params = [{"params": weights}, {"params": positions, "weight_decay": 0.0}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    try:  # (other parameter groups are refused by check_resumable first, with the reason)
        opt.load_state_dict(state)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"This checkpoint's optimizer state does not fit its model ({type(e).__name__}: {e}); "
                          "it cannot be resumed, train it again.") from None


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


@dataclass
class Trainer:
    """Runs (or resumes) a training run and writes a checkpoint every epoch.

    Args:
        task: the task (data, loss, metric).
        data: the task's loaded data.
        config: the training configuration.
        out: where checkpoints go (overwritten atomically every epoch).
        progress: progress reporter (``SILENT`` for none).
        base: fields carried into every checkpoint (provenance of a parent, pruning info).
        teacher: a frozen model whose outputs the student also learns from when
            ``config.distill > 0`` (the loss is ``(1 - distill) * task + distill * distill_loss``).
    """

    task: Task
    data: TaskData
    config: TrainConfig
    out: Path | None = None
    progress: Progress = SILENT
    base: dict[str, Any] = field(default_factory=dict)
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    teacher: nn.Module | None = None

    def __post_init__(self) -> None:
        self.progress = self.progress or SILENT  # library callers may pass None
        if self.config.distill > 0 and self.teacher is None:
            raise ConfigError("distill > 0 needs a teacher model (distillation is used when fine-tuning a pruned "
                              "model, its parent being the teacher).")
        if self.teacher is not None:
            self.teacher.eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    def _loss(self, out: torch.Tensor, batch) -> torch.Tensor:
        loss = self.task.loss(out, batch)
        alpha = self.config.distill
        if alpha == 0 or self.teacher is None:
            return loss
        with torch.no_grad():
            target = self.teacher(batch.x, batch.init)
        soft = self.task.distill_loss(out, target, self.config.distill_temperature)
        return (1.0 - alpha) * loss + alpha * soft

    def new_model(self, model_config: ModelConfig) -> tuple[SequenceModel, ModuliRegularizer]:
        torch.manual_seed(self.config.seed)
        model = SequenceModel(model_config)
        reg = ModuliRegularizer(self.config.regularizer, model_config.hidden_sizes, model_config.gates)
        return model, reg

    def fit(
        self,
        model: SequenceModel,
        reg: ModuliRegularizer,
        history: list[dict[str, Any]] | None = None,
        resume: dict[str, Any] | None = None,
    ) -> Checkpoint:
        cfg = self.config
        train = self.data.train
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        positions = [p for p in reg.parameters() if p.requires_grad]
        params = list(model.parameters()) + positions
        opt = _make_optimizer(cfg, list(model.parameters()), positions)
        pruner = MagnitudePruner(cfg.pruning, total)
        history = list(history or [])
        start_epoch, step = 0, 0
        if resume is not None:
            start_epoch, step = int(resume["epoch"]), int(resume["step"])
            _load_optimizer_state(opt, resume["optimizer"])
        model.apply_masks()
        metric = self.task.metric_name
        model.train()
        for epoch in range(start_epoch, cfg.epochs):
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
            self.progress.start(f"epoch {epoch + 1}/{cfg.epochs}", steps_per_epoch)
            loss_sum = pen_sum = 0.0
            for b in range(steps_per_epoch):
                batch = train.take(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
                for group in opt.param_groups:
                    group["lr"] = _lr_at(cfg, step, total)
                out = model(batch.x, batch.init)
                loss = self._loss(out, batch)
                pen = reg(model)
                opt.zero_grad(set_to_none=True)
                (loss + pen).backward()
                model.mask_grads()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                model.apply_masks()
                reg.project_()
                step += 1
                pruner.step(model, step)
                loss_sum += float(loss.detach())
                pen_sum += float(pen.detach())
                if not math.isfinite(loss_sum):
                    raise ConfigError(
                        f"Training diverged at epoch {epoch + 1}, step {step} (loss is not finite); {diverged_advice(cfg.regularizer)}.")
                self.progress.update(b + 1, f"loss {loss_sum / (b + 1):.4f}")
            # A last step can break the weights after a finite loss: never write such a model.
            bad = next((f"{n} is not finite" for n, t in model.named_parameters() if not torch.isfinite(t).all()),
                       None)
            val = evaluate(model, self.task, self.data.val, cfg.eval_batch_size)
            if bad is None and not math.isfinite(val["loss"]):
                bad = "the validation loss is not finite"
            if bad is not None:
                raise ConfigError(f"Training diverged at epoch {epoch + 1} ({bad}); {diverged_advice(cfg.regularizer)}.")
            sp = sparsity_report(model)
            entry = {
                "epoch": epoch + 1, "step": step, "lr": _lr_at(cfg, step, total),
                "train_loss": loss_sum / steps_per_epoch, "penalty": pen_sum / steps_per_epoch,
                "val_loss": val["loss"], f"val_{metric}": val[metric],
                "recurrent_sparsity": sp["recurrent"],
            }
            history.append(entry)
            self.progress.message(
                f"epoch {epoch + 1}/{cfg.epochs}: train loss {entry['train_loss']:.4f}  val {metric} "
                f"{val[metric]:.4f}  recurrent sparsity {sp['recurrent']:.3f}")
            if self.on_epoch:
                self.on_epoch(entry)
            if self.out is not None and epoch + 1 < cfg.epochs:
                resume_state = {"epoch": epoch + 1, "step": step, "optimizer": opt.state_dict()}
                save_checkpoint(self.out, self._checkpoint(model, reg, history, "training", resume_state))
        test = evaluate(model, self.task, self.data.test, cfg.eval_batch_size)
        val = evaluate(model, self.task, self.data.val, cfg.eval_batch_size)
        metrics = {"metric": metric, "higher_is_better": self.task.higher_is_better,
                   f"test_{metric}": test[metric], "test_loss": test["loss"],
                   f"val_{metric}": val[metric], "recurrent_sparsity": sparsity_report(model)["recurrent"]}
        ckpt = self._checkpoint(model, reg, history, "complete", None, metrics)
        if self.out is not None:
            save_checkpoint(self.out, ckpt)
        return ckpt

    def _checkpoint(self, model, reg, history, state, resume, metrics=None) -> Checkpoint:
        base = dict(self.base)
        provenance = dict(base.pop("provenance", {}))
        provenance.update({"rnncompress": package_version(), "torch": str(torch.__version__),
                           "data_sha256": self.task.data_hashes()})
        return Checkpoint.from_model(
            model, task=self.task.to_dict(), history=history, metrics=metrics or {},
            provenance=provenance, training=self.config.to_dict(), regularizer=reg.to_state(),
            resume=resume, state=state, **base)


def check_training_memory(model_config: ModelConfig, advice: str = "lower --hidden or --layers") -> None:
    """DataError when training the model would take over half this machine's memory: its
    fp32 weights, gradients, Adam's two moments, masks and a checkpoint copy."""
    n = model_config.parameter_count()
    check_memory(24 * n, f"Training a model of {n:,} parameters", advice)


def train_new(
    task: Task, data: TaskData, model_config: ModelConfig, config: TrainConfig, out: Path | None,
    progress: Progress = SILENT, provenance: dict[str, Any] | None = None,
) -> Checkpoint:
    """Train a new model with the moduli regularizer and gradual magnitude pruning.

    Args:
        task, data: what to learn (``task.load()`` gives ``data``).
        model_config: the model to build (``model_config_for`` fits one to the data).
        config: optimizer, epochs, regularizer and pruning schedule.
        out: checkpoint written atomically after every epoch (resumable until the last);
            None trains in memory only.
        progress: per-epoch bars and messages.
        provenance: recorded in the checkpoint (e.g. the command or pipeline name).

    Returns:
        The finished checkpoint (test metrics included).

    Raises:
        ConfigError: training diverged (a non-finite loss or weight; the last good epoch stays on disk).

    Example:
        >>> task = make_task("adding", {"seq_len": 20}); data = task.load()
        >>> ckpt = train_new(task, data, model_config_for(data, "lstm", 32, 1), TrainConfig(epochs=2), Path("m.pt"))
    """
    check_task_data(task, data)
    if not isinstance(config, TrainConfig):
        raise param_error("config", "a TrainConfig", type(config).__name__)
    if not isinstance(model_config, ModelConfig):
        raise param_error("model_config", "a ModelConfig (model_config_for(data, ...))", type(model_config).__name__)
    check_model_fits(model_config, data, task.name)
    check_training_memory(model_config)
    if out is not None:  # a directory or an unwritable place fails now, not after the first epoch
        check_output_file(out, "out", [], force=True, error=ConfigError)
    trainer = Trainer(task, data, config, out, progress, base={"provenance": provenance or {}})
    model, reg = trainer.new_model(model_config)
    return trainer.fit(model, reg)


def check_resumable(ckpt: Checkpoint) -> None:
    """Raise ConfigError unless ``ckpt`` is an interrupted training run this version can
    continue (its optimizer state has the parameter groups this version makes)."""
    if ckpt.state == "complete" or ckpt.resume is None:
        raise ConfigError(f"Checkpoint {ckpt.path} is a finished run; there is nothing to resume.")
    epoch, epochs = ckpt.resume.get("epoch"), ckpt.training.get("epochs")
    if not (isinstance(epoch, int) and isinstance(epochs, int) and 0 <= epoch < epochs):
        raise ConfigError(f"Checkpoint {ckpt.path} records resume epoch {epoch!r} of {epochs!r} epochs: no point an "
                          "interrupted run stops at (a damaged or edited file); train it again.")
    groups = ckpt.resume.get("optimizer", {}).get("param_groups")
    if isinstance(groups, list) and len(groups) != _optimizer_groups(TrainConfig.from_dict(ckpt.training)):
        raise ConfigError(f"Checkpoint {ckpt.path}: its optimizer has other parameter groups (an earlier rnncompress "
                          "applied weight decay to learned positions); it cannot be resumed, train it again.")


def _optimizer_groups(cfg: TrainConfig) -> int:
    """How many parameter groups ``_make_optimizer`` makes for ``cfg``'s run."""
    learned = cfg.regularizer.learn_embedding and cfg.regularizer.base_space() is not None
    return 2 if learned and cfg.weight_decay > 0 else 1


def resume_training(ckpt: Checkpoint | str | os.PathLike, task: Task, data: TaskData, out: Path | None,
                    progress: Progress = SILENT) -> Checkpoint:
    """Continue an interrupted run (a Checkpoint or the path of one) from its last epoch checkpoint."""
    ckpt = as_checkpoint(ckpt)
    check_resumable(ckpt)
    check_task_data(task, data)
    # Epochs on one text and then on another are no run at all: the data must be the recorded one.
    check_task_is(task, ckpt.task, ckpt.provenance.get("data_sha256"), str(ckpt.path or "the checkpoint"),
                  "an interrupted run resumes only on the task and files it started with (train anew with --force)")
    check_model_fits(ckpt.config, data, task.name)
    config = TrainConfig.from_dict(ckpt.training)
    trainer = Trainer(task, data, config, out, progress,
                      base={"provenance": ckpt.provenance, "pruning": ckpt.pruning})
    model = ckpt.build_model()
    reg = ModuliRegularizer.from_state(ckpt.regularizer)
    return trainer.fit(model, reg, ckpt.history, ckpt.resume)


def finetune(
    model: SequenceModel, reg: ModuliRegularizer, task: Task, data: TaskData, parent_training: dict[str, Any],
    epochs: int, lr: float, out: Path | None = None, progress: Progress = SILENT, base: dict[str, Any] | None = None,
    teacher: nn.Module | None = None, distill: float = 0.0, distill_temperature: float = 2.0,
) -> Checkpoint:
    """Fine-tune a (shrunk) model with its regularizer and the masks it carries in force.

    The parent's training settings are reused except the epochs, learning rate and
    distillation; no new magnitude pruning happens (the masks carried by the model stay
    enforced). With ``distill > 0`` the loss mixes in how far the model's outputs are from
    ``teacher``'s. With ``epochs == 0`` the model is only evaluated."""
    parent = TrainConfig.from_dict(parent_training) if parent_training else TrainConfig()
    if epochs < 0:
        raise param_error("finetune_epochs", "an int >= 0", epochs)
    if epochs == 0:
        config = replace(parent, pruning=PruneSchedule(), distill=0.0)
        trainer = Trainer(task, data, config, out, progress, base=dict(base or {}))
        metric = task.metric_name
        test = evaluate(model, task, data.test, config.eval_batch_size)
        val = evaluate(model, task, data.val, config.eval_batch_size)
        metrics = {"metric": metric, "higher_is_better": task.higher_is_better, f"test_{metric}": test[metric],
                   "test_loss": test["loss"], f"val_{metric}": val[metric],
                   "recurrent_sparsity": sparsity_report(model)["recurrent"]}
        ckpt = trainer._checkpoint(model, reg, [], "complete", None, metrics)
        if out is not None:
            save_checkpoint(out, ckpt)
        return ckpt
    config = replace(parent, epochs=epochs, lr=lr, pruning=PruneSchedule(), distill=distill,
                     distill_temperature=distill_temperature)
    trainer = Trainer(task, data, config, out, progress, base=dict(base or {}),
                      teacher=teacher if distill > 0 else None)
    return trainer.fit(model, reg)
