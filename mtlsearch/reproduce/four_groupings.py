"""6. The four structure-learning strategies' task groupings compared on the same runs (beyond the papers).

Each comparison run records what its exported structure shares (measure.sharing_of): the grouping at the deepest
layer where tasks still share a block, read as `mtlsearch compare` reads it, and the share of each task's
parameters that another task uses. Groupings are compared by the adjusted Rand index, between seeds of one
strategy (is the grouping stable?) and between strategies on the same seed (do they agree?).
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import adjusted_rand_score

from ..structure.draw import affinity_heatmap
from .experiments import Results, Stat, comparison_config, comparison_runs, comparison_train, group_labels
from .findings import beats
from .measure import Run

GROUPING_STRATEGIES = ("task_routing", "sfg", "selective_sharing", "task_affinity")
CONTROL = "hard_sharing"  # every task in one group: the table's reference row


def grouping_runs(plan) -> set[Run]:
    """The comparison runs whose results must carry their grouping (section 6 reads it)."""
    return {r for r in comparison_runs(plan) if r.strategy in (*GROUPING_STRATEGIES, CONTROL) and
            (r.strategy != "sfg" or not r.config)}  # SFG's no-learned-allocation runs are section 3's


def reusable(job: Run, result: dict, plan) -> bool:
    """An earlier result can stand in for `job` when it has no error and carries what the report now reads."""
    return "error" not in result and ("kind" in result.get("grouping", {}) or job not in grouping_runs(plan))


def grouping_ari(a: dict, b: dict) -> float:
    """Adjusted Rand index of two recorded groupings (measure.sharing_of) of the same tasks."""
    return float(adjusted_rand_score(group_labels(a["groups"], a["tasks"]), group_labels(b["groups"], b["tasks"])))


def off_diagonal_mean(matrix) -> float:
    """Mean over ordered task pairs i != j of the share of task i's parameters task j also uses."""
    m = np.asarray(matrix, dtype=float)
    return float(m[~np.eye(len(m), dtype=bool)].mean()) if len(m) > 1 else 0.0


def _present(results: list[dict | None]) -> list[dict]:
    return [r for r in results if r is not None and "grouping" in r]


def rows(res: Results) -> tuple[list[dict], list[dict]]:
    """(one row per dataset and strategy, one row per dataset and pair of strategies with their same-seed ARI)."""
    table, pairs = [], []
    for ds in res.plan.datasets:
        by_strategy = {}
        for strategy in (s for s in (CONTROL, *GROUPING_STRATEGIES) if s in res.plan.strategies):
            config, train = comparison_config(strategy), comparison_train(res.plan, strategy)
            results = res.runs(ds, strategy, train, **config)
            if strategy != CONTROL:
                by_strategy[strategy] = results
            done = _present(results)
            table.append({
                "dataset": ds, "strategy": strategy, "config": {**config, **train},
                "epochs": res.plan.epochs_for(ds, strategy),
                "score": res.stat(results, lambda r: r["test"]["score"]),
                "params": res.stat(results, lambda r: r["params"]),
                "groups": Stat.of([len(r["grouping"]["groups"]) for r in done]),
                "layers": sorted({f"{r['grouping']['layer']} ({r['grouping']['kind']})" for r in done}),
                "shared": Stat.of([off_diagonal_mean(r["parameter_sharing"]) for r in done]),
                "seed_ari": Stat.of([grouping_ari(a["grouping"], b["grouping"]) for a, b in combinations(done, 2)]),
                "first": done[0]["grouping"]["groups"] if done else None})
        for a, b in combinations(by_strategy, 2):
            same_seed = [(x, y) for x, y in zip(by_strategy[a], by_strategy[b])
                         if x is not None and y is not None and "grouping" in x and "grouping" in y]
            pairs.append({"dataset": ds, "a": a, "b": b,
                          "ari": Stat.of([grouping_ari(x["grouping"], y["grouping"]) for x, y in same_seed])})
    return table, pairs


def like_with_like(a: dict, b: dict) -> bool:
    """Same data, epochs and trainer settings: only then are two rows' scores compared."""
    def trainer(row):
        return {k: v for k, v in row["config"].items() if k in ("optimizer", "lr", "momentum")}

    return a["dataset"] == b["dataset"] and a["epochs"] == b["epochs"] and trainer(a) == trainer(b)


def clear_differences(table: list[dict]) -> tuple[list[str], list[str]]:
    """('A above B on dataset' for every like-with-like pair whose scores differ beyond the larger seed spread,
    the like-with-like pairs that do not)."""
    found, within = [], []
    for i, a in enumerate(table):
        for b in table[i + 1:]:
            if not like_with_like(a, b) or not (a["score"].n and b["score"].n):
                continue
            high, low = (a, b) if a["score"].mean >= b["score"].mean else (b, a)
            if beats(high["score"], low["score"]) == "clear":
                found.append(f"{high['strategy']} above {low['strategy']} on {a['dataset']}")
            else:
                within.append(f"{high['strategy']} and {low['strategy']} on {a['dataset']}")
    return found, within


def _groups_text(groups: list[list[str]] | None) -> str:
    if groups is None:
        return "—"
    return "all together" if len(groups) == 1 else " ".join("[" + " ".join(g) + "]" for g in groups)


def section(table: list[dict], pairs: list[dict], figure: str, cell, markdown_table) -> str:
    """The section's text; `cell` and `markdown_table` are the report's formatters."""
    body = [[r["dataset"], r["strategy"], ", ".join(f"{k}={v}" for k, v in r["config"].items()) or "defaults",
             r["epochs"], cell(r["score"]), cell(r["params"], 0), cell(r["groups"], 1),
             ", ".join(str(x) for x in r["layers"]) or "—", cell(r["shared"], 2), cell(r["seed_ari"], 2),
             _groups_text(r["first"])] for r in table]
    header = ["dataset", "strategy", "settings", "epochs", "score", "parameters", "groups", "layer",
              "parameters shared with another task", "same grouping across seeds (ARI)", "seed 0's groups"]
    agree = [[p["dataset"], p["a"], p["b"], cell(p["ari"], 2)] for p in pairs]
    differences, within = clear_differences(table)
    verdict = ("Scores are compared only between rows with the same data, epochs and optimiser (Task Routing trains "
               "one task per batch for more epochs, Selective Sharing with its paper's SGD). Beyond the larger seed "
               "spread: " + ("; ".join(differences) if differences else "none") + ". Within it: " +
               ("; ".join(within) if within else "none") + ".")
    return "\n\n".join([
        "## 6. Four groupings compared",
        "Beyond the papers: the three papers' methods and look-ahead task affinity (`task_affinity`, after Fifty et "
        "al., NeurIPS 2021) each imply a grouping of the tasks. The same comparison runs as section 5 are read the "
        "way `mtlsearch compare` reads a run: at the deepest layer where tasks still share a block, tasks linked by "
        "shared blocks form a group (*layer*: that layer, counted from the input, and its kind: conv and linear are "
        "the trunk of the default backbone, branch the task branches after Selective Sharing's branch point). "
        "*Parameters shared with another task*: the share of a task's parameters that another task also uses, "
        "averaged over task pairs. *Same grouping across seeds*: the adjusted Rand index (1: identical, about 0: "
        "chance) between every two "
        f"seeds' groupings. task_affinity measures affinity on one hard-sharing network for its first "
        f"{next((r['config'].get('switch_epoch') for r in table if r['strategy'] == 'task_affinity'), '?')} "
        "epochs, then trains one trunk per chosen group (at most its `groups` setting, 4) for the rest. Hard "
        "sharing, every task in one group, is the reference row.",
        markdown_table(header, body), verdict,
        "Agreement between strategies: the adjusted Rand index of two strategies' groupings on the same seed (mean "
        "± spread over seeds). A strategy that puts all tasks in one group agrees with another such strategy (1) and "
        "with no grouping that splits the tasks (0).",
        markdown_table(["dataset", "strategy", "strategy", "same-seed ARI"], agree),
        f"![the four groupings](results/{figure})"])


def picture(table: list[dict], res: Results, path: Path) -> str:
    """Per dataset, seed 0's parameter sharing of each strategy (and task_affinity's look-ahead affinity), tasks
    in task_affinity's group order, its groups framed."""
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    panels_per_row = len(GROUPING_STRATEGIES) + 1
    fig = Figure(figsize=(3.6 * panels_per_row, 3.6 * len(datasets) + 0.6), layout="constrained")
    axes = fig.subplots(len(datasets), panels_per_row, squeeze=False)
    for row, ds in enumerate(datasets):
        seed0 = {s: res.trained.get(next((j for j in grouping_runs(res.plan) if j.dataset == ds and j.strategy == s
                                          and j.seed == res.plan.seeds[0]), None)) for s in GROUPING_STRATEGIES}
        reference = seed0.get("task_affinity") or next((r for r in seed0.values() if r and "grouping" in r), None)
        for ax in axes[row]:
            ax.axis("off")
        if reference is None or "grouping" not in reference:
            continue
        tasks = reference["grouping"]["tasks"]
        frames = [[tasks.index(t) for t in g] for g in reference["grouping"]["groups"]]
        panels = [(s, r["parameter_sharing"], "viridis", False) for s, r in seed0.items() if r and "grouping" in r]
        lookahead = (seed0.get("task_affinity") or {}).get("report", {}).get("task_affinity")
        if lookahead is not None:
            panels.append(("task_affinity: look-ahead affinity", lookahead, "RdBu_r", True))
        for ax, (title, matrix, cmap, symmetric) in zip(axes[row], panels):
            ax.axis("on")
            image = affinity_heatmap(ax, matrix, tasks, frames, f"{ds}\n{title}", cmap=cmap, symmetric=symmetric)
            fig.colorbar(image, ax=ax, shrink=0.7)
    fig.suptitle("Seed 0: share of task i's parameters task j uses (row i, column j), and the look-ahead affinity; "
                 "frames: task_affinity's groups", fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return Path(path).name
