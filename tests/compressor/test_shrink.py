"""Mask, then resize: the shrunk model computes what the masked model computes."""

from __future__ import annotations

import copy

import pytest
import torch

from compressor.moduli import ModuliConfig, ModuliRegularizer
from compressor.shrink import dead_neurons, mask_neurons, shrink_model
from models.errors import ConfigError
from models.sequence import ModelConfig, SequenceModel


def make(cell: str, layers: int, head: str = "last", init: int = 0, embedding: bool = False) -> SequenceModel:
    torch.manual_seed(layers * 7 + len(cell))
    cfg = ModelConfig(cell, input_size=9 if embedding else 5, hidden_sizes=(10, 8, 6)[:layers], output_size=3,
                      head=head, init_size=init, input_layer="embedding" if embedding else "none",
                      input_dim=4 if embedding else 0)
    return SequenceModel(cfg).eval()


def inputs(model: SequenceModel):
    torch.manual_seed(1)
    if model.config.input_layer == "embedding":
        x = torch.randint(0, model.config.input_size, (4, 7))
    else:
        x = torch.randn(4, 7, 5)
    init = torch.randn(4, model.config.init_size) if model.config.init_size else None
    return x, init


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("head, init, embedding", [("last", 0, False), ("every", 6, False), ("every", 0, True)])
def test_masked_equals_shrunk(cell: str, layers: int, head: str, init: int, embedding: bool) -> None:
    model = make(cell, layers, head, init, embedding)
    g = torch.Generator().manual_seed(3)
    keep = [torch.randperm(h, generator=g)[: max(1, h // 2)] for h in model.config.hidden_sizes]
    masked = copy.deepcopy(model)
    for l, k in enumerate(keep):
        mask_neurons(masked, l, k)
    small = shrink_model(model, keep)
    assert small.config.hidden_sizes == tuple(max(1, h // 2) for h in model.config.hidden_sizes)
    x, init_x = inputs(model)
    assert torch.allclose(masked(x, init_x), small(x, init_x), atol=1e-6)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_removing_a_dead_neuron_changes_nothing(cell: str) -> None:
    model = make(cell, 2)
    with torch.no_grad():
        model.rnn[0].weight_hh_l0[:, 4] = 0
        model.rnn[1].weight_ih_l0[:, 4] = 0
    assert dead_neurons(model, 0).tolist() == [4]
    keep = [torch.tensor([i for i in range(10) if i != 4]), None]
    small = shrink_model(model, keep)
    x, _ = inputs(model)
    assert torch.allclose(model(x), small(x), atol=1e-6)


def test_masks_are_sliced_with_the_weights() -> None:
    model = make("lstm", 2)
    mask = torch.rand(model.rnn[0].weight_hh_l0.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    model.set_mask("rnn.0.weight_hh_l0", mask)
    model.apply_masks()
    keep = torch.tensor([1, 3, 5, 7])
    small = shrink_model(model, [keep, None])
    rows = torch.cat([g * 10 + keep for g in range(4)])
    assert torch.equal(small.masks()["rnn.0.weight_hh_l0"], mask[rows][:, keep])
    w = small.rnn[0].weight_hh_l0
    assert torch.all(w[~small.masks()["rnn.0.weight_hh_l0"]] == 0)


def test_shrinking_twice_with_everything_kept_changes_nothing() -> None:
    model = make("gru", 2)
    once = shrink_model(model, [torch.tensor([0, 2, 4, 6]), torch.tensor([1, 2])])
    twice = shrink_model(once, [None, None])
    for k, v in once.state_dict().items():
        assert torch.equal(v, twice.state_dict()[k])


def test_regularizer_follows_the_kept_neurons() -> None:
    reg = ModuliRegularizer(ModuliConfig(space="torus"), (10,), gates=4)
    P = reg.penalty(0).clone()
    keep = torch.tensor([0, 5, 9])
    reg.shrink(0, keep)
    assert torch.allclose(reg.penalty(0), P[keep][:, keep])


@pytest.mark.parametrize("keep, match", [
    ([torch.tensor([], dtype=torch.long)], "at least 1 neuron"),
    ([torch.tensor([0, 12])], "neuron indices in \\[0, 10\\)"),
    ([torch.tensor([0]), torch.tensor([0])], "one entry per layer"),
    ([torch.tensor([0.5, 1.7])], "integer neuron indices \\(or a bool mask\\)"),
    ([torch.tensor([3, 3, 1])], "distinct neuron indices"),
    ([torch.tensor([True, False])], "a bool mask over the layer's 10 neurons"),
])
def test_bad_keep(keep, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        shrink_model(make("lstm", 1), keep)


def test_a_bool_mask_keeps_the_neurons_it_marks() -> None:
    model = make("gru", 1)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[1, 4, 7]] = True
    by_mask, by_index = shrink_model(model, [mask]), shrink_model(model, [torch.tensor([1, 4, 7])])
    assert by_mask.config.hidden_sizes == (3,)
    for (k, a), b in zip(by_mask.state_dict().items(), by_index.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ConfigError, match="'layer' parameter must be a layer index in \\[0, 1\\)"):
        mask_neurons(model, 5, torch.tensor([0]))
