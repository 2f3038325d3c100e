"""`mtlsearch reproduce`: the smoke run writes every table and picture from measured numbers; the verdict
rules and the cost budget decide as documented."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from mtlsearch.cli import main
from mtlsearch.errors import UserError
from mtlsearch.reproduce import Plan, reproduce
from mtlsearch.reproduce import findings as F
from mtlsearch.reproduce.cli import add_commands
from mtlsearch.reproduce.experiments import ari
from mtlsearch.reproduce.report import all_findings, read_raw
from mtlsearch.reproduce.measure import Cost, over_budget

PICTURES = ("task_routing_sigma.png", "task_routing_many_tasks.png", "sfg_depth.png", "selective_sharing.png",
            "discovery_curve.png", "all_strategies.png", "four_groupings.png")


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


def number(cell: str) -> float:
    """A measured cell: '0.973' or '0.973 ± 0.004' (one seed in the smoke run: just the number)."""
    return float(cell.split(" ± ")[0].replace(",", ""))


def test_smoke_run_writes_tables_and_pictures_from_measured_numbers(smoke):
    out, path = smoke
    text = path.read_text()
    for name in PICTURES:
        assert (out / "results" / name).stat().st_size > 10_000
        assert f"results/{name}" in text
    plan = Plan.quick(1)
    results = read_raw(out / "results" / "runs.json", plan)
    raw = {(job.dataset, job.strategy, job.config, job.train): r for job, r in results.trained.items()}
    assert not any("error" in r for r in raw.values()), [r["error"] for r in raw.values() if "error" in r]
    tr = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5}
    ss = {"optimizer": "sgd", "lr": 0.02, "momentum": 0.5}

    def result(dataset, strategy, train=None, **config):
        return raw[dataset, strategy, tuple(sorted(config.items())), tuple(sorted((train or {}).items()))]

    # 1. the sigma sweep: accuracy is the mean over the tasks of the raw run, and a fraction
    sigma = {row[0]: row for row in table_rows(text, "### digits")}
    assert set(sigma) == {"0", "0.4", "1"}
    tasks = result("digits", "task_routing", tr, mask_mode="partition", sigma=0.4, task_sampling="one")["test"]
    accuracy = number(sigma["0.4"][4])
    assert 0.0 <= accuracy <= 1.0
    assert accuracy == pytest.approx(np.mean([m["accuracy"] for m in tasks["tasks"].values()]), abs=5e-4)

    # 2. cost: step times and per-task-update times are positive numbers; cross-stitch trains every task per step
    cost = {row[0]: row for row in table_rows(text, "## 2. Task Routing with many tasks")}
    assert list(cost) == ["2", "4"]
    assert number(cost["4"][2]) == number(cost["4"][3]) > 0  # Task Routing: one task per step
    assert number(cost["4"][8]) == pytest.approx(4 * number(cost["4"][9]), rel=0.01)  # cross-stitch: 4 tasks

    # 3. SFG: the table's shares are the raw runs' argmax shares; the no-learned-allocation row is there
    depth = table_rows(text, "## 3. Stochastic Filter Groups")
    layers = result("digits", "sfg")["logs"][-1]["sfg"]["layers"]
    assert [number(r[4]) for r in depth if r[0] == "digits"] == pytest.approx(
        [layer["task_specific_share"] for layer in layers], abs=5e-3)
    assert {r[5] for r in depth if r[0] == "digits"} == {f"{10 / 11:.2f}"}  # chance T/(T+1) with 10 tasks
    versus = {(r[0], r[1]): number(r[2]) for r in table_rows(text, "### SFG against the baselines")}
    assert versus["digits", "sfg, no learned allocation"] == pytest.approx(
        result("digits", "sfg", learn_allocation=False, inference="mc")["test"]["score"], abs=5e-4)

    # 4. Selective Sharing: scores are the raw runs' (same optimiser for hard sharing); ARI cells are numbers
    criteria = {(r[0], r[1]): r for r in table_rows(text, "## 4. Selective Sharing")}
    assert {m for _, m in criteria} == {"hard_sharing", "similarity", "dissimilarity", "variance", "random"}
    for (dataset, method), row in criteria.items():
        strategy, config = ("hard_sharing", {}) if method == "hard_sharing" else ("selective_sharing",
                                                                                  {"criterion": method})
        assert number(row[5]) == pytest.approx(result(dataset, strategy, ss, **config)["test"]["score"], abs=5e-4)
    curve = table_rows(text, "### Does it group related tasks?")
    assert [row[0] for row in curve] == ["0", "1.5"]
    for row in curve:
        assert all(-1.0 <= number(c) <= 1.0 for c in row[1:])
    planted = result("synthetic:own=0,seed=0", "selective_sharing", ss, criterion="similarity")
    assert number(curve[0][1]) == pytest.approx(ari(planted), abs=5e-3)

    # 5. every strategy's score is the raw run's and lies in [0, 1]
    everything = {(row[0], row[1]): row for row in table_rows(text, "## 5. All strategies")}
    hard = result("digits", "hard_sharing")
    score = number(everything["digits", "hard_sharing"][4])
    assert 0.0 <= score <= 1.0 and score == pytest.approx(hard["test"]["score"], abs=5e-4)
    assert everything["digits", "hard_sharing"][7] == f"{int(hard['best_epoch'] == len(hard['val_scores']))} of 1"

    # 6. the four groupings: each row's groups, layer and score are its raw run's; strategies agree by their ARI
    grouped = {(r[0], r[1]): r for r in table_rows(text, "## 6. Four groupings compared")}
    assert {s for _, s in grouped} == {"hard_sharing", "task_routing", "sfg", "selective_sharing", "task_affinity"}
    affinity = result("digits", "task_affinity", switch_epoch=2)
    assert number(grouped["digits", "task_affinity"][4]) == pytest.approx(affinity["test"]["score"], abs=5e-4)
    groups = affinity["grouping"]["groups"]
    assert grouped["digits", "task_affinity"][10] == " ".join("[" + " ".join(g) + "]" for g in groups)
    assert sorted(map(sorted, groups)) == sorted(map(sorted, affinity["report"]["final_groups"]))  # as it chose
    assert grouped["digits", "hard_sharing"][10] == "all together"
    assert number(grouped["digits", "task_affinity"][6]) == len(groups) > 1
    agreement = {(r[0], r[1], r[2]): r[3] for r in table_rows(text, "Agreement between strategies")}
    hard_tr = result("digits", "task_routing", tr, mask_mode="partition", sigma=0.4, task_sampling="one")
    assert agreement["digits", "task_routing", "task_affinity"] == f"{ari_of(hard_tr, affinity):.2f}"

    # the summary: one verdict word per finding, as the rules decide from the raw numbers
    summary = table_rows(text, "## Summary")
    verdicts = [row[2].strip("*") for row in summary]
    assert all(v in F.VERDICTS for v in verdicts) and len(verdicts) == 6
    assert verdicts == [f.verdict for f in all_findings(results)]
    sfg = {m: result("digits", s, **c)["test"]["score"] for m, s, c in (
        ("sfg", "sfg", {}), ("single", "single_task", {}), ("hard", "hard_sharing", {}), ("cs", "cross_stitch", {}),
        ("fixed", "sfg", {"learn_allocation": False, "inference": "mc"}))}
    above = [sfg["sfg"] > v for k, v in sfg.items() if k != "sfg"]  # one seed: higher is clearly higher
    expected = F.REPRODUCED if all(above) else F.NOT if not any(above) else F.PARTLY
    assert f"**digits: {expected}.** SFG scored" in text


def ari_of(a: dict, b: dict) -> float:
    """The adjusted Rand index of two raw runs' groupings, computed here from their group lists."""
    from sklearn.metrics import adjusted_rand_score

    def labels(r):
        where = {t: k for k, g in enumerate(r["grouping"]["groups"]) for t in g}
        return [where[t] for t in r["grouping"]["tasks"]]

    return adjusted_rand_score(labels(a), labels(b))


def test_reuse_trains_only_the_runs_an_earlier_reproduction_lacks(smoke, tmp_path):
    import json
    import shutil

    out = tmp_path / "docs"
    shutil.copytree(smoke[0], out)
    raw = json.loads((out / "results" / "runs.json").read_text())
    dropped = next(r for r in raw["runs"] if r["run"]["dataset"].startswith("synthetic:own=0,"))
    raw["runs"].remove(dropped)
    (out / "results" / "runs.json").write_text(json.dumps(raw))
    before = (out / "RESULTS.md").read_text()

    reproduce(out, quick=True, reuse=True, quiet=True)
    after = (out / "RESULTS.md").read_text()
    again = json.loads((out / "results" / "runs.json").read_text())
    assert [g["trained"] for g in again["generations"]] == [len(raw["runs"]) + 1, 1]
    assert again["generations"][-1]["reused"] == len(raw["runs"])
    retrained = next(r for r in again["runs"] if r["run"] == dropped["run"])
    assert retrained["result"]["test"] == dropped["result"]["test"]  # same seed, same result on the CPU
    assert "trained 1 run, took 0 cost measurements and reused" in after.splitlines()[2]
    assert after.split("## Summary")[1] == before.split("## Summary")[1]  # every table and verdict unchanged
    with pytest.raises(UserError, match="runs.json does not exist"):
        reproduce(tmp_path / "empty", quick=True, reuse=True)


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
