"""TaskBatchNorm: BatchNorm with running statistics per task, the one used by every strategy and frozen model."""
import torch

from mtlsearch.nn import TaskBatchNorm


def batches(shift: float = 0.0, steps: int = 5):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(16, 3, 4, 4, generator=generator) * 2 + shift for _ in range(steps)]


def test_one_task_matches_torch_batch_norm():
    ours, reference = TaskBatchNorm(3, 1), torch.nn.BatchNorm2d(3)
    row = torch.tensor([0])
    for x in batches(1.0):
        assert torch.equal(ours(x, row), reference(x))
    assert torch.equal(ours.running_mean[0], reference.running_mean)
    assert torch.equal(ours.running_var[0], reference.running_var)
    ours.eval(), reference.eval()
    x = batches(3.0, 1)[0]
    assert torch.equal(ours(x, row), reference(x))


def test_groups_and_stacked_tasks_match_one_batch_norm_per_task():
    norms, references = TaskBatchNorm(3, 2), [torch.nn.BatchNorm2d(3) for _ in range(2)]
    stacked, stacked_reference = TaskBatchNorm(3, 2, affine=False), torch.nn.BatchNorm2d(6, affine=False)
    rows = torch.tensor([1, 0])
    for a, b in zip(batches(4.0), batches(-4.0)):
        y = norms.forward_groups(torch.cat([a, b]), rows)
        assert torch.allclose(y[:16], references[1](a), atol=1e-5)
        assert torch.allclose(y[16:], references[0](b), atol=1e-5)
        assert torch.equal(stacked.forward_stacked(torch.cat([a, b], 1)), stacked_reference(torch.cat([a, b], 1)))
    for task, reference in enumerate(references):
        assert torch.allclose(norms.running_mean[task], reference.running_mean, atol=1e-5)
        assert torch.allclose(norms.running_var[task], reference.running_var, atol=1e-5)
    assert torch.equal(stacked.running_mean.view(-1), stacked_reference.running_mean)


def test_each_task_keeps_its_own_statistics():
    norm = TaskBatchNorm(3, 3, momentum=0.5)
    for a, b in zip(batches(4.0, 10), batches(-4.0, 10)):
        norm(a, torch.tensor([0]))
        norm(b, torch.tensor([1, 2]))  # one batch that tasks 1 and 2 both see
    assert bool((norm.running_mean[0] > 3).all()) and bool((norm.running_mean[1] < -3).all())
    assert torch.equal(norm.running_mean[1], norm.running_mean[2])
    norm.eval()
    x = batches(4.0, 1)[0]
    with torch.no_grad():
        assert abs(float(norm(x, torch.tensor([0])).mean())) < 0.2  # task 0's statistics fit its data
        assert float(norm(x, torch.tensor([1])).mean()) > 2  # task 1's do not


def test_unnamed_tasks_are_left_alone_and_none_momentum_averages():
    norm = TaskBatchNorm(3, 2, momentum=None)
    data = batches(2.0)
    for x in data:
        norm(x, torch.tensor([1]))
    assert torch.equal(norm.running_mean[0], torch.zeros(3)) and torch.equal(norm.running_var[0], torch.ones(3))
    expected = torch.stack([x.mean((0, 2, 3)) for x in data]).mean(0)
    assert torch.allclose(norm.running_mean[1], expected, atol=1e-5)
    norm.reset_running_stats()
    assert torch.equal(norm.running_mean, torch.zeros(2, 3)) and int(norm.num_batches_tracked) == 0
