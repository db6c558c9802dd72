"""The fast meet-irreducible computation equals a brute-force concept lattice.

For small relations every concept is enumerated (extents = intersections of attribute
extents, plus all receivers), the cover relation is built, and the elements with exactly
one upper cover must be exactly the attribute concepts of the senders that
``meet_irreducible`` marks, one sender per concept. For partial orders the lattice must
be the Dedekind–MacNeille completion, computed independently from cuts.

Extents are Python ints used as bitsets over receivers (bit i = receiver i).
"""

from __future__ import annotations

from itertools import combinations
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import compressor.lattice as lattice
from compressor.lattice import meet_irreducible

MAX = 10


def extent_bits(B: np.ndarray) -> list[int]:
    """Each column's extent as a bitset over receivers."""
    return [sum(1 << int(i) for i in np.flatnonzero(B[:, j])) for j in range(B.shape[1])]


def concept_extents(attribute_extents: list[int], receivers: int) -> set[int]:
    """Every concept extent: intersections of any family of attribute extents (the empty
    family gives all receivers), by closing under intersection."""
    concepts = {(1 << receivers) - 1}
    frontier = set(concepts)
    while frontier:
        new = {c & e for c in frontier for e in attribute_extents} - concepts
        concepts |= new
        frontier = new
    return concepts


def single_upper_cover(elements: set[int]) -> set[int]:
    """Elements of a finite lattice of sets (ordered by inclusion) with exactly one upper
    cover — its meet-irreducible elements."""
    out = set()
    for c in elements:
        above = sorted((d for d in elements if d != c and d & c == c), key=int.bit_count)
        covers: list[int] = []
        for d in above:  # by size, so a smaller element above c is seen before d
            if not any(e & d == e for e in covers):
                covers.append(d)
        if len(covers) == 1:
            out.add(c)
    return out


def check_against_brute_force(B: np.ndarray, prefer: np.ndarray | None = None, method: str = "auto") -> None:
    R, n = B.shape
    ext = extent_bits(B)
    irreducible = single_upper_cover(concept_extents(ext, R))
    # Theory check of the brute force itself: meet-irreducibles are attribute concepts.
    assert irreducible <= set(ext)
    marked = lattice._meet_irreducible(np.ascontiguousarray(B), prefer, method)
    chosen = [ext[j] for j in np.flatnonzero(marked)]
    assert len(chosen) == len(set(chosen)), "two senders marked for one concept"
    assert set(chosen) == irreducible
    # The marked sender of each group is the preferred one (ties: lowest index).
    key = np.zeros(n) if prefer is None else prefer
    for j in np.flatnonzero(marked):
        group = [k for k in range(n) if ext[k] == ext[j]]
        best = max(group, key=lambda k: (key[k], -k))
        assert j == best


@st.composite
def relations(draw) -> np.ndarray:
    R = draw(st.integers(0, MAX))
    n = draw(st.integers(0, MAX))
    if draw(st.booleans()):
        B = draw(hnp.arrays(np.bool_, (R, n)))
    else:  # a density, so that very sparse and very dense relations are common too
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        B = rng.random((R, n)) < draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]))
    B = B.copy()
    if n:  # the degenerate columns the fast path special-cases
        for kind in draw(st.lists(st.sampled_from(["empty", "full", "duplicate"]), max_size=4)):
            j = draw(st.integers(0, n - 1))
            B[:, j] = {"empty": False, "full": True}.get(kind, B[:, draw(st.integers(0, n - 1))])
    return B


# "bits" with few strips makes the candidate filter inexact, so the exact check runs;
# a tiny batch budget splits every batched loop; "blas" is DESIGN.md's float32 products.
PATHS = [
    ("auto", 32, 32 << 20),
    ("bits", 1, 32 << 20),
    ("bits", 2, 64),
    ("blas", 32, 64),
]


@pytest.mark.parametrize("method,strips,batch", PATHS)
@settings(max_examples=300, deadline=None)
@given(B=relations())
def test_meet_irreducible_matches_brute_force(method: str, strips: int, batch: int, B: np.ndarray) -> None:
    with patch.object(lattice, "_STRIPS", strips), patch.object(lattice, "_BATCH_BYTES", batch):
        check_against_brute_force(B, method=method)


@settings(max_examples=100, deadline=None)
@given(B=relations(), seed=st.integers(0, 2**32 - 1))
def test_representatives_follow_prefer(B: np.ndarray, seed: int) -> None:
    # Few distinct values, so that ties between equal extents happen.
    prefer = np.random.default_rng(seed).integers(0, 3, B.shape[1]).astype(float)
    check_against_brute_force(B, prefer)


def test_all_zero_relation() -> None:
    # Every extent is the bottom, covered only by the top: one representative.
    check_against_brute_force(np.zeros((4, 5), np.bool_))
    assert meet_irreducible(np.zeros((4, 5), np.bool_)).tolist() == [True, False, False, False, False]


def test_contranominal_scale() -> None:
    # The complement of the identity: its concept lattice is the Boolean lattice 2^n,
    # whose meet-irreducibles are the n coatoms — every sender.
    B = ~np.eye(MAX, dtype=np.bool_)
    check_against_brute_force(B)
    assert meet_irreducible(B).all()


# ----------------------------------------------------------- Dedekind–MacNeille completion
@st.composite
def posets(draw) -> np.ndarray:
    """leq[x, y] = x <= y: the reflexive transitive closure of a random DAG."""
    p = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.2, 0.4, 0.7]))
    perm = rng.permutation(p)  # edges follow a random topological order
    leq = np.eye(p, dtype=np.bool_)
    for a, b in combinations(range(p), 2):
        if rng.random() < density:
            leq[perm[a], perm[b]] = True
    for k in range(p):  # Warshall
        leq |= leq[:, [k]] & leq[[k], :]
    return leq


def dedekind_macneille(leq: np.ndarray) -> set[int]:
    """The completion's elements as lower sets A = L(U(X)) over every subset X (cuts)."""
    p = len(leq)
    cuts = set()
    for mask in range(1 << p):
        X = [x for x in range(p) if mask >> x & 1]
        upper = [y for y in range(p) if all(leq[x, y] for x in X)]
        cuts.add(sum(1 << z for z in range(p) if all(leq[z, y] for y in upper)))
    return cuts


@settings(max_examples=100, deadline=None)
@given(leq=posets())
def test_partial_order_gives_dedekind_macneille_completion(leq: np.ndarray) -> None:
    p = len(leq)
    # Context (P, P, <=): receivers x, senders y, x I y iff x <= y; E_y = the ideal of y.
    ext = extent_bits(leq)
    completion = dedekind_macneille(leq)
    assert concept_extents(ext, p) == completion
    # The poset embeds order-preservingly: y -> its principal ideal, x <= y iff E_x ⊆ E_y.
    assert len(set(ext)) == p
    for x in range(p):
        for y in range(p):
            assert bool(leq[x, y]) == (ext[x] & ext[y] == ext[x])
    assert set(ext) <= completion
    # And the fast computation marks exactly the completion's meet-irreducibles.
    chosen = {ext[y] for y in np.flatnonzero(meet_irreducible(leq))}
    assert chosen == single_upper_cover(completion)
