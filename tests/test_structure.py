"""SharingStructure files, validation of damaged files, derived views and pictures (no training here)."""
from __future__ import annotations

import json

import matplotlib.colors
import matplotlib.image
import networkx as nx
import numpy as np
import pytest

from mtlsearch.backbones import LayerSpec
from mtlsearch.errors import UserError
from mtlsearch.problems import Task, load_problem
from mtlsearch.problems.builtin import synthetic
from mtlsearch.strategies import BASELINES, get_strategy
from mtlsearch.structure import SharingStructure, freeze, views
from mtlsearch.structure.builders import add_chain, add_head
from mtlsearch.structure.draw import draw_affinity, draw_structure, task_set_colours
from mtlsearch.structure.network import BlockNetwork

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture(scope="module")
def multidigits():
    return load_problem("multidigits")


def baseline_structure(problem, name: str) -> SharingStructure:
    strategy = get_strategy(name)(problem, {}, 0)
    return strategy.make_structure(strategy.backbone(None))


def grouped_structure(problem, groups: list[list[str]]) -> SharingStructure:
    """A shared trunk, one block per planted group of tasks, then the heads (like a search result)."""
    s = SharingStructure(strategy="planted", config={}, tasks=problem.tasks, input_shape=problem.input_shape)
    trunk, layer = add_chain(s, [LayerSpec("linear", 32)], s.add_input(), s.task_names, "trunk", 0)
    for i, group in enumerate(groups):
        last, top = add_chain(s, [LayerSpec("linear", 16)], trunk, group, f"group{i}_", layer, kind="branch")
        for name in group:
            add_head(s, problem.task(name), last, top)
    return s


LINEAR = {"type": "linear", "norm": False, "act": "relu", "dropout": 0.0}


def routed_structure() -> SharingStructure:
    """Task Routing in miniature: block `mix` is used by a and b, but a feeds it `only_a`, b feeds it `only_b`.

    By hand: a uses both(3+12) + only_a(2+8) + mix own 5 + both->mix 15 + only_a->mix 10 + head(1+5) = 61
    parameters; 35 of them (both, mix's bias, the both->mix slice) are shared with b.
    """
    tasks = [Task("a", "regression"), Task("b", "regression")]
    s = SharingStructure(strategy="routed", config={}, tasks=tasks, input_shape=(4,))
    source = s.add_input()
    for node, width, users in (("both", 3, ["a", "b"]), ("only_a", 2, ["a"]), ("only_b", 2, ["b"])):
        s.add_block(node, layer=1, kind="linear", tasks=users, width=width, shape=[width], op=LINEAR)
        s.connect(source, node)
    s.add_block("mix", layer=2, kind="linear", tasks=["a", "b"], width=5, shape=[5], op=LINEAR)
    for node in ("both", "only_a", "only_b"):
        s.connect(node, "mix")
    for task in tasks:
        add_head(s, task, "mix", 2)
    return s


def same_graph(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    return (a.graph == b.graph and list(a.nodes(data=True)) == list(b.nodes(data=True))
            and list(a.edges(data=True)) == list(b.edges(data=True)))


# ----------------------------------------------------------------------------------------------- files

@pytest.mark.parametrize("name", BASELINES)
def test_json_and_graphml_round_trips_are_identical(multidigits, name, tmp_path):
    s = baseline_structure(multidigits, name)
    first = next(iter(s.graph.nodes))
    s.graph.nodes[first].update(mean_probability=0.8125, kept=True, note="own attribute", sizes=[3, 4])
    s.set_metrics({"val_score": 0.91, "test_score": 0.875, "params": 1234})
    s.save_json(tmp_path / "s.json")
    s.save_graphml(tmp_path / "s.graphml")
    for loaded in (SharingStructure.load_json(tmp_path / "s.json"),
                   SharingStructure.load_graphml(tmp_path / "s.graphml")):
        assert same_graph(loaded.graph, s.graph)
        assert same_graph(SharingStructure.from_networkx(loaded.to_networkx()).graph, s.graph)


def test_graphml_holds_lists_as_comma_joined_strings(multidigits, tmp_path):
    s = baseline_structure(multidigits, "hard_sharing")
    s.save_graphml(tmp_path / "s.graphml")
    plain = nx.read_graphml(tmp_path / "s.graphml")
    assert plain.graph["task_names"] == ",".join(multidigits.task_names)
    assert plain.nodes["trunk1"]["tasks"] == ",".join(sorted(multidigits.task_names))
    assert plain.nodes["head_digit_sum"]["width"] == 1


# ------------------------------------------------------------------------------------------ bad files

def _edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _node(data, node_id):
    return next(n for n in data["nodes"] if n["id"] == node_id)


def _edge(data, src, dst):
    return next(e for e in data["edges"] if e["source"] == src and e["target"] == dst)


EDITS = {
    "graph attribute missing": (lambda d: d["graph"].pop("task_names"), "graph attribute.*task_names missing"),
    "block attribute missing": (lambda d: _node(d, "trunk2").pop("op"), "block 'trunk2' lacks op"),
    "width is text": (lambda d: _node(d, "trunk1").update(width="20"), "trunk1.*width must be an integer"),
    "width disagrees with shape": (lambda d: _node(d, "trunk1").update(width=21), "trunk1.*disagrees with width 21"),
    "kernel edited": (lambda d: _node(d, "trunk1")["op"].update(kernel=3), "trunk1.*cannot read 'input'"),
    "unknown op": (lambda d: _node(d, "trunk1")["op"].update(type="attention"), "unknown op.*valid types"),
    "unknown activation": (lambda d: _node(d, "trunk1")["op"].update(act="gelu"), "unknown activation 'gelu'"),
    "unknown task on a block": (lambda d: _node(d, "trunk1")["tasks"].append("is_11"), "unknown tasks.*is_11"),
    "edge params edited": (lambda d: _edge(d, "trunk1", "trunk2").update(params=7), "says 7 params"),
    "edge task not served": (lambda d: _edge(d, "is_0_branch4", "is_0_branch5")["tasks"].append("is_1"),
                             "may only carry tasks both blocks serve"),
    "head width wrong": (lambda d: (_node(d, "head_is_3").update(width=2, shape=[2], params=102),
                                    _edge(d, "is_3_branch5", "head_is_3").update(params=100)),
                         "head 'head_is_3' has 2 outputs; a binary task"),
    "head missing": (lambda d: _node(d, "head_is_3").update(kind="branch"), "no head block for task.*is_3"),
    "cycle": (lambda d: d["edges"].append({"source": "trunk3", "target": "trunk1", "tasks": [], "slot": 1,
                                           "params": 0}), "cycle"),
    "not node-link": (lambda d: d.pop("nodes"), "not a valid node-link structure file"),
}


@pytest.fixture(scope="module")
def digits_structure():
    return baseline_structure(load_problem("digits"), "hard_sharing")


@pytest.mark.parametrize("case", EDITS)
def test_edited_json_file_is_refused_naming_the_problem(digits_structure, tmp_path, case):
    edit, message = EDITS[case]
    path = tmp_path / "structure.json"
    digits_structure.save_json(path)
    _edit_json(path, edit)
    with pytest.raises(UserError, match=message) as caught:
        SharingStructure.load_json(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("suffix", ["json", "graphml"])
def test_truncated_file_is_refused(digits_structure, tmp_path, suffix):
    path = tmp_path / f"structure.{suffix}"
    getattr(digits_structure, f"save_{suffix}")(path)
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    with pytest.raises(UserError, match=f"not a valid {'node-link' if suffix == 'json' else 'GraphML'} structure file"):
        getattr(SharingStructure, f"load_{suffix}")(path)


def test_graphml_missing_attributes_and_damaged_encoding_are_refused(digits_structure, tmp_path):
    path = tmp_path / "structure.graphml"
    digits_structure.save_graphml(path)
    plain = nx.read_graphml(path)
    del plain.nodes["trunk2"]["width"]
    nx.write_graphml(plain, path)
    with pytest.raises(UserError, match="block 'trunk2' lacks width"):
        SharingStructure.load_graphml(path)
    digits_structure.save_graphml(path)
    path.write_text(path.read_text().replace("json:{", "json:{{", 1))
    with pytest.raises(UserError, match="JSON-encoded attribute is damaged"):
        SharingStructure.load_graphml(path)
    with pytest.raises(UserError, match="no such structure file"):
        SharingStructure.load_json(tmp_path / "absent.json")


# ----------------------------------------------------------------------------------------------- views

def test_single_task_shares_nothing(multidigits):
    s = baseline_structure(multidigits, "single_task")
    np.testing.assert_array_equal(views.task_affinity(s), np.eye(len(multidigits.tasks)))
    assert set(views.sharing_ratio(s).values()) == {0.0}
    assert views.task_groups(s, 1) == [[t] for t in multidigits.task_names]


def test_hard_sharing_trunk_is_fully_shared_and_branches_are_task_only(multidigits):
    s = baseline_structure(multidigits, "hard_sharing")
    backbone = get_strategy("hard_sharing")(multidigits).backbone(None)
    trunk = range(1, len(backbone.trunk) + 1)
    above = [layer for layer in views.layers(s) if layer not in trunk]
    np.testing.assert_array_equal(views.task_affinity(s, trunk), np.ones((6, 6)))
    np.testing.assert_array_equal(views.task_affinity(s, above), np.eye(6))
    ratios = views.sharing_ratio(s)
    assert [ratios[layer] for layer in trunk] == [1.0] * len(trunk)
    assert [ratios[layer] for layer in above] == [0.0] * len(above)
    shared, per_task = views.params_per_task(s, trunk), views.params_per_task(s)
    affinity = views.task_affinity(s)
    for i, t in enumerate(multidigits.task_names):
        assert shared[t] == shared["left_digit"] > 0
        np.testing.assert_allclose(np.delete(affinity[i], i), shared[t] / per_task[t])
    assert views.task_groups(s, 1) == [multidigits.task_names]


@pytest.mark.parametrize("name", BASELINES)
def test_parameter_counts_match_the_frozen_models(multidigits, name):
    s = baseline_structure(multidigits, name)
    model = BlockNetwork(s)
    assert views.total_params(s) == sum(p.numel() for p in model.parameters())
    for task, count in views.params_per_task(s).items():
        alone = freeze(s, tasks=[task])
        assert count == sum(p.numel() for p in alone.parameters()) < views.total_params(s)


def test_shared_weights_with_different_inputs_count_as_shared():
    s = SharingStructure.from_networkx(routed_structure().to_networkx())  # validation accepts routed edges
    assert views.params_per_task(s) == {"a": 61, "b": 61}
    np.testing.assert_allclose(views.task_affinity(s), [[1, 35 / 61], [35 / 61, 1]])
    assert views.total_params(s) == sum(p.numel() for p in BlockNetwork(s).parameters()) == 61 + 61 - 35
    assert views.sharing_ratio(s) == {1: 3 / 7, 2: 1.0, 3: 0.0}


def test_planted_groups_are_recovered():
    problem = synthetic(n_tasks=6, n_groups=3)
    planted = [[t for t, g in zip(problem.task_names, problem.true_groups) if g == k] for k in range(3)]
    s = grouped_structure(problem, planted)
    assert views.task_groups(s, 2) == planted
    assert views.task_groups(s, 1) == [problem.task_names]
    affinity = views.task_affinity(s)
    same = np.array([[gi == gj for gj in problem.true_groups] for gi in problem.true_groups])
    assert affinity[same].min() > affinity[~same].max() > 0


def test_summary_lists_tasks_layers_groups_and_metrics():
    problem = synthetic(n_tasks=6, n_groups=3)
    planted = [problem.task_names[0::3], problem.task_names[1::3], problem.task_names[2::3]]
    s = grouped_structure(problem, planted)
    s.set_metrics({"val_score": 0.8125, "params": views.total_params(s)})
    text = views.summary(s)
    per_task = views.params_per_task(s)
    for t in problem.task_names:
        assert f"{t}  {per_task[t]:>12,}" in text
    assert f"{views.total_params(s):,} parameters" in text and "val_score 0.8125" in text
    layer2 = next(line for line in text.splitlines() if line.strip().startswith("2 "))
    assert "1.00" in layer2 and "[task_0 task_3] [task_1 task_4] [task_2 task_5]" in layer2
    assert "metrics" not in views.summary(grouped_structure(problem, planted))


# --------------------------------------------------------------------------------------------- pictures

@pytest.mark.parametrize("n_tasks", [10, 40])
def test_pictures_for_many_tasks(tmp_path, n_tasks):
    problem = synthetic(n_tasks=n_tasks, n_groups=4, n_samples=200)
    for name in ("single_task", "hard_sharing"):
        s = baseline_structure(problem, name)
        colours = task_set_colours(s)
        assert len({tuple(np.round(matplotlib.colors.to_rgb(c), 4)) for c in colours.values()}) == len(colours)
        for draw, file in ((draw_structure, "structure.png"), (draw_affinity, "affinity.png")):
            image = matplotlib.image.imread(draw(s, tmp_path / f"{name}_{file}"))
            assert image.shape[0] > 300 and image.shape[1] > 300 and image.std() > 0.05
    planted = grouped_structure(problem, [problem.task_names[k::4] for k in range(4)])
    assert len(task_set_colours(planted)) == 1 + 4 + n_tasks  # trunk, the four groups, the heads
