"""The moduli regularizer: normalised penalties, controls, learned embeddings."""

from __future__ import annotations

import pytest
import torch

from compressor.moduli import INHIBITORS, ModuliConfig, ModuliRegularizer
from models.errors import ConfigError
from models.sequence import ModelConfig, SequenceModel

SPACES = ["circle", "torus", "torus3", "klein", "sphere", "sphere3", "euclidean", "l1", "permuted", "permuted-klein"]


def tiny_model(cell: str = "lstm", hidden: int = 16, layers: int = 1) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(cell, input_size=3, hidden_sizes=(hidden,) * layers, output_size=2))


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("inhibitor", sorted(INHIBITORS))
@pytest.mark.parametrize("invert", [False, True])
def test_normalised_penalty_has_mean_one(space: str, inhibitor: str, invert: bool) -> None:
    reg = ModuliRegularizer(ModuliConfig(space=space, inhibitor=inhibitor, invert=invert), (24,), gates=4)
    P = reg.penalty(0)
    assert P.shape == (24, 24)
    assert torch.isfinite(P).all()
    assert float(P.mean()) == pytest.approx(1.0, abs=1e-5)
    assert float(P.min()) >= -1e-6


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_l1_control_really_penalises(cell: str) -> None:
    model = tiny_model(cell)
    reg = ModuliRegularizer(ModuliConfig(space="l1", strength=1.0), (16,), gates=model.config.gates)
    expected = model.rnn[0].weight_hh_l0.detach().abs().mean()
    penalty = float(reg(model).detach())
    assert penalty == pytest.approx(float(expected), rel=1e-6) and penalty > 0


def test_permuted_keeps_the_penalty_distribution_but_not_the_geometry() -> None:
    geo = ModuliRegularizer(ModuliConfig(space="torus", seed=3), (20,), gates=1).penalty(0)
    perm = ModuliRegularizer(ModuliConfig(space="permuted", seed=3), (20,), gates=1).penalty(0)
    assert torch.allclose(geo.flatten().sort().values, perm.flatten().sort().values)
    assert not torch.allclose(geo, perm)


def test_none_is_zero_and_geometry_changes_the_penalty() -> None:
    model = tiny_model()
    assert float(ModuliRegularizer(ModuliConfig(space="none"), (16,), 4)(model).detach()) == 0.0
    torus = float(ModuliRegularizer(ModuliConfig(space="torus", strength=1.0), (16,), 4)(model).detach())
    l1 = float(ModuliRegularizer(ModuliConfig(space="l1", strength=1.0), (16,), 4)(model).detach())
    assert torus > 0 and torus != pytest.approx(l1)


def test_penalty_sums_over_layers_and_gates() -> None:
    model = tiny_model("gru", hidden=8, layers=2)
    reg = ModuliRegularizer(ModuliConfig(space="klein", strength=2.0), (8, 8), gates=3)
    manual = sum((reg.penalty(l) * w.view(3, 8, 8).abs()).mean() for l, _, w in model.recurrent_weights())
    assert float(reg(model).detach()) == pytest.approx(2.0 * float(manual.detach()), rel=1e-6)


@pytest.mark.parametrize("space", ["torus", "klein", "circle", "sphere3"])
def test_learned_embedding_moves_and_stays_on_the_space(space: str) -> None:
    model = tiny_model()
    reg = ModuliRegularizer(ModuliConfig(space=space, strength=1.0, learn_embedding=True), (16,), gates=4)
    before = reg.positions[0].detach().clone()
    opt = torch.optim.SGD(list(reg.parameters()), lr=5.0)
    for _ in range(5):
        opt.zero_grad()
        reg(model).backward()
        assert reg.positions[0].grad is not None and torch.isfinite(reg.positions[0].grad).all()
        opt.step()
        reg.project_()
    after = reg.positions[0].detach()
    assert not torch.allclose(before, after)
    if space in ("torus", "klein"):
        assert torch.all((after >= 0) & (after < 10))
    else:
        assert torch.allclose(after.norm(dim=1), torch.ones(16), atol=1e-5)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0])
def test_penalty_gradient_is_finite_at_pruned_weights(p: float) -> None:
    # |w|^p with p < 1 has an infinite slope at 0: every pruned weight once made the
    # gradient NaN, and clipping spread it to every weight.
    model = tiny_model("gru", hidden=6)
    w = model.rnn[0].weight_hh_l0
    with torch.no_grad():
        w[::2] = 0.0
    reg = ModuliRegularizer(ModuliConfig(space="torus", strength=1.0, p=p), (6,), gates=3)
    penalty = reg(model)
    penalty.backward()
    assert torch.isfinite(w.grad).all()
    assert torch.all(w.grad[::2] == 0)
    manual = (reg.penalty(0) * w.detach().view(3, 6, 6).abs() ** p).mean()
    assert float(penalty.detach()) == pytest.approx(float(manual), rel=1e-6)


@pytest.mark.parametrize("inhibitor", sorted(INHIBITORS))
@pytest.mark.parametrize("invert", [False, True])
def test_one_neuron_has_the_uniform_penalty(inhibitor: str, invert: bool) -> None:
    # One neuron has no geometry: f(0) inverted (or distance 0) once made P zero everywhere.
    reg = ModuliRegularizer(ModuliConfig(space="torus", inhibitor=inhibitor, invert=invert), (1,), gates=4)
    assert reg.penalty(0).tolist() == [[1.0]]
    assert float(reg(tiny_model(hidden=1)).detach()) > 0


def test_removed_neurons_positions_do_not_learn() -> None:
    reg = ModuliRegularizer(ModuliConfig(space="klein", strength=1.0, learn_embedding=True), (10,), gates=4)
    full = reg.penalty(0).detach().clone()
    keep = torch.tensor([1, 2, 5, 8])
    reg.shrink(0, keep)
    assert torch.allclose(reg.penalty(0), full[keep][:, keep])  # the kept weights' penalty is unchanged
    weights = torch.randn(4, 4)
    (reg.penalty(0) * weights.abs()).sum().backward()
    grad = reg.positions[0].grad
    removed = torch.ones(10, dtype=torch.bool)
    removed[keep] = False
    assert torch.all(grad[removed] == 0)
    assert torch.any(grad[keep] != 0)


def test_weight_decay_does_not_pull_learned_positions() -> None:
    from compressor.training import TrainConfig, _make_optimizer

    weight = torch.nn.Parameter(torch.ones(3))
    position = torch.nn.Parameter(torch.full((3, 2), 7.0))
    for name in ("adam", "adamw", "sgd"):
        opt = _make_optimizer(TrainConfig(optimizer=name, weight_decay=0.5, lr=0.1), [weight], [position])
        weight.grad, position.grad = torch.zeros(3), torch.zeros(3, 2)
        opt.step()
        assert torch.all(position.detach() == 7.0), name
        assert torch.all(weight.detach() < 1.0), name
        weight.data.fill_(1.0)


def test_state_round_trip_and_shrink() -> None:
    reg = ModuliRegularizer(ModuliConfig(space="permuted", seed=1), (10,), gates=4)
    full = reg.penalty(0).clone()
    keep = torch.tensor([0, 3, 4, 9])
    reg.shrink(0, keep)
    assert torch.allclose(reg.penalty(0), full[keep][:, keep])
    again = ModuliRegularizer.from_state(reg.to_state())
    assert torch.allclose(again.penalty(0), full[keep][:, keep])


@pytest.mark.parametrize("kwargs, match", [
    ({"space": "donut"}, "'space' parameter"),
    ({"space": "torus", "inhibitor": "mexican-hat"}, "'inhibitor' parameter"),
    ({"space": "torus", "strength": -1.0}, "'strength' parameter"),
    ({"space": "torus", "strength": float("nan")}, "'strength' parameter"),
])
def test_bad_regularizer_config(kwargs, match) -> None:
    with pytest.raises(Exception, match=match):
        ModuliConfig(**kwargs)


@pytest.mark.parametrize("inhibitor", sorted(INHIBITORS))
def test_unset_invert_is_the_inhibitors_usual_form(inhibitor: str) -> None:
    """distance and square are not inverted (inverted, near neurons would be the expensive
    ones); the bumps are. Near neighbours then cost less than far ones for the monotone ones."""
    from compressor.moduli import INVERTED_BY_DEFAULT, penalty_matrix
    from compressor.spaces import make_space

    cfg = ModuliConfig(space="circle", inhibitor=inhibitor)
    assert cfg.invert is (inhibitor in INVERTED_BY_DEFAULT) and inhibitor in ("distance", "square", "gauss", "dog",
                                                                              "ripple")
    assert ModuliConfig(space="circle", inhibitor=inhibitor, invert=False).invert is False
    if inhibitor in ("distance", "square", "gauss"):  # monotone in distance
        space = make_space("circle")
        pos = space.sample(64, torch.Generator().manual_seed(0))
        P = penalty_matrix(space, pos, inhibitor, cfg.invert)
        d = space.distance(pos, pos)[0]
        order = torch.argsort(d)
        assert P[0, order[1]] < P[0, order[-1]]  # nearest neighbour < farthest neuron


@pytest.mark.parametrize("space", ["permuted-l1", "permuted-none", "permuted-torus20", "permuted-"])
def test_a_bad_permuted_space_is_echoed_as_given(space: str) -> None:
    with pytest.raises(ConfigError, match=f"Got '{space}' instead"):
        ModuliConfig(space=space)
