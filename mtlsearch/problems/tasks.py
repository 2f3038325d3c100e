"""Tasks and multi-task problems: what is predicted, how it is scored, and the data splits."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

TASK_TYPES = ("binary", "multiclass", "regression")
# the metrics that may be a task's primary one, the default first: balanced accuracy scores an always-"no" answer
# 0.5 whatever the share of positives, where accuracy scores it 0.9 on a one-vs-all task of ten classes
PRIMARY_METRICS = {"binary": ("balanced_accuracy", "f1", "accuracy"), "multiclass": ("accuracy",),
                   "regression": ("r2",)}
PRIMARY_METRIC = {kind: metrics[0] for kind, metrics in PRIMARY_METRICS.items()}


@dataclass(frozen=True)
class Task:
    """One prediction target: its name, type, class count, the number of output units it needs and the metric
    that scores it (`metric`, None: its type's default in PRIMARY_METRIC)."""

    name: str
    type: str
    num_classes: int = 2
    metric: str | None = None

    def __post_init__(self):
        if self.type not in TASK_TYPES:
            raise UserError(f"task {self.name!r} has unknown type {self.type!r}; valid: {', '.join(TASK_TYPES)}")
        if self.type == "multiclass" and self.num_classes < 2:
            raise UserError(f"multiclass task {self.name!r} needs at least 2 classes, got {self.num_classes}")
        if self.metric is not None and self.metric not in PRIMARY_METRICS[self.type]:
            raise UserError(f"{self.type} task {self.name!r} cannot be scored by {self.metric!r}; valid: "
                            f"{', '.join(PRIMARY_METRICS[self.type])}")

    @property
    def out_features(self) -> int:
        return self.num_classes if self.type == "multiclass" else 1

    @property
    def primary_metric(self) -> str:
        return self.metric or PRIMARY_METRIC[self.type]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-task loss: BCE-with-logits, cross-entropy or MSE; `target` is one column of y."""
        if self.type == "binary":
            return F.binary_cross_entropy_with_logits(output.reshape(-1), target.float())
        if self.type == "multiclass":
            return F.cross_entropy(output, target.long())
        return F.mse_loss(output.reshape(-1), target.float())

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Turn raw outputs into predictions in the label space (class index or value)."""
        if self.type == "binary":
            return (output.reshape(-1) > 0).long()
        if self.type == "multiclass":
            return output.argmax(dim=1)
        return output.reshape(-1)

    def metrics(self, prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Binary: accuracy, balanced accuracy, precision, recall, F1; multiclass: accuracy; regression: MAE, R²."""
        from sklearn import metrics as skm  # here, not at import: scikit-learn's import is seconds a CLI error spares

        if self.type == "binary":
            target = target.astype(int)
            return {
                "accuracy": float(skm.accuracy_score(target, prediction)),
                "balanced_accuracy": balanced_accuracy(prediction, target),
                "precision": float(skm.precision_score(target, prediction, zero_division=0)),
                "recall": float(skm.recall_score(target, prediction, zero_division=0)),
                "f1": float(skm.f1_score(target, prediction, zero_division=0)),
            }
        if self.type == "multiclass":
            return {"accuracy": float(skm.accuracy_score(target.astype(int), prediction))}
        return {"mae": float(skm.mean_absolute_error(target, prediction)),
                "r2": float(skm.r2_score(target, prediction))}

    def to_dict(self) -> dict:
        """What the task predicts (structures store it); how it is scored is the run's choice, so not here."""
        return {"name": self.name, "type": self.type, "num_classes": self.num_classes}


def balanced_accuracy(prediction: np.ndarray, target: np.ndarray) -> float:
    """The mean over the classes present in `target` of the share of that class predicted right (its recall)."""
    return float(np.mean([np.mean(prediction[target == c] == c) for c in np.unique(target)]))


def score(task_metrics: dict[str, dict[str, float]], tasks: list[Task]) -> float:
    """The problem's score: the mean over tasks of each task's primary metric (higher is better)."""
    return float(np.mean([task_metrics[t.name][t.primary_metric] for t in tasks]))


@dataclass
class Problem:
    """A multi-task problem: tasks plus train/val/test datasets yielding (x, y) with y of shape [T]."""

    name: str
    tasks: list[Task]
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    input_shape: tuple[int, ...]
    true_groups: list[int] | None = None
    info: dict = field(default_factory=dict)
    backbone: object | None = None  # your own layers, a mtlsearch.backbones.Backbone; None: chosen by input shape

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise UserError(f"unknown task {name!r}; valid: {', '.join(self.task_names)}")

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def scored_by(self, metric: str | None) -> Problem:
        """This problem with `metric` as the primary metric of its binary tasks (None: as the problem chose)."""
        if metric is None:
            return self
        tasks = [replace(t, metric=metric) if t.type == "binary" else t for t in self.tasks]
        return replace(self, tasks=tasks)
