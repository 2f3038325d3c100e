"""What a search leaves behind: a leaderboard, the Pareto front, and the best structure of each strategy.

The pareto picture is a matplotlib Figure (no pyplot state), so importing this module leaves the backend alone.
"""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

from matplotlib.figure import Figure

from .config import TrialRecord, TrialStatus

COLUMNS = ["trial", "strategy", "status", "val_score", "params", "epochs_done", "hyperparameters", "error"]


def finished(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.status == TrialStatus.DONE]


def pareto_front(records: list[TrialRecord]) -> list[TrialRecord]:
    """Finished trials no other finished trial beats on both score (higher) and parameters (fewer)."""
    done = finished(records)
    return [r for r in done if not any(
        o.val_score >= r.val_score and o.params <= r.params and
        (o.val_score > r.val_score or o.params < r.params) for o in done)]


def best_per_strategy(records: list[TrialRecord]) -> dict[str, TrialRecord]:
    """The finished trial with the best validation score for each strategy (fewer parameters break ties)."""
    best: dict[str, TrialRecord] = {}
    for r in finished(records):
        current = best.get(r.strategy)
        if current is None or (r.val_score, -r.params) > (current.val_score, -current.params):
            best[r.strategy] = r
    return best


def _row(r: TrialRecord) -> dict:
    hyper = {k: v for k, v in r.sampled.items() if k != "strategy"}
    score = "" if r.val_score is None else f"{r.val_score:.4f}"
    return {"trial": r.trial, "strategy": r.strategy, "status": str(r.status), "val_score": score,
            "params": "" if r.params is None else r.params, "epochs_done": r.epochs_done,
            "hyperparameters": json.dumps(hyper, sort_keys=True), "error": (r.error or "").strip().split("\n")[0]}


def write_leaderboard(records: list[TrialRecord], out: Path) -> None:
    """leaderboard.csv and leaderboard.md, best validation score first, failed trials last with their error."""
    ordered = sorted(records, key=lambda r: (r.val_score is None, -(r.val_score or 0.0), r.params or 0))
    rows = [_row(r) for r in ordered]
    with open(out / "leaderboard.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [str(row[c]).replace("|", "\\|") for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "leaderboard.md").write_text("\n".join(lines) + "\n")


def draw_pareto(records: list[TrialRecord], path: Path) -> None:
    """Score against parameter count for every finished trial, coloured by strategy, the front joined."""
    done = finished(records)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for strategy in sorted({r.strategy for r in done}):
        points = [r for r in done if r.strategy == strategy]
        ax.scatter([r.params for r in points], [r.val_score for r in points], label=strategy, alpha=0.8)
    front = sorted(pareto_front(records), key=lambda r: r.params)
    if front:
        ax.plot([r.params for r in front], [r.val_score for r in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation score")
    ax.set_title("Score against size (finished trials; early-stopped ones left out)")
    if done:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def optuna_plots(study, out: Path, objectives: list[str]) -> list[str]:
    """Optuna's own matplotlib plots where the study supports them; returns the files written.

    Optuna draws with pyplot, under whatever backend the caller has; each figure is closed once saved.
    """
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as ovm

    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []  # nothing to plot (every trial failed); Optuna would log a warning per plot
    plots = {"optimization_history": ovm.plot_optimization_history, "param_importances": ovm.plot_param_importances}
    if len(objectives) > 1:
        plots = {"pareto_front": ovm.plot_pareto_front}
    written = []
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                if name == "pareto_front":
                    ax = plot(study, target_names=[f"val {o}" for o in objectives])
                elif name == "param_importances":  # importance of reaching a high score
                    ax = plot(study, target=lambda t: -t.values[0], target_name="val score")
                else:
                    ax = plot(study, target=lambda t: t.values[0], target_name="val score")
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances need two finished trials with varying parameters
        figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        figure.set_size_inches(7, 4.5)
        figure.tight_layout()
        figure.savefig(out / f"optuna_{name}.png", dpi=110)
        plt.close(figure)
        written.append(f"optuna_{name}.png")
    return written
