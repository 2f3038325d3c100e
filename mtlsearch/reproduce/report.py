"""RESULTS.md: how it was generated, a summary of the findings, then one section per experiment with its
table (what the paper reported next to what we measured), its verdict in plain words and its picture."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from ..training import TrainConfig
from . import findings as F
from . import papers, pictures
from .experiments import (Results, Stat, all_strategies, comparison_config, many_tasks, selective_sharing, sfg_depth,
                          sfg_vs_baselines, sigma_sweep)
from .plan import TR_SIGMA_FOR_COMPARISON


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(value: tuple[float, float] | None) -> str:
    return "—" if value is None else f"{value[0]:.1f} ± {value[1]:.2f}"


def mb(value) -> str:
    return "—" if value is None else f"{value / 1e6:,.1f}"


def cell(value, digits: int = 3) -> str:
    return value.text(digits) if isinstance(value, Stat) else ("—" if value is None else str(value))


def verdict_block(finding: F.Finding) -> str:
    return f"**Finding: {finding.title}. Paper: {finding.paper}. Here: {finding.verdict}.**\n\n{finding.text}"


def section_sigma(rows, plan, figure) -> tuple[str, F.Finding]:
    finding = F.sigma_finding(rows)
    tasks = {r["dataset"]: r["tasks"] for r in rows if r["tasks"]}
    epochs = "; ".join(f"{plan.epochs_for(ds, 'task_routing')} on {ds} against {plan.epochs_for(ds, 'hard_sharing')} "
                       f"for hard sharing"
                       + (f" ({ds} has {tasks[ds]} tasks, so one task per batch gives each task "
                          f"1/{tasks[ds]} of the updates of an all-task epoch)" if ds in tasks else "")
                       for ds in plan.datasets)
    parts = ["## 1. Task Routing: the sharing ratio sigma",
             "Task Routing (partition masks: round(sigma*C) channels shared, the rest dealt out to the tasks; one task "
             "per batch as in Algorithm 1) on the default CNN backbone. Accuracy is the mean over the classification "
             "tasks (on multidigits: the two 10-class digit tasks and the three binary tasks); precision and recall "
             "are the means over the binary tasks, as in Table 2; the regression task (digit sum) enters only its "
             "own R² column and the score (the mean of every task's primary metric). The paper's columns are its "
             "Table 2 for the closest set-up: FashionMNIST (10 one-vs-all tasks) next to digits, Zappos50K "
             f"(4 heterogeneous tasks) next to multidigits. Paper values in %, ours as fractions. Epochs: {epochs}."]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        has_r2 = any(r["r2"].n for r in mine)
        paper_name = mine[0]["paper_dataset"] or "—"
        header = ["sigma", f"paper acc. ({paper_name})", "paper prec.", "paper rec.", "accuracy", "precision",
                  "recall"] + (["R²"] if has_r2 else []) + ["score"]
        body = []
        for r in mine:
            p = r["paper"] or (None, None, None)
            body.append([f"{r['sigma']:g}", pct(p[0]), pct(p[1]), pct(p[2]), cell(r["accuracy"]),
                         cell(r["precision"]), cell(r["recall"])] + ([cell(r["r2"])] if has_r2 else [])
                        + [cell(r["score"])])
        parts += [f"### {ds}", table(header, body)]
        notes = [f"- sigma={r['sigma']:g} warned: {w}" for r in mine for w in r.get("warnings", [])]
        if notes:
            parts.append("\n".join(notes))
    parts += [verdict_block(finding), f"![Task Routing sigma curves](results/{figure})"]
    return "\n\n".join(parts), finding


def section_scaling(rows, plan, figure) -> tuple[str, F.Finding]:
    finding = F.scaling_finding(rows)
    by = {(r["method"], r["n_tasks"]): r for r in rows}
    body = []
    for n in sorted({r["n_tasks"] for r in rows}):
        line = [n]
        for method in plan.cost_methods:
            r = by.get((method, n))
            ran = papers.TR_TABLE3_RAN.get(method, {}).get(n)
            line.append("ran" if ran else ("n/a" if ran is False else "—"))
            if r is None or r["status"] != "ran":
                line += [r["status"] if r else "—", "", "", ""]
            else:
                line += [f"{r['step_ms']:,.1f}", f"{r['params']:,}", mb(r["param_bytes"] + r["optimizer_bytes"]),
                         mb(r["peak_rss_growth"])]
        body.append(line)
    header = ["tasks"]
    for method in plan.cost_methods:
        name = method.replace("_", " ")
        header += [f"paper: {name}", f"{name}: step (ms)", "parameters", "params + Adam (MB)", "peak RSS growth (MB)"]
    text = ("A training step as the trainer takes it (Task Routing: one task drawn per batch, its loss only, as in "
            f"Algorithm 1, sigma = {TR_SIGMA_FOR_COMPARISON}; cross-stitch: every task's loss), "
            f"batch {plan.cost_batch}, random 1x8x8 inputs "
            f"with random binary labels (only cost is measured), default CNN backbone, one thread. Median of "
            f"{plan.cost_steps} timed steps after {plan.cost_warmup} warm-up steps. Memory: parameter bytes plus Adam "
            "state once every task has been trained, and the growth of the process's peak resident memory over "
            "building and training (a fresh process per measurement; kernel peak mark reset at the start). "
            f"A count is not run when the smaller counts extrapolate to more than {plan.cost_budget_seconds:.0f} s or "
            f"{plan.cost_budget_bytes / 1e9:.0f} GB. The paper's columns say whether each method ran at that "
            "count in its Table 3 (UCSD-Birds; it reports accuracy there, not cost).")
    notes = [f"- {r['method'].replace('_', ' ')} at {r['n_tasks']} tasks warned: {w}"
             for r in rows for w in r.get("warnings", [])]
    return "\n\n".join(["## 2. Task Routing with many tasks: cost", text, table(header, body), "\n".join(notes),
                        verdict_block(finding), f"![cost against task count](results/{figure})"]), finding


def section_sfg(depth_rows, baseline_rows, figure) -> tuple[str, list[F.Finding]]:
    depth, versus = F.depth_finding(depth_rows), F.sfg_baselines_finding(baseline_rows)
    body = [[r["dataset"], r["layer"], r["type"], r["width"], cell(r["share"], 2), cell(r["first_share"], 2),
             cell(r["entropy"], 2)] for r in depth_rows]
    header = ["dataset", "layer", "type", "kernels", "task-specific share (end)", "after epoch 1", "entropy of p"]
    vs = [[r["dataset"], r["strategy"], cell(r["score"]), cell(r["accuracy"]), cell(r["r2"]), cell(r["params"], 0)]
          for r in baseline_rows]
    parts = ["## 3. Stochastic Filter Groups",
             "Share of each trunk layer's kernels whose most probable group (argmax p) is a task's own rather than the "
             "shared group, at the end of training, with the strategy's default settings. The paper (poster and "
             f"abstract; no table in the seed texts): {papers.SFG_DEPTH_CLAIM}.",
             table(header, body), verdict_block(depth), f"![SFG share by depth](results/{figure})",
             "### SFG against the baselines",
             f"The paper: {papers.SFG_BASELINE_CLAIM} (no numbers in the seed texts). Rule: reproduced on a dataset "
             "when SFG beats every baseline by more than the seed spread, not reproduced when it beats none.",
             table(["dataset", "strategy", "score", "accuracy (classification)", "R² (regression)", "parameters"],
                   vs),
             verdict_block(versus)]
    return "\n\n".join(parts), [depth, versus]


def section_selective_sharing(rows, figure) -> tuple[str, list[F.Finding]]:
    finding, grouping = F.selective_sharing_finding(rows), F.grouping_finding(rows)
    hard = next((r for r in rows if r["method"] == "hard_sharing"), None)
    paper_hard = papers.SS_OMNIART["hard_sharing"]["params"]
    body = []
    for r in rows:
        p = r["paper"]
        ratio = f"{r['params'].mean / hard['params'].mean:.2f}" if hard and r["params"].n and hard["params"].n else "—"
        body.append([r["method"], f"{p['params']:,}" if p else "not in table",
                     f"{p['params'] / paper_hard:.2f}" if p else "—", cell(p and p["branches"]), cell(p and p["lock"]),
                     f"{papers.mean_accuracy(r['method']):.1f}" if p else "—",
                     cell(r["score"]), cell(r["params"], 0), ratio, cell(r["branches"], 1), _lock(r),
                     cell(r["ari"], 2)])
    header = ["method", "paper params (OmniArt)", "paper params / MTL", "paper branches", "paper lock epoch",
              "paper mean acc. (%)", "score (digits)", "parameters", "params / hard sharing", "branches",
              "lock epoch", "ARI (synthetic)"]
    text = ("Selective Sharing with each clustering criterion on digits (10 one-vs-all tasks, the paper's MNIST "
            "set-up), next to the single-task (STL) and hard-sharing (MTL) baselines, with the paper's OmniArt "
            "table (7 tasks; its mean over the six classification accuracies). The paper's MNIST accuracy with "
            f"similarity is {papers.SS_MNIST_SIMILARITY_ACCURACY:.1f}%. The adjusted Rand index compares the final "
            "groups with the planted groups of `synthetic` (8 binary and regression tasks in 4 groups; 1 = exact, "
            "0 = chance); the paper has no such measurement. Lock epoch: the epoch after which clustering stopped "
            "('—' when it did not stop within the epochs run).")
    parts = ["## 4. Selective Sharing: the four criteria", text, table(header, body), verdict_block(finding),
             verdict_block(grouping), f"![Selective Sharing criteria](results/{figure})"]
    return "\n\n".join(parts), [finding, grouping]


def _lock(row) -> str:
    lock = row.get("lock")
    if not isinstance(lock, Stat):
        return "—"
    if not lock.n:
        return f"not locked (0 of {row['trained']} runs)" if row["trained"] else "—"
    partial = f" ({row['locked']} of {row['trained']} runs locked)" if row["locked"] < row["trained"] else ""
    return cell(lock, 1) + partial


def section_all(rows, figure) -> str:
    body = [[r["dataset"], r["strategy"], ", ".join(f"{k}={v}" for k, v in r["config"].items()) or "defaults",
             r["epochs"], cell(r["score"]), cell(r["params"], 0), cell(r["seconds"], 1), r["claim"] or "—",
             F.comparison_verdict(r, rows)] for r in rows]
    header = ["dataset", "strategy", "settings", "epochs", "score", "parameters", "training time (s)",
              "the paper's claim", "holds here?"]
    return "\n\n".join(["## 5. All strategies and baselines on the same problems",
                        "Test score of the best-validation epoch, parameters of the final model, wall time of "
                        "training (one thread per run, two runs at a time on two cores).", table(header, body),
                        f"![score against parameters](results/{figure})"])


def write_report(results: Results, out_dir: Path, seconds: float, command: str) -> Path:
    """Compute every table, draw every picture and write RESULTS.md (plus results/runs.json)."""
    plan = results.plan
    figures = out_dir / "results"
    figures.mkdir(parents=True, exist_ok=True)
    sigma, cost = sigma_sweep(results), many_tasks(results)
    depth, versus = sfg_depth(results), sfg_vs_baselines(results)
    ss, everything = selective_sharing(results), all_strategies(results)
    text1, f1 = section_sigma(sigma, plan, pictures.sigma_curves(sigma, figures / "task_routing_sigma.png"))
    text2, f2 = section_scaling(cost, plan, pictures.many_tasks(cost, figures / "task_routing_many_tasks.png"))
    text3, f3 = section_sfg(depth, versus, pictures.sfg_depth(depth, figures / "sfg_depth.png"))
    text4, f4 = section_selective_sharing(ss, pictures.selective_sharing(ss, figures / "selective_sharing.png"))
    text5 = section_all(everything, pictures.all_strategies(everything, figures / "all_strategies.png"))
    found = [f1, f2, *f3, *f4]
    summary = table(["finding", "the paper", "here"], [[f.title, f.paper, f"**{f.verdict}**"] for f in found])
    parts = [header(plan, seconds, command), _settings(results), "## Summary", summary, _rules(), text1, text2,
             text3, text4, text5, _errors(results)]
    path = out_dir / "RESULTS.md"
    path.write_text("\n\n".join(p for p in parts if p) + "\n")
    _write_raw(results, figures / "runs.json")
    return path


def header(plan, seconds: float, command: str) -> str:
    epochs = table(["dataset"] + sorted({s for per in plan.epochs.values() for s in per}),
                   [[ds] + [per.get(s, "—") for s in sorted({s for p in plan.epochs.values() for s in p})]
                    for ds, per in plan.epochs.items()])
    return "\n\n".join([
        "# Reproducing the papers' findings on the bundled data",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M')} in {seconds / 60:.1f} minutes "
        f"(plan `{plan.name}`). Machine: {os.cpu_count()} CPU cores, {platform.machine()}, {platform.system()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}; one thread per run, runs in parallel. "
        f"Seeds: {', '.join(map(str, plan.seeds))} (mean ± sample standard deviation over them). Every strategy "
        f"trains with the same trainer settings (Adam, learning rate {TrainConfig.lr}, batch {TrainConfig.batch_size}, "
        f"weight decay {TrainConfig.weight_decay}, the default backbone) and its own default settings "
        "unless a table says otherwise; the test score is that of the best validation epoch. Epochs per strategy:",
        epochs, "Regenerate every number and picture here with the same command." + SMOKE.get(plan.name, "")])


SMOKE = {name: (" **This is a smoke check (plan `%s`): a few epochs and one seed, so the numbers and verdicts below "
                "only show that the pipeline runs; they say nothing about the papers.**" % name)
         for name in ("quick", "smoke")}


def _settings(results: Results) -> str:
    """Every strategy's full settings as its comparison runs used them (the sweeps change only what they vary)."""
    body = []
    for strategy in results.plan.strategies:
        used = next((r["config"] for job, r in results.trained.items() if job.strategy == strategy and "config" in r
                     and dict(job.config) == comparison_config(strategy)), None)
        if used is not None:
            body.append([strategy, ", ".join(f"{k}={v}" for k, v in used.items()) or "(none)"])
    return "Strategy settings:\n\n" + table(["strategy", "settings"], body) if body else ""


def _rules() -> str:
    return ("How verdicts are decided (fixed before any run): A *beats* B when A's mean is higher; *clearly* when "
            "the margin exceeds the larger seed standard deviation of the two. *Equal or better* allows a shortfall "
            f"up to that spread (at least {F.EQUAL_TOLERANCE}). Each section states its rule. The data sets, "
            "backbones and scales differ from the papers (8x8 digits instead of FashionMNIST, CIFAR, UCSD-Birds or "
            "OmniArt), so the question is whether each method *behaves* as reported, not whether the numbers match.")


def _errors(results: Results) -> str:
    if not results.errors:
        return ""
    lines = [f"- {r.strategy} on {r.dataset}, seed {r.seed}, {dict(r.config) or 'defaults'}: {why}"
             for r, why in results.errors.items()]
    return "## Runs without a result\n\n" + "\n".join(lines)


def _write_raw(results: Results, path: Path) -> None:
    """Every run's result, for anyone who wants to recompute a table."""
    runs = [{"run": {"dataset": r.dataset, "strategy": r.strategy, "seed": r.seed, "epochs": r.epochs,
                     "settings": dict(r.config)}, "result": v} for r, v in results.trained.items()]
    costs = [{"cost": {"method": c.method, "tasks": c.n_tasks, "settings": dict(c.config)}, "result": v}
             for c, v in results.costs.items()]
    path.write_text(json.dumps({"plan": results.plan.describe(), "runs": runs, "costs": costs}, default=str) + "\n")
