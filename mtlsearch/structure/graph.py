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

from ..backbones.layers import ACTIVATIONS
from ..errors import UserError
from ..problems.tasks import TASK_TYPES

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
            raise UserError(f"unknown task(s) {', '.join(unknown) or '(none given)'}; "
                            f"valid: {', '.join(self.task_names)}")
        keep = set(tasks)
        g = self.graph
        types = {t["name"]: t for t in g.graph["task_types"]}
        attrs = {k: v for k, v in g.graph.items() if k != "metrics"}  # the full model's metrics do not apply
        sub = nx.DiGraph(**{**attrs, "task_names": [t for t in self.task_names if t in keep],
                            "task_types": [types[t] for t in self.task_names if t in keep]})
        for node, data in g.nodes(data=True):
            if keep & set(data["tasks"]):
                sub.add_node(node, **{**data, "tasks": sorted(keep & set(data["tasks"])),
                                      "params": own_params(data["op"], data["width"])})
        for node in sub.nodes:
            for slot, (src, data) in enumerate(e for e in self.in_edges(node)
                                               if keep & set(e[1]["tasks"]) and e[0] in sub):
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
        attrs = {k: v for k, v in g.graph.items() if k not in ("node_default", "edge_default")}  # added by the reader
        h = nx.DiGraph(**_decode(attrs))
        h.add_nodes_from((n, _decode(d)) for n, d in g.nodes(data=True))
        h.add_edges_from((u, v, _decode(d)) for u, v, d in g.edges(data=True))
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: a JSON-encoded attribute is damaged ({err})") from None
    return h


def validate(g: nx.DiGraph, where: str = "structure") -> None:
    """Refuse a graph that misses required attributes or is not a usable block graph, naming the problem.

    Everything BlockNetwork relies on is checked here, so an edited file fails with one line, not a traceback.
    """
    if not isinstance(g, nx.DiGraph) or not g.is_directed():
        raise UserError(f"{where}: a structure must be a directed graph")
    missing = [k for k in GRAPH_KEYS if k not in g.graph]
    if missing:
        raise UserError(f"{where}: graph attribute(s) {', '.join(missing)} missing; required: {', '.join(GRAPH_KEYS)}")
    _check_graph_attrs(g.graph, where)
    for node, data in g.nodes(data=True):
        _check_block(g.graph, node, data, where)
    for src, dst, data in g.edges(data=True):
        _check_edge(g, src, dst, data, where)
    if not nx.is_directed_acyclic_graph(g):
        raise UserError(f"{where}: the block graph has a cycle")
    for node in g.nodes:
        _check_inputs(g, node, where)
    _check_heads(g, where)


def _fail_unless(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise UserError(f"{where}: {message}")


def _is_int(value, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_shape(value) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(_is_int(v, 1) for v in value)


def _check_graph_attrs(attrs: dict, where: str) -> None:
    names = attrs["task_names"]
    _fail_unless(isinstance(names, list) and names and all(isinstance(t, str) and t for t in names)
                 and len(set(names)) == len(names), where,
                 f"task_names must be a non-empty list of distinct names, got {names!r}")
    types = attrs["task_types"]
    _fail_unless(isinstance(types, list) and [t.get("name") if isinstance(t, dict) else None for t in types] == names,
                 where, "task_types must list one {name, type, num_classes} entry per task, in task_names order")
    for t in types:
        _fail_unless(t.get("type") in TASK_TYPES and _is_int(t.get("num_classes"), 1), where,
                     f"task {t['name']!r} has type {t.get('type')!r} with num_classes {t.get('num_classes')!r}; "
                     f"valid types: {', '.join(TASK_TYPES)}")
    _fail_unless(_is_shape(attrs["input_shape"]), where,
                 f"input_shape must be a list of positive integers, got {attrs['input_shape']!r}")
    _fail_unless(isinstance(attrs["strategy"], str), where, f"strategy must be a name, got {attrs['strategy']!r}")
    _fail_unless(isinstance(attrs["config"], dict), where, f"config must be a mapping, got {attrs['config']!r}")


def _check_block(attrs: dict, node, data: dict, where: str) -> None:
    _fail_unless(isinstance(node, str), where, f"block ids must be strings, got {node!r}")
    missing = [k for k in NODE_KEYS if k not in data]
    _fail_unless(not missing, where, f"block {node!r} lacks {', '.join(missing)}; required: {', '.join(NODE_KEYS)}")
    op, tasks = data["op"], data["tasks"]
    _fail_unless(isinstance(op, dict) and op.get("type") in OP_TYPES, where,
                 f"block {node!r} has an unknown op {op!r}; valid types: {', '.join(OP_TYPES)}")
    _fail_unless(isinstance(tasks, list) and all(isinstance(t, str) for t in tasks), where,
                 f"block {node!r}: tasks must be a list of task names, got {tasks!r}")
    _fail_unless(set(tasks) <= set(attrs["task_names"]), where,
                 f"block {node!r} names unknown tasks {sorted(set(tasks) - set(attrs['task_names']))}; "
                 f"valid: {', '.join(attrs['task_names'])}")
    for key, low in (("layer", 0), ("width", 1), ("params", 0)):
        _fail_unless(_is_int(data[key], low), where,
                     f"block {node!r}: {key} must be an integer >= {low}, got {data[key]!r}")
    _fail_unless(_is_shape(data["shape"]) and data["shape"][0] == data["width"], where,
                 f"block {node!r}: shape {data['shape']!r} disagrees with width {data['width']!r} "
                 f"(shape[0] is the width)")
    if op["type"] == "conv":
        _fail_unless(all(_is_int(op.get(k), low) for k, low in (("kernel", 1), ("stride", 1), ("padding", 0)))
                     and (op.get("pool", 0) == "global" or _is_int(op.get("pool", 0))), where,
                     f"block {node!r}: a conv op needs integer kernel, stride, padding and pool (or 'global'), "
                     f"got {op!r}")
    if op["type"] in ("conv", "linear"):
        _fail_unless(op.get("act", "relu") in ACTIVATIONS, where,
                     f"block {node!r}: unknown activation {op.get('act')!r}; valid: {', '.join(ACTIVATIONS)}")
    if op["type"] == "input":
        _fail_unless(data["shape"] == attrs["input_shape"], where,
                     f"input block {node!r} has shape {data['shape']}, "
                     f"the graph's input_shape is {attrs['input_shape']}")


def _check_edge(g: nx.DiGraph, src, dst, data: dict, where: str) -> None:
    missing = [k for k in EDGE_KEYS if k not in data]
    _fail_unless(not missing, where,
                 f"edge {src!r} -> {dst!r} lacks {', '.join(missing)}; required: {', '.join(EDGE_KEYS)}")
    tasks = data["tasks"]
    both = set(g.nodes[src]["tasks"]) & set(g.nodes[dst]["tasks"])
    _fail_unless(isinstance(tasks, list) and set(tasks) <= both, where,
                 f"edge {src!r} -> {dst!r} carries tasks {tasks!r}; "
                 f"it may only carry tasks both blocks serve: {sorted(both)}")
    _fail_unless(_is_int(data["slot"]) and _is_int(data["params"]), where,
                 f"edge {src!r} -> {dst!r}: slot and params must be integers >= 0, "
                 f"got {data['slot']!r}, {data['params']!r}")


def _expected_shape(op: dict, width: int, src_shape: list) -> list | None:
    """The block's output shape computed from one input, as Block computes it (None: the op cannot read it)."""
    if op["type"] == "linear":
        return [width]
    if op["type"] == "stitch":
        return list(src_shape)
    if len(src_shape) != 3:
        return None
    _, h, w = src_shape
    h, w = ((n + 2 * op["padding"] - op["kernel"]) // op["stride"] + 1 for n in (h, w))
    pool = op.get("pool", 0)
    if pool == "global":
        return [width, 1, 1]
    return [width, h // pool, w // pool] if pool else [width, h, w]


def _check_inputs(g: nx.DiGraph, node, where: str) -> None:
    """Slots, shapes and parameter counts of a block's in-edges, and an input for every task it serves."""
    data = g.nodes[node]
    edges = sorted(((s, d) for s, _, d in g.in_edges(node, data=True)), key=lambda e: e[1]["slot"])
    if data["op"]["type"] == "input":
        _fail_unless(not edges, where, f"input block {node!r} has in-edges")
        return
    _fail_unless([d["slot"] for _, d in edges] == list(range(len(edges))), where,
                 f"block {node!r}: in-edge slots {[d['slot'] for _, d in edges]} are not 0..{len(edges) - 1}")
    for src, edge in edges:
        src_shape = g.nodes[src]["shape"]
        _fail_unless(_expected_shape(data["op"], data["width"], src_shape) == data["shape"], where,
                     f"block {node!r} ({data['op']['type']}, shape {data['shape']}) "
                     f"cannot read {src!r} of shape {src_shape}")
        n = edge_params(data["op"], data["width"], src_shape)
        _fail_unless(edge["params"] == n, where,
                     f"edge {src!r} -> {node!r} says {edge['params']} params, its shapes give {n}")
    n = own_params(data["op"], data["width"]) + sum(e["params"] for _, e in edges)
    _fail_unless(data["params"] == n, where,
                 f"block {node!r} says {data['params']} params, its op and in-edges give {n}")
    fed = {t for _, e in edges for t in e["tasks"]}
    starved = [t for t in data["tasks"] if t not in fed]
    _fail_unless(not starved, where, f"block {node!r} serves task(s) {', '.join(starved)} but no in-edge carries them")


def _check_heads(g: nx.DiGraph, where: str) -> None:
    heads: dict[str, list] = {}
    for node, data in g.nodes(data=True):
        if data["kind"] == "head":
            heads.setdefault(data.get("task"), []).append(node)
            _fail_unless(data.get("task") in data["tasks"], where,
                         f"head {node!r} is for task {data.get('task')!r} but serves {data['tasks']}")
    tasks = g.graph["task_names"]
    absent = [t for t in tasks if t not in heads]
    _fail_unless(not absent, where, f"no head block for task(s) {', '.join(absent)}")
    _fail_unless(all(len(heads[t]) == 1 for t in tasks), where,
                 f"task(s) {', '.join(t for t in tasks if len(heads[t]) > 1)} have more than one head")
    for spec in g.graph["task_types"]:
        node = heads[spec["name"]][0]
        width = spec["num_classes"] if spec["type"] == "multiclass" else 1
        _fail_unless(g.nodes[node]["width"] == width, where,
                     f"head {node!r} has {g.nodes[node]['width']} outputs; a {spec['type']} task with "
                     f"{spec['num_classes']} classes needs {width}")
