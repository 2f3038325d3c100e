"""The merge history as a picture: branches, parameters and epoch time over the epochs.

Drawn on a matplotlib Figure (no pyplot state), so importing this module leaves the backend alone.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator


def plot_merge_history(history: list[dict], start: dict, path: str | Path, lock_epoch: int | None = None,
                       title: str = "Selective Sharing") -> Path:
    """Branches and parameters after each epoch (epoch 0: before training) and each epoch's training time.

    A merge at the end of epoch e is labelled with the groups it formed; the dashed line is the lock epoch.
    """
    epochs = [0] + [h["epoch"] for h in history]
    fig = Figure(figsize=(7.5, 7))
    axes = fig.subplots(3, 1, sharex=True)
    for ax, key, label, colour in [(axes[0], "branches", "branches", "tab:blue"),
                                   (axes[1], "params", "parameters", "tab:green")]:
        ax.step(epochs, [start[key]] + [h[key] for h in history], where="post", color=colour, marker="o",
                markersize=3)
        ax.set_ylabel(label)
    axes[2].plot(epochs[1:], [h["epoch_seconds"] for h in history], color="tab:gray", marker="o", markersize=3)
    axes[2].set_ylabel("epoch time (s)")
    axes[0].set_ylim(0, start["branches"] + 1)
    axes[1].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    for h in history:
        if h.get("merged"):
            text = "\n".join("+".join(g) for g in h["merged"])
            axes[0].annotate(text, (h["epoch"], h["branches"]), textcoords="offset points", xytext=(5, -5),
                             fontsize=6, va="top")
    for ax in axes:
        ax.grid(alpha=0.3)
        if lock_epoch is not None:
            ax.axvline(lock_epoch, color="tab:red", linestyle="--", linewidth=1)
    if lock_epoch is not None:
        axes[0].text(lock_epoch, start["branches"] + 0.5, f" lock epoch {lock_epoch}", color="tab:red", fontsize=7,
                     va="center")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch (merges happen at the end of an epoch)")
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
