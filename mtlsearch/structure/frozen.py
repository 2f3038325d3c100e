"""Frozen model directories: the structure, safetensors weights and a torch.export program that needs no mtlsearch.

dir/structure.json    node-link graph (loads with plain networkx)
dir/weights.safetensors  BlockNetwork state (parameters and norm statistics; loading runs no pickled code)
dir/model.pt2         torch.export program: x [batch, *input_shape] -> tuple of task outputs, in task order
dir/tasks.json        that task order, the task types and the input shape

A run directory holds these in frozen/ next to its own structure.json, which is its structure (StructureFiles).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import UserError
from .freeze import freeze
from .graph import SharingStructure
from .network import BlockNetwork

FILES = ("structure.json", "weights.safetensors", "model.pt2", "tasks.json")
MAX_BATCH = 1 << 20


class TaskTuple(nn.Module):
    """Wraps a BlockNetwork so it returns every task's output as a tuple (torch.export needs no dict keys)."""

    def __init__(self, network: BlockNetwork):
        super().__init__()
        self.network = network
        self.task_names = list(network.task_names)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.network(x)
        return tuple(outputs[t] for t in self.task_names)


def export_program(model: BlockNetwork, input_shape) -> torch.export.ExportedProgram:
    """The eval-mode model as a torch.export program on the CPU; the batch dimension stays dynamic."""
    wrapper = TaskTuple(copy.deepcopy(model).cpu().eval())
    example = torch.zeros(2, *input_shape)  # 2, not 1: a size-1 example would specialise the batch dimension
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(wrapper, (example,), dynamic_shapes=({0: batch},))


def save_frozen(model: BlockNetwork, directory, example_input_shape=None) -> Path:
    """Write structure.json, weights.safetensors, model.pt2 and tasks.json; input shape: the structure's.

    Args:
        model: a frozen model, from `freeze` or `load_frozen`.
        directory: where to write (created if missing).
        example_input_shape: one example's shape for torch.export (default: the structure's input shape).

    Example:
        >>> from mtlsearch import load_frozen, save_frozen
        >>> save_frozen(load_frozen("runs/tr", tasks=["is_3"]), "runs/tr_is_3")
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    structure = model.structure
    shape = [int(s) for s in (example_input_shape or structure.graph.graph["input_shape"])]
    structure.save_json(directory / "structure.json")
    state = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    save_file(state, str(directory / "weights.safetensors"), metadata={"format": "mtlsearch.BlockNetwork"})
    torch.export.save(export_program(model, shape), directory / "model.pt2")
    info = {"tasks": structure.task_names, "task_types": structure.graph.graph["task_types"],
            "input_shape": ["batch", *shape], "outputs": "tuple of tensors [batch, out_features], in task order"}
    (directory / "tasks.json").write_text(json.dumps(info, indent=1) + "\n")
    return directory


@dataclass(frozen=True)
class StructureFiles:
    """Which files are a directory's structure and weights, one rule for show, export and retrain: its own
    structure.json and weights.safetensors, each else the copy in its frozen/ folder (a run directory keeps its
    weights there), so an edited or damaged structure.json is what every command reads."""

    structure: Path
    weights: Path | None  # None when the directory has no weights and they were not needed


def structure_files(path, need_weights: bool = True) -> StructureFiles:
    """The structure (and weights) of `path`, a run or frozen-model directory, by the rule of StructureFiles."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such directory (give a run directory or a frozen-model directory)")

    def first(name: str) -> Path | None:
        return next((d / name for d in (path, path / "frozen") if (d / name).is_file()), None)

    structure, weights = first("structure.json"), first("weights.safetensors")
    if structure is None or (need_weights and weights is None):
        wanted = "structure.json and weights.safetensors" if need_weights else "structure.json"
        raise UserError(f"{path}: holds no {wanted}, nor does {path / 'frozen'} (give a run directory or a "
                        "frozen-model directory)")
    return StructureFiles(structure, weights)


def load_weights_file(path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, with a one-line error for a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path}: not a valid safetensors weights file ({err})") from None


def load_frozen(directory, tasks: list[str] | None = None) -> BlockNetwork:
    """The BlockNetwork of a run or frozen-model directory with its weights; only what `tasks` need.

    Args:
        directory: a run directory (`train`, `retrain`, a search's `best/<strategy>`) or its `frozen/`.
        tasks: task names to keep (default: all); blocks no kept task uses are left out.

    Example:
        >>> from mtlsearch import load_frozen
        >>> model = load_frozen("runs/tr").eval()
        >>> outputs = model(x)  # {task name: output}
    """
    files = structure_files(directory)
    return freeze(SharingStructure.load_json(files.structure), load_weights_file(files.weights), tasks=tasks)
