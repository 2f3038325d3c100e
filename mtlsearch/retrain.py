"""Retraining a frozen structure (from a run, an export or a search) from scratch or from its saved weights.

The structure is fixed: a small Strategy hands the Trainer `freeze(structure, weights)` and nothing else,
so a retrain writes exactly what `mtlsearch train` writes.
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, TensorDataset

from .errors import UserError
from .problems import Problem, load_problem
from .run import RunWriter, check_seed, prepare_out_dir, read_json
from .settings import split_settings
from .strategies.base import Strategy
from .structure.freeze import freeze
from .structure.frozen import load_weights_file, structure_files
from .structure.graph import SharingStructure
from .structure.network import BlockNetwork
from .training import Trainer

MODES = ("scratch", "finetune")


class FrozenStructure(Strategy):
    """Trains a given structure as it is: fresh initialisation, or the given weights when fine-tuning."""

    name = "frozen"
    description = "a fixed sharing structure, retrained from scratch or fine-tuned"

    def __init__(self, problem: Problem, frozen: SharingStructure, weights: dict | None = None, seed: int = 0):
        self.frozen, self.weights = frozen, weights
        super().__init__(problem, {}, seed)

    def build(self, backbone, state=None) -> BlockNetwork:
        return freeze(self.frozen, self.weights)

    def structure(self, model: BlockNetwork):
        return model.structure, model.state_dict()


class TargetColumns(Dataset):
    """A dataset whose targets are only some of the original columns (for a structure of fewer tasks)."""

    def __init__(self, dataset: Dataset, columns: list[int]):
        self.dataset, self.columns = dataset, list(columns)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        x, y = self.dataset[index]
        return x, y[self.columns]


def _select_columns(dataset: Dataset, columns: list[int]) -> Dataset:
    if isinstance(dataset, TensorDataset):  # keep the fast in-memory batching
        x, y = dataset.tensors
        return TensorDataset(x, y[:, columns])
    return TargetColumns(dataset, columns)


def problem_for(problem: Problem, structure: SharingStructure) -> Problem:
    """`problem` cut down to the structure's tasks, refusing tasks the problem lacks or types that differ."""
    ours = {t.name: t for t in problem.tasks}
    for spec in structure.graph.graph["task_types"]:
        task = ours.get(spec["name"])
        if task is None:
            raise UserError(f"the structure's task {spec['name']!r} is not a task of dataset {problem.name!r}; "
                            f"its tasks: {', '.join(ours)}")
        if task.to_dict() != spec:
            raise UserError(f"task {spec['name']!r} is {spec} in the structure "
                            f"but {task.to_dict()} in dataset {problem.name!r}")
    return select_tasks(problem, structure.task_names)


def select_tasks(problem: Problem, names: list[str]) -> Problem:
    """The same data with only the tasks `names` (in that order): targets are cut to their columns."""
    if names == problem.task_names:
        return problem
    columns = [problem.task_names.index(problem.task(t).name) for t in names]
    splits = {s: _select_columns(getattr(problem, s), columns) for s in ("train", "val", "test")}
    groups = [problem.true_groups[i] for i in columns] if problem.true_groups else None
    return Problem(problem.name, [problem.tasks[i] for i in columns], input_shape=problem.input_shape,
                   true_groups=groups, info=dict(problem.info), **splits)


def saved_run_config(source: Path) -> dict:
    """The config.json of a run: in `source`, or in its parent for a run's frozen/ or export folder."""
    for directory in (source, source.parent):
        path = directory / "config.json"
        if path.is_file():
            return read_json(path)
    return {}


def retrain_run(source, out, *, epochs: int, mode: str = "scratch", seed: int = 0, settings: dict | None = None,
                dataset: str | None = None, data_root: str | None = None, download: bool = False,
                overwrite: bool = False, quiet: bool = False, device: str | None = None) -> dict:
    """Retrain the structure in `source` (a run or frozen directory); write the files `train_run` writes."""
    if mode not in MODES:
        raise UserError(f"unknown retrain mode {mode!r}; valid: {', '.join(MODES)}")
    check_seed(seed)
    source = Path(source)
    files = structure_files(source, need_weights=mode == "finetune")
    structure = SharingStructure.load_json(files.structure)
    weights = None
    if mode == "finetune":
        weights = load_weights_file(files.weights)
        freeze(structure, weights)  # refuse weights that do not fit before any data is loaded
    config = saved_run_config(source)
    dataset = dataset or config.get("dataset")
    if not dataset:
        raise UserError(f"{source}: no config.json naming the dataset here or in {source.parent}; pass `dataset`",
                        ("dataset",))
    data_root = data_root or config.get("data_root")
    previous = {k: v for k, v in (config.get("train") or {}).items() if k != "epochs"}
    train_config, _ = split_settings({**previous, **(settings or {}), "epochs": epochs}, FrozenStructure)
    problem = problem_for(load_problem(dataset, data_root=data_root, download=download), structure)
    trainer = Trainer(problem, FrozenStructure(problem, structure, weights, seed), train_config, seed=seed,
                      quiet=quiet, device=device)
    out = prepare_out_dir(out, overwrite)  # only once the model is built
    retrain = {"source": str(source), "mode": mode, "tasks": structure.task_names}
    return RunWriter(out, dataset, structure.strategy, seed, data_root, origin={"retrain": retrain},
                     strategy_config=structure.graph.graph["config"]).fit_and_write(trainer)
