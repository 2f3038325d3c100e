"""The package reads one way: problems -> backbones/nn -> structure -> strategies -> training -> search -> cli.

Every import in mtlsearch/ (module level or inside a function) is checked: no module imports a layer above its
own, and no chain of imports comes back to where it started. Importing a module has no side effects on
matplotlib's backend or the environment.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "mtlsearch"

# The layer of each module, by the longest matching name prefix; a module may import its own layer or below.
LAYERS = {
    "mtlsearch.errors": 0,
    "mtlsearch.problems": 1,
    "mtlsearch.backbones": 2, "mtlsearch.nn": 2,
    "mtlsearch.structure": 3,
    "mtlsearch.strategies": 4,
    "mtlsearch.training": 5, "mtlsearch.settings": 5, "mtlsearch.run": 5, "mtlsearch.retrain": 5,
    "mtlsearch.groupings": 5,
    "mtlsearch.search": 6, "mtlsearch.optuna": 6, "mtlsearch.tune": 6, "mtlsearch.reproduce": 6,
    "mtlsearch.search.cli": 7, "mtlsearch.reproduce.cli": 7, "mtlsearch.cli": 7, "mtlsearch.__main__": 7,
    "mtlsearch": 8,  # the package itself: the public surface re-exports from every layer
}
NAMES = {0: "errors", 1: "problems", 2: "backbones/nn", 3: "structure", 4: "strategies", 5: "training",
         6: "search", 7: "cli", 8: "the package's public surface"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> int:
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} has no layer: add it to LAYERS in this test"
    return LAYERS[max(matches, key=len)]


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The mtlsearch modules `name` imports; `from package import submodule` counts as the submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mtlsearch")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mtlsearch":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    found.discard(name)
    return found


def import_graph() -> nx.DiGraph:
    known = modules()
    graph = nx.DiGraph()
    for name, path in known.items():
        graph.add_node(name)
        graph.add_edges_from((name, target) for target in imports_of(name, path, known))
    return graph


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{src} ({NAMES[layer_of(src)]}) imports {dst} ({NAMES[layer_of(dst)]})"
              for src, dst in import_graph().edges if layer_of(dst) > layer_of(src)]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_imports_have_no_cycle():
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + c[:1]) for c in cycles[:10])


def test_the_checker_sees_upward_and_circular_imports(tmp_path):
    """The walk itself: relative imports resolve, and a planted upward edge is found."""
    graph = import_graph()
    assert ("mtlsearch.strategies.base", "mtlsearch.errors") in graph.edges
    assert layer_of("mtlsearch.search.cli") == 7 and layer_of("mtlsearch.search.driver") == 6
    planted = nx.DiGraph([("mtlsearch.structure.graph", "mtlsearch.training")])
    assert [e for e in planted.edges if layer_of(e[1]) > layer_of(e[0])]


THIRD_PARTY = ("torch", "torchvision", "torch._inductor.config", "numpy", "sklearn", "optuna", "ray", "ray.tune",
               "ray.tune.search.optuna", "hdbscan", "tensorly", "networkx", "safetensors.torch")


def test_importing_a_module_changes_neither_backend_nor_environment():
    """A notebook that imports mtlsearch keeps its matplotlib backend and its environment variables."""
    code = (
        "import os, sys, importlib, matplotlib\n"
        "matplotlib.use('svg')\n"
        f"for library in {THIRD_PARTY!r}:\n"  # what the libraries themselves set is theirs, not ours
        "    importlib.import_module(library)\n"
        "offenders = []\n"
        "for name in sys.argv[1:]:\n"
        "    backend, env = matplotlib.get_backend(), dict(os.environ)\n"
        "    importlib.import_module(name)\n"
        "    changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "    if matplotlib.get_backend() != backend or changed:\n"
        "        offenders.append(f'{name}: backend {matplotlib.get_backend()}, environment {changed}')\n"
        "        matplotlib.use('svg')\n"
        "        os.environ.clear(); os.environ.update(env)\n"
        "print('\\n'.join(offenders))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    names = sorted(n for n in modules() if n != "mtlsearch.__main__")  # running it is its job
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    assert not result.stdout.strip(), "imports with side effects:\n" + result.stdout
