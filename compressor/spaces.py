"""Spaces hidden neurons are placed on, with their distances (scaled as in the authors' code).

| space        | positions                   | distance                                          |
|--------------|-----------------------------|---------------------------------------------------|
| circle (S1)  | normalised 2-D Gaussian     | 5 x angle                                          |
| torus (T^k)  | uniform in [0, 10)^k        | per-coordinate wrap-around, then Euclidean norm   |
| klein        | uniform in [0, 10)^2        | Euclidean, minimised over the glide-reflected images |
| sphere (S2), sphere3 (S3) | normalised 3-D / 4-D Gaussian | 5 x / 10 x great-circle angle        |
| euclidean (R^k) | Gaussian                 | Euclidean                                          |

Every ``distance`` is differentiable (learned embeddings) and exactly zero on the diagonal.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from models.errors import param_error

SIDE = 10.0  # torus / Klein side length in the authors' code


def _safe_sqrt(sq: Tensor) -> Tensor:
    """sqrt with a zero (not NaN) gradient at 0 — the diagonal of a distance matrix."""
    pos = sq > 0
    return torch.where(pos, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq))


def _pairwise_sq(a: Tensor, b: Tensor) -> Tensor:
    return ((a.unsqueeze(1) - b.unsqueeze(0)) ** 2).sum(-1)


class Space:
    """A metric space with seeded sampling and a projection back onto it."""

    name: str = ""
    dim: int = 0

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Pairwise distances [len(a), len(b)]."""
        raise NotImplementedError

    @torch.no_grad()
    def project_(self, x: Tensor) -> None:
        """Move points back onto the space in place (after an optimizer step)."""

    def __repr__(self) -> str:
        return self.name


class SphereLike(Space):
    """Unit vectors in R^(k+1) with scale x great-circle angle (circle: k = 1)."""

    def __init__(self, name: str, ambient: int, scale: float):
        self.name, self.dim, self.scale = name, ambient, scale

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        x = torch.randn(n, self.dim, generator=generator)
        return x / x.norm(dim=1, keepdim=True)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        a = a / a.norm(dim=1, keepdim=True)
        b = b / b.norm(dim=1, keepdim=True)
        # angle = 2 atan2(|a-b|, |a+b|): exact 0 for equal points and no arccos(1+eps) NaN.
        minus = _safe_sqrt(_pairwise_sq(a, b))
        plus = _safe_sqrt(_pairwise_sq(a, -b))
        return self.scale * 2.0 * torch.atan2(minus, plus)

    @torch.no_grad()
    def project_(self, x: Tensor) -> None:
        x.div_(x.norm(dim=1, keepdim=True).clamp_min(1e-12))


class Torus(Space):
    def __init__(self, k: int = 2):
        self.name, self.dim = ("torus" if k == 2 else f"torus{k}"), k

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.rand(n, self.dim, generator=generator) * SIDE

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        diff = (a.unsqueeze(1) - b.unsqueeze(0)).abs().remainder(SIDE)
        wrapped = torch.minimum(diff, SIDE - diff)
        return _safe_sqrt((wrapped**2).sum(-1))

    @torch.no_grad()
    def project_(self, x: Tensor) -> None:
        x.remainder_(SIDE)


class Klein(Space):
    """[0,10)^2 with y periodic and x periodic up to the glide reflection y -> 10 - y."""

    name, dim = "klein", 2
    # The images of b = (x, y) closer than any other to a point of the fundamental square:
    # (sign of y, x shift, y offset) meaning (x + shift, sign * y + offset).
    _IMAGES = ((1, 0, 0), (1, 0, SIDE), (1, 0, -SIDE),
               (-1, SIDE, SIDE), (-1, -SIDE, SIDE), (-1, SIDE, 0), (-1, SIDE, 2 * SIDE),
               (-1, -SIDE, 0), (-1, -SIDE, 2 * SIDE))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.rand(n, 2, generator=generator) * SIDE

    def images(self, b: Tensor) -> Tensor:
        """[9, n, 2]: every image of each point of b."""
        out = []
        for sign, dx, dy in self._IMAGES:
            out.append(torch.stack([b[:, 0] + dx, sign * b[:, 1] + dy], dim=-1))
        return torch.stack(out)

    @staticmethod
    def canonical(p: Tensor) -> Tensor:
        """The representative in [0,10)^2 (differentiable): crossing the x seam reflects y."""
        wraps = torch.floor(p[:, 0] / SIDE)
        x = p[:, 0] - wraps * SIDE
        y = torch.where(wraps.remainder(2) == 1, SIDE - p[:, 1], p[:, 1])
        y = y - torch.floor(y / SIDE) * SIDE
        return torch.stack([x, y], dim=-1)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = self.canonical(a), self.canonical(b)
        imgs = self.images(b)  # [9, m, 2]
        sq = ((a.unsqueeze(0).unsqueeze(2) - imgs.unsqueeze(1)) ** 2).sum(-1)  # [9, n, m]
        return _safe_sqrt(sq.min(dim=0).values)

    @torch.no_grad()
    def project_(self, x: Tensor) -> None:
        x.copy_(self.canonical(x))


class Euclidean(Space):
    def __init__(self, k: int = 2):
        self.name, self.dim = ("euclidean" if k == 2 else f"euclidean{k}"), k

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.dim, generator=generator)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return _safe_sqrt(_pairwise_sq(a, b))


SPACE_NAMES = ("circle", "torus", "torusK", "klein", "sphere", "sphere3", "euclidean", "euclideanK")


def make_space(name: str) -> Space:
    """Parse a space name: circle, torus (T2), torus3.. (T^k), klein, sphere (S2), sphere3 (S3),
    euclidean (R^2), euclidean3.. (R^k)."""
    if name == "circle":
        return SphereLike("circle", 2, 5.0)
    if name in ("sphere", "sphere2"):
        return SphereLike("sphere", 3, 5.0)
    if name == "sphere3":
        return SphereLike("sphere3", 4, 10.0)
    if name == "klein":
        return Klein()
    m = re.fullmatch(r"(torus|euclidean)(\d*)", name)
    if m:
        k = int(m.group(2)) if m.group(2) else 2
        if not 1 <= k <= 16:
            raise param_error("space", "a dimension between 1 and 16", name)
        return Torus(k) if m.group(1) == "torus" else Euclidean(k)
    raise param_error(
        "space", "one of circle, torus, torusK (K = 1..16), klein, sphere, sphere3, euclidean, euclideanK, "
        "l1, permuted, permuted-SPACE or none", name)

