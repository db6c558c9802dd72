"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colors, ticker, transforms  # noqa: E402
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
    if positions.shape[1] == 1:  # T^1, R^1: along the line
        return np.argsort(positions[:, 0], kind="stable")
    # torus / klein / euclidean: sweep along x in bands of y (a raster order on the square)
    bands = np.floor(positions[:, 1] / (np.ptp(positions[:, 1]) / 8 + 1e-12))
    return np.lexsort((positions[:, 0], bands))


def space_coordinates(positions: np.ndarray, space: str) -> tuple[np.ndarray, tuple[str, str]]:
    """Two coordinates to draw neurons on ``space``: the point on the circle; longitude and
    latitude on spheres; the first two coordinates otherwise (tori, Klein bottle, R^k).
    Where that leaves coordinates out (S3, T^k and R^k for k > 2) the axis labels say so."""
    dim = positions.shape[1]
    if "circle" in space:
        return positions[:, :2], ("x", "y")
    if "sphere" in space:
        unit = positions / np.linalg.norm(positions, axis=1, keepdims=True).clip(1e-12)
        lon = np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))
        lat = np.degrees(np.arcsin(np.clip(unit[:, 2], -1, 1)))
        dropped = " of x1..x3 (x4 not drawn)" if dim > 3 else ""
        return np.stack([lon, lat], axis=1), (f"longitude (deg){dropped}", f"latitude (deg){dropped}")
    if dim == 1:
        return np.concatenate([positions, np.zeros_like(positions)], axis=1), ("x", "")
    if dim > 2:
        return positions[:, :2], ("x1", f"x2 (x3..x{dim} not drawn)")
    return positions[:, :2], ("x", "y")


def plot_recurrent_matrix(
    path: str | os.PathLike, influence: np.ndarray, kept: np.ndarray, order: np.ndarray, title: str,
    positions: np.ndarray | None = None, space: str = "none",
) -> None:
    """|weight_hh| summed over gates, neurons in ``order``, kept (green) and removed (red)
    neurons marked on strips along the top and left edges; with ``positions``, a second
    panel draws every neuron at its place on ``space`` in the same colours."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    A = influence[np.ix_(order, order)]
    kept_o = kept[order]
    n = len(order)
    with_space = positions is not None and positions.size > 0
    fig, axes = plt.subplots(1, 2 if with_space else 1, figsize=(11.5 if with_space else 6.4, 6.0),
                             gridspec_kw={"width_ratios": [1.0, 0.9]} if with_space else None, squeeze=False)
    ax = axes[0, 0]
    nz = A[A > 0]
    vmax = float(np.quantile(nz, 0.99)) if nz.size else 1.0
    ax.imshow(A, cmap="Greys", vmin=0, vmax=vmax, interpolation="nearest", aspect="equal")
    placed = positions is not None and positions.ndim == 2 and positions.shape[1] > 0
    ax.set_xlabel("sender neuron " + ("(ordered by position on the space)" if placed else "(in index order)"))
    strip_colors = colors.ListedColormap(["tab:red", "tab:green"])
    divider = make_axes_locatable(ax)
    top = divider.append_axes("top", size="4%", pad=0.04, sharex=ax)
    left = divider.append_axes("left", size="4%", pad=0.04, sharey=ax)
    top.imshow(kept_o[None, :].astype(float), cmap=strip_colors, vmin=0, vmax=1, aspect="auto",
               interpolation="nearest")
    left.imshow(kept_o[:, None].astype(float), cmap=strip_colors, vmin=0, vmax=1, aspect="auto",
                interpolation="nearest")
    top.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)
    ax.tick_params(labelleft=False)  # the receiver axis is labelled on the left strip
    left.tick_params(bottom=False, labelbottom=False)
    left.set_ylabel("receiver neuron")
    top.set_title(f"{title}\nkept {int(kept.sum())} (green) / removed {int((~kept).sum())} (red) of {n}",
                  fontsize=9)
    if with_space:
        xy, (xlabel, ylabel) = space_coordinates(positions, space)
        sp = axes[0, 1]
        sp.scatter(xy[~kept, 0], xy[~kept, 1], s=14, c="tab:red", alpha=0.45, lw=0)
        sp.scatter(xy[kept, 0], xy[kept, 1], s=22, c="tab:green", lw=0.4, edgecolors="black")
        sp.set_xlabel(xlabel)
        sp.set_ylabel(ylabel)
        if "circle" in space:
            sp.set_aspect("equal")
        sp.set_title(f"the same neurons at their places on the space ({space})\nkept (green) / removed (red)",
                     fontsize=9)
    _save(fig, path)


def pruning_plot_paths(path: Path, layers: int) -> list[Path]:
    """The files ``plot_pruning`` writes: ``path`` for one layer, ``path``-l for layer l of several."""
    if layers == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{layer}{path.suffix}") for layer in range(layers)]


def plot_pruning(path: Path, parent, selections, reg_state: dict[str, Any], gates: int) -> list[Path]:
    """One recurrent-matrix PNG per layer, at ``pruning_plot_paths(path, layers)``."""
    from compressor.lattice import influence_blocks

    space = reg_state.get("config", {}).get("space", "none") if reg_state else "none"
    paths = pruning_plot_paths(path, len(selections))
    for s, out in zip(selections, paths):
        A, _ = influence_blocks(parent.rnn[s.layer].weight_hh_l0.detach(), gates)
        pos = None
        if reg_state and reg_state.get("positions"):
            pos = reg_state["positions"][s.layer][reg_state["kept"][s.layer]].numpy()
        kept = np.zeros(s.before, dtype=bool)
        kept[s.keep_index.numpy()] = True
        weights = "|weight_hh| summed over gates" if gates > 1 else "|weight_hh|"
        where = f"space {space}" if space not in ("none", "l1") else f"no space: {space}"
        plot_recurrent_matrix(out, A, kept, position_order(pos, space), f"layer {s.layer}: {weights} ({where})",
                              pos, space)
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
    if logx:
        _log_x(ax)
    # Models at (nearly) the same point share one label, names stacked: a checkpoint, its
    # dense and its sparse export often measure alike, and their labels would overprint.
    ax.autoscale_view()
    groups: list[tuple[np.ndarray, tuple[float, float], list[str]]] = []
    for p in points:
        at = ax.transData.transform((p[x], p[y]))
        near = next((g for g in groups if np.hypot(*(g[0] - at)) < 12), None)
        if near is None:
            groups.append((at, (p[x], p[y]), [p["name"]]))
        else:
            near[2].append(p["name"])
    # A label that would overprint one already placed moves up until it is clear.
    renderer = fig.canvas.get_renderer()
    placed = []
    for _, xy, names in groups:
        label = ax.annotate("\n".join(names), xy, fontsize=7, xytext=(4, 3), textcoords="offset points",
                            va="bottom")
        box = label.get_window_extent(renderer)
        for _ in range(30):
            if not any(box.overlaps(other) for other in placed):
                break
            label.xyann = (label.xyann[0], label.xyann[1] + 8)
            box = label.get_window_extent(renderer)
        placed.append(box)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)
