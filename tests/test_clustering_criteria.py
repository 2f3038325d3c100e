"""Selective Sharing's pieces on constructed data with a known answer: TT factors, the four criteria, merging."""
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from mtlsearch.backbones import get_backbone
from mtlsearch.problems import builtin
from mtlsearch.strategies.selective_sharing import CRITERIA, SelectiveSharing, task_factors
from mtlsearch.strategies.selective_sharing.criteria import NOISE, groups_of
from mtlsearch.strategies.selective_sharing.factors import factor_vectors, normalise
from mtlsearch.strategies.selective_sharing.merging import branch_nodes, carry_weights, merge_groups
from mtlsearch.structure.network import BlockNetwork, module_key


def pairwise(x):
    x = x.reshape(len(x), -1)
    return np.linalg.norm(x[:, None] - x[None], axis=2)


def planted_gradients(rng, groups, shape=(12, 20), noise=0.1):
    """Gradient tensors of one group are scaled, noisy copies of that group's own random tensor."""
    bases = rng.standard_normal((max(groups) + 1, *shape))
    return np.stack([rng.uniform(0.5, 2.0) * bases[g] + noise * rng.standard_normal(shape) for g in groups])


def around(rng, centres, per, spread):
    """`per` unit vectors jittered around each centre, in centre order."""
    jitter = spread * rng.standard_normal((len(centres) * per, centres.shape[1]))
    return normalise(np.repeat(centres, per, axis=0) + jitter)


# --- factors --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 9, 11), (5, 4, 3, 3, 2), (6, 13)])
def test_factor_distances_equal_gradient_distances_at_full_rank(shape):
    """One common basis: distances between factor vectors are distances between the tasks' gradients."""
    g = np.random.default_rng(0).standard_normal(shape)
    assert np.allclose(pairwise(factor_vectors(g, rank=1000)), pairwise(g), atol=1e-4 * pairwise(g).max())


def test_factors_do_not_depend_on_task_order():
    rng = np.random.default_rng(1)
    g, order = planted_gradients(rng, [0, 1, 2, 0, 1, 2, 3]), rng.permutation(7)
    d, d_permuted = pairwise(task_factors(g, 4)), pairwise(task_factors(g[order], 4))
    assert np.allclose(d[np.ix_(order, order)], d_permuted, atol=1e-4)


@pytest.mark.parametrize("rank", [4, 8])
def test_factors_recover_planted_groups(rank):
    rng = np.random.default_rng(2)
    truth = [0, 1, 2, 3, 0, 1, 2, 3, 1]
    f = task_factors(planted_gradients(rng, truth, noise=0.3), rank)
    assert f.shape == (9, min(rank, 9)) and np.allclose(np.linalg.norm(f, axis=1), 1)
    same = [f[i] @ f[j] for i in range(9) for j in range(i) if truth[i] == truth[j]]
    other = [f[i] @ f[j] for i in range(9) for j in range(i) if truth[i] != truth[j]]
    assert min(same) > 0.9 > 0.5 > max(other)
    assert adjusted_rand_score(truth, CRITERIA["similarity"](f)) == 1.0


# --- criteria -------------------------------------------------------------------------------------------------

def test_similarity_groups_close_factors_and_leaves_an_outlier_alone():
    rng = np.random.default_rng(3)
    centres = np.eye(6)[:4]
    f = np.concatenate([around(rng, centres, 2, 0.05), np.eye(6)[4:5]])  # the last one is far from every pair
    labels = CRITERIA["similarity"](f)
    assert adjusted_rand_score([0, 0, 1, 1, 2, 2, 3, 3], labels[:8]) == 1.0
    assert labels[8] == NOISE


def test_dissimilarity_groups_opposite_factors():
    rng = np.random.default_rng(4)
    centres = normalise(rng.standard_normal((3, 8)))
    f = normalise(np.concatenate([centres, -centres]) + 0.05 * rng.standard_normal((6, 8)))
    truth = [0, 1, 2, 0, 1, 2]
    assert adjusted_rand_score(truth, CRITERIA["dissimilarity"](f)) == 1.0
    # similarity never puts a factor with its opposite
    sim = CRITERIA["similarity"](f)
    assert not any(sim[i] != NOISE and sim[i] == sim[i + 3] for i in range(3))


def test_variance_prefers_few_large_groups_where_similarity_finds_the_small_ones():
    rng = np.random.default_rng(5)
    poles = np.eye(8)[:2]
    subs = normalise(np.repeat(poles, 2, axis=0) + 0.45 * np.eye(8)[[2, 3, 4, 5]])  # two sub-groups per pole
    f = around(rng, subs, 3, 0.02)
    assert adjusted_rand_score(np.repeat([0, 0, 1, 1], 3), CRITERIA["variance"](f)) == 1.0
    assert adjusted_rand_score(np.repeat([0, 1, 2, 3], 3), CRITERIA["similarity"](f)) == 1.0


def test_random_is_seeded_keeps_similarity_group_sizes_and_misses_the_groups():
    rng = np.random.default_rng(6)
    truth = np.repeat(np.arange(4), 3)
    f = around(rng, np.eye(6)[:4], 3, 0.05)
    sizes = sorted(np.bincount(CRITERIA["similarity"](f)[CRITERIA["similarity"](f) >= 0]))
    draws = [CRITERIA["random"](f, rng=np.random.default_rng(seed)) for seed in range(20)]
    for labels in draws:
        assert sorted(np.bincount(labels[labels >= 0])) == sizes
    assert np.array_equal(CRITERIA["random"](f, rng=np.random.default_rng(0)), draws[0])
    assert np.mean([adjusted_rand_score(truth, labels) for labels in draws]) < 0.3


@pytest.mark.parametrize("criterion", ["similarity", "dissimilarity"])
def test_equidistant_factors_form_no_cluster(criterion):
    """Nothing stands out: HDBSCAN returns noise only, so nothing would merge."""
    assert groups_of(CRITERIA[criterion](np.eye(6))) == []


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_too_few_branches_form_no_cluster(criterion):
    assert groups_of(CRITERIA[criterion](normalise(np.ones((2, 3))), rng=np.random.default_rng(0))) == []


# --- merging --------------------------------------------------------------------------------------------------

def test_merge_groups_orders_tasks_and_groups_by_problem_order():
    names = ["a", "b", "c", "d", "e"]
    groups, sources = merge_groups([["a"], ["b", "d"], ["c"], ["e"]], np.array([-1, 0, -1, 0]), names)
    assert groups == [["a"], ["b", "d", "e"], ["c"]]
    assert sources == [[0], [1, 3], [2]]


@pytest.fixture(scope="module")
def small_networks():
    problem = builtin.synthetic(n_tasks=4, n_groups=2, n_samples=200)
    strategy = SelectiveSharing(problem, {}, 0)
    backbone = get_backbone("mlp", problem.input_shape)
    old = strategy.build(backbone)
    torch.manual_seed(1)
    with torch.no_grad():  # branches drift apart, as after training
        for name, p in old.named_parameters():
            if "_branch" in name:
                p.add_(torch.randn_like(p))
    old_groups = strategy.groups
    new_groups, sources = merge_groups(old_groups, np.array([0, -1, 0, -1]), problem.task_names)
    return problem, strategy, backbone, old, old_groups, new_groups, sources


def branch_state(model, group, backbone):
    key = module_key(branch_nodes(group, backbone)[0])
    return model.blocks[key].state_dict()


@pytest.mark.parametrize("rule", ["lowest_loss", "mean", "max", "min"])
def test_carry_weights_keeps_trunk_and_heads_and_merges_branches(small_networks, rule):
    problem, strategy, backbone, old, old_groups, new_groups, sources = small_networks
    new = BlockNetwork(strategy.make_structure(backbone, new_groups))
    losses = {"task_0": 0.9, "task_1": 0.1, "task_2": 0.3, "task_3": 0.5}
    kept = carry_weights(old, new, old_groups, new_groups, sources, backbone, rule, losses)
    assert new_groups == [["task_0", "task_2"], ["task_1"], ["task_3"]]
    assert kept == {"task_0": "task_2" if rule == "lowest_loss" else rule}
    merged, a, b = branch_state(new, new_groups[0], backbone), branch_state(old, ["task_0"], backbone), \
        branch_state(old, ["task_2"], backbone)
    for name, value in merged.items():
        expected = {"lowest_loss": b[name], "mean": (a[name] + b[name]) / 2, "max": torch.maximum(a[name], b[name]),
                    "min": torch.minimum(a[name], b[name])}[rule]
        if not value.is_floating_point():
            expected = torch.maximum(a[name], b[name])
        assert torch.allclose(value, expected), name
    old_state = old.state_dict()
    for name, value in new.state_dict().items():
        if "_branch" not in name:  # trunk and heads as they were
            assert torch.equal(value, old_state[name]), name
    removed = sum(p.numel() for p in old.blocks[module_key(branch_nodes(["task_2"], backbone)[0])].parameters())
    assert sum(p.numel() for p in old.parameters()) - sum(p.numel() for p in new.parameters()) == removed
