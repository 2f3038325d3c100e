"""Did each finding reproduce? Fixed rules, stated here and before each table of RESULTS.md, applied to rows.

"A beats B" means A's mean is higher. It is "clear" when the margin exceeds the larger of the two seed
standard deviations, and "within the spread" otherwise (with one seed there is no spread: only higher or not).
"Equal or better" means not lower than B by more than that spread (at least EQUAL_TOLERANCE). Every finding
function takes the rows the experiments module builds and returns a Finding whose `rule` is printed before the
table and whose `text` gives the numbers the verdict was read from.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import papers
from .experiments import Stat
from .measure import extrapolate

REPRODUCED, PARTLY, NOT, UNMEASURED = "reproduced", "partly reproduced", "not reproduced", "not measured"
VERDICTS = (REPRODUCED, PARTLY, NOT, UNMEASURED)
EQUAL_TOLERANCE = 0.002  # score points: below this two scores count as equal even with no seed spread
PARTIAL_SIGMAS = (0.2, 0.4, 0.6)
METRICS = ("accuracy", "precision", "recall")
GROWTH_LIMIT = 2.0  # "does not grow significantly": at most this factor from the smallest to the largest count
CHANCE_TOLERANCE = 0.05  # a share this close to T/(T+1) (or within its seed spread) is at chance
RECOVERY_MEAN, RECOVERY_FLOOR = 0.9, 0.7  # ARI: mean over seeds, and every seed
GROUPING_DIFFICULTY = 0.5  # own: a task's own function half the size of its group's (synthetic's default)
PAPER_CRITERIA = ("similarity", "dissimilarity", "variance")


@dataclass
class Finding:
    title: str
    paper: str
    verdict: str
    text: str
    rule: str = ""


def margin(a: Stat, b: Stat) -> float:
    return max(a.std, b.std)


def beats(a: Stat, b: Stat) -> str:
    """'clear', 'within spread' or 'no'."""
    if not a.n or not b.n or a.mean <= b.mean:
        return "no"
    return "clear" if a.n == 1 or a.mean - b.mean > margin(a, b) else "within spread"


def clearly_below(a: Stat, b: Stat) -> bool:
    """a's mean is lower than b's by more than the spread (with one seed: lower)."""
    return bool(a.n and b.n) and a.mean < b.mean and (a.n == 1 or b.mean - a.mean > margin(a, b))


def equal_or_better(a: Stat, b: Stat) -> bool:
    return bool(a.n and b.n) and a.mean >= b.mean - max(margin(a, b), EQUAL_TOLERANCE)


def combine(verdicts: list[str]) -> str:
    verdicts = [v for v in verdicts if v != UNMEASURED]
    if not verdicts:
        return UNMEASURED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT if all(v == NOT for v in verdicts) else PARTLY


def of_parts(held: list[bool]) -> str:
    """Reproduced when every part holds, not when none does, partly otherwise."""
    if not held:
        return UNMEASURED
    return REPRODUCED if all(held) else (NOT if not any(held) else PARTLY)


# 1. Task Routing: the sharing ratio
SIGMA_RULE = ("Per dataset and metric (accuracy, precision, recall), the best sigma in 0.2-0.6 must beat both "
              "sigma = 0 and sigma = 1 by more than the seed spread. Reproduced on a dataset when it does on every "
              "metric, not reproduced when on no metric it is higher than both, partly otherwise.")


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
                   "\n\n".join(lines), SIGMA_RULE)


def _says(outcome: str) -> str:
    return {"clear": "higher than both, by more than the seed spread",
            "within spread": "higher than both, but within the seed spread",
            "no": "not higher than both"}[outcome]


# 2. Task Routing with many tasks
SCALING_RULE = (
    "Three parts, each judged from the smallest to the largest task count. (a) Time, compared per task-update "
    "(a step's CPU time divided by the number of task losses it trains: 1 for Task Routing, which trains one task "
    f"per step, every task for cross-stitch): Task Routing's grows at most {GROWTH_LIMIT:g}x. (b) Memory: Task "
    f"Routing's parameters + Adam state and its peak resident-memory growth each grow at most {GROWTH_LIMIT:g}x "
    "(the paper: resource use does not grow significantly). (c) Cross-stitch does not fit this machine at the "
    "largest count: its training memory there (peak resident-memory growth, or parameters + gradients + Adam if "
    "larger), measured or extrapolated from its two largest measured counts as a power law (exponent from those "
    "counts, at least 1: every task adds a column; 1 when only one count was measured), exceeds the machine's RAM. "
    "Reproduced when (a), (b) and (c) hold, not reproduced when none does, partly otherwise. A count that would "
    "take longer than the time budget is not run; that never decides (c), the memory extrapolation does.")


def training_bytes(row: dict) -> float:
    """Peak resident-memory growth, or parameters + gradients + Adam state if that is larger."""
    return max(row.get("peak_rss_growth") or 0, 2 * row["param_bytes"] + row["optimizer_bytes"])


def _parts(first: dict, last: dict) -> str:
    """Where the parameter bytes are, by top-level module, at the smallest and the largest count."""
    names = list(dict.fromkeys([*first.get("part_bytes", {}), *last.get("part_bytes", {})]))
    return ", ".join(f"{name} {first.get('part_bytes', {}).get(name, 0) / 1e6:,.1f} -> "
                     f"{last.get('part_bytes', {}).get(name, 0) / 1e6:,.1f} MB" for name in names)


def scaling_finding(rows: list[dict], machine_bytes: float) -> Finding:
    title = "Task Routing scales to many tasks; cross-stitch does not"
    tr = [r for r in rows if r["method"] == "task_routing"]
    cs = [r for r in rows if r["method"] == "cross_stitch"]
    ran = [r for r in tr if r["status"] == "ran"]
    if not ran:
        return Finding(title, papers.TR_SCALING_CLAIM, UNMEASURED, "No Task Routing measurement.", SCALING_RULE)
    largest = max(r["n_tasks"] for r in rows)
    parts, held = [], []
    if len(ran) == len(tr) and len(ran) >= 2:
        first, last = ran[0], ran[-1]
        per_update = [r["step_ms"] / r["task_updates"] for r in (first, last)]
        time_growth = per_update[1] / per_update[0]
        state = [r["param_bytes"] + r["optimizer_bytes"] for r in (first, last)]
        peak = [r.get("peak_rss_growth") for r in (first, last)]
        peak_growth = peak[1] / peak[0] if all(peak) else None
        memory_ok = state[1] / state[0] <= GROWTH_LIMIT and (peak_growth is None or peak_growth <= GROWTH_LIMIT)
        held += [time_growth <= GROWTH_LIMIT, memory_ok]
        parts.append(
            f"(a) Task Routing's time per task-update: {per_update[0]:.1f} ms at {first['n_tasks']} tasks, "
            f"{per_update[1]:.1f} ms at {last['n_tasks']} ({time_growth:.2f}x: {_held(held[0])}). (b) Its parameters "
            f"+ Adam state grew {state[1] / state[0]:.1f}x ({state[0] / 1e6:,.1f} -> {state[1] / 1e6:,.1f} MB) and "
            + (f"its peak resident memory {peak_growth:.1f}x ({peak[0] / 1e6:,.0f} -> {peak[1] / 1e6:,.0f} MB)"
               if peak_growth else "its peak resident memory was not measurable here")
            + f" ({_held(memory_ok)}); the parameter bytes by part: {_parts(first, last)}")
    else:
        held += [False, False]
        parts.append(f"(a), (b) Task Routing did not run at every count ({', '.join(r['status'] for r in tr)})")
    cs_ran = [r for r in cs if r["status"] == "ran"]
    if cs_ran:
        counts, memory = [r["n_tasks"] for r in cs_ran], [training_bytes(r) for r in cs_ran]
        at_largest = extrapolate(counts, memory, largest, default=1.0, low=1.0, high=None)
        how = "measured" if counts[-1] == largest else f"extrapolated from {', '.join(map(str, counts[-2:]))} tasks"
        held.append(at_largest > machine_bytes)
        per_update = ", ".join(f"{r['step_ms'] / r['task_updates']:,.1f}" for r in cs_ran)
        stopped = [f"{r['n_tasks']} ({r['status']})" for r in cs if r["status"] != "ran"]
        parts.append(
            f"(c) cross-stitch ran at {', '.join(map(str, counts))} tasks ({per_update} ms per task-update; training "
            f"memory {', '.join(f'{m / 1e9:,.2f}' for m in memory)} GB)" + (f", not at {'; '.join(stopped)}"
                                                                           if stopped else "")
            + f"; at {largest} tasks it needs {at_largest / 1e9:,.1f} GB ({how}) against this machine's "
            f"{machine_bytes / 1e9:,.1f} GB of RAM ({_held(held[-1])}; the paper ran it up to 12 tasks on UCSD-Birds "
            "with a VGG network)")
        if counts[-1] != largest:  # what limits it instead, for the reader; the rule does not use it
            step = extrapolate(counts, [r["step_ms"] for r in cs_ran], largest, default=2.0) / 1e3
            parts[-1] += f"; its step at {largest} tasks would take about {step:,.0f} s (extrapolated, not in the rule)"
    elif cs:
        held.append(False)
        parts.append("(c) cross-stitch was not measured at any count")
    return Finding(title, papers.TR_SCALING_CLAIM, of_parts(held), ". ".join(parts) + ".", SCALING_RULE)


def _held(ok: bool) -> str:
    return "holds" if ok else "does not hold"


# 3. Stochastic Filter Groups
DEPTH_RULE = (
    "Conv layers only (the paper groups conv kernels; the trunk's grouped linear layer is shown apart and does not "
    "count). The conv shares *rise* when in every seed they never fall from one conv layer to the next and the top "
    "exceeds the bottom, or when the top's mean exceeds the bottom's by more than the larger seed spread. Chance: "
    "with near-uniform p the argmax lands on a task's own group with probability T/(T+1) (T tasks, T + 1 groups), "
    "so a layer has *learned* an allocation when its share differs from T/(T+1) by more than its seed spread (at "
    f"least {CHANCE_TOLERANCE:g}). Reproduced on a dataset when the shares rise and a conv layer has learned an "
    "allocation; partly when only the means rise (within the spread, not in every seed) and a layer has learned "
    "one; not reproduced otherwise.")


def chance_share(n_tasks: int) -> float:
    """The argmax share of task-specific groups with uniform p over T + 1 groups."""
    return n_tasks / (n_tasks + 1)


def depth_finding(rows: list[dict]) -> Finding:
    verdicts, lines = [], []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        conv = [r for r in mine if r["type"] == "conv"]
        if len(conv) < 2 or not all(r["share"].n for r in conv):
            verdicts.append(UNMEASURED)
            lines.append(f"**{ds}: {UNMEASURED}.** Fewer than two conv layers with a result.")
            continue
        chance = chance_share(conv[0]["tasks"])
        seeds = list(zip(*(r["share"].values for r in conv)))  # one tuple of conv shares per seed
        monotone = [all(b >= a for a, b in zip(s, s[1:])) and s[-1] > s[0] for s in seeds]
        bottom, top = conv[0]["share"], conv[-1]["share"]
        beyond = beats(top, bottom) == "clear" and top.n > 1
        learned = [r["layer"] for r in conv if abs(r["share"].mean - chance) > max(r["share"].std, CHANCE_TOLERANCE)]
        if (all(monotone) or beyond) and learned:
            verdict = REPRODUCED
        elif top.mean > bottom.mean and learned:
            verdict = PARTLY
        else:
            verdict = NOT
        verdicts.append(verdict)
        other = [r for r in mine if r["type"] != "conv"]
        lines.append(
            f"**{ds}: {verdict}.** Conv shares by layer (bottom to top): "
            + ", ".join(r["share"].text(2) for r in conv)
            + f"; rising in {sum(monotone)} of {len(seeds)} seeds; top minus bottom "
              f"{top.mean - bottom.mean:+.2f} against a spread of {margin(top, bottom):.2f}. Chance "
              f"T/(T+1) = {chance:.2f}; layers away from chance: {', '.join(map(str, learned)) or 'none'}."
            + (" Not counted: " + ", ".join(f"layer {r['layer']} ({r['type']}) {r['share'].text(2)}" for r in other)
               + "." if other else ""))
    return Finding("SFG: the share of task-specific kernels grows with depth", papers.SFG_DEPTH_CLAIM,
                   combine(verdicts), "\n\n".join(lines), DEPTH_RULE)


SFG_BASELINES_RULE = ("Per dataset, SFG's test score against each baseline: single-task, hard sharing, cross-stitch "
                      "and SFG with no learned allocation (p kept at its uniform initialisation, kernels still "
                      "sampled: the poster's baseline). Reproduced on a dataset when SFG beats every baseline by "
                      "more than the seed spread, not reproduced when it is higher than none, partly otherwise.")


def sfg_baselines_finding(rows: list[dict]) -> Finding:
    """Per dataset: reproduced when SFG clearly beats every baseline, not when it beats none."""
    title = "SFG beats single-task, hard sharing, cross-stitch and SFG without learned allocation"
    verdicts, parts = [], []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sfg = next((r for r in rows if r["dataset"] == ds and r["method"] == "sfg"), None)
        others = [r for r in rows if r["dataset"] == ds and r["method"] != "sfg"]
        if sfg is None or not others or not sfg["score"].n:
            verdicts.append(UNMEASURED)
            parts.append(f"On {ds}, SFG has no result.")
            continue
        outcomes = {r["method"]: beats(sfg["score"], r["score"]) for r in others}
        verdicts.append(REPRODUCED if all(o == "clear" for o in outcomes.values()) else (
            NOT if all(o == "no" for o in outcomes.values()) else PARTLY))
        versus = "; ".join(f"{r['method']}: {r['score'].text()} ({_vs(outcomes[r['method']])})" for r in others)
        parts.append(f"**{ds}: {verdicts[-1]}.** SFG scored {sfg['score'].text()}; {versus}.")
    return Finding(title, papers.SFG_BASELINE_CLAIM, combine(verdicts), "\n\n".join(parts), SFG_BASELINES_RULE)


def _vs(outcome: str) -> str:
    return {"clear": "SFG higher, beyond the spread", "within spread": "SFG higher, within the spread",
            "no": "SFG not higher"}[outcome]


# 4. Selective Sharing
CRITERIA_RULE = (
    "The paper: 'a constant improvement over [the random control] in all cases'. Per dataset and paper criterion "
    "(similarity, dissimilarity, variance) against random, which merges groups of the sizes similarity finds: "
    "*better* when its score beats random's by more than the seed spread without clearly more parameters, or its "
    "score is equal or better with parameters lower by more than the spread. Reproduced when every criterion is "
    "better on every dataset, not reproduced when none is anywhere, partly otherwise. Parameters and score against "
    "hard sharing are reported for every row, random's too, but do not decide: random grouping also saves "
    "parameters.")


def better_than_random(row: dict, random: dict) -> tuple[bool, str]:
    """(better, why) by the rule above."""
    score, params = beats(row["score"], random["score"]), row["params"]
    if score == "clear" and not clearly_below(random["params"], params):
        return True, "higher score beyond the spread"
    if equal_or_better(row["score"], random["score"]) and clearly_below(params, random["params"]):
        return True, "equal or better score with fewer parameters beyond the spread"
    return False, {"clear": "higher score, but more parameters beyond the spread",
                   "within spread": "higher score within the spread, parameters not clearly fewer",
                   "no": "score not higher, parameters not clearly fewer"}[score]


def criteria_finding(rows: list[dict]) -> Finding:
    title = "Selective Sharing: the criteria beat the random control"
    verdicts, parts = [], []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = {r["method"]: r for r in rows if r["dataset"] == ds}
        random, hard = mine.get("random"), mine.get("hard_sharing")
        criteria = [mine[c] for c in PAPER_CRITERIA if c in mine and mine[c]["score"].n]
        if random is None or not random["score"].n or not criteria:
            verdicts.append(UNMEASURED)
            parts.append(f"On {ds}, the criteria or the random control have no result.")
            continue
        judged = [(r, *better_than_random(r, random)) for r in criteria]
        verdicts.append(of_parts([ok for _, ok, _ in judged]))
        text = "; ".join(f"{r['method']} {r['score'].text()} with {r['params'].text(0)} parameters "
                         f"({'better' if ok else 'not better'}: {why})" for r, ok, why in judged)
        line = f"**{ds}: {verdicts[-1]}.** Random: {random['score'].text()} with {random['params'].text(0)} " \
               f"parameters; {text}."
        if hard is not None and hard["params"].n:
            versus = [f"{r['method']} {r['params'].mean / hard['params'].mean:.2f}x"
                      + ("" if equal_or_better(r["score"], hard["score"]) else " (lower score)")
                      for r in [*criteria, random]]
            line += (f" Against hard sharing ({hard['score'].text()}): parameters " + ", ".join(versus) + ".")
        parts.append(line)
    return Finding(title, papers.SS_RANDOM_CLAIM, combine(verdicts), "\n\n".join(parts), CRITERIA_RULE)


GROUPING_RULE = (
    f"On `synthetic:own=<own>` (planted groups; own is the knob), a criterion *recovers* the groups at a value of "
    f"own when the adjusted Rand index (ARI) against the planted groups has mean at least {RECOVERY_MEAN:g} and "
    f"every seed at least {RECOVERY_FLOOR:g}; its *reach* is the largest own up to which it recovers at every "
    f"easier value of the sweep. The paper ascribes related groups to similarity. Reproduced when similarity "
    f"reaches own = {GROUPING_DIFFICULTY:g} (synthetic's default: a task's own part half the size of its group's) "
    "and the random control recovers at no value; partly when similarity recovers only easier problems; not "
    "reproduced when it recovers none or the random control recovers as well.")


def recovers(ari: Stat) -> bool:
    return ari.n > 0 and ari.mean >= RECOVERY_MEAN and min(ari.values) >= RECOVERY_FLOOR


def reach(points: list[tuple[float, Stat]]) -> float | None:
    """The largest own up to which every easier value recovers (None: not even the easiest)."""
    last = None
    for own, ari in sorted(points, key=lambda p: p[0]):
        if not recovers(ari):
            break
        last = own
    return last


def grouping_finding(rows: list[dict]) -> Finding:
    """rows: {"method", "own", "ari": Stat} per criterion and knob value."""
    title = "Selective Sharing groups related tasks"
    paper = "qualitative (MNIST groups such as 2-3-5 and 6-8-9, with similarity)"
    curves = {}
    for r in rows:
        curves.setdefault(r["method"], []).append((r["own"], r["ari"]))
    if "similarity" not in curves or not any(a.n for _, a in curves["similarity"]):
        return Finding(title, paper, UNMEASURED, "Similarity has no result on synthetic.", GROUPING_RULE)
    reaches = {m: reach(points) for m, points in curves.items()}
    random_recovers = any(recovers(a) for _, a in curves.get("random", []))
    sim = reaches["similarity"]
    if sim is not None and sim >= GROUPING_DIFFICULTY and not random_recovers:
        verdict = REPRODUCED
    elif sim is not None and not random_recovers:
        verdict = PARTLY
    else:
        verdict = NOT
    lines = [f"{m}: " + (f"recovers up to own = {r:g}" if r is not None else "recovers at no value")
             + " (ARI " + ", ".join(f"{own:g}: {a.text(2)}" for own, a in sorted(curves[m], key=lambda p: p[0]))
             + ")" for m, r in reaches.items()]
    text = "; ".join(lines) + "." + (" The random control recovers at some value." if random_recovers else "")
    return Finding(title, paper, verdict, text, GROUPING_RULE)


def comparison_verdict(row: dict, rows: list[dict]) -> str:
    """The row's own paper claim, checked against the baselines on the same dataset."""
    same = {r["strategy"]: r for r in rows if r["dataset"] == row["dataset"]}
    if row["strategy"] == "task_routing":
        return "section 1 (against sigma = 1, same optimiser)"
    if row["strategy"] == "sfg":
        outcomes = [beats(row["score"], same[b]["score"]) for b in ("single_task", "hard_sharing", "cross_stitch")
                    if b in same]
        won = sum(o != "no" for o in outcomes)
        return "yes" if all(o == "clear" for o in outcomes) else f"beats {won} of {len(outcomes)}"
    if row["strategy"] == "selective_sharing":
        return "section 4 (against hard sharing and random, same optimiser)"
    if row["strategy"] == "task_affinity":
        return "section 6 (its grouping against the others')"
    return "(baseline)"
