"""Every script in examples/ runs in its smoke mode, and what it exports loads where mtlsearch is not installed.

The Ray Tune and Optuna examples are the issue's "done when": they use only the public names (mtlsearch.tune,
mtlsearch.optuna), search with Ray's own Tuner and Optuna's own study.optimize, and export the best trial.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from concurrently import ONE_THREAD, selected, two_at_a_time
from without_mtlsearch import run_without_mtlsearch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPORTED = {  # each example's run directory holding structure.graphml and frozen/, under its --out
    "ray_tune_search.py": "best",
    "optuna_study.py": "best",
    "retrain_exported.py": "finetuned",
    "custom_problem.py": "hard_sharing",
    "custom_strategy.py": ".",
    "task_affinity.py": ".",
    "compare_groupings.py": "task_affinity",
}
LOAD_EXPORT = textwrap.dedent("""
    import importlib.util, json
    assert importlib.util.find_spec("mtlsearch") is None, "mtlsearch is importable"
    import networkx, torch
    graph = networkx.read_graphml("structure.graphml")
    tasks = json.load(open("frozen/tasks.json"))["tasks"]
    shape = json.load(open("frozen/structure.json"))["graph"]["input_shape"]
    outputs = torch.export.load("frozen/model.pt2").module()(torch.zeros(3, *shape))
    print(json.dumps({"blocks": graph.number_of_nodes(), "tasks": tasks, "graph_tasks": graph.graph["task_names"],
                      "batch": [len(o) for o in outputs]}))
""")


def test_every_example_is_run_here():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPORTED)
    assert (EXAMPLES / "cluster.md").is_file()


def run_and_load(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess | None]:
    """The example in its smoke mode, then (if it succeeded) its export loaded where mtlsearch is not installed."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--smoke", "--out", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env=ONE_THREAD)
    return done, run_without_mtlsearch(LOAD_EXPORT, out / EXPORTED[name]) if done.returncode == 0 else None


@pytest.fixture(scope="module")
def example_runs(request, tmp_path_factory):
    """Every selected example run and loaded, two at a time (their processes train with one thread each)."""
    names = sorted(selected(request, "test_example_runs_and_its_export_loads_without_mtlsearch", "name"),
                   key=lambda name: name != "ray_tune_search.py")  # the longest first: the others share the wait
    return two_at_a_time(lambda name: run_and_load(name, tmp_path_factory.mktemp(name.removesuffix(".py"))), names)


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_example_runs_and_its_export_loads_without_mtlsearch(name, example_runs):
    done, loaded = example_runs[name]
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()  # each example says what it did
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["blocks"] > len(result["tasks"]) and result["graph_tasks"] == ",".join(result["tasks"])
    assert result["batch"] == [3] * len(result["tasks"])
