"""Path integration (the moduli paper's navigation task, after Sorscher et al.'s grid-cell RNN).

An agent does smooth random walks in a square box; the network receives its Cartesian
velocity at every step and must output the place-cell code of its current position,
starting from the place code of the start (which sets the initial hidden state).
Loss: cross-entropy to the target place-cell distribution; metric: mean distance (cm)
between the true position and the mean centre of the 3 most active decoded place cells.

Scaled for 2 CPU cores (the paper: 50 steps, 512 place cells, hidden 4096, 30k steps of
batch 200, fresh walks every batch): by default 20 steps, 256 place cells and a fixed,
seeded set of walks, so a run takes about a minute and every run sees the same data.
Two further changes make it learnable in ~1000 steps instead of ~100k (measured: with
the paper's difference-of-Gaussians targets a 128-neuron RNN is still at 50 cm after 600
steps; with Gaussian targets it is below 20 cm):
- ``tuning="gauss"`` (default): softmax-normalised Gaussian place cells. The DoG code,
  shifted to be non-negative, is nearly uniform (entropy 5.45 nats of a possible 5.55 with
  256 cells), so its cross-entropy gradient is tiny. ``tuning="dog"`` gives the paper's.
- the start's place code fed to the init layer is scaled by the number of place cells
  (mean activity 1 instead of 1/N), so the initial state is not drowned by the velocity
  inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.errors import check_field_types, check_seed, param_error
from models.tasks.base import ModelSpec, Split, Task, TaskData, check_memory, generated_sizes


DECODE_K = 3  # a position is read out as the mean centre of this many most active place cells


# Beyond this the walks, place codes and their float32 distances are no room an agent walks
# (a 10 km box, a 10 000 s step): a typo, refused before it overflows into NaN targets.
MAX_SCALE = 1e4


@dataclass(frozen=True)
class NavigationParams:
    seq_len: int = 20
    samples: int = 20000
    val_samples: int = 2000
    test_samples: int = 2000
    place_cells: int = 256
    box: float = 2.2  # metres, square
    sigma: float = 0.12  # place-cell tuning width (m)
    surround: float = 2.0  # difference-of-Gaussians surround scale
    dt: float = 0.02
    tuning: str = "gauss"  # "gauss" or "dog" (the paper's difference of Gaussians)
    data_seed: int = 0

    def __post_init__(self):
        check_field_types(self)
        check_seed(self.data_seed, "data_seed")
        if self.tuning not in ("gauss", "dog"):
            raise param_error("tuning", "'gauss' or 'dog'", self.tuning)
        for name in ("seq_len", "samples", "val_samples", "test_samples"):
            if getattr(self, name) < 1:
                raise param_error(name, "a positive int", getattr(self, name))
        if self.place_cells < DECODE_K:
            raise param_error("place_cells", f"an int >= {DECODE_K} (positions are decoded from the {DECODE_K} "
                              "most active cells)", self.place_cells)
        for name in ("box", "sigma", "surround", "dt"):  # metres, metres, a ratio, seconds
            if not 0 < getattr(self, name) <= MAX_SCALE:
                raise param_error(name, f"a positive float up to {MAX_SCALE:g}", getattr(self, name))


def _avoid_wall(pos: np.ndarray, hd: np.ndarray, half: float, border: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn away from a wall the agent is heading into when closer than ``border``."""
    x, y = pos[:, 0], pos[:, 1]
    dists = np.stack([half - x, half - y, half + x, half + y])
    nearest = np.argmin(dists, axis=0)
    d_wall = dists[nearest, np.arange(len(x))]
    theta = nearest * (np.pi / 2)
    a_wall = np.mod(np.mod(hd, 2 * np.pi) - theta + np.pi, 2 * np.pi) - np.pi
    near = (d_wall < border) & (np.abs(a_wall) < np.pi / 2)
    turn = np.zeros_like(hd)
    turn[near] = np.sign(a_wall[near]) * (np.pi / 2 - np.abs(a_wall[near]))
    return near, turn


def random_walks(n: int, steps: int, box: float, dt: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rayleigh speeds (scale 0.13*2pi m/s), turning noise sd 11.52 rad/s, wall avoidance.

    Returns start positions [n, 2] and positions after each step [n, steps, 2], and the
    velocities [n, steps, 2] that moved the agent between them (m per step)."""
    half = box / 2
    pos = np.empty((n, steps + 1, 2))
    pos[:, 0] = rng.uniform(-half, half, size=(n, 2))
    hd = rng.uniform(0, 2 * np.pi, size=n)
    vel = np.empty((n, steps, 2))
    turns = rng.normal(0.0, 11.52, size=(n, steps))
    speeds = rng.rayleigh(0.13 * 2 * np.pi, size=(n, steps))
    for t in range(steps):
        near, turn = _avoid_wall(pos[:, t], hd, half, border=0.03)
        v = speeds[:, t].copy()
        v[near] *= 0.25
        step = v[:, None] * dt * np.stack([np.cos(hd), np.sin(hd)], axis=-1)
        pos[:, t + 1] = np.clip(pos[:, t] + step, -half, half)
        vel[:, t] = pos[:, t + 1] - pos[:, t]  # the displacement actually made (walls clip)
        hd = hd + turn + dt * turns[:, t]
    return pos[:, 0], pos[:, 1:], vel


class PlaceCells:
    """Place cells with softmax normalisation (uniform centres): Gaussian or
    difference-of-Gaussians tuning."""

    def __init__(self, n: int, box: float, sigma: float, surround: float, seed: int, tuning: str = "gauss"):
        rng = np.random.default_rng(seed + 7919)
        self.centres = torch.from_numpy(rng.uniform(-box / 2, box / 2, size=(n, 2)).astype(np.float32))
        self.sigma, self.surround, self.tuning = sigma, surround, tuning

    def code(self, pos: Tensor) -> Tensor:
        """Target distribution over place cells for positions [..., 2]."""
        d2 = ((pos.unsqueeze(-2) - self.centres) ** 2).sum(-1)
        out = torch.softmax(-d2 / (2 * self.sigma**2), dim=-1)
        if self.tuning == "gauss":
            return out
        out = out - torch.softmax(-d2 / (2 * self.surround * self.sigma**2), dim=-1)
        out = out - out.min(dim=-1, keepdim=True).values
        return out / out.sum(dim=-1, keepdim=True)

    def decode(self, activity: Tensor, k: int = DECODE_K) -> Tensor:
        """Mean centre of the k most active place cells."""
        idx = activity.topk(k, dim=-1).indices
        return self.centres[idx].mean(dim=-2)


class NavigationTask(Task):
    name = "navigation"
    metric_name = "position_error_cm"
    higher_is_better = False
    Params = NavigationParams

    def __init__(self, params: NavigationParams):
        super().__init__(params)
        p = params
        self.cells = PlaceCells(p.place_cells, p.box, p.sigma, p.surround, p.data_seed, p.tuning)

    def ignored_params(self) -> dict[str, str]:
        return {"surround": "tuning = 'dog'"} if self.params.tuning != "dog" else {}

    def _split(self, n: int, rng: np.random.Generator) -> Split:
        p = self.params
        start, pos, vel = random_walks(n, p.seq_len, p.box, p.dt, rng)
        start_t = torch.from_numpy(start.astype(np.float32))
        pos_t = torch.from_numpy(pos.astype(np.float32))
        # Velocity input in m/s (scaled per step) so the inputs have unit-ish size.
        x = torch.from_numpy((vel / p.dt).astype(np.float32))
        init = self.cells.code(start_t) * p.place_cells  # mean activity 1 (see module docstring)
        return Split(x=x, y=pos_t, init=init, aux=None)

    def interface(self) -> dict[str, Any]:
        p = self.params
        code = ("softmax_i(-|pos - c_i|^2 / (2 sigma^2))" if p.tuning == "gauss" else
                "softmax_i(-|pos - c_i|^2 / (2 sigma^2)) - softmax_i(-|pos - c_i|^2 / (2 surround sigma^2)), "
                "shifted to min 0 and normalised to sum 1")
        return {"input": f"x: per step 2 float32, the displacement (dx, dy) in metres divided by dt = {p.dt} (a "
                         "velocity in m/s)",
                "init": f"init: {p.place_cells} float32, the start position's place-cell code times "
                        f"{p.place_cells}, the code of a position being {code} over the centres c_i (step and chunk "
                        "files have no init input: feed their state inputs h0, h1, ... [1, batch, H_l] with "
                        "consecutive blocks of H_0, H_1, ... columns of init @ init.weight_t, the full file's init "
                        "projection, and an LSTM's c0, c1, ... with zeros)",
                "output": f"y at every step: {p.place_cells} place-cell logits; the position is the mean of the "
                          f"place_cell_centres of the {DECODE_K} largest (metres, box centred on 0)",
                "sigma": p.sigma, "surround": p.surround, "tuning": p.tuning, "box": p.box,
                "place_cell_centres": [[float(a), float(b)] for a, b in self.cells.centres.tolist()]}

    def _load(self) -> TaskData:
        p = self.params
        walks = p.samples + p.val_samples + p.test_samples
        # float32 walks (x, positions) plus the start codes, whose distances and softmax take
        # three walks x place_cells arrays at once.
        check_memory(4 * (walks * p.seq_len * 4 + 3 * walks * p.place_cells),
                     f"The navigation data ({generated_sizes(p)})",
                     "lower --samples, --seq-len or --place-cells")
        rng = np.random.default_rng(p.data_seed)
        train = self._split(p.samples, rng)
        val = self._split(p.val_samples, rng)
        test = self._split(p.test_samples, rng)
        spec = ModelSpec(input_size=2, output_size=p.place_cells, head="every",
                         init_size=p.place_cells, nonlinearity="relu", bias=False)
        return TaskData(train, val, test, spec, {"train": p.samples, "steps": p.seq_len})

    def loss(self, out: Tensor, batch: Split) -> Tensor:
        target = self.cells.code(batch.y)
        return -(target * torch.log_softmax(out, dim=-1)).sum(-1).mean()

    def metric_sums(self, out: Tensor, batch: Split) -> tuple[float, float]:
        err = (self.cells.decode(out) - batch.y).norm(dim=-1) * 100.0
        return float(err.detach().sum()), float(err.numel())
