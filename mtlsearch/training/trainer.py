"""One trainer for every strategy: per-task losses, validation each epoch, best checkpoint, determinism."""
from __future__ import annotations

import copy
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import TrainingDiverged, UserError
from ..problems import PRIMARY_METRICS, Problem
from ..problems.data import batches
from ..strategies.base import EpochContext, Strategy
from ..strategies.setting import check_settings, dataclass_settings, setting_field
from .evaluate import evaluate


OPTIMIZERS = {  # name -> the torch optimiser a TrainConfig builds
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
}


@dataclass
class TrainConfig:
    """Settings every strategy shares (set with --set key=value like a strategy's own)."""

    epochs: int = setting_field(int, 20, "passes over the training data", low=1)
    optimizer: str = setting_field(str, "adam", "adam, or sgd with momentum (what the Task Routing and Selective "
                                   "Sharing papers train with)", choices=tuple(OPTIMIZERS))
    lr: float = setting_field(float, 1e-3, "the optimiser's learning rate", low=0.0, low_open=True)
    momentum: float = setting_field(float, 0.5, "sgd's momentum (0.5, the Task Routing and Selective Sharing papers' "
                                    "value); adam ignores it", low=0.0)
    batch_size: int = setting_field(int, 64, "examples per optimiser step", low=1)
    weight_decay: float = setting_field(float, 0.0, "the optimiser's weight decay (an L2 term added to the gradient)",
                                        low=0.0)
    backbone: str | None = setting_field(str, None, "the network the strategy builds on (none: the problem's default)")
    metric: str | None = setting_field(str, None, "the primary metric of binary tasks (none: the problem's choice, "
                                       "balanced accuracy unless it says otherwise)", choices=PRIMARY_METRICS["binary"])

    def validate(self) -> None:
        check_settings(dataclass_settings(type(self)), asdict(self))


def available_devices() -> list[str]:
    """The devices this machine can train on, as `device` takes them."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    return (["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(gpus)] if gpus else [])
            + (["mps"] if mps is not None and mps.is_available() else []))


def device_for(name: str | None = None) -> torch.device:
    """CUDA when present, else the CPU; a named device must exist on this machine (UserError naming those that do)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    valid = available_devices()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"`device` {name!r} is not a device name; valid here: {', '.join(valid)}",
                        ("device",)) from None
    if device.type != "cpu" and str(device) not in valid:
        raise UserError(f"`device` {name!r} is not on this machine; valid here: {', '.join(valid)}", ("device",))
    return device


def plain(value):
    """Numpy scalars and arrays as Python numbers and tensors, so a checkpoint loads with weights_only=True."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains `strategy`'s model on `problem`; `fit()` returns the final record and keeps the best model."""

    def __init__(self, problem: Problem, strategy: Strategy, config: TrainConfig, seed: int = 0,
                 out_dir: str | Path | None = None, quiet: bool = False, device: str | None = None,
                 on_epoch: Callable[["Trainer", dict], None] | None = None):
        config.validate()
        self.problem, self.strategy, self.config, self.seed = problem.scored_by(config.metric), strategy, config, seed
        self.out_dir = Path(out_dir) if out_dir else None
        self.quiet = quiet or not sys.stderr.isatty()
        self.device = device_for(device)
        self.on_epoch = on_epoch
        self.backbone = strategy.backbone(config.backbone)
        seed_everything(seed)
        self.model = strategy.build(self.backbone).to(self.device)
        self.optimizer = self._optimizer()
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.step = 0, 0
        self.history: list[dict] = []
        self.best: dict | None = None

    def _optimizer(self) -> torch.optim.Optimizer:
        """The configured optimiser; parameters that get no gradient (e.g. fixed SFG logits) are never stepped."""
        return OPTIMIZERS[self.config.optimizer](self.model.parameters(), self.config)

    @property
    def column(self) -> dict[str, int]:
        return {t.name: i for i, t in enumerate(self.problem.tasks)}

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training set; returns the mean loss per task over the batches it was trained on."""
        self.model.train()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        n_batches = math.ceil(len(self.problem.train) / self.config.batch_size)
        bar = tqdm(batches(self.problem.train, self.config.batch_size, True, self.generator, self.device),
                   total=n_batches, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", disable=self.quiet,
                   leave=False)
        for x, y in bar:
            stepped = self.train_step(x, y)
            if stepped is None:
                continue
            per_task, loss = stepped
            for t, value in per_task.items():
                sums[t] = sums.get(t, 0.0) + float(value.detach())
                counts[t] = counts.get(t, 0) + 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        return {t: sums[t] / counts[t] for t in sums}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, tasks: list[str] | None = None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        """One optimiser step on a batch: the strategy picks the tasks (unless given), their losses plus its extra
        loss are summed; returns (per-task losses, loss), or None when the strategy skipped the step."""
        tasks = tasks or self.strategy.batch_tasks(self.rng) or self.problem.task_names
        out = self.model(x, tasks)
        per_task = {t: self.problem.task(t).loss(out[t], y[:, self.column[t]]) for t in tasks}
        loss = sum(per_task.values())
        extra = self.strategy.extra_loss(self.model)
        if extra is not None:
            loss = loss + extra
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {float(loss.detach())} at epoch {self.epoch + 1}, step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not self.strategy.before_step(self.model):
            return None
        self.optimizer.step()
        self.step += 1
        self.strategy.after_step(self.model, self.step)
        return per_task, loss

    def fit(self) -> dict:
        """Train for the configured epochs, validating each; the model ends at its best validation epoch."""
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            losses = self.train_epoch()
            seconds = time.perf_counter() - started
            val = evaluate(self.model, self.problem, "val", device=self.device)
            context = EpochContext(self.epoch, self.model, losses, val, seconds)
            changed = self.strategy.end_epoch(context)
            if changed is not None:
                self.model = changed.to(self.device)
                self.optimizer = self._optimizer()
                self.best = None  # the discovered architecture changed: pick the best epoch within the new one
                val = evaluate(self.model, self.problem, "val", device=self.device)  # score what is kept
            self.epoch += 1
            record = {"epoch": self.epoch, "train_loss": losses, "val_score": val["score"], "val_loss": val["loss"],
                      "seconds": round(seconds, 4), "params": self.params(), **context.log}
            self.history.append(record)
            if self.best is None or val["score"] > self.best["val"]["score"]:
                self.best = {"epoch": self.epoch, "val": val, "state": self.strategy.architecture_state(),
                             "weights": copy.deepcopy(self.model.state_dict())}
            self._log(record)
            if self.on_epoch:
                self.on_epoch(self, record)
        self.model.load_state_dict(self.best["weights"])
        return self.best

    def state_dict(self) -> dict:
        """Everything needed to resume training where it stopped (loadable with weights_only=True)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "step": self.step, "history": plain(self.history), "best": plain(self.best),
                "architecture": plain(self.strategy.architecture_state()),
                "strategy": plain(self.strategy.state_dict()),
                "rng": json.dumps(self.rng.bit_generator.state), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()`: rebuilds a changed architecture, then restores weights and counters."""
        if state["architecture"] is not None:
            self.model = self.strategy.build(self.backbone, state["architecture"]).to(self.device)
            self.optimizer = self._optimizer()
        self.strategy.load_state_dict(state["strategy"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.history, self.best = state["epoch"], state["step"], state["history"], state["best"]
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.generator.set_state(state["generator"])

    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _log(self, record: dict) -> None:
        if self.out_dir:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if not self.quiet:
            tqdm.write(f"epoch {record['epoch']:>3}  val score {record['val_score']:.4f}  "
                       f"params {record['params']:,}  {record['seconds']:.1f}s", file=sys.stderr)
