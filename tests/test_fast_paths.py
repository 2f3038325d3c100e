"""Every fast path computes what the plain path computes: fused frozen models, sparse Task Routing evaluation,
SFG's training step."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlsearch.reproduce.measure import random_binary_problem
from mtlsearch.strategies import get_strategy
from mtlsearch.structure.freeze import freeze
from mtlsearch.structure.fused import Step
from mtlsearch.structure.frozen import export_program, load_frozen, save_frozen
from mtlsearch.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("single_thread_torch")
TOLERANCE = 1e-5


def trained(name: str, config: dict, tasks: int = 4, backbone: str = "cnn", shape=(1, 8, 8)):
    """(strategy, model in eval mode, problem) after one epoch on random data, so statistics are not the initial."""
    problem = random_binary_problem(tasks, 96, shape)
    strategy = get_strategy(name)(problem, config, 0)
    trainer = Trainer(problem, strategy, TrainConfig(backbone=backbone, epochs=1, batch_size=32), quiet=True,
                      device="cpu")
    trainer.train_epoch()
    return strategy, trainer.model.eval(), problem


def by_task(network, values: dict) -> dict:
    """The head outputs of `network` from run_blocks' {(node, class): value}."""
    return {t: values[node, 0] for t, node in network.heads.items()}


def biggest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[t] - b[t]).abs().max()) for t in a)


@pytest.fixture(scope="module")
def exports(single_thread_torch):
    """Frozen SFG argmax models (T = 2 and 10, Dirichlet start so every group has kernels) and a Task Routing one."""
    out = {}
    for label, name, config, tasks in (("sfg2", "sfg", {"p_init": "dirichlet"}, 2),
                                       ("sfg10", "sfg", {"p_init": "dirichlet"}, 10),
                                       ("task_routing", "task_routing", {"sigma": 0.4}, 6)):
        strategy, model, problem = trained(name, config, tasks)
        structure, weights = strategy.structure(model)
        out[label] = (model, freeze(structure, weights).eval(), weights, problem.test.tensors[0][:40])
    return out


@pytest.mark.parametrize("label", ["sfg2", "sfg10", "task_routing"])
def test_fused_frozen_model_equals_its_blocks_and_the_trained_model(exports, label):
    model, frozen, _, x = exports[label]
    merged = [step for step in frozen.fused.steps if isinstance(step, Step) and len(step.members) > 1]
    assert merged, "some blocks of a layer run as one step"
    with torch.no_grad():
        fused, blocks, reference = frozen(x), by_task(frozen, frozen.run_blocks(x, set(frozen.task_names))), model(x)
    assert biggest_difference(fused, blocks) < TOLERANCE
    assert biggest_difference(fused, reference) < TOLERANCE


def test_sfg_layer_runs_as_one_convolution(exports):
    """Each SFG trunk layer's blocks (shared and one per task group) are one step: the call count of hard sharing."""
    _, frozen, _, _ = exports["sfg10"]
    layers = {}
    for step in frozen.fused.steps:
        node = step.members[0][0] if isinstance(step, Step) else step[0]
        layers.setdefault(frozen.structure.graph.nodes[node]["layer"], []).append(step)
    assert all(len(layers[layer]) == 1 for layer in (1, 2))
    assert layers[2][0].inputs == layers[1][0].members  # so layer 2 reads layer 1's output unsplit, as one tensor
    # the tasks' later branch layers read disjoint inputs: one grouped call each, not a wide one multiplying zeros
    assert any(step.grouped and len(step.members) == 10 for step in frozen.fused.steps if isinstance(step, Step))


def test_fused_weights_follow_changes_and_are_never_saved(exports, tmp_path):
    _, frozen, weights, x = exports["sfg2"]
    assert set(frozen.state_dict()) == set(weights)  # the weights file keeps one entry per block
    with torch.no_grad():
        before = frozen(x)
        for p in frozen.parameters():
            p.mul_(0.9)
        after = frozen(x)
        assert biggest_difference(after, by_task(frozen, frozen.run_blocks(x, set(frozen.task_names)))) < TOLERANCE
        assert biggest_difference(before, after) > 1e-3
        frozen.load_state_dict(weights)
    save_frozen(frozen, tmp_path)
    program = torch.export.load(tmp_path / "model.pt2").module()
    loaded = load_frozen(tmp_path).eval()
    with torch.no_grad():
        reference = frozen(x)
        assert biggest_difference(loaded(x), reference) < TOLERANCE
        assert biggest_difference(dict(zip(frozen.task_names, program(x))), reference) < TOLERANCE


def test_fused_weights_follow_replaced_tensors_in_a_deep_copy(exports):
    """The cache lists the model's tensors once: a parameter or a buffer replaced (not written in place) must still
    be seen, and a deep copy must merge its own blocks, not the original's."""
    import copy

    _, original, _, x = exports["sfg2"]
    frozen = copy.deepcopy(original)
    with torch.no_grad():
        reference = original(x)  # the original's merged weights are cached now
        assert biggest_difference(frozen(x), reference) < TOLERANCE
        block = next(b for b in frozen.blocks.values() if getattr(b, "norm", None) is not None)
        block.weight = torch.nn.Parameter(block.weight * 0.5)
        assert biggest_difference(frozen(x), by_task(frozen, frozen.run_blocks(x, set(frozen.task_names)))) < TOLERANCE
        block.norm.running_mean = block.norm.running_mean + 1.0
        assert biggest_difference(frozen(x), by_task(frozen, frozen.run_blocks(x, set(frozen.task_names)))) < TOLERANCE
        assert biggest_difference(frozen(x), reference) > 1e-3
        assert biggest_difference(original(x), reference) == 0


def test_exported_program_of_a_task_routing_model(exports):
    _, frozen, _, x = exports["task_routing"]
    program = export_program(frozen, list(x.shape[1:])).module()
    with torch.no_grad():
        assert biggest_difference(dict(zip(frozen.task_names, program(x))), frozen(x)) < TOLERANCE


@pytest.mark.parametrize("config", [{"sigma": 0.4}, {"sigma": 0.5, "mask_mode": "knockout"},
                                    {"sigma": 0.3, "route_linear": True}, {"sigma": [0.0, 1.0]}])
def test_sparse_task_routing_evaluation_equals_the_masked_loop(config):
    """Eval runs every task through its active channels only (gathered weights narrower than the layer); the
    outputs are those of the masked model run one task at a time."""
    _, model, problem = trained("task_routing", config, tasks=5)
    x = problem.test.tensors[0][:48]
    sparse = model.sparse
    with torch.no_grad():
        together, alone = model(x), {t: model(x, [t])[t] for t in model.task_names}
        model.sparse = None  # the masked pass: every channel computed, then multiplied by the task's mask
        masked = {t: model(x, [t])[t] for t in model.task_names}
        model.sparse = sparse
    assert biggest_difference(together, masked) < TOLERANCE
    assert biggest_difference(alone, masked) < TOLERANCE
    if config.get("mask_mode") != "knockout" and config["sigma"] == 0.4:
        second = sparse.gathered()[1][0]  # [tasks, K_out, K_in, k, k] of the second conv
        assert second.shape[1] < model.trunk[1].spec.width and second.shape[2] < model.trunk[0].spec.width


def test_bench_command_writes_the_table(tmp_path):
    """`python -m bench --quick` runs the benches at smoke sizes and writes the markdown table (the Ray search
    bench is left out here: starting Ray and two searches takes minutes; tests/test_search.py covers search())."""
    out = tmp_path / "BENCH.md"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--device", "cpu", "--out", str(out), "--only",
                           "sfg", "task_routing", "selective_sharing", "structure_export"], cwd=root,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "- machine: " in text and "torch " in text
    table = text.split("\n## Where the time goes")[0]  # bars not met at smoke sizes bring their profiles after it
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert {row[0].strip("| ") for row in rows} == {"sfg", "task_routing", "selective_sharing", "structure_export"}
    assert all(math.isfinite(float(row[2])) for row in rows)
    assert any("exported SFG argmax inference" in row[1] for row in rows)


def test_a_bar_not_met_comes_with_its_profile():
    """BENCH.md explains a ratio that misses its bar with the profile its bench provides; the SFG profile's
    per-kind milliseconds add up to its step's total."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.all import markdown
    from bench.common import Ratio
    from bench.sfg import where_time_goes

    profile = where_time_goes("cnn", (1, 8, 8), 2)
    kinds = {line.split(" | ")[0].strip("| *"): line.split(" | ") for line in profile.splitlines()
             if line.startswith("| ") and " ms/step " not in line and "`" not in line}
    assert {"convolution", "batch norm", "matmul / einsum", "pooling", "other", "total"} <= set(kinds)
    parts = sum(float(kinds[k][1].replace(",", "")) for k in kinds if k != "total")
    assert parts == pytest.approx(float(kinds["total"][1].replace(",", "").strip("*")), abs=0.6)
    assert "aten::" in profile  # the top operators
    assert "page faults" in profile and "(combine=sum) took" in profile  # the kernel's time, the mix's cost
    missed = Ratio("sfg", "a ratio", 1.5, 1.2, explain=lambda: "PROFILE TEXT")
    met = Ratio("sfg", "another", 1.0, 1.2, explain=lambda: "NOT SHOWN")
    text = markdown([missed, met], "cpu", True, "now", "0", 1.0)
    assert "## Where the time goes: a ratio\n\nPROFILE TEXT" in text and "NOT SHOWN" not in text


def test_the_stream_mix_share_of_multiply_adds_by_hand():
    """The digits CNN (1x8x8: 5x5 convs of 20 and 40 channels, each pooled by 2, then 640 linear units) at T=2."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.sfg import mix_share

    layers = 3 * (20 * 1 * 25 * 8 * 8 + 40 * 20 * 25 * 4 * 4 + 640 * 40 * 2 * 2)  # every layer on the 3 streams
    mix = 2 * 2 * (20 ** 2 * 4 * 4 + 40 ** 2 * 2 * 2)  # A_t and B_t for 2 tasks, after the two conv layers
    assert mix_share("cnn", (1, 8, 8), 2) == pytest.approx(mix / layers)


def test_profiles_are_added_to_a_written_bench_file_for_its_missed_bars(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.all import add_profiles

    missed = "exported SFG argmax inference / hard sharing, cnn T=2"
    path = tmp_path / "BENCH.md"
    path.write_text("# Benchmarks\n\n| bench | measure | value | bar | met |\n|---|---|---|---|---|\n"
                    f"| sfg | {missed} | 1.194 | <= 1.1 | **no** |\n"
                    "| sfg | exported SFG argmax inference / hard sharing, cnn T=10 | 1.093 | <= 1.1 | yes |\n")
    assert add_profiles(path, "cpu") == [missed]
    text = path.read_text()
    assert f"## Where the time goes: {missed}\n\ncnn, T=2" in text and "frozen SFG's top operators" in text
    assert "cnn T=10" not in text.split("## Where")[1]  # a met bar gets no profile
    assert add_profiles(path, "cpu") == [] and path.read_text() == text  # nothing twice


def grouped_conv_mix(self, u, z):
    """StreamMix.forward as it was: the per-task mix as a grouped 1x1 conv, the shared mix as a 1x1 conv."""
    from mtlsearch.strategies.sfg.layers import keep_assigned

    tasks, width = u.shape[1] - 1, self.width
    if self.mode == "sum" or z.dim() == 3:
        shared, own = keep_assigned(u, z).split([1, tasks], 1)
        if self.mode == "sum":
            return torch.cat([shared, own + shared], 1)
        task_weight, shared_weight = self.task_weight, self.shared_weight
    else:
        shared, own = u.split([1, tasks], 1)
        task_weight = self.task_weight * z[:, 1:].t().unsqueeze(1)
        shared_weight = self.shared_weight * z[:, 0]
    batch, spatial = u.shape[0], u.shape[3:]
    maps = tuple(spatial) or (1, 1)
    conv = torch.nn.functional.conv2d
    stacked = (tasks * width, width, 1, 1)
    mixed = conv(own.reshape(batch, tasks * width, *maps), task_weight.reshape(stacked), groups=tasks) + \
        conv(shared.reshape(batch, width, *maps), shared_weight.reshape(stacked))
    if z.dim() == 2:
        shared = shared * z[:, 0].view(1, 1, width, *([1] * len(spatial)))
    return torch.cat([shared, mixed.view(batch, tasks, width, *spatial)], 1)


@pytest.mark.parametrize("per_example", [False, True])
def test_sfg_step_equals_the_grouped_conv_mix(monkeypatch, per_example):
    """The SFG stream mix as batched matrix products: the same loss and gradients as the grouped-conv mix."""
    from mtlsearch.strategies.sfg.layers import StreamMix

    problem = random_binary_problem(3, 16, (1, 8, 8))
    x, y = problem.train.tensors

    def loss_and_gradients():
        strategy = get_strategy("sfg")(problem, {"p_init": "dirichlet", "sample_per_example": per_example}, 0)
        trainer = Trainer(problem, strategy, TrainConfig(backbone="cnn"), seed=0, quiet=True, device="cpu")
        model = trainer.model.train()
        out = model(x)
        loss = sum(t.loss(out[t.name], y[:, i]) for i, t in enumerate(problem.tasks)) + strategy.extra_loss(model)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss, gradients = loss_and_gradients()
    monkeypatch.setattr(StreamMix, "forward", grouped_conv_mix)
    reference_loss, reference = loss_and_gradients()
    assert abs(float(loss - reference_loss)) < TOLERANCE
    assert gradients.keys() == reference.keys() and any("mixes" in n for n in gradients)
    for name, grad in gradients.items():
        assert torch.allclose(grad, reference[name], atol=TOLERANCE, rtol=1e-4), name


def test_fused_evaluation_passes_gradients_to_the_blocks(exports):
    """Eval mode with gradients on (fine-tuning with frozen statistics): every block gets the gradient it gets
    when the blocks run one by one."""
    _, frozen, _, x = exports["sfg2"]

    def gradients(run) -> dict:
        frozen.zero_grad()
        sum(out.square().sum() for out in run().values()).backward()
        return {n: p.grad.clone() for n, p in frozen.named_parameters()}

    fused = gradients(lambda: frozen(x))
    blocks = gradients(lambda: by_task(frozen, frozen.run_blocks(x, set(frozen.task_names))))
    frozen.zero_grad()
    assert all(torch.allclose(fused[n], blocks[n], atol=1e-4, rtol=1e-4) for n in blocks)
    assert any(float(g.abs().max()) > 0 for g in fused.values())
