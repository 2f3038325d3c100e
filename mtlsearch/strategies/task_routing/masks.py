"""The Task Routing Layer and its fixed binary masks: which channels of a layer each task may use."""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

MASK_MODES = ("partition", "knockout")
_EPS = 1e-9  # sigma * C is computed in floating point: 0.29 * 100 = 28.999999999999996 must count as 29


def shared_count(sigma: float, channels: int) -> int:
    """Partition mode: round(sigma * C) channels are shared by every task (halves round up)."""
    return int(math.floor(sigma * channels + 0.5 + _EPS))


def knockout_count(sigma: float, channels: int) -> int:
    """Knockout mode: floor(sigma * C) channels are zeroed for each task, as in the published code."""
    return int(math.floor(sigma * channels + _EPS))


def partition_masks(n_tasks: int, channels: int, sigma: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """[T, C] masks: round(sigma*C) random channels shared by all tasks, the rest dealt to the tasks.

    The remaining channels are dealt round-robin to the tasks in a seeded random task order (a new order per
    layer), so with more tasks than remaining channels the tasks left without a private channel differ by layer.
    Returns the masks and the number of tasks left without a private channel while others have one.
    """
    order = rng.permutation(channels)
    shared = shared_count(sigma, channels)
    masks = np.zeros((n_tasks, channels), dtype=np.float32)
    masks[:, order[:shared]] = 1.0
    task_order = rng.permutation(n_tasks)
    for i, channel in enumerate(order[shared:]):
        masks[task_order[i % n_tasks], channel] = 1.0
    dealt = channels - shared
    return masks, n_tasks - dealt if 0 < dealt < n_tasks else 0


def knockout_masks(n_tasks: int, channels: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """[T, C] masks with floor(sigma*C) zeros per task, drawn by an independent permutation per task."""
    masks = np.ones((n_tasks, channels), dtype=np.float32)
    zeros = knockout_count(sigma, channels)
    for t in range(n_tasks):
        masks[t, rng.permutation(channels)[:zeros]] = 0.0
    return masks


def make_masks(mode: str, n_tasks: int, widths: list[int], sigmas: list[float], seed: int) -> list[np.ndarray]:
    """One [T, C] mask per routed layer, seeded per layer; warns when tasks are left without private channels."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(widths))]
    masks, short = [], []
    for layer, (channels, sigma, rng) in enumerate(zip(widths, sigmas, rngs), start=1):
        if mode == "partition":
            mask, without = partition_masks(n_tasks, channels, sigma, rng)
            if without:
                starved = " (no channel at all)" if mask.sum(1).min() == 0 else ""
                short.append(f"layer {layer}: {without} of {n_tasks} tasks{starved}")
        else:
            mask = knockout_masks(n_tasks, channels, sigma, rng)
        masks.append(mask)
    if short:
        warnings.warn("task_routing: more tasks than task-specific channels; the task-specific channels are dealt "
                      "round-robin in a seeded task order per layer, so some tasks get no private channel ("
                      + "; ".join(short) + ")", stacklevel=3)
    if mode == "knockout" and any(knockout_count(s, c) == c for s, c in zip(sigmas, widths)):
        warnings.warn("task_routing: knockout with sigma=1 zeroes every channel of a layer for every task",
                      stacklevel=3)
    return masks


class TaskConditioned(nn.Module):
    """A layer whose computation depends on the active tasks, set by the model before each pass."""

    def __init__(self):
        super().__init__()
        self.tasks: list[int] = []
        self.index: torch.Tensor | None = None

    def set_active(self, tasks: list[int], index: torch.Tensor) -> None:
        """The paper's set_active_task: `tasks` (and the same as a tensor) for the len(tasks) sample groups."""
        self.tasks, self.index = tasks, index


class TaskRoutingLayer(TaskConditioned):
    """Multiplies each sample's channels by its task's fixed binary mask (x * mask, so gradients are masked too).

    Samples come as len(tasks) equal groups, task-major ([G*B, C, ...]); group g uses row tasks[g] of `masks`.
    The first TRL of a network `fans_out`: its input [B, C, ...] is the same for every task, and it returns
    one masked copy per task, so the layers before it run once.
    """

    def __init__(self, masks: torch.Tensor, fans_out: bool = False):
        super().__init__()
        self.register_buffer("masks", torch.as_tensor(masks, dtype=torch.float32).clone())
        self.fans_out = fans_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = [1] * (x.dim() - 2)
        if len(self.tasks) == 1:
            return x * self.masks[self.tasks[0]].view(1, -1, *spatial)
        groups = len(self.tasks)
        mask = self.masks.index_select(0, self.index).view(groups, 1, -1, *spatial)
        if self.fans_out:
            return (x.unsqueeze(0) * mask).reshape(-1, *x.shape[1:])
        return (x.view(groups, -1, *x.shape[1:]) * mask).view_as(x)

    def extra_repr(self) -> str:
        tasks, channels = self.masks.shape
        return f"tasks={tasks}, channels={channels}, fans_out={self.fans_out}"
