"""SharingStructure: which blocks of units each task uses, as a directed networkx graph of blocks.

A node is a block of units in one layer; its `op` says how the block computes from its in-edges. An edge
is data flow and owns the slice of the destination's weights that reads the source (its `slot` orders
the slices), so weights shared by tasks that feed them different activations (Task Routing) are edges
whose `tasks` differ from their endpoints'.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx

from ..errors import UserError

NODE_KEYS = ("layer", "kind", "tasks", "width", "params", "shape", "op")
EDGE_KEYS = ("tasks", "slot", "params")
GRAPH_KEYS = ("strategy", "config", "task_names", "task_types", "input_shape")
OP_TYPES = ("input", "conv", "linear", "stitch")


def edge_fan(op: dict, src_shape) -> int:
    """Weight columns an edge contributes: channels for a conv, flattened units for a linear, 1 for a stitch."""
    if op["type"] == "conv":
        return int(src_shape[0])
    if op["type"] == "linear":
        return int(math.prod(src_shape))
    return 1


def edge_params(op: dict, width: int, src_shape) -> int:
    fan = edge_fan(op, src_shape)
    if op["type"] == "conv":
        return width * fan * op["kernel"] ** 2
    return width * fan if op["type"] == "linear" else 1


def own_params(op: dict, width: int) -> int:
    """Parameters of the block itself: bias and the norm's scale and shift."""
    if op["type"] in ("input", "stitch"):
        return 0
    return width * (1 + (2 if op.get("norm") else 0))


class SharingStructure:
    """A directed graph of blocks; graph attributes carry strategy, config, tasks and metrics."""

    def __init__(self, *, strategy: str, config: dict, tasks: list, input_shape, metrics: dict | None = None):
        self.graph = nx.DiGraph(strategy=strategy, config=dict(config), task_names=[t.name for t in tasks],
                                task_types=[t.to_dict() for t in tasks], input_shape=list(input_shape))
        if metrics:
            self.graph.graph["metrics"] = dict(metrics)

    # building
    def add_block(self, node: str, *, layer: int, kind: str, tasks, width: int, shape, op: dict, **extra) -> str:
        if node in self.graph:
            raise ValueError(f"block {node!r} added twice")
        self.graph.add_node(node, layer=int(layer), kind=kind, tasks=sorted(tasks), width=int(width),
                            shape=[int(s) for s in shape], op=dict(op), params=own_params(op, width), **extra)
        return node

    def add_input(self) -> str:
        shape = self.graph.graph["input_shape"]
        return self.add_block("input", layer=0, kind="input", tasks=self.task_names, width=shape[0], shape=shape,
                              op={"type": "input"})

    def connect(self, src: str, dst: str, tasks=None) -> None:
        """Add data flow src -> dst used by `tasks` (default: the tasks both blocks serve)."""
        g = self.graph
        if tasks is None:
            tasks = set(g.nodes[src]["tasks"]) & set(g.nodes[dst]["tasks"])
        n = edge_params(g.nodes[dst]["op"], g.nodes[dst]["width"], g.nodes[src]["shape"])
        g.add_edge(src, dst, tasks=sorted(tasks), slot=g.in_degree(dst), params=n)
        g.nodes[dst]["params"] += n

    # reading
    @property
    def task_names(self) -> list[str]:
        return list(self.graph.graph["task_names"])

    @property
    def strategy(self) -> str:
        return self.graph.graph["strategy"]

    def head(self, task: str) -> str:
        for node, data in self.graph.nodes(data=True):
            if data["kind"] == "head" and data.get("task") == task:
                return node
        raise UserError(f"structure has no head for task {task!r}; tasks: {', '.join(self.task_names)}")

    def in_edges(self, node: str) -> list[tuple[str, dict]]:
        """(source, edge data) into `node`, in slot order."""
        return sorted(((s, d) for s, _, d in self.graph.in_edges(node, data=True)), key=lambda e: e[1]["slot"])

    def set_metrics(self, metrics: dict) -> None:
        self.graph.graph["metrics"] = dict(metrics)

    def restrict(self, tasks: list[str]) -> "SharingStructure":
        """The sub-structure only `tasks` need: other blocks dropped, edges re-slotted in their old order."""
        unknown = sorted(set(tasks) - set(self.task_names))
        if unknown or not tasks:
            raise UserError(f"unknown task(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(self.task_names)}")
        keep = set(tasks)
        g = self.graph
        types = {t["name"]: t for t in g.graph["task_types"]}
        sub = nx.DiGraph(**{**g.graph, "task_names": [t for t in self.task_names if t in keep],
                            "task_types": [types[t] for t in self.task_names if t in keep]})
        for node, data in g.nodes(data=True):
            if keep & set(data["tasks"]):
                sub.add_node(node, **{**data, "tasks": sorted(keep & set(data["tasks"])), "params": own_params(data["op"], data["width"])})
        for node in sub.nodes:
            for slot, (src, data) in enumerate(e for e in self.in_edges(node) if keep & set(e[1]["tasks"]) and e[0] in sub):
                sub.add_edge(src, node, **{**data, "tasks": sorted(keep & set(data["tasks"])), "slot": slot})
                sub.nodes[node]["params"] += data["params"]
        out = SharingStructure.__new__(SharingStructure)
        out.graph = sub
        return out

    # conversions
    def to_networkx(self) -> nx.DiGraph:
        return self.graph.copy()

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph, where: str = "structure") -> "SharingStructure":
        validate(graph, where)
        out = cls.__new__(cls)
        out.graph = graph.copy()
        return out

    def save_json(self, path) -> None:
        Path(path).write_text(json.dumps(nx.node_link_data(self.graph, edges="edges"), indent=1))

    @classmethod
    def load_json(cls, path) -> "SharingStructure":
        try:
            data = json.loads(Path(path).read_text())
            graph = nx.node_link_graph(data, directed=True, edges="edges")
        except FileNotFoundError:
            raise UserError(f"{path}: no such structure file") from None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise UserError(f"{path}: not a valid node-link structure file ({type(err).__name__}: {err})") from None
        return cls.from_networkx(graph, str(path))

    def save_graphml(self, path) -> None:
        nx.write_graphml(_encode_for_graphml(self.graph), path)

    @classmethod
    def load_graphml(cls, path) -> "SharingStructure":
        try:
            graph = nx.read_graphml(path)
        except FileNotFoundError:
            raise UserError(f"{path}: no such structure file") from None
        except Exception as err:  # networkx raises several parser errors for a damaged file
            raise UserError(f"{path}: not a valid GraphML structure file ({type(err).__name__}: {err})") from None
        return cls.from_networkx(_decode_from_graphml(graph, str(path)), str(path))


# GraphML holds only scalars: lists become comma-joined strings, dicts and shapes JSON strings.
_LIST_KEYS = ("tasks", "task_names")
_JSON_KEYS = ("shape", "op", "config", "task_types", "input_shape", "metrics")


def _encode(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if key in _LIST_KEYS:
            out[key] = ",".join(value)
        elif key in _JSON_KEYS or isinstance(value, (list, dict, tuple)):
            out[key] = "json:" + json.dumps(value)
        elif value is None:
            out[key] = "json:null"
        else:
            out[key] = value
    return out


def _decode(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if key in _LIST_KEYS and isinstance(value, str):
            out[key] = value.split(",") if value else []
        elif isinstance(value, str) and value.startswith("json:"):
            out[key] = json.loads(value[5:])
        else:
            out[key] = value
    return out


def _encode_for_graphml(g: nx.DiGraph) -> nx.DiGraph:
    h = nx.DiGraph(**_encode(g.graph))
    h.add_nodes_from((n, _encode(d)) for n, d in g.nodes(data=True))
    h.add_edges_from((u, v, _encode(d)) for u, v, d in g.edges(data=True))
    return h


def _decode_from_graphml(g: nx.DiGraph, where: str) -> nx.DiGraph:
    try:
        h = nx.DiGraph(**_decode(g.graph))
        h.add_nodes_from((n, _decode(d)) for n, d in g.nodes(data=True))
        h.add_edges_from((u, v, _decode(d)) for u, v, d in g.edges(data=True))
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: a JSON-encoded attribute is damaged ({err})") from None
    return h


def validate(g: nx.DiGraph, where: str = "structure") -> None:
    """Refuse a graph that misses required attributes or is not a usable block graph, naming the problem."""
    if not isinstance(g, nx.DiGraph) or not g.is_directed():
        raise UserError(f"{where}: a structure must be a directed graph")
    missing = [k for k in GRAPH_KEYS if k not in g.graph]
    if missing:
        raise UserError(f"{where}: graph attribute(s) {', '.join(missing)} missing; required: {', '.join(GRAPH_KEYS)}")
    tasks = set(g.graph["task_names"])
    for node, data in g.nodes(data=True):
        missing = [k for k in NODE_KEYS if k not in data]
        if missing:
            raise UserError(f"{where}: block {node!r} lacks {', '.join(missing)}; required: {', '.join(NODE_KEYS)}")
        if not isinstance(data["op"], dict) or data["op"].get("type") not in OP_TYPES:
            raise UserError(f"{where}: block {node!r} has an unknown op {data['op']!r}; valid types: {', '.join(OP_TYPES)}")
        if not set(data["tasks"]) <= tasks:
            raise UserError(f"{where}: block {node!r} names unknown tasks {sorted(set(data['tasks']) - tasks)}")
    for src, dst, data in g.edges(data=True):
        missing = [k for k in EDGE_KEYS if k not in data]
        if missing:
            raise UserError(f"{where}: edge {src!r} -> {dst!r} lacks {', '.join(missing)}; required: {', '.join(EDGE_KEYS)}")
    if not nx.is_directed_acyclic_graph(g):
        raise UserError(f"{where}: the block graph has a cycle")
    heads = {d.get("task") for _, d in g.nodes(data=True) if d["kind"] == "head"}
    if not tasks <= heads:
        raise UserError(f"{where}: no head block for task(s) {', '.join(sorted(tasks - heads))}")
