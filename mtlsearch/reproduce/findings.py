"""Did each finding reproduce? Fixed rules, stated here and in RESULTS.md, applied to the measured rows.

"A beats B" means A's mean is higher. It is "clear" when the margin exceeds the larger of the two seed
standard deviations, and "within the spread" otherwise (with one seed there is no spread: only higher or not).
"Equal or better" means not lower than B by more than that spread (at least EQUAL_TOLERANCE).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import papers
from .experiments import Stat

REPRODUCED, PARTLY, NOT, UNMEASURED = "reproduced", "partly reproduced", "not reproduced", "not measured"
EQUAL_TOLERANCE = 0.002  # score points: below this two scores count as equal even with no seed spread
PARTIAL_SIGMAS = (0.2, 0.4, 0.6)
METRICS = ("accuracy", "precision", "recall")


@dataclass
class Finding:
    title: str
    paper: str
    verdict: str
    text: str


def margin(a: Stat, b: Stat) -> float:
    return max(a.std, b.std)


def beats(a: Stat, b: Stat) -> str:
    """'clear', 'within spread' or 'no'."""
    if not a.n or not b.n or a.mean <= b.mean:
        return "no"
    return "clear" if a.n == 1 or a.mean - b.mean > margin(a, b) else "within spread"


def equal_or_better(a: Stat, b: Stat) -> bool:
    return bool(a.n and b.n) and a.mean >= b.mean - max(margin(a, b), EQUAL_TOLERANCE)


def combine(verdicts: list[str]) -> str:
    verdicts = [v for v in verdicts if v != UNMEASURED]
    if not verdicts:
        return UNMEASURED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT if all(v == NOT for v in verdicts) else PARTLY


def sigma_finding(rows: list[dict]) -> Finding:
    """Per dataset and metric: the best sigma in 0.2..0.6 against both sigma = 0 and sigma = 1."""
    verdicts, lines = [], []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        by_sigma = {round(r["sigma"], 2): r for r in rows if r["dataset"] == ds}
        partial = [s for s in PARTIAL_SIGMAS if s in by_sigma]
        if not partial or 0.0 not in by_sigma or 1.0 not in by_sigma:
            verdicts.append(UNMEASURED)
            lines.append(f"{ds}: sigma 0, 1 and one of 0.2-0.6 are needed; not all were run.")
            continue
        held, parts = [], []
        for metric in METRICS:
            if not all(by_sigma[s][metric].n for s in (0.0, 1.0, *partial)):
                continue
            best = max(partial, key=lambda s: by_sigma[s][metric].mean)
            b, lo, hi = by_sigma[best][metric], by_sigma[0.0][metric], by_sigma[1.0][metric]
            outcome = [beats(b, lo), beats(b, hi)]
            held.append("no" if "no" in outcome else ("within spread" if "within spread" in outcome else "clear"))
            parts.append(f"{metric}: best partial sigma={best:g} {b.text()} vs sigma=0 {lo.text()} and sigma=1 "
                         f"{hi.text()} ({_says(held[-1])})")
        if not held:
            verdict = UNMEASURED
        elif all(h == "clear" for h in held):
            verdict = REPRODUCED
        elif all(h == "no" for h in held):
            verdict = NOT
        else:
            verdict = PARTLY
        verdicts.append(verdict)
        lines.append(f"**{ds}: {verdict}.** " + "; ".join(parts) + ".")
    return Finding("Task Routing: partial sharing beats no sharing and full sharing",
                   "sigma in 0.2-0.6 beats sigma = 0 and sigma = 1 (Table 2, Fig. 5)", combine(verdicts),
                   "\n\n".join(lines))


def _says(outcome: str) -> str:
    return {"clear": "higher than both, by more than the seed spread",
            "within spread": "higher than both, but within the seed spread",
            "no": "not higher than both"}[outcome]


def scaling_finding(rows: list[dict]) -> Finding:
    tr = [r for r in rows if r["method"] == "task_routing"]
    cs = [r for r in rows if r["method"] == "cross_stitch"]
    if not tr:
        return Finding("Task Routing scales to many tasks", papers.TR_SCALING_CLAIM, UNMEASURED, "No measurement.")
    ran = [r for r in tr if r["status"] == "ran"]
    all_ran = len(ran) == len(tr)
    parts = []
    growth = None
    if len(ran) >= 2:
        first, last = ran[0], ran[-1]
        growth = last["step_ms"] / first["step_ms"]
        memory = (last["param_bytes"] + last["optimizer_bytes"]) / (first["param_bytes"] + first["optimizer_bytes"])
        parts.append(f"Task Routing ran at {', '.join(str(r['n_tasks']) for r in ran)} tasks; its training step took "
                     f"{first['step_ms']:.1f} ms at {first['n_tasks']} tasks and {last['step_ms']:.1f} ms at "
                     f"{last['n_tasks']} ({growth:.2f}x), while parameters + Adam state grew {memory:.1f}x "
                     f"(every task has its own branch and head; the routed trunk does not grow)")
    cs_ran = [r for r in cs if r["status"] == "ran"]
    cs_stopped = [r for r in cs if r["status"] != "ran"]
    if cs:
        text = f"cross-stitch ran at {', '.join(str(r['n_tasks']) for r in cs_ran) or 'no count'}"
        if cs_ran:
            steps = ", ".join(f"{r['step_ms']:,.0f} ms" for r in cs_ran)
            text += f" ({steps} per step)"
        if cs_stopped:
            text += f" and stopped at {cs_stopped[0]['n_tasks']} tasks ({cs_stopped[0]['status']})"
        paper_ran = [n for n, ran in papers.TR_TABLE3_RAN["cross_stitch"].items() if ran]
        text += (f" (in the paper, on UCSD-Birds with a VGG network, it ran at {', '.join(map(str, paper_ran))} "
                 "tasks, 'up to 12' in its Fig. 4, and no further)")
        parts.append(text)
    step_ok = growth is not None and growth <= 2.0
    cs_stops = bool(cs) and bool(cs_stopped)
    verdict = REPRODUCED if all_ran and step_ok and cs_stops else (PARTLY if all_ran and (step_ok or cs_stops) else NOT)
    rule = ("Rule: reproduced when Task Routing runs at every count with a step at most 2x its smallest-count "
            "step, and cross-stitch does not fit the budget at the largest count.")
    return Finding("Task Routing scales to many tasks; cross-stitch does not", papers.TR_SCALING_CLAIM, verdict,
                   "; ".join(parts) + ". " + rule)


def depth_finding(rows: list[dict]) -> Finding:
    verdicts, lines = [], []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        shares = [r["share"].mean for r in rows if r["dataset"] == ds]
        text = ", ".join(f"{s:.2f}" for s in shares)
        if len(shares) < 2 or any(s != s for s in shares):
            verdicts.append(UNMEASURED)
            continue
        rising = shares[-1] > shares[0]
        monotone = all(b >= a for a, b in zip(shares, shares[1:]))
        verdict = REPRODUCED if rising and monotone else (PARTLY if rising else NOT)
        verdicts.append(verdict)
        lines.append(f"**{ds}: {verdict}.** Task-specific share of kernels by layer (bottom to top): {text}.")
    rule = "Rule: reproduced when the share never falls from one layer to the next and the top exceeds the bottom."
    return Finding("SFG: the share of task-specific kernels grows with depth", papers.SFG_DEPTH_CLAIM,
                   combine(verdicts), "\n\n".join(lines + [rule]))


def sfg_baselines_finding(rows: list[dict]) -> Finding:
    """Per dataset: reproduced when SFG clearly beats every baseline, not when it beats none."""
    title = "SFG beats single-task, hard sharing and cross-stitch"
    verdicts, parts = [], []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sfg = next((r for r in rows if r["dataset"] == ds and r["strategy"] == "sfg"), None)
        others = [r for r in rows if r["dataset"] == ds and r["strategy"] != "sfg"]
        if sfg is None or not others or not sfg["score"].n:
            verdicts.append(UNMEASURED)
            parts.append(f"On {ds}, SFG has no result.")
            continue
        outcomes = {r["strategy"]: beats(sfg["score"], r["score"]) for r in others}
        verdicts.append(REPRODUCED if all(o == "clear" for o in outcomes.values()) else (
            NOT if all(o == "no" for o in outcomes.values()) else PARTLY))
        versus = "; ".join(f"{r['strategy']}: {r['score'].text()} ({_vs(outcomes[r['strategy']])})" for r in others)
        parts.append(f"**{ds}: {verdicts[-1]}.** SFG scored {sfg['score'].text()}; {versus}.")
    return Finding(title, papers.SFG_BASELINE_CLAIM, combine(verdicts), "\n\n".join(parts))


def _vs(outcome: str) -> str:
    return {"clear": "SFG higher, beyond the spread", "within spread": "SFG higher, within the spread",
            "no": "SFG not higher"}[outcome]


def ss_criterion_holds(row: dict, hard: dict) -> tuple[bool, bool]:
    """(fewer parameters than hard sharing, score equal or better)."""
    return (row["params"].n > 0 and row["params"].mean < hard["params"].mean,
            equal_or_better(row["score"], hard["score"]))


def selective_sharing_finding(rows: list[dict]) -> Finding:
    hard = next((r for r in rows if r["method"] == "hard_sharing"), None)
    criteria = [r for r in rows if r["method"] in ("similarity", "dissimilarity", "variance")]
    if hard is None or not criteria:
        return Finding("Selective Sharing: fewer parameters, equal or better score", papers.SS_CLAIM, UNMEASURED, "")
    verdicts, parts = [], []
    for row in criteria:
        fewer, equal = ss_criterion_holds(row, hard)
        verdicts.append(REPRODUCED if fewer and equal else (PARTLY if fewer or equal else NOT))
        parts.append(f"{row['method']}: {row['params'].mean:,.0f} parameters vs {hard['params'].mean:,.0f} "
                     f"({'fewer' if fewer else 'not fewer'}), score {row['score'].text()} vs {hard['score'].text()} "
                     f"({'equal or better' if equal else 'lower'})")
    return Finding("Selective Sharing: fewer parameters than hard sharing at equal or better score", papers.SS_CLAIM,
                   combine(verdicts), "On digits, " + "; ".join(parts) + ".")


def grouping_finding(rows: list[dict]) -> Finding:
    """Not a number the paper reports: whether the grouping finds tasks that are truly related."""
    measured = {r["method"]: r["ari"] for r in rows if isinstance(r.get("ari"), Stat) and r["ari"].n}
    if "similarity" not in measured:
        return Finding("Selective Sharing groups related tasks", "qualitative (MNIST: 2-3-5, 6-8-9)", UNMEASURED, "")
    sim = measured["similarity"]
    verdict = REPRODUCED if sim.mean >= 0.8 else (PARTLY if sim.mean >= 0.4 else NOT)
    text = ", ".join(f"{k} {v.text(2)}" for k, v in measured.items())
    return Finding("Selective Sharing groups related tasks", "qualitative (MNIST groups such as 2-3-5 and 6-8-9)",
                   verdict, f"Adjusted Rand index against the planted groups of `synthetic`: {text}. Rule: "
                            "reproduced when similarity reaches 0.8 (1 = the planted groups exactly, 0 = chance).")


def comparison_verdict(row: dict, rows: list[dict]) -> str:
    """The row's own paper claim, checked against the baselines on the same dataset."""
    same = {r["strategy"]: r for r in rows if r["dataset"] == row["dataset"]}
    hard = same.get("hard_sharing")
    if row["strategy"] == "task_routing" and hard:
        return {"clear": "yes", "within spread": "higher, within spread",
                "no": "no"}[beats(row["score"], hard["score"])]
    if row["strategy"] == "sfg":
        outcomes = [beats(row["score"], same[b]["score"]) for b in ("single_task", "hard_sharing", "cross_stitch")
                    if b in same]
        won = sum(o != "no" for o in outcomes)
        return "yes" if all(o == "clear" for o in outcomes) else f"beats {won} of {len(outcomes)}"
    if row["strategy"] == "selective_sharing" and hard:
        fewer, equal = ss_criterion_holds(row, hard)
        return "yes" if fewer and equal else ("fewer parameters, lower score" if fewer else "no")
    return "(baseline)"
