"""Distances are metrics; torus and Klein bottle identifications hold."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressor.spaces import SIDE, Klein, make_space

SPACES = ["circle", "torus", "torus3", "klein", "sphere", "sphere3", "euclidean", "euclidean3"]


def points(space, seed: int, n: int) -> torch.Tensor:
    return space.sample(n, torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_distance_is_a_metric(name: str, seed: int) -> None:
    space = make_space(name)
    x = points(space, seed, 12)
    d = space.distance(x, x)
    assert torch.all(d.diagonal() == 0)
    assert torch.allclose(d, d.T, atol=1e-9)
    off = d + torch.eye(12, dtype=d.dtype)
    assert torch.all(off > 0)
    # Triangle inequality for every triple: d[i,k] <= d[i,j] + d[j,k].
    assert torch.all(d.unsqueeze(1) <= d.unsqueeze(2) + d.unsqueeze(0) + 1e-9)


@settings(max_examples=50, deadline=None)
@given(
    x=st.floats(0, SIDE, exclude_max=True), y=st.floats(0, SIDE, exclude_max=True),
    u=st.floats(0, SIDE, exclude_max=True), v=st.floats(0, SIDE, exclude_max=True),
    kx=st.integers(-2, 2), ky=st.integers(-2, 2),
)
def test_torus_periodicity(x, y, u, v, kx, ky) -> None:
    torus = make_space("torus")
    a = torch.tensor([[x, y]], dtype=torch.float64)
    b = torch.tensor([[u, v]], dtype=torch.float64)
    shifted = b + torch.tensor([[kx * SIDE, ky * SIDE]], dtype=torch.float64)
    assert torch.allclose(torus.distance(a, b), torus.distance(a, shifted), atol=1e-9)


def glide(p: torch.Tensor) -> torch.Tensor:
    """The Klein bottle's glide reflection: (x, y) ~ (x + 10, 10 - y)."""
    return torch.stack([p[:, 0] + SIDE, SIDE - p[:, 1]], dim=-1)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_klein_periodicity_and_glide_reflection(seed: int) -> None:
    klein = Klein()
    a = points(klein, seed, 6)
    b = points(klein, seed + 1, 6)
    d = klein.distance(a, b)
    y_shift = b + torch.tensor([0.0, SIDE], dtype=b.dtype)
    assert torch.allclose(d, klein.distance(a, y_shift), atol=1e-9)
    assert torch.allclose(d, klein.distance(a, glide(b)), atol=1e-9)
    # The glide reflection is not the plain x-translation: the torus identification is wrong here.
    plain = b + torch.tensor([SIDE, 0.0], dtype=b.dtype)
    moved = klein.distance(a, plain)
    assert not torch.allclose(d, moved, atol=1e-6)


def test_klein_projection_keeps_the_point() -> None:
    klein = Klein()
    p = torch.tensor([[12.5, 3.0], [-1.0, 11.0], [4.0, -2.0]], dtype=torch.float64)
    q = p.clone()
    klein.project_(q)
    assert torch.all((q >= 0) & (q < SIDE))
    assert torch.allclose(klein.distance(p, p).diagonal(), torch.zeros(3, dtype=p.dtype))
    assert torch.allclose(klein.distance(q, p).diagonal(), torch.zeros(3, dtype=p.dtype), atol=1e-9)


def test_sphere_scale_and_antipode() -> None:
    s2 = make_space("sphere")
    a = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(s2.distance(a, -a), torch.tensor([[5.0 * torch.pi]], dtype=torch.float64))
    s3 = make_space("sphere3")
    b = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    c = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(s3.distance(b, c), torch.tensor([[10.0 * torch.pi / 2]], dtype=torch.float64))


@pytest.mark.parametrize("bad", ["donut", "torus0", "torus99", "sphere9", ""])
def test_unknown_space_is_refused(bad: str) -> None:
    with pytest.raises(Exception, match="'space' parameter must be"):
        make_space(bad)
