"""Tasks and multi-task problems: what is predicted, how it is scored, and the data splits."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from ..errors import UserError

TASK_TYPES = ("binary", "multiclass", "regression")
PRIMARY_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}


@dataclass(frozen=True)
class Task:
    """One prediction target: its name, type, class count and the number of output units it needs."""

    name: str
    type: str
    num_classes: int = 2

    def __post_init__(self):
        if self.type not in TASK_TYPES:
            raise UserError(f"task {self.name!r} has unknown type {self.type!r}; valid: {', '.join(TASK_TYPES)}")
        if self.type == "multiclass" and self.num_classes < 2:
            raise UserError(f"multiclass task {self.name!r} needs at least 2 classes, got {self.num_classes}")

    @property
    def out_features(self) -> int:
        return self.num_classes if self.type == "multiclass" else 1

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRIC[self.type]

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
        """Binary: accuracy, precision, recall, F1; multiclass: accuracy; regression: MAE and R²."""
        if self.type == "binary":
            target = target.astype(int)
            return {
                "accuracy": float(skm.accuracy_score(target, prediction)),
                "precision": float(skm.precision_score(target, prediction, zero_division=0)),
                "recall": float(skm.recall_score(target, prediction, zero_division=0)),
                "f1": float(skm.f1_score(target, prediction, zero_division=0)),
            }
        if self.type == "multiclass":
            return {"accuracy": float(skm.accuracy_score(target.astype(int), prediction))}
        return {"mae": float(skm.mean_absolute_error(target, prediction)), "r2": float(skm.r2_score(target, prediction))}

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "num_classes": self.num_classes}


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
    backbone: Backbone | None = None  # your own layers (mtlsearch.backbones.Backbone); None: chosen by input shape

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
