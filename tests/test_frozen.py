"""Frozen models: the trained baselines reproduced by freeze, saved, reloaded, and run without mtlsearch."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import networkx
import pytest
import safetensors
import torch
from safetensors.torch import load_file, save_file

from mtlsearch.errors import UserError
from mtlsearch.problems import load_problem
from mtlsearch.retrain import select_tasks
from mtlsearch.strategies import BASELINES, get_strategy
from mtlsearch.structure import freeze, load_frozen, save_frozen, views
from mtlsearch.structure.export import export_structure
from mtlsearch.structure.frozen import load_weights_file, structure_files
from mtlsearch.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("single_thread_torch")
TOLERANCE = 1e-5


TASKS = ["is_0", "is_3", "is_7", "is_8"]


@pytest.fixture(scope="module")
def digits():
    """Four of the ten digit tasks keep cross-stitch (T^2 stitch edges per layer) quick to train and export."""
    return select_tasks(load_problem("digits"), TASKS)


@pytest.fixture(scope="module")
def trained(digits, single_thread_torch):
    """Each baseline trained one epoch (so weights and norm statistics are not the initial ones)."""
    runs = {}
    for name in BASELINES:
        strategy = get_strategy(name)(digits, {}, 0)
        trainer = Trainer(digits, strategy, TrainConfig(epochs=1, batch_size=128), quiet=True)
        trainer.fit()
        runs[name] = (strategy, trainer.model.eval())
    return runs


@pytest.fixture(scope="module")
def test_images(digits):
    return digits.test.tensors[0][:64]


def outputs(model, x, tasks) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model.eval()(x)
    return [out[t] for t in tasks]


def assert_close(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", BASELINES)
def test_frozen_model_reproduces_the_trained_baseline(trained, test_images, name):
    strategy, model = trained[name]
    structure, weights = strategy.structure(model)
    frozen = freeze(structure, weights)
    tasks = structure.task_names
    assert_close(outputs(frozen, test_images, tasks), outputs(model, test_images, tasks))
    count = sum(p.numel() for p in frozen.parameters())
    assert count == views.total_params(structure) == sum(p.numel() for p in model.parameters())
    fresh = freeze(structure)  # fresh initialisation: the trained weights are what made the outputs equal
    assert (outputs(fresh, test_images, tasks)[0] - outputs(model, test_images, tasks)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("name", BASELINES)
def test_saved_frozen_model_and_program_match(trained, test_images, tmp_path, name):
    strategy, model = trained[name]
    structure, weights = strategy.structure(model)
    save_frozen(freeze(structure, weights), tmp_path)
    tasks = structure.task_names
    want = outputs(model, test_images, tasks)
    assert_close(outputs(load_frozen(tmp_path), test_images, tasks), want)
    program = torch.export.load(tmp_path / "model.pt2").module()
    for batch in (1, 7, 64):  # the batch dimension is dynamic
        assert_close(list(program(test_images[:batch])), [w[:batch] for w in want])
    info = json.loads((tmp_path / "tasks.json").read_text())
    assert info["tasks"] == tasks and info["input_shape"] == ["batch", 1, 8, 8]
    stored = load_file(tmp_path / "weights.safetensors")  # safetensors: plain tensors, no pickle
    assert stored.keys() == model.state_dict().keys()


def test_freeze_for_some_tasks_keeps_only_their_blocks(trained, test_images, tmp_path):
    for name in ("hard_sharing", "cross_stitch"):
        strategy, model = trained[name]
        structure, weights = strategy.structure(model)
        small = freeze(structure, weights, tasks=["is_7", "is_3"])
        assert small.task_names == ["is_3", "is_7"]
        assert_close(outputs(small, test_images, small.task_names), outputs(model, test_images, small.task_names))
        count = sum(p.numel() for p in small.parameters())
        per_task = views.params_per_task(structure)
        assert max(per_task["is_3"], per_task["is_7"]) < count < views.total_params(structure)
        save_frozen(small, tmp_path / name)
        assert_close(outputs(load_frozen(tmp_path / name), test_images, small.task_names),
                     outputs(small, test_images, small.task_names))
        assert_close(outputs(load_frozen(tmp_path / name, ["is_7"]), test_images, ["is_7"]),
                     outputs(model, test_images, ["is_7"]))


def test_heterogeneous_tasks_export(tmp_path):
    problem = load_problem("multidigits")
    strategy = get_strategy("hard_sharing")(problem, {}, 0)
    model = strategy.build(strategy.backbone(None)).eval()
    save_frozen(model, tmp_path)
    x = problem.test.tensors[0][:5]
    got = torch.export.load(tmp_path / "model.pt2").module()(x)
    assert [tuple(g.shape) for g in got] == [(5, t.out_features) for t in problem.tasks]
    assert_close(list(got), outputs(model, x, problem.task_names))


def test_weights_that_do_not_fit_are_refused(trained, tmp_path):
    strategy, model = trained["hard_sharing"]
    structure, weights = strategy.structure(model)
    structure.save_json(tmp_path / "structure.json")
    state = {k: v.contiguous() for k, v in weights.items()}
    bad = dict(state, **{"blocks.trunk2.weight": state["blocks.trunk2.weight"][:, :5].contiguous()})
    save_file(bad, tmp_path / "weights.safetensors")
    with pytest.raises(UserError, match=r"blocks.trunk2.weight has shape \[40, 5, 5, 5\], "
                                        r"the structure needs \[40, 20, 5, 5\]"):
        load_frozen(tmp_path)
    del bad["blocks.trunk2.weight"]
    save_file(bad, tmp_path / "weights.safetensors")
    with pytest.raises(UserError, match=r"missing \['blocks.trunk2.weight'\]"):
        load_frozen(tmp_path)
    (tmp_path / "weights.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(UserError, match="not a valid safetensors weights file"):
        load_frozen(tmp_path)
    (tmp_path / "weights.safetensors").unlink()
    with pytest.raises(UserError, match="holds no structure.json and weights.safetensors"):
        structure_files(tmp_path)
    with pytest.raises(UserError, match="no such weights file"):
        load_weights_file(tmp_path / "weights.safetensors")
    with pytest.raises(UserError, match="holds no structure.json and weights.safetensors"):
        load_frozen(tmp_path)


ISOLATED_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    assert importlib.util.find_spec("mtlsearch") is None, "mtlsearch is importable"
    import networkx, torch
    from safetensors.torch import load_file
    graph = networkx.read_graphml("structure.graphml")
    tasks = json.load(open("frozen/tasks.json"))["tasks"]
    data = load_file("io.safetensors")
    program = torch.export.load("frozen/model.pt2").module()
    got = program(data["x"])
    print(json.dumps({"nodes": graph.number_of_nodes(), "task_names": graph.graph["task_names"],
                      "diff": max(float((g - data[t]).abs().max()) for g, t in zip(got, tasks)),
                      "shapes": [list(g.shape) for g in got]}))
""")


def test_files_load_where_mtlsearch_is_not_installed(trained, test_images, tmp_path):
    """Run with -S (no site processing, so the editable install's .pth finder is never loaded) and only the
    directories holding torch, networkx and safetensors on the path; the script asserts mtlsearch is absent."""
    strategy, model = trained["cross_stitch"]
    structure, weights = strategy.structure(model)
    export_structure(tmp_path, structure, weights)
    expected = dict(zip(structure.task_names, outputs(model, test_images, structure.task_names)))
    save_file({"x": test_images.contiguous(), **expected}, tmp_path / "io.safetensors")
    paths = {str(pathlib.Path(m.__file__).parents[1]) for m in (torch, networkx, safetensors)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=os.pathsep.join(sorted(paths)), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-S", "-c", ISOLATED_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["nodes"] == structure.graph.number_of_nodes()
    assert result["task_names"] == ",".join(structure.task_names)
    assert result["diff"] <= TOLERANCE and result["shapes"] == [[64, 1]] * len(TASKS)


def test_export_writes_every_file(trained, tmp_path):
    strategy, model = trained["hard_sharing"]
    structure, weights = strategy.structure(model)
    names = export_structure(tmp_path, structure, weights)
    for name in names:
        assert (tmp_path / name).exists(), name
    assert load_frozen(tmp_path / "frozen").task_names == TASKS
    assert sorted(p.name for p in (tmp_path / "frozen").iterdir()) == sorted(
        ["structure.json", "weights.safetensors", "model.pt2", "tasks.json"])
    assert structure_files(tmp_path).weights.parent == tmp_path / "frozen"
