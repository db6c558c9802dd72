"""The dependency-lattice criterion: which neurons are meet-irreducible.

A pure criterion — weights in, one score per neuron out. No model surgery (that is
``compressor/shrink.py``) and no selection policy (a strategy decides what to cut).

The lattice-pruning paper (Sengupta 2025, arXiv 2502.16525) models neurons as a poset /
dependency lattice and keeps the meet-irreducible ones, but leaves the construction
underspecified. **The precise formulation below is ours**:

* Influence. For a recurrent layer with hidden size n, ``A[i, j] = sum_g |R_g[i, j]|`` over
  the gate blocks of ``weight_hh`` (sender j at step t drives receiver i at step t+1).
  Optional feed-forward receiver blocks (next layer's inputs, head units) are stacked
  under it, so a neuron's downstream role is seen as well.
* Binary variant. The relation is ``I = (A > 0) & (A >= tau)``, with ``tau`` the given
  quantile of the *nonzero* entries, computed per receiver block (blocks have different
  scales), or an absolute threshold. The dependency lattice is the concept lattice of the
  formal context (receivers, senders, I); when I is a partial order this is exactly the
  poset's Dedekind–MacNeille completion. Sender j's extent is
  ``E_j = {i : I[i, j]}``; j is meet-irreducible iff ``E_j != ∩{E_k : E_k ⊋ E_j}`` (the
  empty intersection being all receivers, so the top is not meet-irreducible), and one
  representative is marked per group of senders with equal extents.
* Continuous variant. A filtration of binary relations at a grid of quantile levels; a
  neuron's score is the fraction of the levels at which it is marked (persistence).

The lattice itself is never enumerated (it can be exponential). DESIGN.md's two products
``C = BᵀB`` (which extents contain which) and ``M = S Bᵀ`` (the intersection of each
extent's strict supersets) are evaluated over the Boolean semiring on 64-bit bitsets,
which on this workload measured faster than float32 BLAS (see benchmarks/lattice_scale.py):

0. Senders with equal extents are grouped first (one bitset per column, np.unique), so
   every later step works on distinct extents.
1. ``E_j ⊆ E_k`` is rare in real networks, so every extent first gets a cheap *candidate*
   set: the AND of the receiver rows of up to 32 members of ``E_j`` (one per receiver
   strip). It contains every true superset; each candidate is then checked exactly
   against the full extents. When candidates are dense (nested, poset-like relations)
   ``C = BᵀB`` is computed instead with one float32 BLAS product (syrk).
2. Strict supersets usually form a very sparse matrix S. An extent with no strict
   superset (or with exactly one, which is then the intersection) needs no work; for the
   others the AND of the superset bitsets is popcounted and compared with ``|E_j|`` —
   or, when S is dense, ``M = S Bᵀ`` is one float32 BLAS product.

The pydata ``sparse`` package is accepted as input but not used for the products: its
matmul measured slower than both paths here (plus seconds of numba compilation).

A brute-force lattice construction checks this on small relations
(tests/compressor/test_lattice_bruteforce.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from models.errors import ConfigError, param_error

VARIANTS = ("binary", "continuous")

# Strips whose first member feeds the candidate filter. With receiver density p a random
# non-superset survives with probability about p**32: none survive in practice, and the
# gather stays small (senders x 32 x senders/64 words).
_STRIPS = 32
# Bytes of temporary bitsets per batch in the verification and intersection steps.
_BATCH_BYTES = 32 << 20
# Where float32 BLAS beats the bitsets (crossovers measured at n = 2048 on the 2-core dev
# machine): candidate pairs above this fraction of all extent pairs; strict-superset pairs
# above this fraction of (extents needing an intersection) x (all extents).
_DENSE_CANDIDATES = 0.2
_DENSE_SUPERSETS = 0.3
# float32 holds every integer count exactly below 2**24.
_FLOAT32_EXACT = 1 << 24

Blocks = Sequence[tuple[int, int] | slice] | None


# ------------------------------------------------------------------------- input helpers
def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy array, torch tensor, or pydata ``sparse`` array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.to_dense() if x.layout != torch.strided else x  # sparse COO / CSR tensors
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # numpy has no bfloat16
    if hasattr(x, "todense") and not isinstance(x, np.ndarray):
        # pydata sparse (COO, GCXS, DOK); also scipy.sparse (todense gives np.matrix).
        return np.asarray(x.todense())
    return np.asarray(x)


def _as_relation(relation: Any) -> np.ndarray:
    """The relation as a C-contiguous bool matrix, after checking it is 2-D and 0/1."""
    B = _to_numpy(relation)
    if B.ndim != 2:
        raise param_error("relation", "a 2-D (receivers, senders) 0/1 or bool matrix", f"shape {B.shape}")
    if B.dtype != np.bool_:
        if B.size and not np.isin(B, (0, 1)).all():
            raise param_error("relation", "a 0/1 or bool matrix", "values other than 0 and 1")
        B = B != 0
    return np.ascontiguousarray(B)


def _as_prefer(prefer: Any, n: int) -> np.ndarray | None:
    if prefer is None:
        return None
    p = _to_numpy(prefer).astype(np.float64, copy=False)
    if p.shape != (n,) or not np.isfinite(p).all():
        raise param_error("prefer", f"a finite 1-D score per sender (length {n})",
                          f"shape {p.shape}" if p.shape != (n,) else "non-finite values")
    return p


def _check_finite(A: np.ndarray) -> None:
    if not np.isfinite(A).all():
        raise ConfigError("The influence matrix is not finite: the weights contain NaN or Inf.")


def _as_influence(A: Any) -> np.ndarray:
    A = _to_numpy(A)
    if A.ndim != 2:
        raise param_error("A", "a 2-D (receivers, senders) influence matrix", f"shape {A.shape}")
    if not np.issubdtype(A.dtype, np.floating):
        if not (np.issubdtype(A.dtype, np.integer) or A.dtype == np.bool_):
            raise param_error("A", "a numeric influence matrix", f"dtype {A.dtype}")
        A = A.astype(np.float64)
    _check_finite(A)
    if (A < 0).any():
        raise param_error("A", "non-negative (absolute influences, e.g. from influence_matrix)",
                          f"{int((A < 0).sum())} negative entries")
    return A


def _as_blocks(blocks: Blocks, rows: int) -> list[tuple[int, int]]:
    """Receiver blocks as (start, stop) pairs tiling [0, rows) in order."""
    if blocks is None:
        return [(0, rows)]
    given = list(blocks)
    rule = f"(start, stop) row ranges tiling [0, {rows}) in order"
    try:
        out = [(0 if b.start is None else int(b.start), rows if b.stop is None else int(b.stop))
               if isinstance(b, slice) else (int(b[0]), int(b[1])) for b in given]
    except (TypeError, ValueError, IndexError):
        raise param_error("blocks", rule, given) from None
    edges = [0] + [e for b in out for e in b] + [rows]
    # Consecutive ranges must meet: 0 == start_0, stop_0 == start_1, ..., stop_last == rows.
    if not out or any(edges[k] != edges[k + 1] for k in range(0, len(edges), 2)) or any(a > b for a, b in out):
        raise param_error("blocks", rule, given)
    return out


# --------------------------------------------------------------------------- bitsets
# A bitset is a row of uint64 words; element c is bit c % 8 of byte c // 8 (little bit
# order), so the uint8 view unpacks back in order on any machine.
def _pack_rows(M: np.ndarray) -> np.ndarray:
    """Each row of a bool matrix as a bitset."""
    rows, cols = M.shape
    packed = np.zeros((rows, -(-cols // 64) * 8), np.uint8)
    packed[:, : -(-cols // 8)] = np.packbits(M, axis=1, bitorder="little")
    return packed.view(np.uint64)


def _pack_cols(M: np.ndarray) -> np.ndarray:
    """Each column of a bool matrix as a bitset (one row of the result per column)."""
    rows, cols = M.shape
    # Shift-or over every 8th row reads M row by row: about 8x faster here than
    # np.packbits(axis=0) or than transposing the bool matrix first.
    byte_rows = np.zeros((-(-rows // 8), cols), np.uint8)
    V = M.view(np.uint8)
    for bit in range(8):
        part = V[bit::8]
        byte_rows[: len(part)] |= part << bit
    packed = np.zeros((cols, -(-rows // 64) * 8), np.uint8)
    packed[:, : byte_rows.shape[0]] = byte_rows.T
    return packed.view(np.uint64)


def _popcount(bits: np.ndarray) -> np.ndarray:
    return np.bitwise_count(bits).sum(axis=1, dtype=np.int64)


def _batches(total: int, item_bytes: int) -> Iterable[tuple[int, int]]:
    step = max(1, _BATCH_BYTES // max(1, item_bytes))
    for start in range(0, total, step):
        yield start, min(total, start + step)


# Index of the lowest set bit of each byte value (0 for 0, which is never looked up).
_LOWEST_BIT = np.array([(b & -b).bit_length() - 1 if b else 0 for b in range(256)], np.int64)


# ------------------------------------------------------------ strict-superset relation
def _superset_candidates(U: np.ndarray, cols: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate supersets of each extent (bitsets over extents) and whether they are exact.

    Candidates of j = AND of the receiver rows of the first member of E_j in each receiver
    strip: every superset of E_j contains those members, so none is missed. When each
    member of E_j is alone in its strip the AND covered all of E_j and is exact.
    """
    R, m = U.shape
    rows = np.vstack([_pack_rows(U), _pack_rows(np.ones((1, m), np.bool_))])  # row R: "no member"
    col_bytes = cols.view(np.uint8)
    edges = np.linspace(0, -(-R // 8), min(_STRIPS, -(-R // 8)) + 1).astype(np.int64)
    members = np.full((m, len(edges) - 1), R, np.int64)
    everyone = np.arange(m)
    for s, (b0, b1) in enumerate(zip(edges[:-1], edges[1:])):
        at = b0 + (col_bytes[:, b0:b1] != 0).argmax(axis=1)  # first nonzero byte in the strip
        byte = col_bytes[everyone, at]
        hit = byte != 0
        members[hit, s] = 8 * at[hit] + _LOWEST_BIT[byte[hit]]
    cand = np.empty((m, rows.shape[1]), np.uint64)
    for a, b in _batches(m, members.shape[1] * rows.shape[1] * 8):
        np.bitwise_and.reduce(rows[members[a:b]], axis=1, out=cand[a:b])
    exact = (members < R).sum(axis=1) == size
    return cand, exact


def _strict_superset_pairs(U: np.ndarray, cols: np.ndarray, size: np.ndarray,
                           method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """All (j, k) with E_k ⊋ E_j and E_k not the top, for pairwise distinct extents.

    ``U`` holds the extents as bool columns, ``cols`` as bitsets. Returns the pairs sorted
    by j. ``method``: "bits" (candidates, then an exact check of each), "blas" (C = UᵀU
    in float32), or "auto" (bits unless the candidates are dense).
    """
    R, m = U.shape
    # The top (all receivers) never changes an intersection, so it is left out of every
    # superset list: a sender below only the top keeps an empty list, whose intersection
    # is by definition all receivers — the same answer.
    below_top = size < R
    if method != "blas":
        cand, exact = _superset_candidates(U, cols, size)
        count = int(_popcount(cand).sum()) - m  # minus the diagonal, E_j ⊆ E_j
        if method == "bits" or count <= _DENSE_CANDIDATES * m * m:
            return _verify_candidates(cand, exact, cols, size, below_top)
    return _blas_supersets(U, size, below_top)


def _verify_candidates(cand: np.ndarray, exact: np.ndarray, cols: np.ndarray, size: np.ndarray,
                       below_top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    js, ks = [], []
    for a, b in _batches(len(size), cand.shape[1] * 64):
        # Expand only the nonzero words into pair indices: candidates are rare.
        jw, w = np.nonzero(cand[a:b])
        r, bit = np.nonzero(np.unpackbits(cand[a:b][jw, w].view(np.uint8).reshape(-1, 8), axis=1,
                                          bitorder="little"))
        j, k = jw[r] + a, 64 * w[r] + bit
        keep = (size[k] > size[j]) & below_top[k]
        j, k = j[keep], k[keep]
        check = np.flatnonzero(~exact[j])
        ok = np.ones(len(j), np.bool_)
        for c0, c1 in _batches(len(check), 2 * cols.shape[1] * 8):
            c = check[c0:c1]
            # E_j ⊆ E_k iff no receiver is in E_j and not in E_k.
            ok[c] = ~np.any(cols[j[c]] & ~cols[k[c]], axis=1)
        js.append(j[ok])
        ks.append(k[ok])
    return np.concatenate(js), np.concatenate(ks)


def _blas_supersets(U: np.ndarray, size: np.ndarray, below_top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    R, m = U.shape
    # Counts are exact in float32 below 2**24 receivers; float64 beyond (never in practice).
    Uf = U.astype(np.float32 if R < _FLOAT32_EXACT else np.float64)
    js, ks = [], []
    # One product when C fits (numpy sees Uf.T @ Uf and calls syrk: one triangle only),
    # else blocks of senders.
    step = m if 4 * m * m <= 8 * _BATCH_BYTES else max(1, _BATCH_BYTES // (4 * m))
    for a in range(0, m, step):
        b = min(m, a + step)
        C = Uf.T @ Uf if (a, b) == (0, m) else Uf[:, a:b].T @ Uf
        # C[j, k] = |E_j ∩ E_k|, so E_j ⊆ E_k iff C[j, k] == |E_j|.
        sup = (C == size[a:b, None]) & (size[None, :] > size[a:b, None]) & below_top[None, :]
        j, k = np.nonzero(sup)
        js.append(j + a)
        ks.append(k)
    return np.concatenate(js), np.concatenate(ks)


def _irreducible_extents(U: np.ndarray, cols: np.ndarray, method: str = "auto") -> np.ndarray:
    """Meet-irreducibility of pairwise distinct extents (columns of U, bitsets ``cols``)."""
    R, m = U.shape
    size = _popcount(cols)
    j, k = _strict_superset_pairs(U, cols, size, method)
    degree = np.bincount(j, minlength=m)
    # No strict superset: the intersection is all receivers, so only the top is reducible.
    # One: the intersection is that superset, strictly larger. Two or more: compute it.
    irreducible = size < R
    several = np.flatnonzero(degree >= 2)
    if len(several):
        pairs = degree[j] >= 2  # pairs are sorted by j: one contiguous run per sender
        dense = pairs.sum() > _DENSE_SUPERSETS * len(several) * m
        meet = _meet_sizes_blas if method == "blas" or (method == "auto" and dense) else _meet_sizes_bits
        irreducible[several] = meet(U, cols, several, degree[several], k[pairs]) > size[several]
    return irreducible


def _meet_sizes_bits(U: np.ndarray, cols: np.ndarray, rows: np.ndarray, degree: np.ndarray,
                     ks: np.ndarray) -> np.ndarray:
    """|∩ of the extents ks[run]| for each run of ``degree`` consecutive entries of ks."""
    out = np.empty(len(rows), np.int64)
    ends = np.cumsum(degree)
    starts = ends - degree
    budget = max(1, _BATCH_BYTES // (cols.shape[1] * 8))
    g = 0
    while g < len(rows):
        # Whole runs per batch (at least one), so that reduceat never straddles two.
        h = max(g + 1, int(np.searchsorted(ends, starts[g] + budget, side="right")))
        meet = np.bitwise_and.reduceat(cols[ks[starts[g] : ends[h - 1]]], starts[g:h] - starts[g], axis=0)
        out[g:h] = _popcount(meet)
        g = h
    return out


def _meet_sizes_blas(U: np.ndarray, cols: np.ndarray, rows: np.ndarray, degree: np.ndarray,
                     ks: np.ndarray) -> np.ndarray:
    """As _meet_sizes_bits, as DESIGN.md's M = S Bᵀ in float32: receiver i is in the
    intersection of j's supersets iff M[j, i] == |S_j|."""
    R, m = U.shape
    Uf = U.astype(np.float32 if m < _FLOAT32_EXACT else np.float64)
    S = np.zeros((len(rows), m), Uf.dtype)
    S[np.repeat(np.arange(len(rows)), degree), ks] = 1
    out = np.empty(len(rows), np.int64)
    for a, b in _batches(len(rows), 4 * max(R, 1)):
        out[a:b] = (S[a:b] @ Uf.T == degree[a:b, None]).sum(axis=1)
    return out


# ---------------------------------------------------------------------- public API
def meet_irreducible(relation: Any, prefer: Any = None) -> np.ndarray:
    """Mark one sender per meet-irreducible attribute concept of a formal context.

    Sender j's extent is ``E_j = {i : relation[i, j]}``. j's concept is meet-irreducible
    iff ``E_j != ∩{E_k : E_k ⊋ E_j}`` (empty intersection = all receivers, so a sender
    whose extent is every receiver — the top — is not). Among senders with equal extents
    only one is marked: the one with the highest ``prefer`` (ties, or ``prefer=None``: the
    lowest index). Computed without enumerating the lattice (see the module docstring).

    Args:
        relation: (receivers, senders) 0/1 or bool matrix: numpy array, torch tensor or
            pydata ``sparse`` array (COO, GCXS).
        prefer: optional finite score per sender choosing the representative of a group
            of equal extents (e.g. the sender's total weight magnitude).

    Returns:
        Bool vector over senders, True for the marked representatives.

    Raises:
        ConfigError: the relation is not a 2-D 0/1 matrix, or ``prefer`` has the wrong shape.

    Example:
        >>> B = np.array([[1, 1, 0], [0, 1, 1], [0, 1, 0]], bool)   # E_1 is the top
        >>> meet_irreducible(B).tolist()
        [True, False, True]
    """
    B = _as_relation(relation)
    return _meet_irreducible(B, _as_prefer(prefer, B.shape[1]))


def _meet_irreducible(B: np.ndarray, prefer: np.ndarray | None, method: str = "auto") -> np.ndarray:
    R, n = B.shape
    marked = np.zeros(n, np.bool_)
    if R == 0 or n == 0:  # every extent is the (empty) set of all receivers: the top
        return marked
    # Group senders by extent: equal columns have equal bitsets. np.unique's first
    # occurrences (it sorts stably) are the lowest index of each group; renumber the
    # groups in that order so that all-distinct extents need no copy of B.
    cols = _pack_cols(B)
    keys = cols.view(np.dtype((np.void, cols.shape[1] * 8))).ravel()
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    first = first[order]
    group = np.argsort(order)[group.ravel()]
    U = B if len(first) == n else np.ascontiguousarray(B[:, first])
    irreducible = _irreducible_extents(U, cols[first], method)
    if prefer is None:
        marked[first[irreducible]] = True
        return marked
    # Highest prefer per group, ties by lowest index: sort by (group, -prefer, index).
    ranked = np.lexsort((np.arange(n), -prefer, group))
    leaders = ranked[np.r_[True, group[ranked][1:] != group[ranked][:-1]]]
    leaders = leaders[irreducible[group[leaders]]]
    marked[leaders] = True
    return marked


def influence_blocks(weight_hh: Any, gates: int, feed_forward: Sequence[Any] = ()
                     ) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """The influence matrix and the (start, stop) receiver rows of each of its blocks.

    See ``influence_matrix``; the blocks are the recurrent block first, then each
    feed-forward block in order, ready for ``binary_relation(..., blocks=...)``.
    """
    if isinstance(gates, bool) or not isinstance(gates, (int, np.integer)) or gates < 1:
        raise param_error("gates", "a positive int (RNN 1, GRU 3, LSTM 4)", gates)
    W = _to_numpy(weight_hh)
    if W.ndim != 2 or W.shape[0] != gates * W.shape[1]:
        raise param_error("weight_hh", f"a ({gates} * n, n) matrix for {gates} gate(s)", f"shape {W.shape}")
    n = W.shape[1]
    dtype = np.result_type(W.dtype, np.float32)
    # torch layout: row = receiver i, column = sender j, gate blocks stacked along rows;
    # [G * n, n] -> [G, n, n] is the view models.sequence.gate_blocks takes.
    parts = [np.abs(W).astype(dtype, copy=False).reshape(gates, n, n).sum(axis=0)]
    for b, F in enumerate(feed_forward):
        F = _to_numpy(F)
        if F.ndim != 2 or F.shape[1] != n:
            raise param_error(f"feed_forward[{b}]", f"a 2-D (m, {n}) matrix", f"shape {F.shape}")
        if np.isfinite(F).all() and (F < 0).any():
            raise param_error(f"feed_forward[{b}]", "non-negative influences (e.g. absolute weights)",
                              f"{int((F < 0).sum())} negative entries")
        parts.append(F.astype(dtype, copy=False))
    A = np.vstack(parts)
    _check_finite(A)
    stops = np.cumsum([p.shape[0] for p in parts])
    return A, tuple((int(a), int(b)) for a, b in zip(np.r_[0, stops[:-1]], stops))


def influence_matrix(weight_hh: Any, gates: int, feed_forward: Sequence[Any] = ()) -> np.ndarray:
    """Influence of each neuron (sender) on each receiver.

    The recurrent block is ``A[i, j] = sum_g |R_g[i, j]|`` with R = ``weight_hh`` viewed as
    [gates, n, n] (torch layout: row = receiver i at step t+1, column = sender j at step
    t). Feed-forward blocks (non-negative (m, n) influences of the n senders on m
    downstream units, e.g. the next layer's ``sum_g |W_ih_g|`` or the head's ``|W|``) are
    stacked under it. Use ``influence_blocks`` to also get each block's rows.

    Args:
        weight_hh: the layer's (gates * n, n) recurrent weight (torch or numpy).
        gates: gate blocks in ``weight_hh``: ``models.sequence.GATES[cell]``.
        feed_forward: extra receiver blocks, each (m, n), non-negative.

    Returns:
        (n + sum of m, n) array, float32 for float32 weights, else float64.

    Raises:
        ConfigError: wrong shapes, negative feed-forward influences, NaN or Inf.

    Example:
        >>> lstm = torch.nn.LSTM(3, 5)
        >>> influence_matrix(lstm.weight_hh_l0, gates=4).shape   # GATES["lstm"]
        (5, 5)
    """
    return influence_blocks(weight_hh, gates, feed_forward)[0]


def _check_quantile(quantile: Any, threshold: Any) -> float | None:
    """Resolve the exclusive pair (quantile, threshold); quantile 0.5 if neither is given."""
    if threshold is not None:
        if quantile is not None:
            raise ConfigError("Give either the 'quantile' or the 'threshold' parameter, not both "
                              f"(got quantile={quantile!r}, threshold={threshold!r}).")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not (
            0 < threshold < np.inf
        ):
            raise param_error("threshold", "a finite float > 0", threshold)
        return None
    quantile = 0.5 if quantile is None else quantile
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float, np.number)) or not 0 <= quantile < 1:
        raise param_error("quantile", "a float in [0, 1)", quantile)
    return float(quantile)


def _block_taus(A: np.ndarray, blocks: list[tuple[int, int]], quantiles: np.ndarray) -> np.ndarray:
    """tau[level, block]: each quantile of each block's nonzero entries (inf: no nonzero)."""
    taus = np.full((len(quantiles), len(blocks)), np.inf)
    for b, (r0, r1) in enumerate(blocks):
        values = A[r0:r1][A[r0:r1] > 0]
        if values.size:
            taus[:, b] = np.quantile(values, quantiles)
    return taus


def _relation_at(A: np.ndarray, blocks: list[tuple[int, int]], taus: np.ndarray, threshold: str) -> np.ndarray:
    B = np.empty(A.shape, np.bool_)
    for (r0, r1), tau in zip(blocks, taus):
        # tau > 0 always (quantile of positive values, or a positive threshold), so
        # A >= tau already implies A > 0.
        np.greater_equal(A[r0:r1], tau, out=B[r0:r1])
    if not B.any():
        largest = float(A.max()) if A.size else 0.0
        why = ("the influence matrix has no entries" if not A.size else
               "the influence matrix is all zeros" if largest == 0 else f"the largest influence is {largest:.6g}")
        raise ConfigError(f"The relation is empty: no influence reaches {threshold} ({why}).")
    return B


def binary_relation(A: Any, quantile: float | None = None, threshold: float | None = None,
                    blocks: Blocks = None) -> np.ndarray:
    """The binary relation ``(A > 0) & (A >= tau)`` of an influence matrix.

    ``tau`` is the ``quantile`` of the nonzero entries of each receiver block separately
    (the recurrent and feed-forward blocks have different scales), or one absolute
    ``threshold``. Entries equal to tau are in the relation.

    Args:
        A: (receivers, senders) non-negative influences (``influence_matrix``).
        quantile: in [0, 1); 0.5 when neither it nor ``threshold`` is given.
        threshold: absolute tau > 0, instead of a quantile.
        blocks: (start, stop) row ranges tiling the receivers (``influence_blocks``);
            None: one block.

    Returns:
        Bool matrix, the shape of A.

    Raises:
        ConfigError: both or a bad quantile / threshold, bad blocks, negative entries,
            NaN or Inf, or an empty relation (all-zero weights, threshold above them all).

    Example:
        >>> A = np.array([[0.0, 2.0], [1.0, 3.0]])
        >>> binary_relation(A).astype(int).tolist()   # tau = median of {1, 2, 3} = 2
        [[0, 1], [0, 1]]
    """
    quantile = _check_quantile(quantile, threshold)
    A = _as_influence(A)
    spans = _as_blocks(blocks, A.shape[0])
    if quantile is None:
        return _relation_at(A, spans, np.full(len(spans), float(threshold)), f"the threshold {threshold!r}")
    taus = _block_taus(A, spans, np.array([quantile]))[0]
    return _relation_at(A, spans, taus, f"the threshold at quantile {quantile!r} of the nonzero influences")


def quantile_grid(thresholds: Any = 16, q_min: float = 0.05, q_max: float = 0.95) -> np.ndarray:
    """The filtration's quantile levels: ``thresholds`` evenly spaced in [q_min, q_max]
    (one level: q_min), or ``thresholds`` itself when it is a sequence of quantiles."""
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        if thresholds < 1:
            raise param_error("thresholds", "an int >= 1 or a non-empty list of quantiles in [0, 1)", thresholds)
        for name, q in (("q_min", q_min), ("q_max", q_max)):
            if isinstance(q, bool) or not isinstance(q, (int, float, np.number)) or not 0 <= q < 1:
                raise param_error(name, "a float in [0, 1)", q)
        if q_min > q_max:
            raise param_error("q_min/q_max", "q_min <= q_max", (q_min, q_max))
        return np.linspace(q_min, q_max, int(thresholds))
    try:
        grid = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        grid = np.array([np.nan])
    if grid.ndim != 1 or grid.size == 0 or not ((grid >= 0) & (grid < 1)).all():
        raise param_error("thresholds", "an int >= 1 or a non-empty list of quantiles in [0, 1)", thresholds)
    return grid


def persistence(A: Any, thresholds: Any = 16, q_min: float = 0.05, q_max: float = 0.95,
                blocks: Blocks = None, prefer: Any = None) -> np.ndarray:
    """Fraction of a filtration of binary relations over which each sender is marked.

    Level q of the filtration is ``binary_relation(A, quantile=q, blocks=blocks)``
    (per-block quantiles of the nonzero entries); at each level ``meet_irreducible`` marks
    the representatives, chosen by ``prefer`` so that the same sender of a group of equal
    extents is marked at every level where the group is irreducible.

    Args:
        A: (receivers, senders) non-negative influences.
        thresholds: number of levels evenly spaced in [q_min, q_max], or an explicit
            sequence of quantiles in [0, 1).
        q_min, q_max: the grid's range, 0 <= q_min <= q_max < 1.
        blocks: receiver blocks, as for ``binary_relation``.
        prefer: representative choice, as for ``meet_irreducible``.

    Returns:
        float64 vector over senders with values in [0, 1].

    Raises:
        ConfigError: bad grid, blocks, prefer or A; all-zero A (empty relation).

    Example:
        >>> A = np.array([[0.0, 2.0], [1.0, 3.0]])
        >>> persistence(A, thresholds=[0.0, 0.9]).tolist()
        [1.0, 0.5]
    """
    grid = quantile_grid(thresholds, q_min, q_max)
    A = _as_influence(A)
    spans = _as_blocks(blocks, A.shape[0])
    p = _as_prefer(prefer, A.shape[1])
    # One pass over each block's nonzero entries gives every level's tau. The relations grow
    # as tau falls, but containment between extents is not monotone in tau (E_j ⊆ E_k at
    # one level says nothing at the next), so each level's lattice is computed afresh.
    taus = _block_taus(A, spans, grid)
    hits = np.zeros(A.shape[1], np.int64)
    for q, tau in zip(grid, taus):
        B = _relation_at(A, spans, tau, f"the threshold at quantile {q:g} of the nonzero influences")
        hits += _meet_irreducible(B, p)
    return hits / len(grid)


@dataclass(frozen=True)
class LatticeCriterion:
    """Per-neuron lattice scores: 1.0 / 0.0 meet-irreducible or not ("binary") at one
    ``quantile`` or absolute ``threshold``, or the persistence ("continuous") over
    ``thresholds`` quantile levels in [q_min, q_max].

    ``quantile`` and ``threshold`` are exclusive: ``quantile`` defaults to 0.5 when no
    ``threshold`` is given (and is then stored as 0.5); give ``quantile=None`` with a
    threshold when replacing fields. ``threshold`` applies to the binary variant only.

    Example:
        >>> LatticeCriterion("continuous", thresholds=4).scores(np.eye(3) + 0.5).shape
        (3,)
    """

    variant: str = "binary"
    quantile: float | None = None
    threshold: float | None = None
    thresholds: int | tuple[float, ...] = 16
    q_min: float = 0.05
    q_max: float = 0.95

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise param_error("variant", f"one of {list(VARIANTS)}", self.variant)
        if self.variant == "continuous" and self.threshold is not None:
            raise param_error("threshold", "unset for the continuous variant (its filtration is a grid of "
                                           "quantile levels)", self.threshold)
        object.__setattr__(self, "quantile", _check_quantile(self.quantile, self.threshold))
        grid = quantile_grid(self.thresholds, self.q_min, self.q_max)  # validates the grid
        if not isinstance(self.thresholds, (int, np.integer)):
            object.__setattr__(self, "thresholds", tuple(float(q) for q in grid))

    def scores(self, A: Any, blocks: Blocks = None, prefer: Any = None) -> np.ndarray:
        """One float per sender (column of A); higher = more structurally necessary."""
        if self.variant == "binary":
            B = binary_relation(A, self.quantile, self.threshold, blocks)
            return meet_irreducible(B, prefer).astype(np.float64)
        return persistence(A, self.thresholds, self.q_min, self.q_max, blocks, prefer)
