"""`mtlsearch reproduce`: the smoke run writes every table and picture from measured numbers; the verdict
rules and the cost budget decide as documented."""
from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

from mtlsearch.cli import main
from mtlsearch.errors import UserError
from mtlsearch.reproduce import reproduce
from mtlsearch.reproduce import findings as F
from mtlsearch.reproduce.cli import add_commands
from mtlsearch.reproduce.experiments import Stat
from mtlsearch.reproduce.measure import Cost, over_budget

PICTURES = ("task_routing_sigma.png", "task_routing_many_tasks.png", "sfg_depth.png", "selective_sharing.png",
            "all_strategies.png")


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first markdown table after `heading`."""
    after = text[text.index(heading):]
    lines = [line for line in after.splitlines() if line.startswith("|")]
    block = []
    for line in after.splitlines()[after.splitlines().index(lines[0]):]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip("|").split("|")])
    return block[2:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`mtlsearch reproduce --quick` itself (about a minute on two idle cores)."""
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--quick", "--out", str(out), "--quiet", "--overwrite"]) == 0
    return out, out / "RESULTS.md"


def test_smoke_run_writes_tables_and_pictures_from_measured_numbers(smoke):
    out, path = smoke
    text = path.read_text()
    for name in PICTURES:
        assert (out / "results" / name).stat().st_size > 10_000
        assert f"results/{name}" in text
    raw = json.loads((out / "results" / "runs.json").read_text())
    by_run = {(r["run"]["strategy"], r["run"]["dataset"], json.dumps(r["run"]["settings"], sort_keys=True)): r["result"]
              for r in raw["runs"]}

    sigma = {row[0]: row for row in table_rows(text, "### digits")}
    accuracy = float(sigma["0.4"][4])  # the accuracy column of sigma = 0.4
    assert 0.0 <= accuracy <= 1.0
    settings = json.dumps({"mask_mode": "partition", "sigma": 0.4, "task_sampling": "one"}, sort_keys=True)
    tasks = by_run["task_routing", "digits", settings]["test"]["tasks"]
    assert accuracy == pytest.approx(np.mean([m["accuracy"] for m in tasks.values()]), abs=5e-4)

    everything = {(row[0], row[1]): row for row in table_rows(text, "## 5. All strategies")}
    score = float(everything["digits", "hard_sharing"][4])
    assert 0.95 <= score <= 1.0  # three epochs of hard sharing beat the one-vs-all majority guess (0.90)
    assert score == pytest.approx(by_run["hard_sharing", "digits", "{}"]["test"]["score"], abs=5e-4)

    cost = table_rows(text, "## 2. Task Routing with many tasks")
    assert [row[0] for row in cost] == ["10", "50"] and float(cost[0][2]) > 0  # Task Routing's step time (ms)

    criteria = {row[0]: row for row in table_rows(text, "## 4. Selective Sharing")}
    assert set(criteria) >= {"similarity", "dissimilarity", "variance", "random", "hard_sharing"}
    assert -1.0 <= float(criteria["similarity"][-1]) <= 1.0  # adjusted Rand index on synthetic
    summary = table_rows(text, "## Summary")
    assert len(summary) == 6 and all(re.search(r"reproduced|not measured", row[2]) for row in summary)


def sigma_rows(values: dict[float, float]):
    return [{"dataset": "digits", "sigma": s, **{k: Stat((v - 0.001, v + 0.001)) for k in F.METRICS}}
            for s, v in values.items()]


def test_sigma_verdict_follows_the_stated_rule():
    assert F.sigma_finding(sigma_rows({0.0: 0.90, 0.4: 0.95, 1.0: 0.91})).verdict == F.REPRODUCED
    assert F.sigma_finding(sigma_rows({0.0: 0.90, 0.4: 0.85, 1.0: 0.91})).verdict == F.NOT
    within = sigma_rows({0.0: 0.90, 0.4: 0.9005, 1.0: 0.89})
    assert F.sigma_finding(within).verdict == F.PARTLY  # higher, but by less than the seed spread
    assert F.sigma_finding(sigma_rows({0.0: 0.9, 1.0: 0.9})).verdict == F.UNMEASURED


def test_equal_or_better_allows_the_seed_spread_only():
    hard = Stat((0.95, 0.97))
    assert F.equal_or_better(Stat((0.95, 0.955)), hard)
    assert not F.equal_or_better(Stat((0.90, 0.91)), hard)


def test_cost_budget_skips_counts_the_smaller_ones_predict_too_slow():
    job = lambda n: Cost("cross_stitch", n, steps=10, warmup=2, batch=64, budget_seconds=60.0)
    small = {"step_ms": 500.0, "steps_timed": 10, "build_seconds": 0.1, "param_bytes": 1e7, "optimizer_bytes": 2e7}
    assert over_budget([], job(10), 4e9) is None
    assert over_budget([(job(10), small)], job(20), 4e9) is None  # 4 x 12 steps x 0.5 s = 24 s
    assert "budget 60 s" in over_budget([(job(10), small)], job(40), 4e9)  # 16 x 6 s = 96 s
    assert "GB" in over_budget([(job(10), small)], job(20), 5e7)
    assert "GB" in over_budget([(job(10), {**small, "peak_rss_growth": 2e9})], job(20), 4e9)  # 2 GB x 2^1.5
    stopped = {**small, "steps_timed": 3}
    assert "exceeded" in over_budget([(job(10), stopped)], job(20), 4e9)


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="workers"):
        reproduce(tmp_path, workers=0)
    with pytest.raises(UserError, match="seeds"):
        reproduce(tmp_path, seeds=0)
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reproduce", "--quick", "--out", str(tmp_path)])
    assert args.quick and args.workers == 2 and args.seeds is None and args.run.__name__ == "_reproduce"


def test_earlier_results_are_kept_without_overwrite(tmp_path, capsys):
    (tmp_path / "RESULTS.md").write_text("earlier")
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RESULTS.md exists; pass --overwrite" in err
    assert (tmp_path / "RESULTS.md").read_text() == "earlier" and not (tmp_path / "results").exists()
