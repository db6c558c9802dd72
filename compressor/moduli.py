"""The moduli regularizer (Mackey et al. 2024, "Geometric sparsification in RNNs").

Each hidden neuron i of a recurrent layer sits at x_i on a space M. The penalty is

    strength * sum over layers of mean_{g,i,j}( P[i,j] * |R_g[i,j]|^p ),

over every gate block R_g of the layer's recurrent matrix weight_hh, with
P = f(d_M(x_i, x_j)) normalised to mean 1, so that ``strength`` means the same for every
space and inhibitor. (The authors' strength lambda_a with their unnormalised P corresponds to
ours as strength = lambda_a * mean(P_a): e.g. 0.1 with inverted DoG on the torus, mean P
about 66, is strength about 6.6 here.)

Controls: ``l1`` (P = 1: plain L1, which really penalises — the authors' L1 control was
accidentally zero) and ``permuted`` (P's entries shuffled: the same distribution of
penalties without the geometry). ``none`` switches the regularizer off.

Positions are stored for the layer's original neurons together with ``kept``, the indices
of the neurons still present; structural shrinking only updates ``kept``, so a permuted P
and a learned embedding stay well defined after neurons are removed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from compressor.spaces import Space, make_space
from models.errors import ConfigError, check_field_types, check_seed, param_error
from models.sequence import SequenceModel, gate_blocks

INHIBITORS: dict[str, Callable[[Tensor], Tensor]] = {
    "distance": lambda d: d,
    "square": lambda d: d**2,
    "gauss": lambda d: 100.0 * torch.exp(-(d**2) / 3.0),
    "dog": lambda d: 100.0 * (torch.exp(-(d**2) / 5.0) - torch.exp(-4.0 * d**2)),
    "ripple": lambda d: 50.0 + 50.0 * torch.cos(2.0 * d),
}
CONTROLS = ("none", "l1", "permuted")
# Inhibitors used inverted (max f - f) unless told otherwise: gauss and ripple peak at
# distance 0, so inverted they make near neurons cheap to connect; inverted DoG is the
# moduli paper's choice. distance and square already grow with distance.
INVERTED_BY_DEFAULT = ("gauss", "dog", "ripple")


@dataclass(frozen=True)
class ModuliConfig:
    """What the regularizer does. ``space`` is a space name (see compressor.spaces), a
    control (``l1``, ``permuted`` = permuted torus, ``permuted-SPACE``) or ``none``."""

    space: str = "none"
    inhibitor: str = "dog"
    # max f - f; None: the inhibitor's usual form (INVERTED_BY_DEFAULT: dog as the moduli
    # paper used it, gauss and ripple, which peak at distance 0; not distance and square,
    # which grow with distance already and inverted would make near neurons expensive).
    invert: bool | None = None
    strength: float = 1.0
    p: float = 1.0
    learn_embedding: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed(self.seed)
        if self.inhibitor not in INHIBITORS:
            raise param_error("inhibitor", f"one of {sorted(INHIBITORS)}", self.inhibitor)
        if self.invert is None:
            object.__setattr__(self, "invert", self.inhibitor in INVERTED_BY_DEFAULT)
        if not (self.strength >= 0 and self.strength < float("inf")):
            raise param_error("strength", "a finite float >= 0", self.strength)
        if not (self.p > 0 and math.isfinite(self.p)):
            raise param_error("p", "a finite float > 0", self.p)
        self.base_space()  # validates the name

    @property
    def active(self) -> bool:
        return self.space != "none" and self.strength > 0

    @property
    def permuted(self) -> bool:
        return self.space == "permuted" or self.space.startswith("permuted-")

    def base_space(self) -> Space | None:
        """The geometric space, or None for ``none`` / ``l1``."""
        if self.space in ("none", "l1"):
            return None
        if self.space == "permuted":
            return make_space("torus")
        if self.space.startswith("permuted-"):
            inner = self.space[len("permuted-"):]
            try:
                return make_space(inner)
            except ConfigError as e:  # (permuted-l1: a control of a control) the value echoed as given
                raise ConfigError(str(e).replace(f"Got {inner!r} instead", f"Got {self.space!r} instead")) from None
        return make_space(self.space)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def penalty_matrix(space: Space | None, positions: Tensor | None, inhibitor: str, invert: bool) -> Tensor:
    """Unnormalised P = f(d(x_i, x_j)) (``invert``: max f - f)."""
    d = space.distance(positions, positions)
    f = INHIBITORS[inhibitor](d)
    if invert:
        f = f.max().detach() - f
    return f


class ModuliRegularizer(nn.Module):
    """Penalty on recurrent weights shaped by the neurons' positions on a space.

    Args:
        config: space, inhibitor, strength, ...
        hidden_sizes: original hidden size of each recurrent layer.
        gates: gate blocks per layer (RNN 1, GRU 3, LSTM 4).

    Example:
        >>> reg = ModuliRegularizer(ModuliConfig(space="torus", strength=1.0), (64,), gates=4)
        >>> loss = task_loss + reg(model)   # doctest: +SKIP
    """

    def __init__(self, config: ModuliConfig, hidden_sizes: tuple[int, ...], gates: int):
        super().__init__()
        self.config = config
        self.gates = gates
        self.space = config.base_space()
        g = torch.Generator().manual_seed(config.seed)
        self.positions = nn.ParameterList()
        self._n = len(hidden_sizes)
        for l, n in enumerate(hidden_sizes):
            pos = self.space.sample(n, g) if self.space is not None else torch.zeros(n, 0)
            self.positions.append(nn.Parameter(pos, requires_grad=config.learn_embedding and self.space is not None))
            self.register_buffer(f"kept_{l}", torch.arange(n))
            # Permutation of P's entries for the `permuted` control (fixed, seeded).
            perm = torch.randperm(n * n, generator=g) if config.permuted else torch.arange(0)
            self.register_buffer(f"perm_{l}", perm)
        self._fixed: list[Tensor | None] = [None] * self._n

    def kept(self, layer: int) -> Tensor:
        return getattr(self, f"kept_{layer}")

    def full_penalty(self, layer: int) -> Tensor:
        """P over the layer's original neurons, normalised to mean 1."""
        pos = self.positions[layer]
        n = pos.shape[0]
        if self.space is None or n == 1:  # l1 (and none): uniform; one neuron has no geometry
            return torch.ones(n, n)
        kept = self.kept(layer)
        if pos.requires_grad and kept.numel() < n:
            # Removed neurons' positions stay where training left them: they still shape P's
            # normalisation, but a neuron that no longer exists has no place to learn.
            alive = torch.zeros(n, 1, dtype=torch.bool)
            alive[kept] = True
            pos = torch.where(alive, pos, pos.detach())
        P = penalty_matrix(self.space, pos, self.config.inhibitor, self.config.invert)
        mean = P.mean()
        if not float(mean.detach()) > 0:
            raise ConfigError(
                f"The moduli penalty for layer {layer} is zero everywhere ({self.space} with {self.config.inhibitor}); "
                "choose another inhibitor or space.")
        P = P / mean
        perm = getattr(self, f"perm_{layer}")
        if perm.numel():
            P = P.reshape(-1)[perm].reshape(n, n)
        return P

    def penalty(self, layer: int) -> Tensor:
        """P restricted to the neurons still present (rows: receivers, cols: senders)."""
        if not self.config.learn_embedding and self._fixed[layer] is not None:
            return self._fixed[layer]  # type: ignore[return-value]
        kept = self.kept(layer)
        P = self.full_penalty(layer)[kept][:, kept]
        if not self.config.learn_embedding:
            self._fixed[layer] = P.detach()
        return P

    def forward(self, model: SequenceModel) -> Tensor:
        if not self.config.active:
            return torch.zeros(())
        total = torch.zeros(())
        for l, _, weight in model.recurrent_weights():
            blocks = gate_blocks(weight, self.gates).abs()
            if self.config.p < 1.0:
                # |w|^p has an infinite slope at 0 for p < 1, and abs a zero one: their
                # product is NaN at every pruned weight. A zero weight adds 0 with slope 0.
                nonzero = blocks > 0
                blocks = torch.where(nonzero, blocks, torch.ones_like(blocks)) ** self.config.p * nonzero
            elif self.config.p != 1.0:
                blocks = blocks ** self.config.p
            total = total + (self.penalty(l) * blocks).mean()
        return self.config.strength * total

    @torch.no_grad()
    def project_(self) -> None:
        """Keep learned positions on the space (called after every optimizer step)."""
        if self.config.learn_embedding and self.space is not None:
            for pos in self.positions:
                self.space.project_(pos.data)

    def shrink(self, layer: int, keep_index: Tensor) -> None:
        """Record that only ``keep_index`` (indices into the current neurons) remain."""
        self.register_buffer(f"kept_{layer}", self.kept(layer)[keep_index].clone())
        self._fixed[layer] = None

    # -------------------------------------------------------------- persistence
    def to_state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "gates": self.gates,
            "positions": [p.detach().clone() for p in self.positions],
            "kept": [self.kept(l).clone() for l in range(self._n)],
            "perm": [getattr(self, f"perm_{l}").clone() for l in range(self._n)],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ModuliRegularizer":
        config = ModuliConfig(**state["config"])
        sizes = tuple(int(p.shape[0]) for p in state["positions"])
        reg = cls(config, sizes, int(state["gates"]))
        with torch.no_grad():
            for l, pos in enumerate(state["positions"]):
                reg.positions[l].copy_(pos)
                reg.register_buffer(f"kept_{l}", state["kept"][l].clone())
                reg.register_buffer(f"perm_{l}", state["perm"][l].clone())
        return reg

    def neuron_positions(self, layer: int) -> Tensor:
        """Positions of the neurons still present (for plots: order neurons by position)."""
        return self.positions[layer].detach()[self.kept(layer)]
