"""What SFG learned: per-layer group shares, mean p and entropy (logged every epoch) and the pictures of p.

The pictures are matplotlib Figure objects (no pyplot state), so importing this module leaves the backend alone.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .layers import argmax_allocation

TRAJECTORY_KERNELS = 24  # kernels drawn per layer in the trajectory picture


def allocation(p: np.ndarray) -> np.ndarray:
    return argmax_allocation(torch.from_numpy(p)).numpy()


def layer_summary(p: np.ndarray, groups: list[str]) -> dict:
    """Mean p per group, kernel counts per group in the argmax allocation, the task-specific share, the entropy."""
    counts = np.bincount(allocation(p), minlength=len(groups))
    clipped = np.clip(p, 1e-12, 1.0)
    return {"width": int(len(p)),
            "mean_p": {g: round(float(v), 5) for g, v in zip(groups, p.mean(0))},
            "kernels": {g: int(n) for g, n in zip(groups, counts)},
            "task_specific_share": round(1.0 - counts[0] / len(p), 5),
            "entropy": round(float(-(clipped * np.log(clipped)).sum(1).mean()), 5)}


def allocation_summary(model) -> dict:
    """The summary of every grouped layer of an SFGNetwork, bottom to top, and the summed entropy."""
    layers = []
    for depth, (layer, p) in enumerate(zip(model.layers, model.probabilities()), start=1):
        layers.append({"layer": depth, "type": layer.spec.type,
                       **layer_summary(p.detach().cpu().numpy(), model.group_names)})
    return {"layers": layers, "entropy": round(sum(entry["entropy"] for entry in layers), 5)}


def group_colours(groups: list[str]) -> list:
    cmap = matplotlib.colormaps["tab10" if len(groups) <= 11 else "tab20"]
    return ["0.55"] + [cmap(i % cmap.N) for i in range(len(groups) - 1)]


def draw_pictures(out: Path, final: list[np.ndarray], trajectory: list[list[np.ndarray]],
                  groups: list[str]) -> list[str]:
    """Write the three pictures; return their file names."""
    names = [draw_group_shares(out / "sfg_group_shares.png", final, groups),
             draw_density(out / "sfg_p_density.png", final, groups)]
    if trajectory:
        names.append(draw_trajectories(out / "sfg_trajectories.png", trajectory, final, groups))
    return names


def draw_group_shares(path: Path, final: list[np.ndarray], groups: list[str]) -> str:
    """Stacked bars: the share of each layer's kernels whose most probable group is shared or task t."""
    shares = np.stack([np.bincount(allocation(p), minlength=len(groups)) / len(p) for p in final])
    depth = np.arange(1, len(final) + 1)
    fig = Figure(figsize=(max(5, 0.6 * len(final) + 3), 4))
    ax = fig.subplots()
    bottom = np.zeros(len(final))
    for g, (name, colour) in enumerate(zip(groups, group_colours(groups))):
        ax.bar(depth, shares[:, g], bottom=bottom, color=colour, label=name, edgecolor="white", linewidth=0.5)
        bottom += shares[:, g]
    ax.set(xlabel="layer (depth)", ylabel="share of kernels (argmax p)", xticks=depth, ylim=(0, 1),
           title="SFG kernel groups by depth")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return _save(fig, path)


def _triangle(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric (shared, task 1, task 2) -> the plane: shared at the top, the tasks at the bottom corners."""
    return 0.5 * p[:, 0] + p[:, 2], p[:, 0] * math.sqrt(3) / 2


def draw_density(path: Path, final: list[np.ndarray], groups: list[str]) -> str:
    """Two tasks: the density of p on the 2-simplex per layer. More tasks: p_shared and max p by depth."""
    if len(groups) == 3:
        cols = min(len(final), 4)
        rows = math.ceil(len(final) / cols)
        fig = Figure(figsize=(3.2 * cols, 3 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        corners = np.array([[0, 0], [1, 0], [0.5, math.sqrt(3) / 2], [0, 0]])
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= len(final):
                continue
            x, y = _triangle(final[i])
            ax.hexbin(x, y, gridsize=18, extent=(0, 1, 0, math.sqrt(3) / 2), cmap="viridis", mincnt=1)
            ax.plot(corners[:, 0], corners[:, 1], color="black", linewidth=0.8)
            ax.text(0.5, math.sqrt(3) / 2 + 0.04, groups[0], ha="center", fontsize=8)
            ax.text(-0.02, -0.07, groups[1], ha="left", fontsize=8)
            ax.text(1.02, -0.07, groups[2], ha="right", fontsize=8)
            ax.set_title(f"layer {i + 1}", fontsize=9)
            ax.set_aspect("equal")
        fig.suptitle("density of p on the simplex (one point per kernel)")
        return _save(fig, path)
    bins = np.linspace(0, 1, 26)
    fig = Figure(figsize=(max(8, 0.9 * len(final) + 4), 4))
    axes = fig.subplots(1, 2)
    for ax, (label, values) in zip(axes, (("p_shared", [p[:, 0] for p in final]),
                                          ("max p", [p.max(1) for p in final]))):
        density = np.stack([np.histogram(v, bins)[0] / len(v) for v in values], axis=1)
        image = ax.imshow(density, origin="lower", aspect="auto", cmap="viridis",
                          extent=(0.5, len(final) + 0.5, 0, 1))
        ax.set(xlabel="layer (depth)", ylabel=label, title=f"distribution of {label} over kernels",
               xticks=np.arange(1, len(final) + 1))
        fig.colorbar(image, ax=ax, label="share of kernels")
    axes[1].axhline(1.0 / len(groups), color="white", linestyle=":", linewidth=1)
    return _save(fig, path)


def draw_trajectories(path: Path, trajectory: list[list[np.ndarray]], final: list[np.ndarray],
                      groups: list[str]) -> str:
    """Per layer, p of each drawn kernel's final group over the epochs, coloured by that group."""
    colours = group_colours(groups)
    cols = min(len(final), 4)
    rows = math.ceil(len(final) / cols)
    fig = Figure(figsize=(3.4 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    epochs = np.arange(len(trajectory))
    for i, ax in enumerate(axes.flat):
        if i >= len(final):
            ax.set_axis_off()
            continue
        history = np.stack([step[i] for step in trajectory])  # [epochs, kernels, groups]
        chosen = np.unique(np.linspace(0, history.shape[1] - 1, min(TRAJECTORY_KERNELS, history.shape[1])).astype(int))
        target = allocation(final[i])
        for k in chosen:
            ax.plot(epochs, history[:, k, target[k]], color=colours[target[k]], linewidth=0.9, alpha=0.8)
        ax.axhline(1.0 / len(groups), color="black", linestyle=":", linewidth=0.8)
        ax.set_title(f"layer {i + 1}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("p of the kernel's final group")
    handles = [Line2D([], [], color=c, label=g) for g, c in zip(groups, colours)]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle("kernel trajectories (colour: the group each kernel ends in)")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path.name
