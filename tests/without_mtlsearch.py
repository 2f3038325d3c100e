"""Run a script in a Python where mtlsearch cannot be imported, as a user of the exported files would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx
import safetensors
import torch


def run_without_mtlsearch(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -S` (no site processing, so the editable install's .pth finder is never loaded) with only the
    directories holding torch, networkx and safetensors on the path; the script should assert that
    `importlib.util.find_spec("mtlsearch") is None`."""
    paths = {str(Path(m.__file__).parents[1]) for m in (torch, networkx, safetensors)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=os.pathsep.join(sorted(paths)), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-S", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
