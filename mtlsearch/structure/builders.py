"""Helpers that lay backbone specs out as blocks of a SharingStructure."""
from __future__ import annotations

from ..backbones import LayerSpec
from .graph import SharingStructure


def op_of(spec: LayerSpec) -> dict:
    """The block op for a backbone layer (everything but its width)."""
    op = spec.to_dict()
    del op["width"]
    return op


HEAD_OP = {"type": "linear", "norm": False, "act": "none", "dropout": 0.0}


def add_chain(s: SharingStructure, specs: list[LayerSpec], src: str, tasks, prefix: str, layer: int,
              kind: str = "", **extra) -> tuple[str, int]:
    """Add one block per spec after `src`, all used by `tasks`; return the last block and its layer."""
    for spec in specs:
        shape = spec.out_shape(tuple(s.graph.nodes[src]["shape"]))
        layer += 1
        node = s.add_block(f"{prefix}{layer}", layer=layer, kind=kind or spec.type, tasks=tasks, width=spec.width,
                           shape=shape, op=op_of(spec), **extra)
        s.connect(src, node)
        src = node
    return src, layer


def add_head(s: SharingStructure, task, src: str, layer: int) -> str:
    """The task's output layer reading `src`."""
    node = s.add_block(f"head_{task.name}", layer=layer + 1, kind="head", tasks=[task.name],
                       width=task.out_features, shape=[task.out_features], op=HEAD_OP, task=task.name)
    s.connect(src, node)
    return node
