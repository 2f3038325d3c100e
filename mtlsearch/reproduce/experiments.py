"""The five experiments: which runs each needs, and one function per experiment turning results into rows.

Rows are plain dicts; a measured cell is a `Stat` (mean, spread over seeds). Runs are shared between
experiments when they are the same run (e.g. Task Routing at sigma = 0.4 is in the sweep and the comparison).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import adjusted_rand_score

from . import papers
from .measure import Cost, Run, run
from .plan import AFFINITY_SWITCH_EPOCH, TR_SIGMA_FOR_COMPARISON, Plan


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds (runs that failed are counted in `failed`)."""

    values: tuple[float, ...]
    failed: int = 0

    @classmethod
    def of(cls, values, failed: int = 0) -> "Stat":
        """None or NaN values are left out (a metric the problem does not have); `failed` counts lost runs."""
        return cls(tuple(float(v) for v in values if v is not None and not math.isnan(float(v))), failed)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    def text(self, digits: int = 3, scale: float = 1.0) -> str:
        """"0.973 ± 0.004" (one seed: "0.973"; no successful run: "failed")."""
        if not self.values:
            return "failed" if self.failed else "n/a"
        mean = f"{self.mean * scale:,.{digits}f}"
        spread = f" ± {self.std * scale:,.{digits}f}" if self.n > 1 else ""
        lost = f" ({self.failed} failed)" if self.failed else ""
        return mean + spread + lost


@dataclass
class Results:
    """Training results by Run and cost results by Cost, as the runner returns them."""

    trained: dict
    costs: dict
    plan: Plan
    errors: dict = field(default_factory=dict)  # Run -> why it has no result
    reused: int = 0  # training results taken from an earlier generation's runs.json
    reused_costs: int = 0  # cost measurements taken from it

    def runs(self, dataset: str, strategy: str, train: dict | None = None, epochs_of: str | None = None,
             **config) -> list[dict | None]:
        """The result of every seed of one setting; None (and an entry in `errors`) for a failed run. A dataset
        naming `{seed}` is formatted per seed (each seed its own planted problem); `epochs_of`: the strategy
        whose epochs the run had (default `strategy`)."""
        epochs = self.plan.epochs_for(dataset, epochs_of or strategy)
        return [self.result(run(dataset.format(seed=seed), strategy, seed, epochs, train, **config))
                for seed in self.plan.seeds]

    def result(self, job: Run) -> dict | None:
        result = self.trained.get(job)
        if result is None or "error" in result:
            self.errors[job] = (result or {}).get("error", "not run")
            return None
        return result

    @staticmethod
    def still_rising(results: list[dict | None]) -> str:
        """'k of n': runs whose best validation epoch was their last (the epoch budget, not convergence, ended
        them)."""
        done = [r for r in results if r is not None]
        return f"{sum(r['best_epoch'] == len(r['val_scores']) for r in done)} of {len(done)}"

    def stat(self, results: list[dict | None], fn) -> Stat:
        """fn over the runs that have a result; the others are counted as failed."""
        return Stat.of([fn(r) for r in results if r is not None], failed=sum(r is None for r in results))


# what each run's test metrics mean for a table
def metrics_of(result: dict) -> dict[str, float | None]:
    """Accuracy over classification tasks (binary and multiclass), precision and recall over binary tasks,
    R² over regression tasks (each the mean over those tasks; None when the problem has none), the score."""
    tasks, types = result["test"]["tasks"], result["task_types"]

    def mean(kinds, metric):
        values = [tasks[t][metric] for t, kind in types.items() if kind in kinds]
        return float(np.mean(values)) if values else None

    return {"accuracy": mean(("binary", "multiclass"), "accuracy"), "precision": mean(("binary",), "precision"),
            "recall": mean(("binary",), "recall"), "r2": mean(("regression",), "r2"),
            "score": result["test"]["score"]}


# Task Routing as the paper describes it: sigma is the share of channels all tasks use (partition masks) and
# one task is trained per batch (Algorithm 1); pinned so a change of defaults cannot change the experiment.
TR_PAPER_SETTINGS = {"mask_mode": "partition", "task_sampling": "one"}
# The SFG poster's baseline: p stays uniform and is never trained, kernels are still sampled; evaluated by the
# Monte Carlo average over sampled allocations (a uniform p has no argmax).
SFG_FIXED = {"learn_allocation": False, "inference": "mc"}
SFG_FIXED_NAME = "sfg, no learned allocation"


def tr_config(sigma: float) -> dict:
    return {**TR_PAPER_SETTINGS, "sigma": float(sigma)}


def comparison_config(strategy: str) -> dict:
    """Settings of each strategy in the comparison: defaults, except those fixed a priori."""
    return {"task_routing": tr_config(TR_SIGMA_FOR_COMPARISON), "selective_sharing": {"criterion": "similarity"},
            "task_affinity": {"switch_epoch": AFFINITY_SWITCH_EPOCH}}.get(strategy, {})


def comparison_train(plan: Plan, strategy: str) -> dict:
    """Trainer settings in the comparison: a paper's own optimiser for its strategy (those runs are shared with
    its experiment), the trainer's default for the rest."""
    return plan.optimiser(strategy)


def synthetic_name(own: float) -> str:
    """The planted problem at difficulty `own`; `{seed}` is filled per seed."""
    return f"synthetic:own={own:g},seed={{seed}}"


# the runs every experiment needs
def sigma_runs(plan: Plan) -> list[Run]:
    return [run(ds, "task_routing", seed, plan.epochs_for(ds, "task_routing"), plan.optimiser("task_routing"),
                **tr_config(sigma))
            for ds in plan.datasets for sigma in plan.sigmas for seed in plan.seeds]


def comparison_runs(plan: Plan) -> list[Run]:
    runs = [run(ds, s, seed, plan.epochs_for(ds, s), comparison_train(plan, s), **comparison_config(s))
            for ds in plan.datasets for s in plan.strategies for seed in plan.seeds]
    if "sfg" in plan.strategies:
        runs += [run(ds, "sfg", seed, plan.epochs_for(ds, "sfg"), **SFG_FIXED)
                 for ds in plan.datasets for seed in plan.seeds]
    return runs


def criteria_runs(plan: Plan) -> list[Run]:
    ss = plan.optimiser("selective_sharing")
    runs = [run(ds, "selective_sharing", seed, plan.epochs_for(ds, "selective_sharing"), ss, criterion=c)
            for ds in plan.datasets for c in plan.criteria for seed in plan.seeds]
    runs += [run(ds, "hard_sharing", seed, plan.epochs_for(ds, "selective_sharing"), ss)  # as epochs_of below
             for ds in plan.datasets for seed in plan.seeds]
    return runs + [run(synthetic_name(own).format(seed=seed), "selective_sharing", seed,
                       plan.epochs_for("synthetic", "selective_sharing"), ss, criterion=c)
                   for own in plan.owns for c in plan.criteria for seed in plan.seeds]


def all_runs(plan: Plan) -> list[Run]:
    return list(dict.fromkeys(sigma_runs(plan) + comparison_runs(plan) + criteria_runs(plan)))


def cost_chains(plan: Plan) -> list[list[Cost]]:
    """One chain per method, ascending task counts; Task Routing at the comparison sigma."""
    def config(method):
        return tuple(sorted(comparison_config(method).items()))

    return [[Cost(m, n, plan.cost_steps, plan.cost_warmup, plan.cost_batch, plan.cost_budget_seconds, config(m),
                  tuple(plan.cost_shape)) for n in sorted(plan.task_counts)] for m in plan.cost_methods]


# 1. Task Routing: sigma sweep
def sigma_sweep(res: Results) -> list[dict]:
    rows = []
    for ds in res.plan.datasets:
        kind = papers.TR_PAPER_DATASET.get(ds.split(":")[0], "")
        paper = papers.TR_TABLE2.get(kind, {})
        for sigma in res.plan.sigmas:
            results = res.runs(ds, "task_routing", res.plan.optimiser("task_routing"), **tr_config(sigma))
            known = next((r for r in results if r is not None), None)
            row = {"dataset": ds, "sigma": float(sigma), "paper": paper.get(round(float(sigma), 1)),
                   "paper_dataset": kind or None, "tasks": len(known["task_types"]) if known else None}
            for key in ("accuracy", "precision", "recall", "r2", "score"):
                row[key] = res.stat(results, lambda r, k=key: metrics_of(r)[k])
            row["warnings"] = sorted({w for r in results if r is not None for w in r.get("warnings", [])})
            row["still_rising"] = res.still_rising(results)
            rows.append(row)
    return rows


# 2. Task Routing with many tasks: cost
COST_KEYS = ("step_ms", "steps_timed", "build_seconds", "task_updates", "part_bytes", "params", "param_bytes",
             "optimizer_bytes", "peak_rss_growth")


def many_tasks(res: Results) -> list[dict]:
    rows = []
    for chain in cost_chains(res.plan):
        for job in chain:
            result = res.costs.get(job, {"skipped": "not run"})
            row = {"method": job.method, "n_tasks": job.n_tasks,
                   "paper_ran": papers.TR_TABLE3_RAN.get(job.method, {}).get(job.n_tasks)}
            if "skipped" in result or "error" in result:
                row["status"] = result.get("skipped") or f"failed: {result['error']}"
            else:
                row.update(status="ran", **{k: result[k] for k in COST_KEYS}, warnings=result.get("warnings", []))
            rows.append(row)
    return rows


# 3. SFG: task-specific share by depth, and SFG against the baselines
def sfg_layers(result: dict, epoch: int) -> list[dict]:
    """The per-layer summary SFG logged at the end of `epoch` (-1: the last epoch)."""
    return result["logs"][epoch]["sfg"]["layers"]


def sfg_depth(res: Results) -> list[dict]:
    rows = []
    for ds in res.plan.datasets:
        results = res.runs(ds, "sfg")
        known = next((r for r in results if r is not None), None)
        if known is None:
            continue
        for i, layer in enumerate(sfg_layers(known, -1)):
            rows.append({"dataset": ds, "layer": layer["layer"], "type": layer["type"], "width": layer["width"],
                         "share": res.stat(results, lambda r, i=i: sfg_layers(r, -1)[i]["task_specific_share"]),
                         "first_share": res.stat(results, lambda r, i=i: sfg_layers(r, 0)[i]["task_specific_share"]),
                         "entropy": res.stat(results, lambda r, i=i: sfg_layers(r, -1)[i]["entropy"]),
                         "tasks": len(known["task_types"])})
    return rows


def sfg_vs_baselines(res: Results) -> list[dict]:
    """SFG, the paper's three baselines and SFG with no learned allocation, on every compared dataset."""
    rows = []
    for dataset in res.plan.datasets:
        for method in ("sfg", "single_task", "hard_sharing", "cross_stitch", SFG_FIXED_NAME):
            strategy, config = ("sfg", SFG_FIXED) if method == SFG_FIXED_NAME else (method, {})
            if strategy not in res.plan.strategies:
                continue
            results = res.runs(dataset, strategy, **config)
            rows.append({"dataset": dataset, "method": method,
                         "score": res.stat(results, lambda r: r["test"]["score"]),
                         "accuracy": res.stat(results, lambda r: metrics_of(r)["accuracy"]),
                         "r2": res.stat(results, lambda r: metrics_of(r)["r2"]),
                         "params": res.stat(results, lambda r: r["params"])})
    return rows


# 4. Selective Sharing: the four criteria against hard sharing and the random control; the difficulty curve
def group_labels(groups: list[list[str]], task_names: list[str]) -> list[int]:
    where = {t: g for g, members in enumerate(groups) for t in members}
    return [where[t] for t in task_names]


def ari(result: dict) -> float:
    """Adjusted Rand index of the final grouping against the planted groups."""
    names = list(result["task_types"])
    return float(adjusted_rand_score(result["true_groups"], group_labels(result["report"]["final_groups"], names)))


def selective_sharing(res: Results) -> list[dict]:
    rows, ss = [], res.plan.optimiser("selective_sharing")
    for ds in res.plan.datasets:
        if "hard_sharing" in res.plan.strategies:
            results = res.runs(ds, "hard_sharing", ss, epochs_of="selective_sharing")
            rows.append({"dataset": ds, "method": "hard_sharing", "paper": papers.SS_OMNIART["hard_sharing"],
                         "score": res.stat(results, lambda r: r["test"]["score"]),
                         "params": res.stat(results, lambda r: r["params"]),
                         "branches": res.stat(results, lambda r: len(r["task_types"])), "lock": None})
        for criterion in res.plan.criteria:
            results = res.runs(ds, "selective_sharing", ss, criterion=criterion)
            rows.append({"dataset": ds, "method": criterion, "paper": papers.SS_OMNIART.get(criterion),
                         "score": res.stat(results, lambda r: r["test"]["score"]),
                         "params": res.stat(results, lambda r: r["params"]),
                         "branches": res.stat(results, lambda r: len(r["report"]["final_groups"])),
                         "lock": res.stat(results, lambda r: r["report"]["lock_epoch"]),  # None: never locked
                         "locked": sum(r is not None and r["report"]["lock_epoch"] is not None for r in results),
                         "trained": sum(r is not None for r in results),
                         "groups": [r["report"]["final_groups"] for r in results if r is not None]})
    return rows


def discovery_curve(res: Results) -> list[dict]:
    """The ARI of every criterion's final groups on synthetic:own=<own>, per knob value (3 seeds: 3 problems)."""
    ss = res.plan.optimiser("selective_sharing")
    return [{"method": criterion, "own": float(own),
             "ari": res.stat(res.runs(synthetic_name(own), "selective_sharing", ss, criterion=criterion), ari)}
            for criterion in res.plan.criteria for own in res.plan.owns]


# 5. Every strategy and baseline on the same problems
def all_strategies(res: Results) -> list[dict]:
    rows = []
    for ds in res.plan.datasets:
        for strategy in res.plan.strategies:
            config, train = comparison_config(strategy), comparison_train(res.plan, strategy)
            results = res.runs(ds, strategy, train, **config)
            rows.append({"dataset": ds, "strategy": strategy, "config": {**config, **train},
                         "epochs": res.plan.epochs_for(ds, strategy),
                         "score": res.stat(results, lambda r: r["test"]["score"]),
                         "params": res.stat(results, lambda r: r["params"]),
                         "seconds": res.stat(results, lambda r: r["seconds"]),
                         "still_rising": res.still_rising(results), "claim": papers.CLAIMS.get(strategy)})
    return rows
