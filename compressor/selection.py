"""Which neurons go: selection policies (the strategy), separate from the lattice criterion
(compressor.lattice) and the surgery (compressor.shrink).

Policies, per recurrent layer, to a target (a fraction or count of neurons kept, or
``auto`` = exactly the meet-irreducible set):

- ``lattice``: rank neurons by irreducibility in the dependency lattice (binary: meet-
  irreducible or not; continuous: persistence over a filtration of thresholds), then by
  centrality in the dependency graph (weighted degree: what a neuron drives, including
  downstream units, plus what drives it), then by magnitude; keep the top.
- ``norm``: gate-summed L1 norm of a neuron's incoming weights (weight_ih and weight_hh
  rows of every gate), the saliency torch.ao's LSTM pruner uses.
- ``random``: a seeded random choice — the floor every policy must beat.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from compressor.lattice import LatticeCriterion, binary_relation, influence_blocks, meet_irreducible
from models.errors import ConfigError, check_field_types, check_seed, param_error
from models.sequence import SequenceModel, gate_blocks

METHODS = ("lattice", "norm", "random")
VARIANTS = ("binary", "continuous")

Keep = float | int | str


KEEP_RULE = ("a fraction in (0, 1] written with a decimal point (0.5; 1.0 = all), a count >= 1 written without "
             "one (128), or 'auto'")


def parse_keep(value: Any) -> Keep:
    """'0.5' -> 0.5 (fraction), '128' -> 128 (count), 'auto' -> 'auto'. The decimal point
    decides: '2.0' is a fraction out of range, not the count 2 (as '1.0' is all, not one)."""
    given = value
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "auto":
            return "auto"
        try:
            value = int(v) if v.lstrip("+-").isdigit() else float(v)
        except ValueError:
            raise param_error("keep", KEEP_RULE, given) from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise param_error("keep", KEEP_RULE, given)
    value = int(value) if isinstance(value, numbers.Integral) else float(value)  # numpy's as Python's
    if isinstance(value, int) and value < 1 or isinstance(value, float) and not 0 < value <= 1:
        raise param_error("keep", KEEP_RULE, given)
    return value


# Levels of the continuous filtration: each is one lattice computation; more is a typo.
MAX_THRESHOLDS = 1024


@dataclass(frozen=True)
class SelectionConfig:
    method: str = "lattice"
    variant: str = "binary"
    keep: Keep = 0.5
    # 0.97 (and degree centrality) won the validation comparison of
    # benchmarks/lattice_policy.py; at 0.5 every neuron of a 256-wide LSTM is
    # meet-irreducible and `auto` would keep them all.
    quantile: float = 0.97
    threshold: float | None = None  # absolute threshold instead of the quantile (binary)
    thresholds: int = 16
    feed_forward: bool = True
    centrality: str = "degree"
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed(self.seed)
        if self.centrality not in CENTRALITIES:
            raise param_error("centrality", f"one of {sorted(CENTRALITIES)}", self.centrality)
        if self.method not in METHODS:
            raise param_error("method", f"one of {list(METHODS)}", self.method)
        if self.variant not in VARIANTS:
            raise param_error("variant", f"one of {list(VARIANTS)}", self.variant)
        object.__setattr__(self, "keep", parse_keep(self.keep))
        if self.keep == "auto" and self.method != "lattice":
            raise param_error("keep", "a fraction or count for method "
                              f"'{self.method}' ('auto' keeps the meet-irreducible set: lattice only)", self.keep)
        if not 0 <= self.quantile < 1:
            raise param_error("quantile", "a float in [0, 1)", self.quantile)
        if not 1 <= self.thresholds <= MAX_THRESHOLDS:
            raise param_error("thresholds", f"an int in [1, {MAX_THRESHOLDS}]", self.thresholds)
        if self.method == "lattice":
            self.criterion()  # validates variant/threshold combinations

    def criterion(self) -> LatticeCriterion:
        if self.threshold is not None:
            return LatticeCriterion(variant=self.variant, quantile=None, threshold=self.threshold,
                                    thresholds=self.thresholds)
        return LatticeCriterion(variant=self.variant, quantile=self.quantile, thresholds=self.thresholds)

    def relation(self, A: np.ndarray, blocks) -> np.ndarray:
        if self.threshold is not None:
            return binary_relation(A, quantile=None, threshold=self.threshold, blocks=blocks)
        return binary_relation(A, quantile=self.quantile, blocks=blocks)


@dataclass
class LayerSelection:
    layer: int
    before: int
    keep_index: torch.Tensor
    meet_irreducible: int | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    relation: np.ndarray | None = None  # recurrent block of the binary relation (lattice)

    def summary(self) -> dict[str, Any]:
        d = {"layer": self.layer, "before": self.before, "after": int(self.keep_index.numel()),
             "kept_index": self.keep_index.tolist()}
        if self.meet_irreducible is not None:
            d["meet_irreducible"] = self.meet_irreducible
        return d


def _downstream(model: SequenceModel, layer: int) -> np.ndarray:
    """Non-negative influence of ``layer``'s neurons on what consumes them."""
    cfg = model.config
    if layer + 1 < cfg.num_layers:
        w = model.rnn[layer + 1].weight_ih_l0.detach()
        return gate_blocks(w, cfg.gates).abs().sum(0).numpy()
    return model.head.weight.detach().abs().numpy()


def incoming_norm(model: SequenceModel, layer: int) -> np.ndarray:
    """Gate-summed L1 norm of each neuron's incoming weights (weight_ih and weight_hh rows)."""
    g = model.config.gates
    rnn = model.rnn[layer]
    ih = gate_blocks(rnn.weight_ih_l0.detach(), g).abs().sum((0, 2))
    hh = gate_blocks(rnn.weight_hh_l0.detach(), g).abs().sum((0, 2))
    return (ih + hh).numpy().astype(np.float64)


def out_strength(A: np.ndarray, blocks: tuple[tuple[int, int], ...]) -> np.ndarray:
    """What each sender drives, over every receiver block (each block normalised to total 1,
    so recurrent and downstream receivers count alike)."""
    out = np.zeros(A.shape[1])
    for a, b in blocks:
        block = A[a:b].astype(np.float64)
        total = block.sum()
        if total > 0:
            out += block.sum(0) / total
    return out


def degree_centrality(A: np.ndarray, blocks: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Weighted degree in the dependency graph: out-strength plus in-strength from the
    recurrent block."""
    n = A.shape[1]
    rec = A[:n].astype(np.float64)
    total = rec.sum()
    inn = rec.sum(1) / total if total > 0 else np.zeros(n)
    return out_strength(A, blocks) + inn


def flow_centrality(A: np.ndarray, blocks: tuple[tuple[int, int], ...], damping: float = 0.5,
                    iterations: int = 200) -> np.ndarray:
    """How much a neuron eventually drives what the layer feeds (next layer or head):
    importance starts at the downstream receivers and flows back along the recurrent
    graph, each receiver passing it to its senders in proportion to their influence,
    decayed by ``damping`` per step (a Katz / personalised-PageRank fixed point,
    s = seed + damping * shareᵀ s). Without downstream blocks the seed is the recurrent
    out-strength."""
    n = A.shape[1]
    rec = A[:n].astype(np.float64)
    rows = rec.sum(1, keepdims=True)
    share = np.divide(rec, rows, out=np.zeros_like(rec), where=rows > 0)  # receiver i -> senders j
    seed = out_strength(A, blocks[1:]) if len(blocks) > 1 else out_strength(A, blocks)
    seed = seed / seed.sum() if seed.sum() > 0 else np.full(n, 1.0 / n)
    score = seed.copy()
    for _ in range(iterations):
        nxt = seed + damping * (share.T @ score)
        if np.abs(nxt - score).max() < 1e-12 * nxt.max():
            score = nxt
            break
        score = nxt
    return score / score.sum()


def _unit_mean(x: np.ndarray) -> np.ndarray:
    return x / max(float(x.mean()), 1e-300)


# The second key of the lattice ranking, each f(A, blocks, magnitude) -> one score per
# sender (magnitude: the neuron's incoming-weight norm, the `norm` policy's saliency).
CENTRALITIES = {
    "degree": lambda A, blocks, magnitude: degree_centrality(A, blocks),
    "out": lambda A, blocks, magnitude: out_strength(A, blocks),
    "flow": lambda A, blocks, magnitude: flow_centrality(A, blocks),
    # central *and* strongly driven
    "degree-norm": lambda A, blocks, magnitude: _unit_mean(degree_centrality(A, blocks)) * _unit_mean(magnitude),
    # no graph centrality: the lattice only decides which neurons are redundant (reducible
    # ones go first), the norm saliency orders the rest
    "norm": lambda A, blocks, magnitude: magnitude,
}


def _top(order_keys: list[np.ndarray], k: int) -> torch.Tensor:
    """Indices of the k best neurons under a lexicographic, descending ranking (first key first)."""
    n = len(order_keys[0])
    # np.lexsort sorts ascending by the LAST key first; negate for descending and put the
    # index last-priority tie-break (lower index wins) in front.
    order = np.lexsort([np.arange(n)] + [-k_ for k_ in reversed(order_keys)])
    return torch.as_tensor(np.sort(order[:k]), dtype=torch.long)


def kept_count(fraction: float, n: int) -> int:
    """Neurons a keep fraction leaves of ``n``: rounded half up (round() would make 0.5 of
    one neuron none, and 12.5 of 25 twelve)."""
    return math.floor(fraction * n + 0.5)


def _target(keep: Keep, n: int, layer: int) -> int:
    if isinstance(keep, float):
        k = kept_count(keep, n)
        if k < 1:  # (below one neuron: refused as a count of 0 is, not silently made one)
            raise param_error("keep", f"a fraction that keeps at least 1 of the {n} neurons of layer {layer} "
                              f"(>= {0.5 / n:.3g}; {keep:g} x {n} rounds to 0)", keep)
        return k
    if isinstance(keep, int):
        if keep > n:
            raise param_error("keep", f"at most the hidden size of layer {layer} ({n})", keep)
        return keep
    raise AssertionError("auto is resolved by the caller")


def select_layer(model: SequenceModel, layer: int, config: SelectionConfig) -> LayerSelection:
    n = model.config.hidden_sizes[layer]
    weight_hh = model.rnn[layer].weight_hh_l0.detach()
    if not bool(torch.isfinite(weight_hh).all()):
        raise ConfigError(f"Layer {layer} has NaN or Inf weights; cannot select neurons.")
    magnitude = incoming_norm(model, layer)
    if config.method == "random":
        k = _target(config.keep, n, layer)
        g = torch.Generator().manual_seed(config.seed * 7919 + layer)
        keep = torch.sort(torch.randperm(n, generator=g)[:k]).values
        return LayerSelection(layer, n, keep)
    if config.method == "norm":
        k = _target(config.keep, n, layer)
        return LayerSelection(layer, n, _top([magnitude], k), scores={"norm": magnitude})
    ff = (_downstream(model, layer),) if config.feed_forward else ()
    A, blocks = influence_blocks(weight_hh, model.config.gates, ff)
    centrality = CENTRALITIES[config.centrality](A, blocks, magnitude)
    try:
        irreducible = config.criterion().scores(A, blocks=blocks, prefer=centrality)
        relation = config.relation(A, blocks)[:n] if config.variant == "binary" else None
    except ConfigError as e:  # an empty relation: say which layer, and what ranks one without influences
        hint = (" A lattice needs influences between neurons: method 'norm' or 'random' ranks this layer without "
                "them." if float(A.max(initial=0.0)) == 0.0 else "")
        raise ConfigError(f"Layer {layer}: {str(e)}{hint}") from None
    mi_mask = irreducible >= 0.5
    n_mi = int(mi_mask.sum())
    if config.keep == "auto":
        if n_mi == 0:
            raise ConfigError(f"Layer {layer} has no meet-irreducible neuron at this threshold; "
                              "'auto' would remove every neuron. Keep a fraction or a count of the neurons instead.")
        keep = torch.as_tensor(np.flatnonzero(mi_mask), dtype=torch.long)
    else:
        keep = _top([irreducible, centrality, magnitude], _target(config.keep, n, layer))
    return LayerSelection(layer, n, keep, meet_irreducible=n_mi, relation=relation,
                          scores={"irreducible": irreducible, "centrality": centrality, "norm": magnitude})


def select_neurons(model: SequenceModel, config: SelectionConfig) -> list[LayerSelection]:
    """Neurons to keep in every recurrent layer, all decided on the unshrunk model."""
    return [select_layer(model, l, config) for l in range(model.config.num_layers)]


__all__ = ["METHODS", "VARIANTS", "SelectionConfig", "LayerSelection", "select_neurons", "select_layer",
           "parse_keep", "incoming_norm", "degree_centrality", "out_strength", "flow_centrality",
           "CENTRALITIES", "meet_irreducible"]
