"""A picture of the routing: per routed layer, which channels (columns) each task (row) uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def draw_masks(masks: dict[int, np.ndarray], task_names: list[str], path: str | Path) -> None:
    """One panel per routed layer; channels sorted shared-first, then by task, so the blocks are visible."""
    fig = Figure(figsize=(3 + 2.5 * len(masks), 1.5 + 0.18 * min(len(task_names), 60)), layout="constrained")
    axes = fig.subplots(1, len(masks), squeeze=False)[0]
    for ax, (unit, mask) in zip(axes, masks.items()):
        users = mask.sum(0)
        order = np.lexsort((mask.argmax(0), -users))
        ax.imshow(mask[:, order], aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"layer {unit + 1}: {int((users == len(mask)).sum())} of {mask.shape[1]} shared", fontsize=9)
        ax.set_xlabel("channels (shared first, then by task)", fontsize=8)
        ax.set_yticks(range(len(task_names)) if len(task_names) <= 40 else [])
        ax.set_yticklabels(task_names if len(task_names) <= 40 else [], fontsize=7)
    axes[0].set_ylabel("task")
    fig.savefig(path, dpi=100)
