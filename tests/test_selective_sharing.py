"""Selective Sharing end to end: planted groups recovered, digits merged below hard sharing, exact export."""
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from mtlsearch.backbones import get_backbone
from mtlsearch.errors import ConfigError, UserError
from mtlsearch.problems import builtin, load_problem
from mtlsearch.run import train_run
from mtlsearch.strategies import EpochContext, get_strategy
from mtlsearch.strategies.selective_sharing import SelectiveSharing
from mtlsearch.structure.freeze import freeze
from mtlsearch.structure.graph import SharingStructure
from mtlsearch.training import TrainConfig, Trainer, evaluate

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def fit(problem, epochs=2, seed=0, **config):
    strategy = SelectiveSharing(problem, config, seed)
    trainer = Trainer(problem, strategy, TrainConfig(epochs=epochs), seed=seed, quiet=True)
    trainer.fit()
    return strategy, trainer


def found_labels(problem, groups):
    branch = {task: i for i, group in enumerate(groups) for task in group}
    return [branch[name] for name in problem.task_names]


def test_similarity_recovers_planted_groups_and_random_does_not():
    ari = {"similarity": [], "random": []}
    for seed in range(3):
        problem = builtin.synthetic(seed=seed)
        for criterion in ari:
            strategy, _ = fit(problem, epochs=2, seed=seed, criterion=criterion)
            ari[criterion].append(adjusted_rand_score(problem.true_groups, found_labels(problem, strategy.groups)))
    assert np.mean(ari["similarity"]) >= 0.8, ari
    assert np.mean(ari["random"]) <= np.mean(ari["similarity"]) - 0.5, ari


def test_digits_run_merges_below_hard_sharing_and_exports_the_merged_model(tmp_path):
    metrics = train_run("digits", "selective_sharing", tmp_path, epochs=8, settings={"criterion": "similarity"},
                        quiet=True)
    problem = load_problem("digits")
    hard = get_strategy("hard_sharing")(problem, {}, 0).build(get_backbone(None, problem.input_shape))
    assert metrics["params"] < sum(p.numel() for p in hard.parameters())
    accuracy = np.mean([task["accuracy"] for task in metrics["test"]["tasks"].values()])
    assert accuracy >= 0.95  # the score this bound was set for (before balanced accuracy became the binary score)
    assert metrics["test"]["score"] >= 0.8  # balanced accuracy: always answering "no" scores 0.5
    history = metrics["merge_history"]
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert history[0]["params"] < sum(p.numel() for p in hard.parameters()) and history[0]["merged"]
    assert metrics["lock_epoch"] is not None and not any(h["clustered"] for h in history[metrics["lock_epoch"]:])
    assert (tmp_path / "merge_history.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "metrics.json").read_text())["final_groups"] == metrics["final_groups"]
    # the exported structure: trunk -> one branch block per final group -> the group's heads
    structure = SharingStructure.load_json(tmp_path / "structure.json")
    g = structure.graph
    first_branch_layer = min(d["layer"] for _, d in g.nodes(data=True) if d["kind"] == "branch")
    branches = sorted(d["tasks"] for _, d in g.nodes(data=True)
                      if d["kind"] == "branch" and d["layer"] == first_branch_layer)
    assert branches == sorted(metrics["final_groups"])
    # the frozen model equals the final merged model
    checkpoint = torch.load(tmp_path / "checkpoint.pt")
    strategy = SelectiveSharing(problem, {"criterion": "similarity"}, 0)
    model = strategy.build(get_backbone(None, problem.input_shape), checkpoint["architecture"])
    model.load_state_dict(checkpoint["weights"])
    frozen = freeze(*strategy.structure(model))
    x = problem.test.tensors[0][:100]
    model.eval(), frozen.eval()
    with torch.no_grad():
        a, b = model(x), frozen(x)
    assert all(torch.allclose(a[t], b[t], atol=1e-5) for t in problem.task_names)


def test_unmerged_model_is_hard_sharing_with_identical_branches_and_heads():
    problem = builtin.synthetic(n_samples=200)
    backbone = get_backbone(None, problem.input_shape)
    model = SelectiveSharing(problem, {}, 0).build(backbone)
    hard = get_strategy("hard_sharing")(problem, {}, 0).build(backbone)
    ours, theirs = model.structure.graph, hard.structure.graph
    assert sorted(ours.nodes) == sorted(theirs.nodes) and sorted(ours.edges) == sorted(theirs.edges)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hard.parameters())
    state = model.state_dict()
    first = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith("blocks.task_0_branch")}
    for task in problem.task_names[1:]:
        same = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"blocks.{task}_branch")}
        assert same.keys() == first.keys() and all(torch.equal(same[k], first[k]) for k in first)
        assert torch.equal(state[f"blocks.head_{task}.weight"], state["blocks.head_task_0.weight"])


def test_architecture_state_rebuilds_the_merged_model():
    problem = builtin.synthetic(n_samples=600)
    strategy, trainer = fit(problem, epochs=2)
    assert len(strategy.groups) < len(problem.tasks)
    state = json.loads(json.dumps(strategy.architecture_state()))
    rebuilt = SelectiveSharing(problem, {}, 5).build(trainer.backbone, state)
    rebuilt.load_state_dict(trainer.model.state_dict())
    x = problem.val.tensors[0][:50]
    trainer.model.eval(), rebuilt.eval()
    assert all(torch.equal(trainer.model(x)[t], rebuilt(x)[t]) for t in problem.task_names)
    with pytest.raises(UserError, match="cover each task once"):
        strategy.build(trainer.backbone, {"groups": [["task_0"]]})


def test_best_checkpoint_of_a_merge_epoch_is_scored_on_the_merged_model():
    problem = builtin.synthetic(n_samples=600)
    strategy, trainer = fit(problem, epochs=1)
    assert strategy.history[0]["merged"]  # the architecture changed at the end of the only epoch
    assert trainer.best["val"]["score"] == pytest.approx(evaluate(trainer.model, problem, "val")["score"])


@pytest.mark.parametrize("criterion, merge", [("dissimilarity", "mean"), ("variance", "max"), ("random", "min")])
def test_every_criterion_and_merge_rule_trains_and_records(criterion, merge):
    problem = builtin.synthetic(n_samples=600)
    strategy, trainer = fit(problem, epochs=3, criterion=criterion, merge=merge)
    assert sorted(t for g in strategy.groups for t in g) == sorted(problem.task_names)
    assert [h["branches"] for h in strategy.history] == [r["branches"] for r in trainer.history]
    assert strategy.history[-1]["params"] == trainer.params()
    assert trainer.best["val"]["score"] > 0.3  # regression R^2, still learning after the merges


def test_clustering_that_finds_nothing_changes_nothing_until_the_lock_epoch():
    problem = builtin.synthetic(n_tasks=6, n_groups=6, n_samples=200)
    strategy = SelectiveSharing(problem, {"patience": 2}, 0)
    model = strategy.build(get_backbone(None, problem.input_shape))
    for epoch in range(3):
        for i, block in enumerate(strategy._capture.block_keys):  # mutually orthogonal branch gradients
            grad = torch.zeros_like(model.blocks[block].weight)
            grad.view(-1)[i] = 1.0
            model.blocks[block].weight.grad = grad
        assert strategy.before_step(model)
        context = EpochContext(epoch, model, {t: 1.0 for t in problem.task_names}, {"score": 0.0}, 1.0)
        assert strategy.end_epoch(context) is None
    assert strategy.groups == [[t] for t in problem.task_names]
    assert [h["clustered"] for h in strategy.history] == [True, True, False]
    assert strategy.lock_epoch == 2 and context.log["branches"] == 6


def test_nan_gradient_skips_the_batch_with_a_warning():
    problem = builtin.synthetic(n_samples=300)
    strategy = SelectiveSharing(problem, {}, 0)
    trainer = Trainer(problem, strategy, TrainConfig(epochs=1), seed=0, quiet=True)
    weight = trainer.model.blocks["trunk1"].weight
    calls = []

    def nan_on_first_backward(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == 1 else grad
    weight.register_hook(nan_on_first_backward)
    before = weight.detach().clone()
    with pytest.warns(RuntimeWarning, match="non-finite gradient in epoch 1; batch skipped"):
        trainer.fit()
    assert strategy.history[0]["skipped_batches"] == 1 and trainer.step == len(calls) - 1
    assert torch.isfinite(trainer.model.blocks["trunk1"].weight).all() and not torch.equal(before, weight)


def test_bad_input_is_refused_with_a_clear_error():
    one = builtin.synthetic(n_tasks=1, n_groups=1, n_samples=100)
    with pytest.raises(UserError, match="needs at least 2"):
        SelectiveSharing(one, {}, 0)
    problem = builtin.synthetic(n_samples=100)
    for config, message in [({"criterion": "closeness"}, "criterion must be one of similarity"),
                            ({"merge": "median"}, "merge must be one of lowest_loss"),
                            ({"tt_rank": 0}, "tt_rank must be in"), ({"min_cluster_size": 1}, "min_cluster_size"),
                            ({"patience": 1.5}, "patience must be an integer"), ({"threshold": 2}, "unknown")]:
        with pytest.raises(ConfigError, match=message):
            SelectiveSharing(problem, config, 0)


def test_search_export_writes_the_merged_groups_in_metrics_and_structure_alike(tmp_path):
    """A trial restored from its saved state keeps its merges: metrics.json's groups are the structure's branches."""
    from mtlsearch.run import RunWriter
    from mtlsearch.search.trial import export_best, load_state, make_trainer, save_state

    sampled = {"strategy": "selective_sharing", "criterion": "similarity", "epochs": 3}
    trainer = make_trainer(sampled, "digits", 0)
    trainer.fit()
    save_state(trainer, tmp_path / "trainer.pt")
    assert any(len(g) > 1 for g in trainer.strategy.groups), trainer.strategy.groups
    out = tmp_path / "best"
    export_best(load_state(tmp_path / "trainer.pt"), sampled, RunWriter(out, "digits", "selective_sharing", 0))
    metrics = json.loads((out / "metrics.json").read_text())
    g = SharingStructure.load_json(out / "structure.json").graph
    first_branch_layer = min(d["layer"] for _, d in g.nodes(data=True) if d["kind"] == "branch")
    branches = sorted(d["tasks"] for _, d in g.nodes(data=True)
                      if d["kind"] == "branch" and d["layer"] == first_branch_layer)
    assert sorted(metrics["final_groups"]) == branches == sorted(trainer.strategy.groups)
    assert metrics["merge_history"] == json.loads(json.dumps(trainer.strategy.history))
