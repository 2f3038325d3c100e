"""Run the single-threaded subprocesses of several parametrised cases two at a time: CI has two cores, and a case's
processes (fresh Python, one torch thread each) leave the other core idle when run one after another."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import pytest

Case = TypeVar("Case")
Outcome = TypeVar("Outcome")

# The environment of those subprocesses: one intra-op thread, as each has a core to itself.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def selected(request: pytest.FixtureRequest, test: str, param: str) -> list:
    """The values of `param` in this session's selected (not deselected) items of the test function `test`, in
    collection order: a module fixture runs only what -k or a node id asked for."""
    found = [item.callspec.params[param] for item in request.session.items
             if getattr(item, "originalname", None) == test]
    return list(dict.fromkeys(found))


def two_at_a_time(run: Callable[[Case], Outcome], cases: list[Case]) -> dict[Case, Outcome]:
    """`run(case)` for every case, two at a time (one where the process may use a single core); case -> outcome."""
    with ThreadPoolExecutor(max_workers=max(1, min(2, len(os.sched_getaffinity(0))))) as pool:
        return dict(zip(cases, pool.map(run, cases)))
