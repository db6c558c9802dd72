"""Gradual magnitude pruning: exact targets, nested masks, masked weights stay zero."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressor.magnitude import MagnitudePruner, PruneSchedule, magnitude_masks
from models.sequence import ModelConfig, SequenceModel


def model(cell="lstm", hidden=12, layers=2) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(cell, input_size=3, hidden_sizes=(hidden,) * layers, output_size=2))


@settings(max_examples=60, deadline=None)
@given(
    sparsity=st.floats(0.0, 0.99),
    schedule=st.sampled_from(["linear", "cubic"]),
    mode=st.sampled_from(["per-matrix", "global"]),
    total=st.integers(1, 200),
    hidden=st.integers(2, 12),
    start=st.floats(0.0, 0.999),
    length=st.floats(0.001, 1.0),
)
def test_schedule_hits_target_exactly_and_masks_stay_nested(sparsity, schedule, mode, total, hidden, start,
                                                            length) -> None:
    # Any window, however late it starts or however few steps training has, ends on a step
    # the trainer takes (1..total): a start rounding to the last step once never pruned.
    m = model(hidden=hidden)
    end = min(1.0, start + length * (1.0 - start))
    sched = PruneSchedule(sparsity=sparsity, schedule=schedule, mode=mode, start=start, end=end)
    pruner = MagnitudePruner(sched, total)
    previous: dict[str, torch.Tensor] = {}
    for step in range(1, total + 1):
        with torch.no_grad():  # weights move between updates, as in training
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        m.apply_masks()
        pruner.step(m, step)
        for name, mask in m.masks().items():
            if name in previous:
                assert not torch.any(mask & ~previous[name]), "a pruned weight came back"
            previous[name] = mask.clone()
    masks = m.masks()
    total_zero = sum(int((~mk).sum()) for mk in masks.values())
    total_n = sum(mk.numel() for mk in masks.values())
    if mode == "per-matrix":
        for mk in masks.values() if sparsity > 0 else []:
            assert int((~mk).sum()) == min(round(sparsity * mk.numel()), mk.numel() - 1)
            assert mk.any(), "a sparsity below 1 emptied a matrix"
    elif sparsity > 0:
        assert total_zero == min(round(sparsity * total_n), total_n - 1)
    if sparsity > 0:
        for name, p in m.prunable_weights("recurrent").items():
            assert torch.all(p[~masks[name]] == 0)


def test_schedule_shapes() -> None:
    lin = PruneSchedule(sparsity=0.9, schedule="linear", start=0.0, end=1.0)
    cub = PruneSchedule(sparsity=0.9, schedule="cubic", start=0.0, end=1.0)
    assert lin.target_at(50, 100) == pytest.approx(0.45)
    assert cub.target_at(50, 100) == pytest.approx(0.9 * (1 - 0.5**3))
    assert lin.target_at(100, 100) == cub.target_at(100, 100) == 0.9
    assert lin.target_at(0, 100) == 0.0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_masked_weights_stay_zero_after_optimizer_steps(cell: str) -> None:
    m = model(cell)
    masks = magnitude_masks(m.prunable_weights("all"), {}, 0.7, "per-matrix")
    for name, mask in masks.items():
        m.set_mask(name, mask)
    m.apply_masks()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1, weight_decay=0.1)
    x = torch.randn(4, 5, 3)
    for _ in range(5):
        opt.zero_grad()
        m(x).pow(2).sum().backward()
        m.mask_grads()
        opt.step()
        m.apply_masks()
    for name, mask in m.masks().items():
        w = m.get_parameter(name)
        assert torch.all(w[~mask] == 0)
        assert torch.any(w[mask] != 0)


def test_ties_are_broken_deterministically() -> None:
    w = {"a": torch.zeros(4, 4)}
    m1 = magnitude_masks(w, {}, 0.5, "per-matrix")["a"]
    m2 = magnitude_masks(w, {}, 0.5, "per-matrix")["a"]
    assert torch.equal(m1, m2) and int((~m1).sum()) == 8


@pytest.mark.parametrize("kwargs, match", [
    ({"sparsity": 1.0}, "'sparsity' parameter must be a float in \\[0, 1\\)"),
    ({"sparsity": -0.1}, "'sparsity' parameter"),
    ({"schedule": "exp"}, "'schedule' parameter"),
    ({"start": 0.8, "end": 0.2}, "prune_end"),
])
def test_bad_schedule(kwargs, match) -> None:
    with pytest.raises(Exception, match=match):
        PruneSchedule(**kwargs)


@pytest.mark.parametrize("mode", ["per-matrix", "global"])
def test_a_sparsity_below_one_never_empties_what_it_prunes(mode: str) -> None:
    """0.99 of a 4x4 recurrent matrix rounds to all 16 weights: one is kept (the RNN keeps a
    recurrence); in global mode the same holds for all the matrices together."""
    m = model(cell="rnn", hidden=4, layers=1)
    weights = m.prunable_weights("recurrent")
    masks = magnitude_masks(weights, {}, 0.99, mode)
    assert [int(mk.sum()) for mk in masks.values()] == [1]
