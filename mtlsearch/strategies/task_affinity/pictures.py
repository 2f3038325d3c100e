"""The look-ahead affinity matrix as a heat map, tasks ordered by the chosen groups, each group framed."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ...structure.draw import affinity_heatmap


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
