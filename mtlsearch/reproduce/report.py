"""RESULTS.md: how it was generated, a summary of the findings, then one section per experiment with its
table (what the paper reported next to what we measured), its verdict in plain words and its picture."""
from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..training import TrainConfig
from . import findings as F
from . import four_groupings, papers, pictures
from .experiments import (Results, Stat, all_strategies, comparison_config, comparison_train, discovery_curve,
                          many_tasks, selective_sharing, sfg_depth, sfg_vs_baselines, sigma_sweep)
from .measure import Cost, run
from .plan import TR_SIGMA_FOR_COMPARISON, machine_bytes


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


def rule_block(finding: F.Finding) -> str:
    return f"**Rule** (fixed before any run): {finding.rule}"


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
             f"per batch as in Algorithm 1; the paper's optimiser, {_optimiser(plan, 'task_routing')}) on the default "
             "CNN backbone. Accuracy is the mean over the classification tasks (binary and multiclass); precision "
             "and recall are the means over the binary tasks, as in Table 2; a regression task enters only its own R² "
             "column and the score (the mean of every task's primary metric). The paper's columns are its Table 2 "
             "for the closest set-up: FashionMNIST (10 one-vs-all tasks) next to 10 one-vs-all tasks, Zappos50K "
             f"(4 heterogeneous tasks) next to MultiMNIST's 6. Paper values in %, ours as fractions. Epochs: {epochs}. "
             "'Best epoch = last' counts the runs whose best validation epoch was their last: where it is most of "
             "them, the epoch budget rather than convergence ended training, and sigmas are compared at equal "
             "budget.",
             rule_block(finding)]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        has_r2 = any(r["r2"].n for r in mine)
        paper_name = mine[0]["paper_dataset"] or "—"
        header = ["sigma", f"paper acc. ({paper_name})", "paper prec.", "paper rec.", "accuracy", "precision",
                  "recall"] + (["R²"] if has_r2 else []) + ["score", "best epoch = last"]
        body = []
        for r in mine:
            p = r["paper"] or (None, None, None)
            body.append([f"{r['sigma']:g}", pct(p[0]), pct(p[1]), pct(p[2]), cell(r["accuracy"]),
                         cell(r["precision"]), cell(r["recall"])] + ([cell(r["r2"])] if has_r2 else [])
                        + [cell(r["score"]), r["still_rising"]])
        parts += [f"### {ds}", table(header, body)]
        notes = [f"- sigma={r['sigma']:g} warned: {w}" for r in mine for w in r.get("warnings", [])]
        if notes:
            parts.append("\n".join(notes))
    parts += [verdict_block(finding), f"![Task Routing sigma curves](results/{figure})"]
    return "\n\n".join(parts), finding


def _optimiser(plan, strategy: str) -> str:
    train = plan.optimiser(strategy)
    if not train:
        return f"Adam at {TrainConfig.lr}"
    return f"{train['optimizer'].upper()} at learning rate {train['lr']:g}" + (
        f" with momentum {train['momentum']:g}" if "momentum" in train else "")


def section_scaling(rows, plan, figure) -> tuple[str, F.Finding]:
    ram = machine_bytes()
    finding = F.scaling_finding(rows, ram)
    by = {(r["method"], r["n_tasks"]): r for r in rows}
    body = []
    for n in sorted({r["n_tasks"] for r in rows}):
        line = [n]
        for method in plan.cost_methods:
            r = by.get((method, n))
            ran = papers.TR_TABLE3_RAN.get(method, {}).get(n)
            line.append("ran" if ran else ("n/a" if ran is False else "—"))
            if r is None or r["status"] != "ran":
                line += [r["status"] if r else "—", "", "", "", ""]
            else:
                line += [f"{r['step_ms']:,.1f}", f"{r['step_ms'] / r['task_updates']:,.1f}", f"{r['params']:,}",
                         mb(r["param_bytes"] + r["optimizer_bytes"]), mb(r["peak_rss_growth"])]
        body.append(line)
    header = ["tasks"]
    for method in plan.cost_methods:
        name = method.replace("_", " ")
        header += [f"paper: {name}", f"{name}: step (ms)", "per task-update (ms)", "parameters",
                   "params + Adam (MB)", "peak RSS growth (MB)"]
    shape = "x".join(map(str, plan.cost_shape))
    text = ("A training step as the trainer takes it (Task Routing: one task drawn per batch, its loss only, as in "
            f"Algorithm 1, sigma = {TR_SIGMA_FOR_COMPARISON}; cross-stitch: every task's loss), batch "
            f"{plan.cost_batch}, random {shape} inputs with random binary labels (only "
            f"cost is measured), default CNN backbone, Adam, one thread. Median CPU time of {plan.cost_steps} timed "
            f"steps after {plan.cost_warmup} warm-up steps; *per task-update* divides it by the task losses a step "
            "trains (1 for Task Routing, every task for cross-stitch), so both are compared per task trained. Memory: "
            "parameter bytes plus Adam state once every task has been trained, and the growth of the process's peak "
            "resident memory over building and training (a fresh process per measurement; kernel peak mark reset at "
            f"the start). This machine has {ram / 1e9:,.1f} GB of RAM; a count is measured only when the smaller "
            f"counts extrapolate to at most {plan.cost_budget_bytes / 1e9:,.1f} GB ({plan.cost_memory_share:.0%} of "
            f"it: two measurements run at once) and {plan.cost_budget_seconds:.0f} s. The paper's columns say "
            "whether each method ran at that count in its Table 3 (UCSD-Birds; it reports accuracy there, not cost).")
    notes = [f"- {r['method'].replace('_', ' ')} at {r['n_tasks']} tasks warned: {w}"
             for r in rows for w in r.get("warnings", [])]
    return "\n\n".join(p for p in ["## 2. Task Routing with many tasks: cost", text, rule_block(finding),
                                    table(header, body), "\n".join(notes), verdict_block(finding),
                                    f"![cost against task count](results/{figure})"] if p), finding


def section_sfg(depth_rows, baseline_rows, figure) -> tuple[str, list[F.Finding]]:
    depth, versus = F.depth_finding(depth_rows), F.sfg_baselines_finding(baseline_rows)
    body = [[r["dataset"], r["layer"], r["type"], r["width"], cell(r["share"], 2),
             f"{F.chance_share(r['tasks']):.2f}", cell(r["first_share"], 2), cell(r["entropy"], 2)]
            for r in depth_rows]
    header = ["dataset", "layer", "type", "kernels", "task-specific share (end)", "chance T/(T+1)", "after epoch 1",
              "entropy of p"]
    vs = [[r["dataset"], r["method"], cell(r["score"]), cell(r["accuracy"]), cell(r["r2"]), cell(r["params"], 0)]
          for r in baseline_rows]
    parts = ["## 3. Stochastic Filter Groups",
             "Share of each trunk layer's kernels whose most probable group (argmax p) is a task's own rather than the "
             "shared group, at the end of training, with the strategy's default settings (Adam). The paper (poster "
             f"and abstract, which give no table): {papers.SFG_DEPTH_CLAIM}.",
             rule_block(depth), table(header, body), verdict_block(depth), f"![SFG share by depth](results/{figure})",
             "### SFG against the baselines",
             f"The paper: {papers.SFG_BASELINE_CLAIM} (the poster and abstract give no numbers); the poster also "
             "compares with an MTL network with no learned allocation. Every row trains with Adam; SFG evaluates its "
             "argmax allocation, the no-learned-allocation row (whose p stays uniform, so it has no argmax) the Monte "
             "Carlo average over sampled allocations.",
             rule_block(versus),
             table(["dataset", "method", "score", "accuracy (classification)", "R² (regression)", "parameters"], vs),
             verdict_block(versus)]
    return "\n\n".join(parts), [depth, versus]


def section_selective_sharing(rows, curve, plan, figures) -> tuple[str, list[F.Finding]]:
    criteria, grouping = F.criteria_finding(rows), F.grouping_finding(curve)
    paper_hard = papers.SS_OMNIART["hard_sharing"]["params"]
    body = []
    for r in rows:
        p, hard = r["paper"], next(h for h in rows if h["dataset"] == r["dataset"] and h["method"] == "hard_sharing")
        ratio = f"{r['params'].mean / hard['params'].mean:.2f}" if r["params"].n and hard["params"].n else "—"
        body.append([r["dataset"], r["method"], f"{p['params'] / paper_hard:.2f}" if p else "not in table",
                     cell(p and p["branches"]), f"{papers.mean_accuracy(r['method']):.1f}" if p else "—",
                     cell(r["score"]), cell(r["params"], 0), ratio, cell(r["branches"], 1), _lock(r)])
    header = ["dataset", "method", "paper params / MTL (OmniArt)", "paper branches", "paper mean acc. (%)",
              "score", "parameters", "params / hard sharing", "branches", "lock epoch"]
    groups = [f"- {r['dataset']}, {r['method']}, seed {plan.seeds[0]}: "
              + " | ".join(", ".join(g) for g in r["groups"][0]) for r in rows
              if r["method"] == "similarity" and r.get("groups")]
    curve_header = ["own"] + list(dict.fromkeys(r["method"] for r in curve))
    curve_body = [[f"{own:g}"] + [cell(next(r["ari"] for r in curve if r["own"] == own and r["method"] == m), 2)
                                  for m in curve_header[1:]]
                  for own in dict.fromkeys(r["own"] for r in curve)]
    text = ("Selective Sharing with each clustering criterion next to hard sharing (MTL), every run with the "
            f"paper's optimiser ({_optimiser(plan, 'selective_sharing')}) and Selective Sharing's epochs (hard "
            "sharing here is its own run, not the Adam run of sections 3 and 5); random is the "
            "paper's control (groups of the sizes similarity finds, filled at random). On mnist-5k the tasks are the "
            "paper's MNIST set-up (10 one-vs-all tasks; its accuracy with similarity "
            f"{papers.SS_MNIST_SIMILARITY_ACCURACY:.1f}%). The paper's columns are its OmniArt table (7 tasks; mean "
            "over the six classification accuracies). Lock epoch: the epoch after which clustering stopped.")
    curve_text = ("### Does it group related tasks? The difficulty curve\n\nThe same strategy on the planted "
                  "problem `synthetic:own=<own>,seed=<seed>` (8 binary and regression tasks in 4 planted groups; each "
                  "seed its own problem), for every value of the knob own, with the same optimiser and "
                  f"{plan.epochs_for('synthetic', 'selective_sharing')} epochs. Cells: adjusted Rand index (ARI) of "
                  "the final groups against the planted ones (1 = exact, 0 = chance), mean ± std over seeds.")
    bars = pictures.selective_sharing(rows, figures / "selective_sharing.png")
    parts = ["## 4. Selective Sharing: the criteria against the random control", text, rule_block(criteria),
             table(header, body), verdict_block(criteria),
             "Groups similarity found (the paper's MNIST groups include 2-3-5 and 6-8-9):\n\n" + "\n".join(groups)
             if groups else "",
             f"![Selective Sharing criteria](results/{bars})",
             curve_text, rule_block(grouping), table(curve_header, curve_body), verdict_block(grouping),
             f"![discovery curve](results/{pictures.discovery_curve(curve, figures / 'discovery_curve.png')})"]
    return "\n\n".join(p for p in parts if p), [criteria, grouping]


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
             r["epochs"], cell(r["score"]), cell(r["params"], 0), cell(r["seconds"], 1), r["still_rising"],
             r["claim"] or "—", F.comparison_verdict(r, rows)] for r in rows]
    header = ["dataset", "strategy", "settings", "epochs", "score", "parameters", "training time (s)",
              "best epoch = last", "the paper's claim", "holds here?"]
    return "\n\n".join(["## 5. All strategies and baselines on the same problems",
                        "Test score of the best-validation epoch, parameters of the final model, wall time of "
                        "training (one thread per run, two runs at a time on two cores). Task Routing and Selective "
                        "Sharing train with their papers' optimiser (settings column), the others with Adam, so "
                        "their rows are not a same-optimiser comparison: sections 1 and 4 are.", table(header, body),
                        f"![score against parameters](results/{figure})"])


def write_report(results: Results, out_dir: Path, seconds: float, command: str, earlier: list[dict] | None = None
                 ) -> Path:
    """Compute every table, draw every picture and write RESULTS.md (plus results/runs.json); `earlier`: the
    generations whose runs were reused (their command, date and minutes)."""
    plan = results.plan
    figures = out_dir / "results"
    figures.mkdir(parents=True, exist_ok=True)
    sigma, cost = sigma_sweep(results), many_tasks(results)
    depth, versus = sfg_depth(results), sfg_vs_baselines(results)
    ss, curve, everything = selective_sharing(results), discovery_curve(results), all_strategies(results)
    text1, f1 = section_sigma(sigma, plan, pictures.sigma_curves(sigma, figures / "task_routing_sigma.png"))
    text2, f2 = section_scaling(cost, plan, pictures.many_tasks(cost, figures / "task_routing_many_tasks.png",
                                                                plan.cost_shape))
    text3, f3 = section_sfg(depth, versus, pictures.sfg_depth(depth, figures / "sfg_depth.png"))
    text4, f4 = section_selective_sharing(ss, curve, plan, figures)
    text5 = section_all(everything, pictures.all_strategies(everything, figures / "all_strategies.png"))
    grouped, agreement = four_groupings.rows(results)
    text6 = four_groupings.section(grouped, agreement, four_groupings.picture(grouped, results, figures /
                                                                             "four_groupings.png"), cell, table)
    found = [f1, f2, *f3, *f4]
    summary = table(["finding", "the paper", "here"], [[f.title, f.paper, f"**{f.verdict}**"] for f in found])
    generation = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "minutes": round(seconds / 60, 1),
                  "trained": len(results.trained) - results.reused, "reused": results.reused,
                  "measured": len(results.costs) - results.reused_costs, "reused_costs": results.reused_costs}
    generations = [*(earlier or []), generation]
    parts = [header(plan, generations), _settings(results), "## Summary", summary, _not_reproduced(found),
             _rules(), text1, text2, text3, text4, text5, text6, _errors(results)]
    path = out_dir / "RESULTS.md"
    path.write_text("\n\n".join(p for p in parts if p) + "\n")
    _write_raw(results, figures / "runs.json", generations)
    return path


def _not_reproduced(found: list[F.Finding]) -> str:
    """The summary's plain sentence on what did not reproduce."""
    missed = [f"{f.title} ({f.verdict})" for f in found if f.verdict in (F.NOT, F.PARTLY)]
    unmeasured = [f.title for f in found if f.verdict == F.UNMEASURED]
    text = ("Did not reproduce fully: " + "; ".join(missed) + "." if missed
            else "Every measured finding reproduced by its rule.")
    if unmeasured:
        text += " Not measured (runs failed or were not run): " + "; ".join(unmeasured) + "."
    return text + " Each section gives the numbers behind its verdict."


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def generated(generations: list[dict]) -> str:
    """'Generated by `cmd` on date in X minutes', and what an earlier generation contributed when runs were reused."""
    now, before = generations[-1], generations[:-1]
    text = f"Generated by `{now['command']}` on {now['date']} in {now['minutes']:.1f} minutes"
    if before:
        text += (f", which trained {plural(now['trained'], 'run')}, took {plural(now['measured'], 'cost measurement')} "
                 f"and reused {plural(now['reused'], 'run')} and {plural(now['reused_costs'], 'cost measurement')} of "
                 "earlier generations (same plan and settings): " +
                 "; ".join(f"`{g['command']}` on {g['date']} in {g['minutes']:.1f} minutes" for g in before))
    return text


def header(plan, generations: list[dict]) -> str:
    names = sorted({s for per in plan.epochs.values() for s in per})
    epochs = table(["dataset"] + names, [[ds] + [per.get(s, "—") for s in names] for ds, per in plan.epochs.items()])
    return "\n\n".join([
        "# Reproducing the papers' findings on real data",
        f"{generated(generations)} (plan `{plan.name}`). Machine: {os.cpu_count()} CPU cores, "
        f"{machine_bytes() / 1e9:,.1f} GB RAM, "
        f"{platform.machine()}, {platform.system()}; Python {platform.python_version()}, torch {torch.__version__}; "
        f"one thread per run, runs in parallel. Data: {', '.join(f'`{d}`' for d in plan.datasets)} (see the "
        f"README's Problems) and the planted `synthetic`. Seeds: {', '.join(map(str, plan.seeds))} (mean ± sample "
        "standard deviation over them). Trainer: batch "
        f"{TrainConfig.batch_size}, the default backbone, Adam at {TrainConfig.lr}, except the Task Routing sweep "
        f"({_optimiser(plan, 'task_routing')}) and Selective Sharing's runs ({_optimiser(plan, 'selective_sharing')}"
        "), the papers' optimisers; every strategy with its own default settings unless a table says otherwise; "
        "the test score (mean of every task's primary metric: balanced accuracy for binary tasks, accuracy for "
        "multiclass, R² for regression) is that of the best validation epoch. Epochs per strategy:",
        epochs, "Regenerate every number and picture here with the same command." + SMOKE.get(plan.name, "")])


SMOKE = {name: (" **This is a smoke check (plan `%s`): a few epochs and one seed, so the numbers and verdicts below "
                "only show that the pipeline runs; they say nothing about the papers.**" % name)
         for name in ("quick", "smoke")}


def _settings(results: Results) -> str:
    """Every strategy's full settings as its comparison runs used them (the sweeps change only what they vary)."""
    body = []
    for strategy in results.plan.strategies:
        used = next((r["config"] for job, r in results.trained.items() if job.strategy == strategy and "config" in r
                     and dict(job.config) == comparison_config(strategy)
                     and dict(job.train) == comparison_train(results.plan, strategy)), None)
        if used is not None:
            body.append([strategy, ", ".join(f"{k}={v}" for k, v in used.items()) or "(none)"])
    return "Strategy settings:\n\n" + table(["strategy", "settings"], body) if body else ""


def _rules() -> str:
    return ("How verdicts are decided (fixed before any run): A *beats* B when A's mean is higher; *clearly* when "
            "the margin exceeds the larger seed standard deviation of the two. *Equal or better* allows a shortfall "
            f"up to that spread (at least {F.EQUAL_TOLERANCE}). Each section states its rule before its table. The "
            "data sets, backbones and scales differ from the papers (5,000 MNIST digits and MultiMNIST built from "
            "them instead of FashionMNIST, Zappos50K, UCSD-Birds, UTKFace or OmniArt), so the question is whether "
            "each method *behaves* as reported, not whether the numbers match.")


def _errors(results: Results) -> str:
    if not results.errors:
        return ""
    lines = [f"- {r.strategy} on {r.dataset}, seed {r.seed}, {dict(r.config) or 'defaults'}"
             + (f", {dict(r.train)}" if r.train else "") + f": {why}"
             for r, why in results.errors.items()]
    return "## Runs without a result\n\n" + "\n".join(lines)


def _write_raw(results: Results, path: Path, generations: list[dict]) -> None:
    """Every run's result, for anyone who wants to recompute a table."""
    runs = [{"run": {"dataset": r.dataset, "strategy": r.strategy, "seed": r.seed, "epochs": r.epochs,
                     "settings": dict(r.config), "train": dict(r.train)}, "result": v}
            for r, v in results.trained.items()]
    costs = [{"cost": {**asdict(c), "settings": dict(c.config)}, "result": v} for c, v in results.costs.items()]
    path.write_text(json.dumps({"plan": results.plan.describe(), "generations": generations, "runs": runs,
                                "costs": costs}, default=str) + "\n")


def read_raw(path: Path, plan) -> Results:
    """The Results a runs.json was written from (with the plan that made it): tables can be recomputed from it."""
    raw = json.loads(Path(path).read_text())
    trained = {run(r["run"]["dataset"], r["run"]["strategy"], r["run"]["seed"], r["run"]["epochs"],
                   r["run"].get("train"), **r["run"]["settings"]): r["result"] for r in raw["runs"]}
    costs = {}
    for c in raw["costs"]:
        fields = {k: v for k, v in c["cost"].items() if k not in ("settings", "config", "shape")}
        costs[Cost(**fields, config=tuple(sorted(c["cost"]["settings"].items())),
                   shape=tuple(c["cost"]["shape"]))] = c["result"]
    return Results(trained, costs, plan)


def earlier_generations(out_dir: Path) -> list[dict]:
    """The generations behind an earlier runs.json: as it records them, or read from its RESULTS.md's first line
    (files written before runs.json kept them)."""
    raw = json.loads((out_dir / "results" / "runs.json").read_text())
    if raw.get("generations"):
        return list(raw["generations"])
    report = out_dir / "RESULTS.md"
    found = re.search(r"Generated by `([^`]+)` on (\d{4}-\d\d-\d\d \d\d:\d\d) in ([\d.]+) minutes",
                      report.read_text()) if report.is_file() else None
    command, date, minutes = found.groups() if found else ("an earlier `mtlsearch reproduce`", "an unrecorded date",
                                                            "nan")
    return [{"command": command, "date": date, "minutes": float(minutes), "trained": len(raw["runs"]), "reused": 0,
             "measured": len(raw["costs"]), "reused_costs": 0}]


def all_findings(results: Results) -> list[F.Finding]:
    """Every finding of RESULTS.md's summary, in its order, from the results alone (no pictures, no files)."""
    return [F.sigma_finding(sigma_sweep(results)), F.scaling_finding(many_tasks(results), machine_bytes()),
            F.depth_finding(sfg_depth(results)), F.sfg_baselines_finding(sfg_vs_baselines(results)),
            F.criteria_finding(selective_sharing(results)), F.grouping_finding(discovery_curve(results))]
