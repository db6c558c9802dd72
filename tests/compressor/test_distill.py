"""Distillation from the unpruned parent while fine-tuning, and fine-tuning with released masks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from helpers import train_adding_parent

from compressor.prune import PruneConfig, prune_checkpoint
from compressor.training import TeacherEnsemble, TrainConfig, Trainer
from models.checkpoint import load_checkpoint
from models.errors import ConfigError
from models.sequence import SequenceModel, sparsity_report
from models.tasks import make_task
from models.tasks.smnist import SmnistTask


def logits_task() -> SmnistTask:
    return SmnistTask(SmnistTask.Params(data="unused"))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.5, 8.0), st.sampled_from([(5, 10), (3, 4, 7)]))
def test_distillation_gradient_is_the_softened_probability_gap(seed: int, t: float, shape: tuple) -> None:
    """d/ds [T^2 KL(softmax(q/T) || softmax(s/T))] = T (softmax(s/T) - softmax(q/T)) / rows:
    zero exactly where the student matches the teacher, and the loss is >= 0."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(shape, generator=g, dtype=torch.float64)
    loss = logits_task().distill_loss(s, q, t)
    loss.backward()
    rows = s[..., 0].numel()
    expected = t * (torch.softmax(s.detach() / t, -1) - torch.softmax(q / t, -1)) / rows
    assert float(loss.detach()) >= 0
    torch.testing.assert_close(s.grad, expected)
    assert float(logits_task().distill_loss(q, q, t)) == pytest.approx(0.0, abs=1e-12)


def test_regression_tasks_distill_by_mse() -> None:
    task = make_task("adding", {"seq_len": 4, "samples": 8})
    assert not task.outputs_logits
    a, b = torch.zeros(4, 1), torch.full((4, 1), 2.0)
    assert float(task.distill_loss(a, b, 3.0)) == pytest.approx(4.0)


@pytest.mark.parametrize("field, value", [("distill", -0.1), ("distill", 1.5), ("distill_temperature", 0.0)])
def test_bad_distillation_settings_name_the_parameter(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        PruneConfig(**{field: value})


def test_distillation_needs_a_teacher() -> None:
    task = make_task("adding", {"seq_len": 4, "samples": 8, "val_samples": 4, "test_samples": 4})
    with pytest.raises(ConfigError, match="teacher"):
        Trainer(task, task.load(), TrainConfig(distill=0.5))


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return train_adding_parent(tmp_path_factory.mktemp("d"), "lstm", 1, 0.7)


def test_distilled_fine_tuning_is_recorded_deterministic_and_different(tmp_path: Path, parent) -> None:
    ckpt, task, data = parent
    cfg = PruneConfig(keep=6, finetune_epochs=2, finetune_lr=5e-3, distill=0.7, distill_temperature=3.0)
    a = prune_checkpoint(ckpt, cfg, task, data, tmp_path / "a.pt")
    prune_checkpoint(ckpt, cfg, task, data, tmp_path / "b.pt")
    plain = prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=2, finetune_lr=5e-3), task, data, None)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    back = load_checkpoint(tmp_path / "a.pt")
    assert back.training["distill"] == 0.7 and back.training["distill_temperature"] == 3.0
    assert back.pruning["distill"] == 0.7
    # The teacher term changes what is learned, from the same start.
    assert a.checkpoint.history[-1]["train_loss"] != plain.checkpoint.history[-1]["train_loss"]
    w = "rnn.0.weight_hh_l0"
    assert not torch.equal(a.checkpoint.state_dict[w], plain.checkpoint.state_dict[w])
    # The parent (teacher) is left as it was.
    assert torch.equal(a.parent_model.state_dict()[w], ckpt.state_dict[w])


def test_released_masks_let_fine_tuning_use_every_weight(parent) -> None:
    ckpt, task, data = parent
    kept = prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=1, finetune_lr=5e-3), task, data, None)
    free = prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=1, finetune_lr=5e-3, release_masks=True),
                            task, data, None)
    assert kept.checkpoint.build_model().masks() and not free.checkpoint.build_model().masks()
    assert sparsity_report(free.checkpoint.build_model())["recurrent"] < 0.05
    assert sparsity_report(kept.checkpoint.build_model())["recurrent"] > 0.5
    # Released or not, the masked == shrunk check ran on the same selection.
    assert kept.report["test_after_shrink"] == free.report["test_after_shrink"]


def test_fine_tuning_strength_overrides_the_parents_regularizer(parent) -> None:
    ckpt, task, data = parent
    base = dict(keep=6, finetune_epochs=1, finetune_lr=5e-3)
    default = prune_checkpoint(ckpt, PruneConfig(**base), task, data, None).checkpoint
    same = prune_checkpoint(ckpt, PruneConfig(**base, finetune_strength=ckpt.regularizer["config"]["strength"]),
                            task, data, None).checkpoint
    off = prune_checkpoint(ckpt, PruneConfig(**base, finetune_strength=0.0), task, data, None).checkpoint
    # Naming the parent's own strength changes nothing; 0 removes the penalty from the loss.
    assert torch.equal(same.state_dict["rnn.0.weight_hh_l0"], default.state_dict["rnn.0.weight_hh_l0"])
    assert default.history[-1]["penalty"] > 0 and off.history[-1]["penalty"] == 0
    # What was done is recorded, and the neurons keep their places on the space.
    assert off.regularizer["config"]["strength"] == 0 and off.training["regularizer"]["strength"] == 0
    assert off.regularizer["config"]["space"] == ckpt.regularizer["config"]["space"] == "torus"
    assert torch.equal(off.regularizer["kept"][0], default.regularizer["kept"][0])


@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan")])
def test_bad_fine_tuning_strength_names_the_parameter(value: float) -> None:
    with pytest.raises(ConfigError, match="finetune_strength"):
        PruneConfig(finetune_strength=value)


def test_a_teacher_ensemble_averages_its_members_outputs(parent) -> None:
    ckpt, task, data = parent
    a, b = ckpt.build_model(), ckpt.build_model()
    with torch.no_grad():
        for p in b.parameters():
            p.mul_(0.5)
    x = data.test.take(slice(0, 8)).x
    with torch.no_grad():
        torch.testing.assert_close(TeacherEnsemble([a, b])(x), (a(x) + b(x)) / 2)
        assert torch.equal(TeacherEnsemble([a, a])(x), a(x))


def test_the_parent_as_a_further_teacher_changes_nothing(parent) -> None:
    """Averaging the parent with itself is the parent: the same fine-tuning, bit for bit."""
    ckpt, task, data = parent
    cfg = PruneConfig(keep=6, finetune_epochs=1, finetune_lr=5e-3, distill=0.7, distill_temperature=3.0)
    alone = prune_checkpoint(ckpt, cfg, task, data, None).checkpoint
    twice = prune_checkpoint(ckpt, cfg, task, data, None, teachers=(ckpt,)).checkpoint
    for name, w in alone.state_dict.items():
        assert torch.equal(w, twice.state_dict[name]), name
    assert twice.pruning["teachers"] == [{"path": str(ckpt.path), "sha256": ckpt.sha256}]
    assert "teachers" not in alone.pruning


def test_a_different_teacher_changes_the_fine_tuning(tmp_path: Path, parent) -> None:
    ckpt, task, data = parent
    other, _, _ = train_adding_parent(tmp_path, "gru", 1, 0.0)
    cfg = PruneConfig(keep=6, finetune_epochs=1, finetune_lr=5e-3, distill=0.7)
    alone = prune_checkpoint(ckpt, cfg, task, data, None).checkpoint
    both = prune_checkpoint(ckpt, cfg, task, data, None, teachers=(other,)).checkpoint
    w = "rnn.0.weight_hh_l0"
    assert not torch.equal(alone.state_dict[w], both.state_dict[w])


def test_bad_further_teachers(tmp_path: Path, parent) -> None:
    ckpt, task, data = parent
    with pytest.raises(ConfigError, match="distill > 0"):
        prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=0), task, data, None, teachers=(ckpt,))
    foreign = replace(ckpt, task={**ckpt.task, "name": "navigation"})
    with pytest.raises(ConfigError, match="same task"):
        prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=0, distill=0.5), task, data, None,
                         teachers=(foreign,))
    wide = replace(ckpt.config, output_size=2)
    other = replace(ckpt, config=wide, state_dict=SequenceModel(wide).state_dict(), masks={})
    with pytest.raises(ConfigError, match=r"outputs of shape \(64, 2\), the pruned checkpoint \(64, 1\)"):
        prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=0, distill=0.5), task, data, None,
                         teachers=(other,))
    # Token ids for 2 features: refused by name, not by the embedding's crash on float inputs.
    tokens = replace(ckpt.config, input_layer="embedding", input_dim=4)
    reader = replace(ckpt, config=tokens, state_dict=SequenceModel(tokens).state_dict(), masks={})
    with pytest.raises(ConfigError, match=r"reads inputs of another kind \(token ids of a vocabulary of 2\) than the "
                                          r"pruned checkpoint \(2 features per step\)"):
        prune_checkpoint(ckpt, PruneConfig(keep=6, finetune_epochs=0, distill=0.5), task, data, None,
                         teachers=(reader,))


def test_a_teacher_of_another_input_recipe_is_refused() -> None:
    """Permuted and plain sequential MNIST, place cells of another seed: the same task name,
    but the teacher's inputs mean other things."""
    from compressor.prune import check_teacher_task
    from models.checkpoint import Checkpoint

    def teacher(name: str, params: dict) -> Checkpoint:  # (only its task is read)
        return Checkpoint(config=None, state_dict={}, task=make_task(name, params).to_dict(), path=Path(f"{name}.pt"))

    smnist = {"data": "/nowhere"}
    with pytest.raises(ConfigError, match="trained on other data: its .*pixel_permutation"):
        check_teacher_task(make_task("smnist", smnist), teacher("smnist", {**smnist, "permute": True}))
    nav = {"place_cells": 8}
    with pytest.raises(ConfigError, match="trained on other data: its place_cell_centres"):
        check_teacher_task(make_task("navigation", nav), teacher("navigation", {**nav, "data_seed": 1}))
    check_teacher_task(make_task("navigation", nav), teacher("navigation", {**nav, "samples": 99}))  # more walks: same


@pytest.mark.parametrize("lr", [0.0, float("inf"), 1e39])
def test_a_fine_tuning_rate_the_optimizer_cannot_take_is_refused(lr: float) -> None:
    with pytest.raises(ConfigError, match=r"'finetune_lr' parameter must be a positive float \(at most 3.4e38"):
        PruneConfig(finetune_lr=lr)
