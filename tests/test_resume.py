"""Exact resume for every strategy: N epochs straight == k epochs, checkpoint, a fresh process, finish to N."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from concurrently import ONE_THREAD, selected, two_at_a_time

EPOCHS, STOP = 3, 2
# name -> (strategy, settings), the slowest first (they run two at a time). Selective Sharing merges in epoch 1 on
# digits, before the stop. Its resumed state (groups, history, epoch) is the same for every criterion, and a
# criterion is a function of the epoch's gradients and of an rng made from (seed, epoch): similarity stands for the
# deterministic criteria (dissimilarity and variance are tested in tests/test_clustering_criteria.py), random for
# the one that draws.
CASES = {
    "task_affinity_measuring": ("task_affinity", {"switch_epoch": 3, "affinity_every": 5}),
    "task_routing_all": ("task_routing", {"task_sampling": "all"}),
    "task_affinity_switched": ("task_affinity", {"switch_epoch": 2, "affinity_every": 5}),
    "sfg": ("sfg", {}),
    **{f"selective_sharing_{c}": ("selective_sharing", {"criterion": c}) for c in ("similarity", "random")},
    "single_task": ("single_task", {}),
    "cross_stitch": ("cross_stitch", {}),
    "hard_sharing": ("hard_sharing", {}),
    "task_routing_one": ("task_routing", {"task_sampling": "one"}),
}

# One process trains straight to EPOCHS and, from the same seed, again until the checkpoint after epoch STOP, where
# it stops as if killed; a second process loads that checkpoint and finishes. Each writes what the comparison needs:
# weights, history, test metrics, report. A process does this for several cases in turn (a Python start with torch
# costs as much as a case's training), each case's failure written to its error.txt; the resumes of a case never run
# in the process that trained it.
SCRIPT = r"""
import json, sys, traceback, torch
from pathlib import Path
from mtlsearch.problems import load_problem
from mtlsearch.strategies import get_strategy
from mtlsearch.training import TrainConfig, Trainer, evaluate

torch.set_num_threads(1)
mode, cases, epochs, stop = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
problem = load_problem("digits")


def plain(value):
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def finish(tr, path):
    tr.fit()
    torch.save({"weights": tr.model.state_dict(),
                "history": plain([{k: v for k, v in r.items() if k != "seconds"} for r in tr.history]),
                "test": plain(evaluate(tr.model, problem, "test")),
                "report": plain(tr.strategy.report()),
                "architecture": tr.strategy.architecture_state()}, path)


class Interrupted(Exception):
    pass


def run(out, strategy_name, settings):
    def trainer(n):
        return Trainer(problem, get_strategy(strategy_name)(problem, settings, 0), TrainConfig(epochs=n),
                       seed=0, quiet=True)

    def checkpoint_and_stop(tr, record):  # what a run's per-epoch checkpoint holds when it is killed after that epoch
        if record["epoch"] == stop:
            torch.save(tr.state_dict(), out + "/partial.pt")
            raise Interrupted

    if mode == "first":
        finish(trainer(epochs), out + "/straight.pt")
        part = trainer(epochs)
        part.on_epoch = checkpoint_and_stop
        try:
            part.fit()
        except Interrupted:
            pass
    else:
        tr = trainer(epochs)
        tr.load_state_dict(torch.load(out + "/partial.pt", weights_only=True))
        finish(tr, out + "/resumed.pt")


for out, strategy_name, settings in cases:
    if not Path(out, "error.txt").exists():
        try:
            run(out, strategy_name, settings)
        except Exception:
            Path(out, "error.txt").write_text(traceback.format_exc()[-3000:])
"""


def _run(mode: str, cases: list[str], dirs: dict) -> str:
    """One fresh process for `cases` in turn; its stderr's tail if it failed, else ''."""
    listed = json.dumps([[str(dirs[case]), *CASES[case]] for case in cases])
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode, listed, str(EPOCHS), str(STOP)],
                            capture_output=True, text=True, timeout=900, env=ONE_THREAD)
    return result.stderr[-3000:] if result.returncode else ""


@pytest.fixture(scope="module")
def resumed_runs(request, tmp_path_factory):
    """Every selected case trained, interrupted and resumed: the cases dealt to two pairs of processes (first, then
    resume) that run side by side; case -> (its directory, its error or '')."""
    cases = selected(request, "test_interrupted_and_resumed_in_a_fresh_process_equals_straight", "case")
    dirs = {case: tmp_path_factory.mktemp(case) for case in cases}
    halves = [cases[0::2], cases[1::2]]  # CASES lists the slowest first: alternate, so the halves take alike
    crashed = two_at_a_time(lambda half: _run("first", half, dirs) or _run("resume", half, dirs),
                            [tuple(h) for h in halves if h])

    def error(case):
        written = dirs[case] / "error.txt"
        return written.read_text() if written.exists() else next(
            (crash for half, crash in crashed.items() if case in half), "")

    return {case: (dirs[case], error(case)) for case in cases}


def _without_times(value):
    """Reports hold wall-clock seconds (analysis time); everything else must match exactly."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _same(a, b) -> bool:
    """Tensors equal to the bit; nested extra state compared the same way."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("case", list(CASES))
def test_interrupted_and_resumed_in_a_fresh_process_equals_straight(case, resumed_runs):
    strategy = CASES[case][0]
    tmp_path, error = resumed_runs[case]
    assert not error, error
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert straight["weights"].keys() == resumed["weights"].keys()
    for name, value in straight["weights"].items():
        assert _same(value, resumed["weights"][name]), name
    assert _without_times(straight["history"]) == _without_times(resumed["history"])
    assert straight["test"] == resumed["test"]
    assert _without_times(straight["report"]) == _without_times(resumed["report"])
    assert straight["architecture"] == resumed["architecture"]
    if strategy == "selective_sharing":  # the interruption falls after a merge, so the resume had to keep it
        partial = torch.load(tmp_path / "partial.pt", weights_only=True)
        assert any(len(g) > 1 for g in partial["architecture"]["groups"]), partial["architecture"]
    if case == "task_affinity_switched":  # the interruption falls after the switch, so the resume had to keep it
        partial = torch.load(tmp_path / "partial.pt", weights_only=True)
        assert len(partial["architecture"]["groups"]) > 1, partial["architecture"]
