"""Comparing the task groupings that runs of any strategies on one problem imply.

A run's grouping is read from its structure: at each layer, tasks are together when a chain of co-used blocks
links them (views.task_groups); the grouping that stands for the run is the one at its deepest layer where some
block is still used by more than one task (every task alone when none is). Runs are compared pairwise by the
adjusted Rand index of these groupings, and with the problem's planted groups where it has them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import adjusted_rand_score

from .errors import UserError
from .structure.draw import affinity_heatmap
from .structure.graph import SharingStructure
from .structure.views import deepest_grouping, layers, task_affinity, task_groups


@dataclass
class RunGroups:
    """What one run says about its tasks: groups per layer, the grouping that stands for it, its matrices."""

    label: str
    path: Path
    structure: SharingStructure
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def per_layer(self) -> dict[int, list[list[str]]]:
        return {layer: task_groups(self.structure, layer) for layer in layers(self.structure)}

    @property
    def grouping(self) -> tuple[int | None, list[list[str]]]:
        """(layer, groups) at the deepest layer where tasks still share a block; (None, every task alone)."""
        return deepest_grouping(self.structure)

    @property
    def lookahead(self) -> np.ndarray | None:
        """The look-ahead task affinity the run measured (task_affinity runs), in the structure's task order."""
        matrix, tasks = self.metrics.get("task_affinity"), self.metrics.get("affinity_tasks")
        if not isinstance(matrix, list) or tasks != self.structure.task_names:
            return None
        return np.asarray(matrix, dtype=float)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON file ({err})") from None
    return data if isinstance(data, dict) else {}


def _load_run(path: Path, label: str) -> RunGroups:
    from .structure.frozen import structure_files

    structure = SharingStructure.load_json(structure_files(path, need_weights=False).structure)
    config = next((_read_json(d / "config.json") for d in (path, path.parent) if (d / "config.json").is_file()), {})
    metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    return RunGroups(label, path, structure, config, metrics)


def expand(run_dirs) -> list[RunGroups]:
    """Each given directory as a run; a search directory (holding best/<strategy>/) as its best trials."""
    runs = []
    for given in run_dirs:
        path = Path(given)
        if not path.is_dir():
            raise UserError(f"{path}: no such directory (give run directories or a search directory)")
        best = sorted(d for d in (path / "best").glob("*") if d.is_dir()) if (path / "best").is_dir() else []
        if best and not (path / "structure.json").is_file():
            runs += [_load_run(d, f"{path.name}/{d.name}") for d in best]
        else:
            runs.append(_load_run(path, path.name))
    if not runs:
        raise UserError("compare needs at least one run directory")
    first = runs[0].structure.task_names
    for run in runs[1:]:
        if sorted(run.structure.task_names) != sorted(first):
            raise UserError(f"{run.path} has tasks {', '.join(run.structure.task_names)} but {runs[0].path} has "
                            f"{', '.join(first)}; compare runs on the same problem")
    return runs


def planted_groups(runs: list[RunGroups], tasks: list[str]) -> tuple[list[list[str]] | None, str]:
    """The problem's planted groups (from the first run's dataset), or None and why not."""
    dataset = next((r.config.get("dataset") for r in runs if r.config.get("dataset")), None)
    if dataset is None:
        return None, "no config.json names the dataset"
    from .problems import load_problem

    data_root = next((r.config.get("data_root") for r in runs if r.config.get("data_root")), None)
    try:
        problem = load_problem(dataset, data_root)
    except UserError as err:
        return None, f"dataset {dataset!r} could not be loaded ({err})"
    if problem.true_groups is None or sorted(problem.task_names) != sorted(tasks):
        return None, f"dataset {dataset!r} has no planted groups"
    label = dict(zip(problem.task_names, problem.true_groups))
    groups: dict[int, list[str]] = {}
    for task in tasks:
        groups.setdefault(label[task], []).append(task)
    return list(groups.values()), dataset


def labels_of(groups: list[list[str]], tasks: list[str]) -> list[int]:
    where = {t: k for k, g in enumerate(groups) for t in g}
    return [where[t] for t in tasks]


def ari(a: list[list[str]], b: list[list[str]], tasks: list[str]) -> float:
    """Adjusted Rand index of two groupings of `tasks` (1: the same, about 0: as alike as chance)."""
    return float(adjusted_rand_score(labels_of(a, tasks), labels_of(b, tasks)))


def compare(run_dirs, out=None, overwrite: bool = False) -> dict:
    """Compare the task groupings of runs on one problem; write compare.json and compare.png into `out`.

    Args:
        run_dirs: run directories (`mtlsearch train`, retrain, a search's best/<strategy>/) of any strategies on
            the same problem's tasks; a search directory stands for its best trial of each strategy.
        out: where to write compare.json and compare.png (None: write nothing); a non-empty directory is refused
            unless `overwrite`.

    Returns:
        {"tasks", "planted", "runs": [{label, path, strategy, layer, groups, groups_per_layer, planted_ari,
        test_score, params}], "pairwise_ari": [[...]]}: the pairwise matrix is in the order of "runs".

    Example:
        >>> result = compare(["runs/ss", "runs/ta"], out="runs/compare")
        >>> result["pairwise_ari"][0][1]
        1.0
    """
    runs = expand(run_dirs)
    tasks = runs[0].structure.task_names
    planted, source = planted_groups(runs, tasks)
    rows = []
    for run in runs:
        layer, groups = run.grouping
        test = run.metrics.get("test") or {}
        rows.append({"label": run.label, "path": str(run.path), "strategy": run.structure.strategy, "layer": layer,
                     "groups": groups, "groups_per_layer": {str(k): v for k, v in run.per_layer.items()},
                     "planted_ari": None if planted is None else ari(groups, planted, tasks),
                     "test_score": test.get("score"), "params": run.metrics.get("params")})
    pairwise = [[ari(a["groups"], b["groups"], tasks) for b in rows] for a in rows]
    result = {"tasks": tasks, "planted": planted, "planted_from": source, "runs": rows, "pairwise_ari": pairwise}
    if out is not None:
        from .run import prepare_out_dir, write_json

        directory = prepare_out_dir(out, overwrite)
        write_json(directory / "compare.json", result)
        draw_comparison(runs, rows, tasks, planted, directory / "compare.png")
    return result


def draw_comparison(runs: list[RunGroups], rows: list[dict], tasks: list[str], planted, path) -> Path:
    """Every run's parameter-sharing affinity (and look-ahead affinity where measured) side by side, tasks in one
    order: the planted groups' where known, else the first run's grouping, framed on every panel."""
    reference = planted or rows[0]["groups"]
    order = [tasks.index(t) for g in reference for t in g]
    names = [tasks[i] for i in order]
    frames, start = [], 0
    for g in reference:
        frames.append(list(range(start, start + len(g))))
        start += len(g)
    panels = []
    for run, row in zip(runs, rows):
        own = [run.structure.task_names.index(t) for t in names]
        known = "" if row["planted_ari"] is None else f", planted ARI {row['planted_ari']:.2f}"
        sharing = task_affinity(run.structure)[np.ix_(own, own)]
        panels.append((sharing, f"{row['label']}: parameters shared{known}", False))
        if run.lookahead is not None:
            panels.append((run.lookahead[np.ix_(own, own)], f"{row['label']}: look-ahead affinity", True))
    size = max(3.5, min(0.25 * len(tasks) + 2.0, 8.0))
    fig = Figure(figsize=((size + 1.2) * len(panels), size + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (matrix, title, lookahead) in zip(axes, panels):
        image = affinity_heatmap(ax, matrix, names, frames, title, cmap="RdBu_r" if lookahead else "viridis",
                                 symmetric=lookahead)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Task groupings compared (row i, column j; frames: " + ("planted groups" if planted else
                 f"{rows[0]['label']}'s groups") + ")", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def describe(result: dict) -> str:
    """The comparison as text: each run's groups and scores, then the pairwise adjusted Rand index."""
    def text(groups):
        return " ".join("[" + " ".join(g) + "]" for g in groups)

    lines = []
    if result["planted"] is not None:
        lines.append(f"planted groups ({result['planted_from']}): {text(result['planted'])}")
    else:
        lines.append(f"no planted groups to score against: {result['planted_from']}")
    for row in result["runs"]:
        scores = [f"planted ARI {row['planted_ari']:.2f}" if row["planted_ari"] is not None else "",
                  f"test score {row['test_score']:.4f}" if row["test_score"] is not None else "",
                  f"{row['params']:,} parameters" if row["params"] is not None else ""]
        where = "no layer shares" if row["layer"] is None else f"layer {row['layer']}"
        lines.append(f"{row['label']} ({row['strategy']}, {where}): {text(row['groups'])}")
        if any(scores):
            lines.append("    " + ", ".join(s for s in scores if s))
        for layer, groups in row["groups_per_layer"].items():
            lines.append(f"    layer {layer:>2}: {text(groups)}")
    labels = [row["label"] for row in result["runs"]]
    if len(labels) > 1:
        width = max(len(label) for label in labels)
        lines += ["", "adjusted Rand index between runs' groupings:",
                  " " * (width + 2) + " ".join(f"{i:>6}" for i in range(1, len(labels) + 1))]
        for i, (label, row) in enumerate(zip(labels, result["pairwise_ari"]), 1):
            lines.append(f"{label:<{width}}  " + " ".join(f"{v:>6.2f}" for v in row) + f"   ({i})")
    return "\n".join(lines)
