"""The verdict rules of `mtlsearch reproduce` on small hand-made rows whose verdict is known (no training)."""
from __future__ import annotations

import pytest

from mtlsearch.reproduce import findings as F
from mtlsearch.reproduce.experiments import Stat
from mtlsearch.reproduce.measure import extrapolate

GB = 1e9


def spread(mean: float, half: float = 0.001) -> Stat:
    """Three seeds around `mean` (std = half)."""
    return Stat((mean - half, mean, mean + half))


# 1. sigma
def sigma_rows(values: dict[float, float], dataset: str = "mnist-5k", half: float = 0.001) -> list[dict]:
    return [{"dataset": dataset, "sigma": s, **{k: spread(v, half) for k in F.METRICS}} for s, v in values.items()]


def test_sigma_reproduced_partly_not_and_unmeasured():
    assert F.sigma_finding(sigma_rows({0.0: 0.90, 0.4: 0.95, 1.0: 0.91})).verdict == F.REPRODUCED
    assert F.sigma_finding(sigma_rows({0.0: 0.90, 0.4: 0.85, 1.0: 0.91})).verdict == F.NOT
    within = sigma_rows({0.0: 0.90, 0.4: 0.9005, 1.0: 0.89})  # higher, but by less than the seed spread
    assert F.sigma_finding(within).verdict == F.PARTLY
    assert F.sigma_finding(sigma_rows({0.0: 0.9, 1.0: 0.9})).verdict == F.UNMEASURED
    two = sigma_rows({0.0: 0.90, 0.4: 0.95, 1.0: 0.91}) + sigma_rows({0.0: 0.90, 0.2: 0.8, 1.0: 0.91}, "multimnist")
    finding = F.sigma_finding(two)
    assert finding.verdict == F.PARTLY and "**multimnist: not reproduced.**" in finding.text and finding.rule


# 2. scaling
def cost(method: str, n: int, step_ms: float, state_mb: float, peak_mb: float, updates: float | None = None,
         status: str = "ran", parts: dict | None = None) -> dict:
    if status != "ran":
        return {"method": method, "n_tasks": n, "status": status}
    return {"method": method, "n_tasks": n, "status": "ran", "step_ms": step_ms,
            "task_updates": updates if updates is not None else (1 if method == "task_routing" else n),
            "param_bytes": state_mb * 1e6 / 3, "optimizer_bytes": state_mb * 1e6 * 2 / 3,
            "peak_rss_growth": peak_mb * 1e6, "part_bytes": parts or {"trunk": 1e6, "heads": n * 1e5}}


def flat_task_routing() -> list[dict]:
    return [cost("task_routing", 10, 6.0, 10, 50), cost("task_routing", 312, 7.0, 15, 80)]


def test_scaling_reproduced_when_time_and_memory_stay_flat_and_cross_stitch_outgrows_the_machine():
    cs = [cost("cross_stitch", 10, 500, 20, 1000), cost("cross_stitch", 100, 50_000, 200, 8000),
          cost("cross_stitch", 312, 0, 0, 0, status="not run: extrapolated 900 s > budget 150 s")]
    finding = F.scaling_finding(flat_task_routing() + cs, machine_bytes=24 * GB)
    assert finding.verdict == F.REPRODUCED  # 8 GB x (312/100)^0.9 -> 1 (clamped) = 25 GB > 24 GB
    assert "extrapolated from 10, 100 tasks" in finding.text and "trunk 1.0 -> 1.0 MB" in finding.text
    assert "per task-update" in finding.rule


def test_scaling_memory_growth_of_task_routing_is_not_hidden_by_a_flat_step():
    grown = [cost("task_routing", 10, 6.0, 10, 50), cost("task_routing", 312, 5.5, 262, 345)]  # 26x state, 7x peak
    cs = [cost("cross_stitch", 10, 500, 20, 1000), cost("cross_stitch", 100, 50_000, 200, 8000)]
    finding = F.scaling_finding(grown + cs, machine_bytes=24 * GB)
    assert finding.verdict == F.PARTLY and "(b) Its parameters + Adam state grew 26.2x" in finding.text


def test_scaling_cross_stitch_that_fits_the_machine_does_not_count_as_failing():
    small_cs = [cost("cross_stitch", 10, 50, 2, 100), cost("cross_stitch", 100, 500, 20, 1000)]  # 3.1 GB at 312
    assert F.scaling_finding(flat_task_routing() + small_cs, machine_bytes=24 * GB).verdict == F.PARTLY
    # a time budget that stopped cross-stitch decides nothing: it is the memory extrapolation that counts
    stopped = small_cs + [cost("cross_stitch", 312, 0, 0, 0, status="not run: extrapolated 412 s > budget 150 s")]
    assert F.scaling_finding(flat_task_routing() + stopped, machine_bytes=24 * GB).verdict == F.PARTLY


def test_scaling_is_compared_per_task_update():
    # cross-stitch's step trains every task: per task-update it is 10x cheaper than its step
    tr = [cost("task_routing", 10, 6.0, 10, 50), cost("task_routing", 312, 20.0, 10, 50)]  # 3.3x slower
    cs = [cost("cross_stitch", 10, 60, 20, 1000), cost("cross_stitch", 100, 6000, 200, 30_000)]
    finding = F.scaling_finding(tr + cs, machine_bytes=24 * GB)
    assert finding.verdict == F.PARTLY and "6.0, 60.0 ms per task-update" in finding.text
    none = [cost("task_routing", 10, 6.0, 10, 50), cost("task_routing", 312, 0, 0, 0, status="failed: x")]  # one ran
    assert F.scaling_finding(none + [cost("cross_stitch", 10, 5, 1, 10)], machine_bytes=24 * GB).verdict == F.NOT
    assert F.scaling_finding([], machine_bytes=24 * GB).verdict == F.UNMEASURED
    failed = [cost("task_routing", n, 0, 0, 0, status="failed: x") for n in (10, 312)]
    assert F.scaling_finding(failed, machine_bytes=24 * GB).verdict == F.UNMEASURED


def test_extrapolation_is_a_power_law_of_the_last_two_counts():
    assert extrapolate([10, 100], [1.0, 100.0], 1000, default=1.0, high=None) == pytest.approx(10_000)  # exponent 2
    assert extrapolate([10, 100], [1.0, 1.0], 1000, default=1.0) == pytest.approx(10)  # at least linear
    assert extrapolate([10], [3.0], 40, default=1.5) == pytest.approx(24)  # one count: the default exponent
    assert extrapolate([10, 100], [1.0, 1e6], 1000, default=1.0) == pytest.approx(1e9)  # clamped at 3


# 3. SFG depth
def depth_rows(conv: list[tuple], linear: tuple | None = None, tasks: int = 6, dataset: str = "multimnist"):
    """conv: one tuple of per-seed shares per layer, bottom to top."""
    rows = [{"dataset": dataset, "layer": i + 1, "type": "conv", "share": Stat(s), "tasks": tasks}
            for i, s in enumerate(conv)]
    if linear:
        rows.append({"dataset": dataset, "layer": len(conv) + 1, "type": "linear", "share": Stat(linear),
                     "tasks": tasks})
    return rows


def test_depth_reproduced_when_every_seed_rises_away_from_chance():
    finding = F.depth_finding(depth_rows([(0.30, 0.40, 0.35), (0.50, 0.55, 0.52)]))
    assert finding.verdict == F.REPRODUCED and "rising in 3 of 3 seeds" in finding.text
    assert "T/(T+1) = 0.86" in finding.text


def test_depth_counts_conv_layers_only():
    # the conv layers fall; only the grouped linear layer rises: not reproduced (the old rule said partly)
    finding = F.depth_finding(depth_rows([(0.27, 0.25, 0.29), (0.18, 0.10, 0.26)], linear=(0.48, 0.47, 0.50)))
    assert finding.verdict == F.NOT and "Not counted: layer 3 (linear)" in finding.text


def test_depth_partly_when_the_mean_rises_within_the_spread():
    # 0.53 +- 0.21 -> 0.71 +- 0.18, one seed of three falling: the trend is within the spread
    finding = F.depth_finding(depth_rows([(0.30, 0.60, 0.70), (0.60, 0.90, 0.63)], tasks=10))
    assert finding.verdict == F.PARTLY and "rising in 2 of 3 seeds" in finding.text


def test_depth_at_chance_is_not_a_finding():
    # every layer within 0.05 of 10/11 = 0.91: p has not moved from uniform, the rise is noise
    finding = F.depth_finding(depth_rows([(0.88, 0.89, 0.90), (0.92, 0.93, 0.94)], tasks=10))
    assert finding.verdict == F.NOT and "layers away from chance: none" in finding.text
    assert F.chance_share(10) == pytest.approx(10 / 11)
    assert F.depth_finding(depth_rows([(0.3, 0.4, 0.5)])).verdict == F.UNMEASURED


# 3. SFG against the baselines
def versus(scores: dict[str, float], dataset: str = "mnist-5k") -> list[dict]:
    return [{"dataset": dataset, "method": m, "score": spread(v)} for m, v in scores.items()]


def test_sfg_baselines_include_the_no_learned_allocation_row():
    base = {"single_task": 0.90, "hard_sharing": 0.91, "cross_stitch": 0.90}
    fixed = "sfg, no learned allocation"
    assert F.sfg_baselines_finding(versus({"sfg": 0.95, **base, fixed: 0.92})).verdict == F.REPRODUCED
    finding = F.sfg_baselines_finding(versus({"sfg": 0.95, **base, fixed: 0.96}))
    assert finding.verdict == F.PARTLY and f"{fixed}: 0.960" in finding.text
    assert F.sfg_baselines_finding(versus({"sfg": 0.85, **base, fixed: 0.92})).verdict == F.NOT
    assert F.sfg_baselines_finding(versus({"hard_sharing": 0.9})).verdict == F.UNMEASURED


# 4. Selective Sharing: criteria against random
def ss_rows(values: dict[str, tuple[float, float]], dataset: str = "mnist-5k", half_params: float = 1000):
    """values: method -> (score, parameters)."""
    return [{"dataset": dataset, "method": m, "score": spread(s), "params": spread(p, half_params)}
            for m, (s, p) in values.items()]


def test_criteria_must_beat_the_random_control_not_just_hard_sharing():
    hard = {"hard_sharing": (0.95, 800_000)}
    # every criterion saves parameters at hard sharing's score, but so does random: not reproduced
    tie = ss_rows({**hard, "similarity": (0.95, 500_000), "dissimilarity": (0.95, 380_000),
                   "variance": (0.95, 380_000), "random": (0.95, 380_000)})
    finding = F.criteria_finding(tie)
    assert finding.verdict == F.NOT and "random 0.47x" in finding.text
    better = ss_rows({**hard, "similarity": (0.97, 380_000), "dissimilarity": (0.96, 300_000),
                      "variance": (0.95, 200_000), "random": (0.95, 380_000)})
    finding = F.criteria_finding(better)
    assert finding.verdict == F.REPRODUCED
    assert "variance 0.950 ± 0.001 with 200,000 ± 1,000 parameters (better: equal or better score with fewer" \
           in finding.text
    mixed = ss_rows({**hard, "similarity": (0.97, 380_000), "dissimilarity": (0.93, 380_000),
                     "variance": (0.9505, 380_000), "random": (0.95, 380_000)})
    assert F.criteria_finding(mixed).verdict == F.PARTLY
    assert F.criteria_finding(ss_rows(hard)).verdict == F.UNMEASURED


def test_a_higher_score_bought_with_more_parameters_than_random_does_not_count():
    row, random = ss_rows({"similarity": (0.97, 800_000), "random": (0.95, 380_000)})
    assert F.better_than_random(row, random) == (False, "higher score, but more parameters beyond the spread")


# 4. Selective Sharing: the difficulty curve
def curve(points: dict[str, dict[float, tuple]]) -> list[dict]:
    return [{"method": m, "own": own, "ari": Stat(v)} for m, per in points.items() for own, v in per.items()]


def test_grouping_reads_the_reach_of_similarity_against_random():
    random = {0.0: (0.1, -0.1, 0.0), 0.5: (0.0, 0.1, 0.2), 1.0: (0.0, 0.0, 0.1)}
    far = {0.0: (1.0, 1.0, 1.0), 0.5: (1.0, 1.0, 0.8), 1.0: (0.36, 1.0, 1.0)}
    finding = F.grouping_finding(curve({"similarity": far, "random": random}))
    assert finding.verdict == F.REPRODUCED and "similarity: recovers up to own = 0.5" in finding.text
    near = {0.0: (1.0, 1.0, 1.0), 0.5: (1.0, 0.6, 1.0), 1.0: (1.0, 1.0, 1.0)}  # one seed below 0.7 breaks the reach
    finding = F.grouping_finding(curve({"similarity": near, "random": random}))
    assert finding.verdict == F.PARTLY and "similarity: recovers up to own = 0" in finding.text
    never = {0.0: (0.8, 0.9, 0.85)}  # mean below 0.9
    assert F.grouping_finding(curve({"similarity": never, "random": random})).verdict == F.NOT
    lucky = {**random, 0.0: (1.0, 1.0, 1.0)}
    assert F.grouping_finding(curve({"similarity": far, "random": lucky})).verdict == F.NOT
    assert F.grouping_finding(curve({"random": random})).verdict == F.UNMEASURED


def test_reach_needs_every_easier_value():
    points = [(1.0, Stat((1.0,))), (0.0, Stat((1.0,))), (0.5, Stat((0.5,)))]
    assert F.reach(points) == 0.0 and F.reach([(0.0, Stat((0.5,)))]) is None


def test_combine_and_spread_helpers():
    assert F.combine([F.REPRODUCED, F.UNMEASURED]) == F.REPRODUCED
    assert F.combine([F.NOT, F.REPRODUCED]) == F.PARTLY and F.combine([F.UNMEASURED]) == F.UNMEASURED
    hard = Stat((0.95, 0.97))
    assert F.equal_or_better(Stat((0.95, 0.955)), hard) and not F.equal_or_better(Stat((0.90, 0.91)), hard)
    assert F.clearly_below(Stat((1.0,)), Stat((2.0,))) and not F.clearly_below(Stat((1.0, 3.0)), Stat((2.0, 2.5)))
