"""The pruning picture: neurons drawn where they live on each space, one PNG per call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.spaces import make_space
from runtime.plots import plot_recurrent_matrix, position_order, space_coordinates

SPACES = ["circle", "torus", "torus1", "torus3", "klein", "sphere", "sphere3", "euclidean", "euclidean1"]


@pytest.mark.parametrize("space", SPACES)
def test_every_space_draws_in_two_coordinates(space: str, tmp_path: Path) -> None:
    pos = make_space(space).sample(40, torch.Generator().manual_seed(0)).numpy()
    xy, labels = space_coordinates(pos, space)
    assert xy.shape == (40, 2) and np.isfinite(xy).all() and len(labels) == 2
    if "sphere" in space:
        assert (np.abs(xy[:, 1]) <= 90).all() and (np.abs(xy[:, 0]) <= 180).all()
    order = position_order(pos, space)
    assert sorted(order) == list(range(40))
    kept = np.zeros(40, dtype=bool)
    kept[::3] = True
    png = tmp_path / "m.png"
    plot_recurrent_matrix(png, np.random.default_rng(0).random((40, 40)), kept, order, space, pos, space)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("space", SPACES)
def test_axis_labels_say_when_coordinates_are_left_out(space: str) -> None:
    pos = make_space(space).sample(5, torch.Generator().manual_seed(0)).numpy()
    _, labels = space_coordinates(pos, space)
    drawn = 3 if "sphere" in space else 2  # a sphere's longitude/latitude use x1..x3
    assert ("not drawn" in " ".join(labels)) == (pos.shape[1] > drawn)


def test_circle_points_lie_on_the_circle() -> None:
    pos = make_space("circle").sample(25, torch.Generator().manual_seed(1)).numpy()
    xy, _ = space_coordinates(pos, "circle")
    assert np.allclose(np.linalg.norm(xy, axis=1), 1.0, atol=1e-5)


def test_without_positions_only_the_matrix(tmp_path: Path) -> None:
    kept = np.array([True, False, True, False])
    plot_recurrent_matrix(tmp_path / "m.png", np.eye(4), kept, np.arange(4), "none")
    assert (tmp_path / "m.png").stat().st_size > 0
