"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker, transforms  # noqa: E402
import numpy as np  # noqa: E402

from models.io import atomic_path  # noqa: E402

_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2] if p.isdigit())


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def position_order(positions: np.ndarray | None, space: str) -> np.ndarray:
    """Neuron order that follows the space: angle on circles/spheres, coordinates on tori."""
    if positions is None or positions.size == 0 or positions.shape[1] == 0:
        n = 0 if positions is None else positions.shape[0]
        return np.arange(n)
    if "circle" in space or "sphere" in space:
        angle = np.arctan2(positions[:, 1], positions[:, 0])
        return np.lexsort((positions[:, -1], angle))
    # torus / klein / euclidean: sweep along x in bands of y (a raster order on the square)
    bands = np.floor(positions[:, 1] / (np.ptp(positions[:, 1]) / 8 + 1e-12))
    return np.lexsort((positions[:, 0], bands))


def plot_recurrent_matrix(
    path: str | os.PathLike, influence: np.ndarray, kept: np.ndarray, order: np.ndarray, title: str,
) -> None:
    """|weight_hh| summed over gates, neurons in ``order``; removed neurons shaded red."""
    A = influence[np.ix_(order, order)]
    kept_o = kept[order]
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    nz = A[A > 0]
    vmax = float(np.quantile(nz, 0.99)) if nz.size else 1.0
    ax.imshow(A, cmap="Greys", vmin=0, vmax=vmax, interpolation="nearest")
    n = len(order)
    for i in np.flatnonzero(~kept_o):
        ax.axhspan(i - 0.5, i + 0.5, color="tab:red", alpha=0.18, lw=0)
        ax.axvspan(i - 0.5, i + 0.5, color="tab:red", alpha=0.18, lw=0)
    ax.scatter(np.flatnonzero(kept_o), np.full(kept_o.sum(), -1.5), s=6, c="tab:green", marker="s", clip_on=False)
    ax.scatter(np.flatnonzero(~kept_o), np.full((~kept_o).sum(), -1.5), s=6, c="tab:red", marker="s", clip_on=False)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -2.5)
    ax.set_xlabel("sender neuron (ordered by position on the space)")
    ax.set_ylabel("receiver neuron")
    ax.set_title(f"{title}\nkept {int(kept.sum())} (green) / removed {int((~kept).sum())} (red)", fontsize=9)
    _save(fig, path)


def plot_pruning(path: Path, parent, selections, reg_state: dict[str, Any], gates: int) -> list[Path]:
    """One recurrent-matrix PNG per layer (``path``, or ``path``-l for layer l of several)."""
    from compressor.lattice import influence_blocks

    paths = []
    space = reg_state.get("config", {}).get("space", "none") if reg_state else "none"
    for s in selections:
        A, _ = influence_blocks(parent.rnn[s.layer].weight_hh_l0.detach(), gates)
        pos = None
        if reg_state and reg_state.get("positions"):
            pos = reg_state["positions"][s.layer][reg_state["kept"][s.layer]].numpy()
        kept = np.zeros(s.before, dtype=bool)
        kept[s.keep_index.numpy()] = True
        out = path if len(selections) == 1 else path.with_name(f"{path.stem}-{s.layer}{path.suffix}")
        plot_recurrent_matrix(out, A, kept, position_order(pos, space),
                              f"layer {s.layer}: |weight_hh| summed over gates ({space})")
        paths.append(out)
    return paths


def _log_x(ax) -> None:
    """Log x axis with plain tick labels at 1, 2, 5 x 10^k (latencies span less than a decade)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def plot_latency_distributions(path: str | os.PathLike, samples: dict[str, Sequence[float]], title: str,
                               highlight: str | None = None) -> None:
    """One box per series (top to bottom in the given order), p50 written beside it;
    ``highlight`` (e.g. the baseline) gets a bold label."""
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(samples) + 1.8))
    names = list(samples)
    data = [np.asarray(samples[n], dtype=float) for n in names]
    # matplotlib 3.10 replaced vert=False by orientation="horizontal" (vert warns from 3.11)
    horizontal = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}
    ax.boxplot(data, showfliers=False, whis=(1, 99), **horizontal)
    ax.set_yticks(range(1, len(names) + 1), names, fontsize=8)
    for label in ax.get_yticklabels():
        if label.get_text() == highlight:
            label.set_fontweight("bold")
    right = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for i, d in enumerate(data, start=1):
        if d.size:
            ax.text(1.01, i, f"p50 {np.median(d):.3g} ms", transform=right, fontsize=7, va="center", clip_on=False)
    ax.invert_yaxis()
    _log_x(ax)
    ax.set_xlabel("latency (ms, log scale); box p25-p75, whiskers p1-p99")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def plot_scatter(path: str | os.PathLike, points: list[dict[str, Any]], x: str, y: str, xlabel: str, ylabel: str,
                 title: str, logx: bool = False, highlight: str | None = None) -> None:
    """Labelled points; the one named ``highlight`` (e.g. the baseline) drawn as a star."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for p in points:
        star = p["name"] == highlight
        ax.scatter(p[x], p[y], s=90 if star else 30, marker="*" if star else "o")
        ax.annotate(p["name"], (p[x], p[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if logx:
        _log_x(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)
