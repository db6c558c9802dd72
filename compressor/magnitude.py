"""Gradual magnitude pruning (Zhu & Gupta 2017; linear as in the moduli paper, or cubic).

Masks reach the target sparsity on a schedule over a window of training steps, per matrix
or globally, and are nested: a pruned weight stays pruned. The target is reached exactly:
the number of zeros is round(sparsity * numel), with ties broken by index (stable sort),
but never every weight: a sparsity below 1 that rounds to numel (0.99 of a 4x4 matrix) leaves
one, or a matrix would silently be all zeros (an RNN with no recurrence, a constant head).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from models.errors import check_field_types, param_error
from models.sequence import SequenceModel

SCHEDULES = ("linear", "cubic")
MODES = ("per-matrix", "global")
SCOPES = ("recurrent", "all")


@dataclass(frozen=True)
class PruneSchedule:
    """Target ``sparsity`` in [0, 1), reached between ``start`` and ``end`` (fractions of
    the training steps), updating the masks every ``every`` steps (0: 100 updates)."""

    sparsity: float = 0.0
    schedule: str = "cubic"
    mode: str = "per-matrix"
    scope: str = "recurrent"
    start: float = 0.1
    end: float = 0.7
    every: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0.0 <= self.sparsity < 1.0:
            raise param_error("sparsity", "a float in [0, 1)", self.sparsity)
        if self.schedule not in SCHEDULES:
            raise param_error("schedule", f"one of {list(SCHEDULES)}", self.schedule)
        if self.mode not in MODES:
            raise param_error("prune_mode", f"one of {list(MODES)}", self.mode)
        if self.scope not in SCOPES:
            raise param_error("prune_scope", f"one of {list(SCOPES)}", self.scope)
        if not 0.0 <= self.start < 1.0:
            raise param_error("prune_start", "a fraction of training in [0, 1)", self.start)
        if not 0.0 < self.end <= 1.0:
            raise param_error("prune_end", "a fraction of training in (0, 1]", self.end)
        if not self.start < self.end:  # (either may be the one given: the message names both values)
            raise param_error("prune_start", f"below prune_end ({self.end:g}), where magnitude pruning ends",
                              self.start)
        if self.every < 0:
            raise param_error("prune_every", "an int >= 0", self.every)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def window(self, total_steps: int) -> tuple[int, int]:
        """Steps (start, end] of the pruning window; the trainer counts steps 1..total_steps,
        so the window ends on the last step at the latest and the target is always reached
        (a start that rounds to the last step starts one step earlier)."""
        last = max(total_steps, 1)
        start = min(int(round(self.start * total_steps)), last - 1)
        end = max(start + 1, int(round(self.end * total_steps)))
        return start, min(end, last)

    def target_at(self, step: int, total_steps: int) -> float:
        """Scheduled sparsity after ``step`` optimizer steps."""
        if self.sparsity == 0.0:
            return 0.0
        start, end = self.window(total_steps)
        u = min(1.0, max(0.0, (step - start) / (end - start)))
        if self.schedule == "linear":
            return self.sparsity * u
        return self.sparsity * (1.0 - (1.0 - u) ** 3)

    def is_update_step(self, step: int, total_steps: int) -> bool:
        start, end = self.window(total_steps)
        if step < start or self.sparsity == 0.0:
            return False
        if step >= end:
            return step == end  # the final update lands exactly on the end of the window
        every = self.every or max(1, (end - start) // 100)
        return (step - start) % every == 0


def _keep_mask(scores: Tensor, n_zero: int) -> Tensor:
    """Flat bool mask keeping all but the ``n_zero`` lowest scores (stable: ties by index)."""
    order = torch.sort(scores, stable=True).indices
    mask = torch.ones_like(scores, dtype=torch.bool)
    mask[order[:n_zero]] = False
    return mask


def target_zeros(sparsity: float, numel: int) -> int:
    """round(sparsity * numel), at most numel - 1 (a sparsity below 1 keeps a weight)."""
    return min(int(round(sparsity * numel)), max(numel - 1, 0))


@torch.no_grad()
def magnitude_masks(
    weights: dict[str, Tensor], old_masks: dict[str, Tensor], sparsity: float, mode: str
) -> dict[str, Tensor]:
    """Masks with exactly ``target_zeros(sparsity, numel)`` zeros (per matrix, or over all matrices).

    Already-masked entries score -inf, so they are pruned first and masks stay nested."""
    scores = {}
    for name, w in weights.items():
        s = w.detach().abs().flatten().double()
        if name in old_masks:
            s = torch.where(old_masks[name].flatten(), s, torch.full_like(s, -float("inf")))
        scores[name] = s
    if mode == "per-matrix":
        out = {}
        for name, s in scores.items():
            n_zero = target_zeros(sparsity, s.numel())
            already = int((s == -float("inf")).sum())
            out[name] = _keep_mask(s, max(n_zero, already)).view_as(weights[name])
        return out
    flat = torch.cat(list(scores.values()))
    n_zero = max(target_zeros(sparsity, flat.numel()), int((flat == -float("inf")).sum()))
    mask = _keep_mask(flat, n_zero)
    out, offset = {}, 0
    for name, s in scores.items():
        out[name] = mask[offset : offset + s.numel()].view_as(weights[name])
        offset += s.numel()
    return out


class MagnitudePruner:
    """Applies a ``PruneSchedule`` to a model during training."""

    def __init__(self, schedule: PruneSchedule, total_steps: int):
        self.schedule = schedule
        self.total_steps = total_steps

    def step(self, model: SequenceModel, step: int) -> float | None:
        """Update the masks if ``step`` is an update step; returns the new target or None."""
        if not self.schedule.is_update_step(step, self.total_steps):
            return None
        target = self.schedule.target_at(step, self.total_steps)
        weights = {n: p for n, p in model.prunable_weights(self.schedule.scope).items()}
        masks = magnitude_masks(weights, model.masks(), target, self.schedule.mode)
        for name, mask in masks.items():
            model.set_mask(name, mask)
        model.apply_masks()
        return target
