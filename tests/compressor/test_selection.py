"""Selection policies: targets, auto, ranking; pruning end to end keeps the invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import train_adding_parent

from compressor.lattice import influence_blocks, meet_irreducible
from compressor.prune import PruneConfig, prune_checkpoint, prune_edges
from compressor.selection import SelectionConfig, kept_count, parse_keep, select_neurons
from models.checkpoint import Checkpoint, load_checkpoint
from models.errors import CheckpointError, ConfigError
from models.sequence import ModelConfig, SequenceModel
from models.tasks import make_task


def model(cell="lstm", hidden=(12, 9)) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(cell, input_size=3, hidden_sizes=hidden, output_size=2))


@pytest.mark.parametrize("method", ["lattice", "norm", "random"])
@pytest.mark.parametrize("keep, expected", [(0.5, [6, 5]), (3, [3, 3]), (1.0, [12, 9])])  # (4.5 rounds up)
def test_targets_are_met(method: str, keep, expected) -> None:
    sel = select_neurons(model(), SelectionConfig(method=method, keep=keep))
    assert [int(s.keep_index.numel()) for s in sel] == expected
    for s in sel:
        assert torch.equal(s.keep_index, torch.unique(s.keep_index))


def test_a_fraction_rounds_half_up_and_below_one_neuron_is_refused() -> None:
    """The bound the error states is the real one: 0.5/n keeps one neuron, less keeps none."""
    assert [kept_count(f, n) for f, n in [(0.5, 9), (0.5, 7), (0.5, 5), (0.03125, 16), (0.5, 1)]] == [5, 4, 3, 1, 1]
    assert [int(s.keep_index.numel()) for s in select_neurons(model(hidden=(16,)), SelectionConfig(keep=0.03125))] == [1]
    with pytest.raises(ConfigError, match=r"keeps at least 1 of the 16 neurons of layer 0 \(>= 0.0312; 0.03 x 16 "
                                          r"rounds to 0\)"):
        select_neurons(model(hidden=(16,)), SelectionConfig(keep=0.03))


def test_norm_keeps_the_largest_incoming_norms() -> None:
    m = model("gru", (10,))
    with torch.no_grad():
        m.rnn[0].weight_hh_l0[torch.cat([g * 10 + torch.tensor([2, 7]) for g in range(3)])] *= 100
    keep = select_neurons(m, SelectionConfig(method="norm", keep=2))[0].keep_index
    assert keep.tolist() == [2, 7]


def test_auto_keeps_exactly_the_meet_irreducible_set() -> None:
    m = model("rnn", (10,))
    sel = select_neurons(m, SelectionConfig(method="lattice", keep="auto", feed_forward=False))[0]
    A, blocks = influence_blocks(m.rnn[0].weight_hh_l0.detach(), 1)
    assert sel.meet_irreducible == int(sel.keep_index.numel())
    assert set(sel.keep_index.tolist()) <= set(range(10))


def test_lattice_prefers_meet_irreducible_neurons() -> None:
    # Neuron 0 drives exactly what 1 and 2 together drive in common: reducible.
    m = model("rnn", (4,))
    R = torch.zeros(4, 4)
    R[[0, 1, 2], 1] = 1.0  # E_1 = {0,1,2}
    R[[0, 1, 3], 2] = 1.0  # E_2 = {0,1,3}
    R[[0, 1], 0] = 1.0     # E_0 = {0,1} = E_1 ∩ E_2 -> reducible
    R[[2, 3], 3] = 1.0     # E_3 = {2,3}
    with torch.no_grad():
        m.rnn[0].weight_hh_l0.copy_(R * 5.0)  # strongest weights on the reducible neuron too
    B = (R > 0).numpy()
    assert meet_irreducible(B).tolist() == [False, True, True, True]
    sel = select_neurons(m, SelectionConfig(method="lattice", keep=3, feed_forward=False, threshold=0.5))[0]
    assert sel.keep_index.tolist() == [1, 2, 3]


def test_random_is_seeded() -> None:
    a = select_neurons(model(), SelectionConfig(method="random", keep=0.5, seed=1))
    b = select_neurons(model(), SelectionConfig(method="random", keep=0.5, seed=1))
    c = select_neurons(model(), SelectionConfig(method="random", keep=0.5, seed=2))
    assert all(torch.equal(x.keep_index, y.keep_index) for x, y in zip(a, b))
    assert any(not torch.equal(x.keep_index, y.keep_index) for x, y in zip(a, c))


@pytest.mark.parametrize("kwargs, match", [
    ({"keep": 13}, "at most the hidden size of layer 0"),
    ({"keep": 0}, "'keep' parameter"),
    ({"keep": 1.5}, "'keep' parameter"),
    ({"keep": "lots"}, "'keep' parameter"),
    ({"method": "magic"}, "'method' parameter"),
    ({"variant": "fuzzy"}, "'variant' parameter"),
    ({"method": "norm", "keep": "auto"}, "lattice only"),
    ({"threshold": 1e9}, "relation is empty"),
])
def test_bad_selection(kwargs, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        select_neurons(model(), SelectionConfig(**kwargs))


def test_parse_keep() -> None:
    assert parse_keep("0.25") == 0.25 and parse_keep("64") == 64 and parse_keep("auto") == "auto"
    assert parse_keep("1") == 1 and parse_keep(1.0) == 1.0
    assert parse_keep(np.int64(3)) == 3 and type(parse_keep(np.int64(3))) is int and parse_keep(np.float32(0.5)) == 0.5
    # the decimal point decides: 2.0 is a fraction out of range, not the count 2; the value is echoed as given
    for bad in ("2.0", 2.0, "4.", "-1", 0, "1.5"):
        with pytest.raises(ConfigError, match="a fraction in \\(0, 1\\] written with a decimal point") as e:
            parse_keep(bad)
        assert f"Got {bad!r} instead." in str(e.value)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Checkpoint, object, object]:
    return train_adding_parent(tmp_path_factory.mktemp("p"), "gru", 2, 0.5)


@pytest.mark.parametrize("method, variant", [("lattice", "binary"), ("lattice", "continuous"), ("norm", "binary"),
                                             ("random", "binary")])
def test_prune_checkpoint_end_to_end(tmp_path: Path, trained, method: str, variant: str) -> None:
    ckpt, task, data = trained
    out = tmp_path / "p.pt"
    res = prune_checkpoint(ckpt, PruneConfig(method=method, variant=variant, keep=0.5, finetune_epochs=1,
                                             thresholds=4), task, data, out)
    back = load_checkpoint(out)
    assert back.config.hidden_sizes == (6, 6)
    assert back.pruning["method"] == method and back.pruning["parent_sha256"] == ckpt.sha256
    # Positions of the kept neurons follow into the regularizer state.
    assert [len(k) for k in back.regularizer["kept"]] == [6, 6]
    # Magnitude masks stay in force through fine-tuning.
    m = back.build_model()
    for name, mask in m.masks().items():
        assert torch.all(m.get_parameter(name)[~mask] == 0)
    assert res.report["parameters_after"] < res.report["parameters_before"]


def test_edge_pruning_only_removes_connections(tmp_path: Path, trained) -> None:
    ckpt, task, data = trained
    res = prune_checkpoint(ckpt, PruneConfig(keep=1.0, edge_prune=True, finetune_epochs=0, quantile=0.5),
                           task, data, None)
    assert res.report["recurrent_sparsity_after"] > res.report["recurrent_sparsity_before"]


def test_edge_pruning_leaves_a_layer_without_recurrent_connections_as_it_is(trained) -> None:
    """Kept neurons with no recurrent connection among them have none to remove (edge pruning
    failed with 'the relation is empty'); a threshold no kept connection reaches would remove
    them all and is refused, naming the layer."""
    ckpt, task, data = trained
    sd = {**ckpt.state_dict, "rnn.0.weight_hh_l0": torch.zeros_like(ckpt.state_dict["rnn.0.weight_hh_l0"])}
    bare = Checkpoint(**{**ckpt.__dict__, "state_dict": sd})
    for method in ("norm", "lattice"):
        res = prune_checkpoint(bare, PruneConfig(method=method, keep=1.0, edge_prune=True, finetune_epochs=0),
                               task, data, None)
        assert res.checkpoint.state_dict["rnn.0.weight_hh_l0"].abs().sum() == 0
        assert res.checkpoint.state_dict["rnn.1.weight_hh_l0"].count_nonzero() > 0  # layer 1 still edge-pruned
    model = ckpt.build_model()
    with pytest.raises(ConfigError, match="Edge pruning of layer 0: The relation is empty: no influence reaches"):
        prune_edges(model, SelectionConfig(threshold=1e30))


def test_library_arguments_prune_checkpoint_reads_as_meant(tmp_path: Path, trained) -> None:
    """One teacher path given as a string is one teacher (not its letters); a task the
    checkpoint was not trained on, data another task loaded, and a task of other
    parameters are refused before any work; progress=None is silent."""
    ckpt, task, data = trained
    res = prune_checkpoint(ckpt, PruneConfig(keep=0.5, finetune_epochs=1, distill=0.5), task, data, None,
                           progress=None, teachers=str(ckpt.path))
    assert res.checkpoint.pruning["teachers"] == [{"path": str(ckpt.path), "sha256": ckpt.sha256}]
    nav = make_task("navigation", {"seq_len": 5, "samples": 32, "val_samples": 8, "test_samples": 8,
                                   "place_cells": 8})
    with pytest.raises(ConfigError, match="trained on another task \\(task 'adding', not 'navigation'\\)"):
        prune_checkpoint(ckpt, PruneConfig(keep=0.5), nav, nav.load(), tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="data: loaded by another task than the one given \\(task 'navigation'\\)"):
        prune_checkpoint(ckpt, PruneConfig(keep=0.5), task, nav.load(), tmp_path / "x.pt")
    other = make_task("adding", {**task.to_dict()["params"], "data_seed": 7})
    with pytest.raises(ConfigError, match='trained on another task \\(parameters .*"data_seed": 0.*, not .*"data_seed": 7'):
        prune_checkpoint(ckpt, PruneConfig(keep=0.5), other, other.load(), tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_nan_weights_are_refused(tmp_path: Path, trained) -> None:
    ckpt, task, data = trained
    bad = Checkpoint(**{**ckpt.__dict__, "state_dict": dict(ckpt.state_dict)})
    bad.state_dict["rnn.0.weight_hh_l0"] = ckpt.state_dict["rnn.0.weight_hh_l0"].clone()
    bad.state_dict["rnn.0.weight_hh_l0"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        prune_checkpoint(bad, PruneConfig(), task, data, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_surgery_bug_is_caught_before_anything_is_written(tmp_path: Path, trained, monkeypatch) -> None:
    from compressor import prune as prune_module
    from compressor.shrink import shrink_model
    from models.errors import InvariantError

    def buggy(model, keep):
        small = shrink_model(model, keep)
        with torch.no_grad():
            small.head.weight.mul_(1.5)
        return small

    monkeypatch.setattr(prune_module, "shrink_model", buggy)
    ckpt, task, data = trained
    with pytest.raises(InvariantError, match="differs from the masked model"):
        prune_checkpoint(ckpt, PruneConfig(keep=0.5, finetune_epochs=0), task, data, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_centralities() -> None:
    from compressor.selection import CENTRALITIES, flow_centrality, out_strength

    rng = np.random.default_rng(0)
    A = np.abs(rng.normal(size=(8, 6)))
    A[:6][:, 2] = 0.0  # neuron 2 drives no neuron of the layer ...
    A[6:, 2] = 10.0  # ... but dominates the head
    A[:, 4] = 0.0  # neuron 4 drives nothing at all
    blocks = ((0, 6), (6, 8))
    out = out_strength(A, blocks)
    assert out.sum() == pytest.approx(2.0) and out.argmax() == 2 and out[4] == 0
    flow = flow_centrality(A, blocks, damping=0.5)
    assert flow.sum() == pytest.approx(1.0) and flow[4] == 0 and flow.argmax() == 2
    # The defining fixed point s = seed + damping * shareᵀ s (seed: downstream out-strength),
    # solved directly.
    rec = A[:6]
    share = rec / rec.sum(1, keepdims=True)
    s = np.linalg.solve(np.eye(6) - 0.5 * share.T, out_strength(A, blocks[1:]))
    assert np.allclose(flow, s / s.sum(), atol=1e-9)
    magnitude = rng.uniform(0.5, 2.0, size=6)
    for fn in CENTRALITIES.values():
        assert fn(A, blocks, magnitude).shape == (6,)
    assert np.array_equal(CENTRALITIES["norm"](A, blocks, magnitude), magnitude)
    with pytest.raises(ConfigError, match="'centrality' parameter"):
        SelectionConfig(centrality="closeness")


def test_a_layer_without_recurrent_influences_names_itself_and_what_ranks_it() -> None:
    m = model(cell="rnn", hidden=(4,))
    with torch.no_grad():
        m.rnn[0].weight_hh_l0.zero_()
    with pytest.raises(ConfigError, match=r"^Layer 0: The relation is empty: .*all zeros\). A lattice needs influences "
                                          r"between neurons: method 'norm' or 'random' ranks this layer"):
        select_neurons(m, SelectionConfig(keep=2, feed_forward=False))
    assert [len(s.keep_index) for s in select_neurons(m, SelectionConfig(method="norm", keep=2))] == [2]


def test_the_surgery_check_is_relative_for_large_outputs() -> None:
    """Outputs of ~1e30 that agree to float32 rounding differ by far more than an absolute
    1e-5: the check scales with them, and still refuses a real difference."""
    from compressor.prune import check_mask_equals_shrink
    from compressor.shrink import shrink_model
    from models.errors import InvariantError

    m = model("gru", (12,)).eval()
    with torch.no_grad():
        m.head.weight.mul_(1e30)
    keep = [torch.arange(0, 12, 2)]
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0))
    for factor, ok in ((1 + 2 ** -22, True), (1 + 1e-3, False)):  # (a float32 rounding step; a bug)
        small = shrink_model(m, keep)
        with torch.no_grad():
            small.head.weight.mul_(factor)
        if ok:
            assert check_mask_equals_shrink(m, small, keep, x, None) > 1e20
        else:
            with pytest.raises(InvariantError, match=r"differs from the masked model by .* \(tolerance 1e-05 \+ "
                                                     r"1.3e-06\*\|y\|\)"):
                check_mask_equals_shrink(m, small, keep, x, None)
