"""Shared test fixtures (name them specifically: several test modules use this file)."""
from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread_torch():
    """One intra-op thread: the tiny test models train many times faster than with threads fighting for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def search_signing_key(tmp_path_factory):
    """Searches sign their state with a key in the user's config directory: tests use their own, never ~/.config."""
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if before is None:
        os.environ.pop("XDG_CONFIG_HOME")
    else:
        os.environ["XDG_CONFIG_HOME"] = before


@pytest.fixture(scope="session")
def ray_session():
    """The one Ray runtime of the test session: two CPUs, no dashboard."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
