"""Frozen models: a plain BlockNetwork built from a structure alone, optionally with search weights."""
from __future__ import annotations

import torch

from ..errors import UserError
from .graph import SharingStructure, edge_fan
from .network import BlockNetwork, block_prefix, fit_norm_statistics


def _column_map(full: SharingStructure, sub: SharingStructure, node: str) -> torch.Tensor | None:
    """Columns of `node`'s weight in `full` that the restricted block keeps (None: all of them)."""
    g = full.graph
    edges = full.in_edges(node)
    kept = {src for src, _ in sub.in_edges(node)}
    if len(kept) == len(edges):
        return None
    fans = [edge_fan(g.nodes[node]["op"], g.nodes[src]["shape"]) for src, _ in edges]
    offsets = [sum(fans[:i]) for i in range(len(fans))]
    return torch.cat([torch.arange(o, o + f) for (src, _), o, f in zip(edges, offsets, fans) if src in kept])


def restrict_weights(full: SharingStructure, sub: SharingStructure, weights: dict) -> dict:
    """Weights of `full` sliced to the blocks and edges `sub` keeps."""
    out = {}
    for node, data in sub.graph.nodes(data=True):
        prefix = block_prefix(node)
        columns = _column_map(full, sub, node)
        for name, value in weights.items():
            if not name.startswith(prefix):
                continue
            if name == prefix + "weight" and columns is not None:
                value = value.index_select(0 if data["op"]["type"] == "stitch" else 1, columns)
            if name.startswith(prefix + "norm.running_") and value.dim() == 2:  # per task: keep the kept tasks' rows
                tasks = full.graph.nodes[node]["tasks"]
                value = value[torch.tensor([tasks.index(t) for t in data["tasks"]])]
            out[name] = value
    return fit_norm_statistics(sub, out)


def freeze(structure: SharingStructure, weights: dict | None = None, tasks: list[str] | None = None) -> BlockNetwork:
    """A plain nn.Module running each task through exactly its blocks; fresh init unless `weights` are given.

    Args:
        structure: a SharingStructure (e.g. `SharingStructure.load_graphml("runs/x/structure.graphml")`).
        weights: state-dict tensors for its blocks (e.g. `safetensors.torch.load_file(".../weights.safetensors")`);
            None initialises the blocks afresh, to retrain the structure from scratch.
        tasks: keep only these tasks' blocks (None: all tasks).

    Example:
        >>> model = freeze(structure, weights, tasks=["is_3", "is_7"])
        >>> outputs = model(x)  # {"is_3": ..., "is_7": ...}
    """
    sub = structure.restrict(tasks) if tasks is not None else structure  # [] is refused, not taken as "all"
    model = BlockNetwork(sub)
    if weights is not None:
        if tasks is not None:
            weights = restrict_weights(structure, sub, weights)
        load_weights(model, weights)
    return model


def load_weights(model: BlockNetwork, weights: dict) -> None:
    """Load weights into a frozen model, naming the first mismatch instead of a long traceback."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise UserError(f"weights do not match the structure: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, value in weights.items():
        if tuple(value.shape) != tuple(own[name].shape):
            raise UserError(f"weights do not match the structure: {name} has shape {list(value.shape)}, "
                            f"the structure needs {list(own[name].shape)}")
    model.load_state_dict(weights)
