"""The affinity matrix as a heat map, tasks ordered by their groups, each group framed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def group_order(groups: list[list[int]] | None, n: int) -> list[int]:
    """Task indices group by group (every task once; tasks no group names come last, in their order)."""
    order = [i for g in groups or [] for i in g]
    return order + [i for i in range(n) if i not in order]


def affinity_heatmap(ax, matrix, names: list[str], groups: list[list[int]] | None = None, title: str = "",
                     cmap: str = "RdBu_r", symmetric: bool = True, diagonal: bool = False):
    """Draw `matrix` (row i, column j) on `ax` in group order; returns the image for a colour bar.

    `symmetric` centres the colours on 0 (affinities can be negative); the diagonal is left blank unless
    `diagonal`, because a task's affinity onto itself dwarfs the rest.
    """
    matrix = np.array(matrix, dtype=float)
    n = len(names)
    order = group_order(groups, n)
    shown = matrix[np.ix_(order, order)]
    if not diagonal:
        np.fill_diagonal(shown, np.nan)
    finite = shown[np.isfinite(shown)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    top = top or 1.0
    low, high = (-top, top) if symmetric else (0.0, max(top, 1.0))
    image = ax.imshow(shown, cmap=cmap, vmin=low, vmax=high)
    font = max(4, min(8, int(160 / max(n, 1))))
    labels = [names[i] for i in order]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    start = 0
    for group in groups or []:
        ax.add_patch(Rectangle((start - 0.5, start - 0.5), len(group), len(group), fill=False, lw=1.5,
                               edgecolor="black"))
        start += len(group)
    if n <= 10:
        digits = 2 if top >= 0.1 else 3 if top >= 0.01 else 4
        for r in range(n):
            for c in range(n):
                if np.isfinite(shown[r, c]):
                    ax.text(c, r, f"{shown[r, c]:.{digits}f}", ha="center", va="center", fontsize=6)
    ax.set_title(title, fontsize=9)
    return image


def plot_task_affinity(matrix, names: list[str], groups: list[list[int]] | None, path, title: str) -> Path:
    """One heat map of the look-ahead affinity (row: the task whose step is taken, column: the loss it moves)."""
    n = len(names)
    size = max(4.5, min(0.3 * n + 3.0, 14.0))
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = affinity_heatmap(ax, matrix, names, groups, title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Z(i -> j) = 1 - L_j after i's step / L_j")
    ax.set_xlabel("task j (its loss)", fontsize=8)
    ax.set_ylabel("task i (its step)", fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
