"""The pictures of RESULTS.md (matplotlib Figure objects, no pyplot state: works under any backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

from . import papers
from .experiments import Stat
from .plan import TR_SIGMA_FOR_COMPARISON

METRIC_STYLE = {"accuracy": ("tab:blue", "o"), "precision": ("tab:orange", "s"), "recall": ("tab:green", "^"),
                "r2": ("tab:purple", "D")}
METHOD_STYLE = {"task_routing": ("tab:red", "o", f"Task Routing (sigma={TR_SIGMA_FOR_COMPARISON:g})"),
                "cross_stitch": ("tab:green", "s", "cross-stitch")}


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path.name


def _short(value: float, _=None) -> str:
    """200k, 1.5M: parameter counts on a log axis."""
    return f"{value / 1e6:g}M" if value >= 1e6 else f"{value / 1e3:g}k"


def _errorbar(ax, x, stats: list[Stat], **style):
    keep = [i for i, s in enumerate(stats) if s.n]
    ax.errorbar([x[i] for i in keep], [stats[i].mean for i in keep], yerr=[stats[i].std for i in keep],
                capsize=3, linewidth=1.3, markersize=5, **style)


def sigma_curves(rows: list[dict], path: Path) -> str:
    """Top: our accuracy, precision, recall (and R²) against sigma per dataset; bottom: the paper's Table 2."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(4.6 * len(datasets), 7.2), layout="constrained")
    axes = fig.subplots(2, len(datasets), squeeze=False)
    for col, ds in enumerate(datasets):
        mine = [r for r in rows if r["dataset"] == ds]
        sigmas = [r["sigma"] for r in mine]
        ax = axes[0, col]
        for metric, (colour, marker) in METRIC_STYLE.items():
            stats = [r[metric] for r in mine]
            if any(s.n for s in stats):
                label = "R² (regression task)" if metric == "r2" else metric
                _errorbar(ax, sigmas, stats, color=colour, marker=marker, label=label,
                          linestyle="--" if metric == "r2" else "-")
        ax.axvspan(0.2, 0.6, color="0.92", zorder=0)
        ax.set(title=f"this project: {ds} (mean ± std over seeds)", xlabel="sharing ratio sigma", ylabel="test metric")
        ax.legend(fontsize=8)
        paper_name = mine[0]["paper_dataset"]
        ax = axes[1, col]
        table = papers.TR_TABLE2.get(paper_name, {})
        for i, metric in enumerate(("accuracy", "precision", "recall")):
            xs = sorted(table)
            colour, marker = METRIC_STYLE[metric]
            ax.errorbar(xs, [table[s][i][0] for s in xs], yerr=[table[s][i][1] for s in xs], color=colour,
                        marker=marker, capsize=3, linewidth=1.3, markersize=5, label=metric)
        ax.axvspan(0.2, 0.6, color="0.92", zorder=0)
        ax.set(title=f"paper, Table 2: {paper_name} (%)", xlabel="sharing ratio sigma", ylabel="test metric (%)")
        ax.legend(fontsize=8)
    fig.suptitle("Task Routing: metrics against the sharing ratio (grey: the paper's best range 0.2-0.6)")
    return _save(fig, path)


def many_tasks(rows: list[dict], path: Path, shape: tuple = (1, 8, 8)) -> str:
    """Step time and memory against the task count; counts a method was not run at are marked at the top."""
    fig = Figure(figsize=(11, 5), layout="constrained")
    time_ax, mem_ax = fig.subplots(1, 2)
    counts = sorted({r["n_tasks"] for r in rows})
    for i, (method, (colour, marker, label)) in enumerate(METHOD_STYLE.items()):
        mine = [r for r in rows if r["method"] == method]
        ran = [r for r in mine if r["status"] == "ran"]
        if ran:
            n = [r["n_tasks"] for r in ran]
            time_ax.plot(n, [r["step_ms"] / r["task_updates"] for r in ran], color=colour, marker=marker,
                         label=label)
            mem_ax.plot(n, [(r["param_bytes"] + r["optimizer_bytes"]) / 1e6 for r in ran], color=colour,
                        marker=marker, label=f"{label}: parameters + Adam state")
            rss = [(r["n_tasks"], r["peak_rss_growth"] / 1e6) for r in ran if r.get("peak_rss_growth")]
            if rss:
                mem_ax.plot(*zip(*rss), color=colour, marker=marker, linestyle=":", markerfacecolor="none",
                            label=f"{label}: peak RSS growth")
        skipped = [r["n_tasks"] for r in mine if r["status"] != "ran"]
        for ax in (time_ax, mem_ax) if skipped else ():
            height = 0.95 - 0.08 * i
            ax.scatter(skipped, [height] * len(skipped), transform=ax.get_xaxis_transform(), marker="x",
                       color=colour, s=50)
            ax.annotate(f"{label.split(' (')[0]} not run", (skipped[0], height), xycoords=ax.get_xaxis_transform(),
                        xytext=(-6, 0), textcoords="offset points", ha="right", va="center", fontsize=7,
                        color=colour)
    for ax, ylabel in ((time_ax, "CPU ms per task-update (median step / tasks it trains)"),
                       (mem_ax, "memory (MB)")):
        ax.set(xscale="log", yscale="log", xlabel="binary tasks", ylabel=ylabel)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(counts[0] / 1.3, counts[-1] * 1.3)
        ax.set_ylim(top=ax.get_ylim()[1] * 3)  # room for the 'not run' marks
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    time_ax.set_title(f"per task-update, batch 64, {'x'.join(map(str, shape))} inputs")
    mem_ax.set_title("memory once every task has been trained")
    return _save(fig, path)


def sfg_depth(rows: list[dict], path: Path) -> str:
    """Bars: share of task-specific kernels per layer at the end of training; circles: after the first epoch."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(4.2 * max(len(datasets), 1), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(datasets), 1), squeeze=False)[0]
    for ax, ds in zip(axes, datasets):
        mine = [r for r in rows if r["dataset"] == ds]
        depth = np.arange(1, len(mine) + 1)
        ax.bar(depth, [r["share"].mean for r in mine], yerr=[r["share"].std for r in mine], capsize=4,
               color="tab:blue", alpha=0.8, label="end of training")
        ax.plot(depth, [r["first_share"].mean for r in mine], "o", color="black", markerfacecolor="none",
                label="after epoch 1")
        ax.axhline(mine[0]["tasks"] / (mine[0]["tasks"] + 1), color="tab:red", linestyle="--", linewidth=1,
                   label="chance T/(T+1)")
        ax.set_xticks(depth)
        ax.set_xticklabels([f"{r['layer']}\n{r['type']} {r['width']}" for r in mine], fontsize=8)
        ax.set(ylim=(0, 1.05), xlabel="layer (depth)", ylabel="task-specific share of kernels",
               title=f"{ds} ({mine[0]['tasks']} tasks)")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("SFG: kernels whose most probable group is a task's own (mean ± std over seeds)")
    return _save(fig, path)


def selective_sharing(rows: list[dict], path: Path) -> str:
    """Per dataset: score and parameters of hard sharing, each criterion and the random control."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(11, 3.4 * max(len(datasets), 1)), layout="constrained")
    axes = fig.subplots(max(len(datasets), 1), 2, squeeze=False)
    for (score_ax, param_ax), ds in zip(axes, datasets):
        mine = [r for r in rows if r["dataset"] == ds]
        x = np.arange(len(mine))
        colours = ["black" if r["method"] == "hard_sharing" else "tab:gray" if r["method"] == "random"
                   else "tab:blue" for r in mine]
        for ax, key, scale in ((score_ax, "score", 1.0), (param_ax, "params", 1e-3)):
            stats = [r[key] for r in mine]
            ax.bar(x, [s.mean * scale if s.n else 0 for s in stats], 0.6, yerr=[s.std * scale for s in stats],
                   capsize=4, color=colours)
            ax.set_xticks(x)
            ax.set_xticklabels([r["method"] for r in mine], fontsize=8)
        scores = [r["score"].mean for r in mine if r["score"].n]
        if scores:
            score_ax.set_ylim(max(0.0, min(scores) - 0.05), min(1.005, max(scores) + 0.02))
        score_ax.set_title(f"{ds}: test score")
        param_ax.set_title(f"{ds}: parameters (thousands)")
    fig.suptitle("Selective Sharing: criteria (blue), the random control (grey), hard sharing (black); "
                 "mean ± std over seeds")
    return _save(fig, path)


def discovery_curve(rows: list[dict], path: Path) -> str:
    """ARI against the planted groups of synthetic as the knob own grows, one line per criterion."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["own"])
        _errorbar(ax, [r["own"] for r in mine], [r["ari"] for r in mine], marker="o",
                  linestyle="--" if method == "random" else "-",
                  label=method + (" (control)" if method == "random" else ""))
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="own: each task's own function relative to its group's", ylim=(-0.4, 1.05),
           ylabel="adjusted Rand index vs planted groups", title="Selective Sharing on synthetic (mean ± std)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def all_strategies(rows: list[dict], path: Path) -> str:
    """Test score against parameter count, one point per strategy and dataset."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(4.6 * len(datasets) + 1.6, 4.2), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    styles = dict(zip(dict.fromkeys(r["strategy"] for r in rows), zip([f"C{i}" for i in range(10)], "osD^vP*X")))
    for ax, ds in zip(axes, datasets):
        for r in (r for r in rows if r["dataset"] == ds and r["score"].n):
            colour, marker = styles[r["strategy"]]
            ax.errorbar(r["params"].mean, r["score"].mean, yerr=r["score"].std, fmt=marker, capsize=3, color=colour,
                        markersize=7, label=r["strategy"])
        ax.set(xlabel="parameters", ylabel="test score", title=ds)
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle("All strategies: test score (mean ± std over seeds) against parameters")
    return _save(fig, path)
