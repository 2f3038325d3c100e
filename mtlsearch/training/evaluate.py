"""Evaluation of every task of a problem in batched forward passes, with scikit-learn metrics."""
from __future__ import annotations

import numpy as np
import torch

from ..problems import Problem, score
from ..problems.data import batches


@torch.no_grad()
def evaluate(model, problem: Problem, split: str = "val", batch_size: int = 256, device="cpu") -> dict:
    """{"score", "loss", "tasks": {name: {metric: value}}} for one split; model in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    predictions = {t.name: [] for t in problem.tasks}
    losses = {t.name: 0.0 for t in problem.tasks}
    targets, n = [], 0
    for x, y in batches(getattr(problem, split), batch_size, device=device):
        out = model(x)
        for i, task in enumerate(problem.tasks):
            predictions[task.name].append(task.predict(out[task.name]).cpu())
            losses[task.name] += float(task.loss(out[task.name], y[:, i])) * len(x)
        targets.append(y.cpu())
        n += len(x)
    model.train(was_training)
    y = torch.cat(targets).numpy()
    tasks = {t.name: t.metrics(torch.cat(predictions[t.name]).numpy(), y[:, i]) for i, t in enumerate(problem.tasks)}
    return {"score": score(tasks, problem.tasks), "loss": float(np.sum(list(losses.values())) / max(n, 1)),
            "tasks": tasks}
