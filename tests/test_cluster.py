"""Cluster and GPU plumbing: a search on a real two-node Ray cluster with its trials kept under --storage-path,
and half a GPU per trial running two trials at once.

The cluster is two `ray start --block` processes on 127.0.0.1 in their own session, with their own temp dir,
ports and authentication token; teardown ends the processes of that session only (never `ray stop`, which
would stop every Ray of this user on the machine).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from ray import tune

from mtlsearch.search import SearchConfig, search

TINY = ["--set", "epochs=1", "--set", "batch_size=128"]
# Two trials at once, one per node (each node has one CPU, so the two trials' placement groups land on different
# nodes). Four epochs: 30 (to outlast the second node's worker start, from when the test ran four trials and actor
# reuse could hand a pending trial to the first node's finished worker) took six minutes; four passed three times,
# once beside a busy core.
LONG = ["--set", "epochs=4", "--set", "batch_size=64"]
TRIALS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(session: int) -> list[int]:
    """The processes of one session: a `ray start` started with start_new_session and everything it spawned."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # a zombie is gone already, only not yet reaped
            found.append(int(stat.parent.name))
    return found


def end_session(session: int) -> None:
    """SIGTERM every process of the session, SIGKILL what is left after ten seconds."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
        for pid in session_processes(session):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while session_processes(session) and time.monotonic() < deadline:
            time.sleep(0.2)


def wait_until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {seconds:.0f}s")
        time.sleep(0.5)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head and a worker node, one CPU each, on 127.0.0.1; yields (HOST:PORT, the environment to reach it)."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # this cluster's token
    temp_dir = f"/tmp/ray_mtl_{os.getpid()}"  # short: Ray's socket paths must stay under 108 characters
    node = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--block", "--disable-usage-stats",
            f"--temp-dir={temp_dir}", f"--dashboard-agent-listen-port={free_port()}"]
    started = []

    def start(*args: str, log: str) -> subprocess.Popen:
        with open(tmp_path / log, "w") as output:
            process = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *args, *node], env=env,
                                       start_new_session=True, stdout=output, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    try:
        head = start("--head", f"--port={port}", "--include-dashboard=false", log="head.log")
        wait_until(lambda: port_open(port) or head.poll() is not None, "the head node's port to open")
        assert head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
        node[-1] = f"--dashboard-agent-listen-port={free_port()}"
        start(f"--address=127.0.0.1:{port}", log="worker.log")
        check = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        wait_until(lambda: subprocess.run([sys.executable, "-c", check, f"127.0.0.1:{port}"], env=env, text=True,
                                          capture_output=True).stdout.strip().endswith("2"), "two nodes alive")
        yield f"127.0.0.1:{port}", env
    finally:
        for process in started:
            end_session(process.pid)
            process.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_search_runs_trials_on_both_nodes_and_keeps_them_in_storage_path(two_node_cluster, tmp_path):
    """Must not run while another Ray cluster is started on this machine with the same ports (they are free ports
    chosen here, so only a race could collide)."""
    address, env = two_node_cluster
    storage = tmp_path / "shared"  # outside the run directory, as a shared disk would be
    command = [sys.executable, "-m", "mtlsearch", "search", "--address", address, "--space", "baselines",
               "--trials", str(TRIALS), "--concurrency", "2", "--out", str(tmp_path / "runs"), "--name", "cluster",
               "--storage-path", str(storage), "--quiet", *LONG]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "cluster"
    assert not (run_dir / "ray").exists()
    results = sorted((storage / "cluster" / "ray").glob("*/result.json"))
    assert len(results) == TRIALS
    nodes = {json.loads(line)["node_id"] for path in results for line in path.read_text().splitlines()}
    assert len(nodes) == 2  # trials ran in worker processes of both nodes
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["done"] == TRIALS and summary["best"]
    for best in summary["best"].values():  # exported from the checkpoints read back through the storage path
        assert (Path(best["dir"]) / "frozen" / "model.pt2").is_file()


class TrialWindows(tune.Callback):
    """When each trial started and ended, as the driver saw it."""

    def __init__(self):
        self.windows: dict[str, list[float]] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.windows[trial.trial_id] = [time.monotonic(), None]

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.windows[trial.trial_id][1] = time.monotonic()


@pytest.fixture(scope="module")
def ray_with_one_gpu():
    """A local Ray with one GPU declared on a CPU-only machine, for both packing cases."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("gpus_per_trial, together", [(0.5, True), (1.0, False)])
def test_half_a_gpu_per_trial_runs_two_trials_at_once(ray_with_one_gpu, tmp_path, gpus_per_trial, together):
    """Ray schedules by logical resources: one GPU declared on a CPU-only machine shows the packing."""
    windows = TrialWindows()
    config = SearchConfig(out=str(tmp_path), name="gpu", space="baselines", trials=2, concurrency=2,
                          gpus_per_trial=gpus_per_trial, fixed={"epochs": 2, "batch_size": 128})
    summary = search(config, quiet=True, callbacks=[windows])
    assert summary["done"] == 2
    (a_start, a_end), (b_start, b_end) = windows.windows.values()
    overlap = min(a_end, b_end) - max(a_start, b_start)
    assert (overlap > 0) == together, windows.windows
