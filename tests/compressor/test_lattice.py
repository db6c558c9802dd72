"""The lattice criterion: representatives, influence blocks, per-block thresholds, the
continuous variant, input types and bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest
import sparse
import torch

import compressor.lattice as lattice
from compressor.lattice import (
    LatticeCriterion,
    binary_relation,
    influence_blocks,
    influence_matrix,
    meet_irreducible,
    persistence,
    quantile_grid,
)
from models.errors import ConfigError
from models.sequence import GATES, ModelConfig, SequenceModel, gate_blocks


def reference_meet_irreducible(B: np.ndarray) -> np.ndarray:
    """DESIGN.md's definition, literally: E_j != ∩{E_k : E_k ⊋ E_j}, lowest index per extent."""
    R, n = B.shape
    out = np.zeros(n, bool)
    seen: set[bytes] = set()
    for j in range(n):
        e = B[:, j]
        if e.tobytes() in seen:
            continue
        seen.add(e.tobytes())
        supersets = [k for k in range(n) if (B[:, k] >= e).all() and B[:, k].sum() > e.sum()]
        meet = np.logical_and.reduce(B[:, supersets], axis=1) if supersets else np.ones(R, bool)
        out[j] = not np.array_equal(meet, e)
    return out


def random_relation(seed: int, R: int, n: int, density: float) -> np.ndarray:
    """Random relation with planted structure: duplicates, unions and intersections of
    columns (so containments exist), empty and full columns."""
    rng = np.random.default_rng(seed)
    B = rng.random((R, n)) < density
    for j in range(0, n, 7):
        a, b = rng.integers(0, n, 2)
        B[:, j] = [B[:, a], B[:, a] | B[:, b], B[:, a] & B[:, b], False, True][j % 5]
    return B


# ------------------------------------------------------------------ meet_irreducible
def test_top_is_not_meet_irreducible() -> None:
    B = np.array([[1, 1, 0], [0, 1, 1], [0, 1, 0]], bool)  # column 1 is every receiver
    assert meet_irreducible(B).tolist() == [True, False, True]
    assert not meet_irreducible(np.ones((3, 4), bool)).any()


def test_meet_of_two_supersets_is_reducible() -> None:
    # E_2 = {1} = E_0 ∩ E_1: derivable from the others, so not meet-irreducible.
    B = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 0]], bool)
    assert meet_irreducible(B).tolist() == [True, True, False]


@pytest.mark.parametrize("prefer, expected", [
    (None, [True, False, False, True]),             # lowest index of the group {0, 1, 2}
    ([0.1, 0.5, 0.3, 0.0], [False, True, False, True]),
    ([0.5, 0.5, 0.9, 0.0], [False, False, True, True]),
    ([0.7, 0.7, 0.2, 0.0], [True, False, False, True]),  # tie: lowest index
])
def test_representative_follows_prefer(prefer, expected) -> None:
    B = np.array([[1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], bool)  # senders 0-2 equal
    assert meet_irreducible(B, prefer=prefer).tolist() == expected


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0)])
def test_empty_shapes(shape) -> None:
    assert meet_irreducible(np.zeros(shape, bool)).shape == (shape[1],)
    assert not meet_irreducible(np.zeros(shape, bool)).any()


def test_empty_and_all_zero_columns() -> None:
    # All-zero relation: every extent is the bottom, covered only by the top.
    assert meet_irreducible(np.zeros((3, 3), bool)).tolist() == [True, False, False]
    # An empty column under two incomparable extents is their meet: reducible.
    B = np.array([[1, 0, 0], [0, 1, 0]], bool)
    assert meet_irreducible(B).tolist() == [True, True, False]


@pytest.mark.parametrize("R, n, density", [(300, 200, 0.3), (500, 150, 0.05), (200, 300, 0.8), (40, 40, 0.5)])
@pytest.mark.parametrize("method", ["auto", "bits", "blas"])
def test_every_path_agrees_with_the_definition(R, n, density, method) -> None:
    B = random_relation(R + n, R, n, density)
    expected = reference_meet_irreducible(B)
    assert np.array_equal(lattice._meet_irreducible(B, None, method), expected)


@pytest.mark.parametrize("method", ["auto", "bits", "blas"])
def test_nested_extents(method) -> None:
    # A chain (E_j = {i >= j}: each extent inside the previous, E_0 the top) and random
    # prefixes: dense supersets.
    chain = np.tri(60, 60, dtype=bool)
    assert lattice._meet_irreducible(chain, None, method).tolist() == [False] + [True] * 59
    prefixes = np.arange(200)[:, None] < np.random.default_rng(0).integers(0, 200, 300)[None, :]
    assert np.array_equal(lattice._meet_irreducible(prefixes, None, method), reference_meet_irreducible(prefixes))


def test_sparse_torch_and_dense_inputs_agree() -> None:
    B = random_relation(1, 120, 80, 0.1)
    expected = meet_irreducible(B)
    for relation in (B.astype(np.uint8), B.astype(float), sparse.COO.from_numpy(B), sparse.GCXS.from_numpy(B),
                     torch.from_numpy(B), torch.from_numpy(B.astype(np.float32)).to_sparse()):
        assert np.array_equal(meet_irreducible(relation), expected), type(relation)


@pytest.mark.parametrize("relation, prefer, match", [
    (np.zeros((2, 2, 2)), None, "'relation' parameter must be a 2-D"),
    (np.full((2, 2), 2), None, "'relation' parameter must be a 0/1 or bool matrix"),
    (np.ones((2, 3)), [1.0, 2.0], r"'prefer' parameter must be a finite 1-D score per sender \(length 3\)"),
    (np.ones((2, 2)), [1.0, np.nan], "'prefer' parameter .* Got 'non-finite values'"),
])
def test_meet_irreducible_bad_input(relation, prefer, match) -> None:
    with pytest.raises(ConfigError, match=match):
        meet_irreducible(relation, prefer)


# ------------------------------------------------------------------ influence matrix
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_influence_sums_gates_and_stacks_feed_forward(cell, layers) -> None:
    torch.manual_seed(0)
    hidden = (6, 5)[:layers]
    model = SequenceModel(ModelConfig(cell, input_size=3, hidden_sizes=hidden, output_size=4))
    g = GATES[cell]
    w_hh = model.rnn[0].weight_hh_l0
    # What the layer feeds: the next layer's inputs (summed over gates) or the head.
    consumer = (gate_blocks(model.rnn[1].weight_ih_l0.detach().abs(), g).sum(0) if layers == 2
                else model.head.weight.detach().abs())
    A, blocks = influence_blocks(w_hh, g, [consumer])
    expected = sum(gate_blocks(w_hh.detach().abs(), g)[k] for k in range(g)).numpy()
    assert A.shape == (6 + consumer.shape[0], 6) and A.dtype == np.float32
    assert np.allclose(A[:6], expected)
    assert np.allclose(A[6:], consumer.numpy())
    assert blocks == ((0, 6), (6, 6 + consumer.shape[0]))
    assert np.array_equal(influence_matrix(w_hh, g, [consumer]), A)
    assert influence_blocks(w_hh, g)[1] == ((0, 6),)


def test_influence_gate_layout() -> None:
    # Row i of gate block k is row k * n + i of weight_hh; column j is sender j.
    n, g = 3, 4
    w = np.zeros((g * n, n))
    w[2 * n + 1, 2] = -2.0  # gate 2, receiver 1, sender 2
    w[0 * n + 1, 2] = 0.5   # gate 0, same edge
    A = influence_matrix(w, g)
    assert A.dtype == np.float64
    assert A[1, 2] == 2.5 and A.sum() == 2.5


@pytest.mark.parametrize("kwargs, match", [
    ({"weight_hh": np.ones((8, 3)), "gates": 4}, r"'weight_hh' parameter must be a \(4 \* n, n\) matrix"),
    ({"weight_hh": np.ones((3, 3)), "gates": 0}, "'gates' parameter must be a positive int"),
    ({"weight_hh": np.ones((3, 3)), "gates": 1, "feed_forward": [np.ones((2, 4))]},
     r"'feed_forward\[0\]' parameter must be a 2-D \(m, 3\) matrix"),
    ({"weight_hh": np.ones((3, 3)), "gates": 1, "feed_forward": [-np.ones((2, 3))]},
     r"'feed_forward\[0\]' parameter must be non-negative"),
    ({"weight_hh": np.full((3, 3), np.nan), "gates": 1}, "NaN or Inf"),
    ({"weight_hh": np.ones((3, 3)), "gates": 1, "feed_forward": [np.full((1, 3), np.inf)]}, "NaN or Inf"),
])
def test_influence_bad_input(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        influence_matrix(**kwargs)


# ------------------------------------------------------------------ binary relation
def test_relation_uses_quantile_of_nonzero_entries() -> None:
    A = np.array([[0.0, 2.0], [1.0, 3.0]])
    assert binary_relation(A).tolist() == [[False, True], [False, True]]  # tau = 2
    assert binary_relation(A, quantile=0.0).tolist() == [[False, True], [True, True]]  # zeros stay out
    assert binary_relation(A, threshold=2.5).tolist() == [[False, False], [False, True]]


def test_thresholds_are_per_block() -> None:
    rng = np.random.default_rng(0)
    recurrent = rng.random((10, 10)) + 0.01
    head = 100 * (rng.random((15, 10)) + 0.01)  # a hundred times larger
    A = np.vstack([recurrent, head])
    per_block = binary_relation(A, quantile=0.5, blocks=[(0, 10), (10, 25)])
    assert per_block[:10].mean() == pytest.approx(0.5, abs=0.01)
    assert per_block[10:].mean() == pytest.approx(0.5, abs=0.01)
    assert np.array_equal(per_block[:10], binary_relation(recurrent, quantile=0.5))
    assert np.array_equal(per_block[10:], binary_relation(head, quantile=0.5))
    # One block: the head's scale sets tau and the recurrent block vanishes.
    assert not binary_relation(A, quantile=0.5)[:10].any()
    # Slices work as blocks too.
    assert np.array_equal(binary_relation(A, blocks=[slice(0, 10), slice(10, None)]), per_block)


def test_all_zero_block_contributes_nothing() -> None:
    A = np.vstack([np.ones((2, 3)), np.zeros((2, 3))])
    assert binary_relation(A, blocks=[(0, 2), (2, 4)]).tolist() == [[True] * 3] * 2 + [[False] * 3] * 2


@pytest.mark.parametrize("A, kwargs, match", [
    (np.zeros((3, 3)), {}, "relation is empty: .*quantile 0.5 .*all zeros"),
    (np.ones((3, 3)), {"threshold": 5.0}, r"relation is empty: no influence reaches the threshold 5.0 "
                                          r"\(the largest influence is 1\)"),
    (np.array([[np.nan, 1.0]]), {}, "weights contain NaN or Inf"),
    (np.array([[np.inf, 1.0]]), {}, "weights contain NaN or Inf"),
    (np.array([[-1.0, 1.0]]), {}, "'A' parameter must be non-negative"),
    (np.ones(3), {}, "'A' parameter must be a 2-D"),
    (np.ones((2, 2)), {"quantile": 1.0}, r"The 'quantile' parameter must be a float in \[0, 1\). Got 1.0 instead."),
    (np.ones((2, 2)), {"quantile": -0.1}, "'quantile' parameter must be a float in"),
    (np.ones((2, 2)), {"threshold": 0.0}, "'threshold' parameter must be a finite float > 0"),
    (np.ones((2, 2)), {"threshold": float("nan")}, "'threshold' parameter must be a finite float > 0"),
    (np.ones((2, 2)), {"quantile": 0.5, "threshold": 1.0}, "either the 'quantile' or the 'threshold'"),
    (np.ones((4, 2)), {"blocks": [(0, 2), (3, 4)]}, r"'blocks' parameter must be \(start, stop\) row ranges"),
    (np.ones((4, 2)), {"blocks": [(0, 2)]}, "'blocks' parameter must be"),
    (np.ones((4, 2)), {"blocks": [3]}, "'blocks' parameter must be"),
])
def test_relation_bad_input(A, kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        binary_relation(A, **kwargs)


def test_relation_accepts_torch_and_sparse() -> None:
    A = np.abs(np.random.default_rng(0).normal(size=(6, 5))).astype(np.float32)
    A[A < 0.5] = 0
    expected = binary_relation(A, quantile=0.3)
    assert np.array_equal(binary_relation(torch.from_numpy(A), quantile=0.3), expected)
    assert np.array_equal(binary_relation(sparse.COO.from_numpy(A), quantile=0.3), expected)


# ------------------------------------------------------------------ continuous variant
def test_persistence_in_unit_interval_and_one_level_is_binary() -> None:
    A = np.abs(np.random.default_rng(1).normal(size=(40, 30)))
    A[np.random.default_rng(2).random(A.shape) < 0.6] = 0
    scores = persistence(A, thresholds=8)
    assert scores.shape == (30,) and ((scores >= 0) & (scores <= 1)).all()
    assert np.allclose(scores * 8, np.round(scores * 8))  # a count of levels
    for q in (0.0, 0.3, 0.9):
        binary = meet_irreducible(binary_relation(A, quantile=q)).astype(float)
        assert np.array_equal(persistence(A, thresholds=[q]), binary)
        assert np.array_equal(persistence(A, thresholds=1, q_min=q, q_max=q), binary)


def test_continuous_equals_binary_when_every_level_is_the_same() -> None:
    # All nonzero influences equal: every quantile gives the same relation.
    B = random_relation(3, 30, 20, 0.3)
    A = B.astype(float)
    binary = LatticeCriterion("binary").scores(A)
    assert np.array_equal(LatticeCriterion("continuous", thresholds=5).scores(A), binary)
    assert np.array_equal(binary, meet_irreducible(B).astype(float))


def test_persistence_known_example() -> None:
    # q = 0: E_0 = {1}, E_1 = {0, 1} (top) -> [1, 0]; q = 0.9 (tau 2.8): E_0 = ∅,
    # E_1 = {1}, a chain below the empty top -> [1, 1].
    A = np.array([[0.0, 2.0], [1.0, 3.0]])
    assert persistence(A, thresholds=[0.0, 0.9]).tolist() == [1.0, 0.5]
    assert LatticeCriterion("continuous", thresholds=(0.0, 0.9)).scores(A).tolist() == [1.0, 0.5]


def test_persistence_representatives_are_stable_across_levels() -> None:
    # Senders 0 and 1 always have equal extents; prefer picks sender 1 at every level.
    rng = np.random.default_rng(4)
    A = rng.random((12, 5))
    A[:, 1] = A[:, 0]
    scores = persistence(A, thresholds=6, prefer=[0.0, 1.0, 0.0, 0.0, 0.0])
    assert scores[0] == 0.0 and scores[1] > 0.0
    assert persistence(A, thresholds=6)[1] == 0.0  # default: the lower index


def test_persistence_per_block() -> None:
    A = np.vstack([np.random.default_rng(5).random((10, 6)), 1000 * np.random.default_rng(6).random((3, 6))])
    blocks = [(0, 10), (10, 13)]
    grid = [0.2, 0.6]
    expected = np.mean([meet_irreducible(binary_relation(A, quantile=q, blocks=blocks)) for q in grid], axis=0)
    assert np.array_equal(persistence(A, thresholds=grid, blocks=blocks), expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"thresholds": 0}, "'thresholds' parameter must be an int >= 1 or a non-empty list"),
    ({"thresholds": []}, "'thresholds' parameter must be"),
    ({"thresholds": [0.5, 1.0]}, "'thresholds' parameter must be"),
    ({"thresholds": "many"}, "'thresholds' parameter must be"),
    ({"q_min": -0.1}, r"'q_min' parameter must be a float in \[0, 1\)"),
    ({"q_max": 1.0}, r"'q_max' parameter must be a float in \[0, 1\)"),
    ({"q_min": 0.8, "q_max": 0.2}, "'q_min/q_max' parameter must be q_min <= q_max"),
])
def test_grid_bad_input(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        persistence(np.ones((3, 3)), **kwargs)


def test_grid() -> None:
    assert np.allclose(quantile_grid(3, 0.1, 0.5), [0.1, 0.3, 0.5])
    assert quantile_grid(1, 0.2, 0.8).tolist() == [0.2]
    assert quantile_grid([0.9, 0.1]).tolist() == [0.9, 0.1]


# ------------------------------------------------------------------ the criterion object
def test_criterion_scores() -> None:
    A = np.abs(np.random.default_rng(7).normal(size=(20, 10)))
    crit = LatticeCriterion()
    assert crit.quantile == 0.5 and crit.threshold is None
    scores = crit.scores(A)
    assert scores.dtype == np.float64 and set(np.unique(scores)) <= {0.0, 1.0}
    assert np.array_equal(scores, meet_irreducible(binary_relation(A, quantile=0.5)).astype(float))
    by_threshold = LatticeCriterion(quantile=None, threshold=0.5)
    assert by_threshold.quantile is None
    assert np.array_equal(by_threshold.scores(A), meet_irreducible(A >= 0.5).astype(float))
    assert hash(crit) == hash(LatticeCriterion(quantile=0.5))  # frozen plain data


@pytest.mark.parametrize("kwargs, match", [
    ({"variant": "fuzzy"}, r"^The 'variant' parameter must be one of \['binary', 'continuous'\]. "
                           r"Got 'fuzzy' instead.$"),
    ({"quantile": 1.5}, r"^The 'quantile' parameter must be a float in \[0, 1\). Got 1.5 instead.$"),
    ({"quantile": 0.3, "threshold": 0.1}, "either the 'quantile' or the 'threshold'"),
    ({"threshold": -1.0}, "'threshold' parameter must be a finite float > 0"),
    ({"variant": "continuous", "threshold": 0.1}, "'threshold' parameter must be unset for the continuous"),
    ({"variant": "continuous", "thresholds": 0}, "'thresholds' parameter must be"),
    ({"variant": "continuous", "q_min": 0.9, "q_max": 0.1}, "'q_min/q_max' parameter"),
])
def test_criterion_bad_input(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        LatticeCriterion(**kwargs)
