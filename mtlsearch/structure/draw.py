"""Pictures of a SharingStructure: the block graph by layer, and the task-affinity heatmap.

Drawn on matplotlib Figure objects (no pyplot state), so importing this module leaves the backend alone.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .graph import SharingStructure
from .views import task_affinity

BOX = 0.42  # block width in layer units (the gap between layers is 1 - BOX)
GAP = 0.06  # vertical space between the blocks of a layer, as a fraction of the column
SHARED_BY_ALL = "#4d4d4d"
LEGEND_ENTRIES = 60  # task sets beyond this are summarised in one legend line
LEGEND_ROWS = 25


def _palette(n: int) -> list:
    """n colours, greys left out (grey means all tasks): tab10's hues, then their light tints, then tab20b/c."""
    maps = matplotlib.colormaps
    tints = maps["tab20"].colors[1::2]
    colours = [c for c in (*maps["tab10"].colors, *tints, *maps["tab20b"].colors, *maps["tab20c"].colors)
               if len(set(c)) > 1]
    return [colours[i % len(colours)] for i in range(n)]


def _text_colour(face) -> str:
    """Black on light fills, white on dark ones."""
    r, g, b = to_rgb(face)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def _set_label(tasks: tuple, names: list[str]) -> str:
    if len(tasks) == len(names):
        return f"all {len(names)} tasks"
    if len(tasks) <= 3:
        return ", ".join(tasks)
    return f"{tasks[0]}, {tasks[1]}, ... ({len(tasks)} tasks)"


def task_set_colours(structure: SharingStructure) -> dict[tuple, object]:
    """A colour per task set of the blocks: grey for all tasks, the others by descending units."""
    g = structure.graph
    names = structure.task_names
    order = {t: i for i, t in enumerate(names)}
    units: dict[tuple, int] = {}
    for _, d in g.nodes(data=True):
        if d["op"]["type"] != "input":
            key = tuple(sorted(d["tasks"], key=order.get))
            units[key] = units.get(key, 0) + d["width"]
    everyone = tuple(names)
    others = sorted((k for k in units if k != everyone), key=lambda k: (len(k) == 1, -units[k], [order[t] for t in k]))
    singles = sorted((k for k in others if len(k) == 1), key=lambda k: order[k[0]])
    groups = [k for k in others if len(k) > 1]
    colours = {everyone: SHARED_BY_ALL} if everyone in units else {}
    colours.update(zip(groups + singles, _palette(len(groups) + len(singles))))
    return colours


def _layout(structure: SharingStructure) -> dict[str, tuple[float, float, float]]:
    """node -> (x, y bottom, height): layers left to right, each layer's blocks stacked by width.

    Order within a layer: a pass from the heads down puts blocks in task order near the blocks they feed,
    then a pass from the input up puts each block near the blocks feeding it (so heads sit by their group).
    """
    g = structure.graph
    order = {t: i for i, t in enumerate(structure.task_names)}
    by_layer: dict[int, list[str]] = {}
    for node, d in g.nodes(data=True):
        by_layer.setdefault(d["layer"], []).append(node)
    layers = sorted(by_layer)

    def mean_rank(nodes, rank) -> float:
        ranks = [rank[m] for m in nodes if m in rank]
        return sum(ranks) / max(len(ranks), 1)

    down: dict[str, float] = {}
    for layer in reversed(layers):
        by_layer[layer].sort(key=lambda n: (min((order[t] for t in g.nodes[n]["tasks"]), default=0),
                                            -len(g.nodes[n]["tasks"]), mean_rank(g.successors(n), down), n))
        down.update((n, i / len(by_layer[layer])) for i, n in enumerate(by_layer[layer]))
    up: dict[str, float] = {}
    for layer in layers:
        by_layer[layer].sort(key=lambda n: (mean_rank(g.predecessors(n), up), down[n]))
        up.update((n, i / len(by_layer[layer])) for i, n in enumerate(by_layer[layer]))
    boxes = {}
    for x, layer in enumerate(layers):
        nodes = by_layer[layer]
        units = sum(g.nodes[n]["width"] for n in nodes)
        gap = GAP / max(len(nodes) - 1, 1) if len(nodes) > 1 else 0.0
        scale = (1.0 - GAP * (len(nodes) > 1)) / units
        top = 1.0
        for n in nodes:
            height = g.nodes[n]["width"] * scale
            boxes[n] = (float(x), top - height, height)
            top -= height + gap
    return boxes


def draw_structure(structure: SharingStructure, path) -> Path:
    """Blocks as rectangles (height ~ units within the layer) coloured by the tasks using them, edges as lines."""
    g = structure.graph
    names = structure.task_names
    order = {t: i for i, t in enumerate(names)}
    colours = task_set_colours(structure)
    boxes = _layout(structure)
    layers = sorted({d["layer"] for _, d in g.nodes(data=True)})
    most = max(sum(1 for _, d in g.nodes(data=True) if d["layer"] == layer) for layer in layers)
    fig_h = min(4.5 + 0.12 * most, 16)
    fig = Figure(figsize=(max(7.0, 1.25 * len(layers) + 4.0), fig_h))
    ax = fig.subplots()

    def colour(tasks):
        return colours.get(tuple(sorted(tasks, key=order.get)), "#bbbbbb")

    segments, seg_colours = [], []
    for src, dst, d in g.edges(data=True):
        (xs, ys, hs), (xd, yd, hd) = boxes[src], boxes[dst]
        segments.append([(xs + BOX / 2, ys + hs / 2), (xd - BOX / 2, yd + hd / 2)])
        alpha = min(0.8, max(0.08, 2.0 / g.in_degree(dst)))  # fan-ins of many edges would turn solid
        seg_colours.append(to_rgba(colour(d["tasks"]) if d["tasks"] else "#dddddd", alpha))
    ax.add_collection(LineCollection(segments, colors=seg_colours, linewidths=0.8, zorder=1))
    points_per_unit = fig_h * 72 * 0.8
    for node, (x, y, h) in boxes.items():
        d = g.nodes[node]
        face = "white" if d["op"]["type"] == "input" else colour(d["tasks"])
        ax.add_patch(Rectangle((x - BOX / 2, y), BOX, h, facecolor=face, edgecolor="black", linewidth=0.4, zorder=2))
        if h * points_per_unit >= 9:
            text = "input" if d["op"]["type"] == "input" else str(d["width"])
            ax.text(x, y + h / 2, text, ha="center", va="center", fontsize=7, zorder=3, color=_text_colour(face))
    for x, layer in enumerate(layers):
        blocks = [d for _, d in g.nodes(data=True) if d["layer"] == layer]
        kinds = "/".join(sorted({d["kind"] for d in blocks}))
        size = ("x".join(map(str, blocks[0]["shape"])) if kinds == "input"
                else f"{sum(d['width'] for d in blocks)} units")
        ax.text(x, 1.02, f"layer {layer}\n{kinds}\n{size}", ha="center", va="bottom", fontsize=7)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_ylim(-0.02, 1.14)
    ax.axis("off")
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.4, label=_set_label(k, names))
               for k, c in colours.items()]
    if len(handles) > LEGEND_ENTRIES:
        hidden = len(handles) - LEGEND_ENTRIES + 1
        handles = handles[:LEGEND_ENTRIES - 1] + [Patch(facecolor="#bbbbbb", label=f"... {hidden} more task sets")]
    columns = -(-len(handles) // LEGEND_ROWS)
    ax.legend(handles=handles, title="used by", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7,
              title_fontsize=8, ncol=columns, frameon=False)
    ax.set_title(f"{structure.strategy}: blocks by layer (height ~ units within the layer), "
                 f"coloured by the tasks using them",
                 fontsize=9, loc="left")
    return _save(fig, path)


def draw_affinity(structure: SharingStructure, path) -> Path:
    """Heatmap: row i, column j = fraction of task i's parameters that task j also uses."""
    names = structure.task_names
    matrix = task_affinity(structure)
    n = len(names)
    size = max(4.5, min(0.2 * n + 3.0, 14.0))
    font = max(4, min(8, int(0.4 * size * 72 / n)))  # about 40% of a cell's height
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if matrix[i, j] > 0.6 else "white")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="affinity")
    ax.set_xlabel("task j", fontsize=8)
    ax.set_ylabel("task i", fontsize=8)
    ax.set_title(f"{structure.strategy}: fraction of task i's parameters that task j also uses", fontsize=9)
    return _save(fig, path)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


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
