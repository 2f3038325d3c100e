"""Evaluation plan of a BlockNetwork: the blocks of one layer run as one convolution instead of one call each.

In eval mode a layer's computations (a block for one input class of tasks) that share an op run as one step:
"wide", one conv / linear over the union of their inputs with each block's weights placed in its rows and the
columns it reads (zeros elsewhere: an SFG layer costs what the backbone's layer costs), or "grouped", blocks of
equal shape on disjoint inputs as one grouped conv (a branch layer per task). A wide step is chosen when the zeros
it multiplies cost less than the calls it saves (`CALL_MACS`) over the alternative: grouped steps where shapes
allow, one block per step for the rest. A step reading exactly an earlier step's output uses it unsplit. Merged
weights are rebuilt when a parameter or statistic changes (their versions are the cache key) and are never
saved: the state dict, hence the weights file, keeps one entry per block.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from ..backbones.layers import LayerSpec
from ..nn import TaskBatchNorm
from .graph import edge_fan

# One step's fixed cost as multiply-adds per sample: what merging blocks into one wide step may spend on zeros per
# call it saves. Chosen on this project's frozen SFG models (bench/sfg.py, CPU, batch 64): on the digits CNN at
# T=2, 60k and 15k left 11 steps and 1.24-1.29x hard sharing's pass, 200k and 50k 6 steps and 0.98-1.03x; VGG-11's
# plans (32x32 maps, zeros cost far more) were unchanged.
CALL_MACS = {"conv": 200_000, "linear": 50_000}
_EPS = 1e-5  # the blocks' norms' eps (BatchNorm's and TaskBatchNorm's default; `fusable` checks)
SIGNATURE_KEYS = ("type", "kernel", "stride", "padding", "norm", "act", "pool")

Value = tuple[str, int]  # (node, input class)


@dataclass
class Step:
    """One call: `members` (node, class) computed from `inputs` (concatenated in order); `grouped`: member i reads
    only input i's slice of channels (a grouped conv), else every member reads the whole concatenation."""

    members: list[Value]
    inputs: list[Value]
    grouped: bool
    spec: LayerSpec
    columns: list[torch.Tensor] = field(default_factory=list)  # wide: each member's columns of the union
    widths: list[int] = field(default_factory=list)
    union: int = 0  # wide: columns of the union


class FusedPlan:
    """The steps of a BlockNetwork's all-task evaluation and their cached merged tensors."""

    def __init__(self, network):
        self.network = network
        self.blocks = {node: network.blocks[key] for node, key in network.block_keys.items()}
        g = network.structure.graph
        computations = {(node, cls): (tasks, sources, columns, rows)
                        for node in network.order for cls, (tasks, sources, columns, rows)
                        in enumerate(network.plan[node])}
        self.steps: list[Step | Value] = []  # a Value alone: a block run as before (stitch, or a lone one)
        layers: dict[tuple, list[Value]] = {}
        for value in computations:
            op = g.nodes[value[0]]["op"]
            if op["type"] in ("conv", "linear"):
                key = (g.nodes[value[0]]["layer"],) + tuple(op.get(k) for k in SIGNATURE_KEYS)
                layers.setdefault(key, []).append(value)
        planned: set[Value] = set()
        for node in network.order:
            for cls in range(len(network.plan[node])):
                value = (node, cls)
                if value in planned or node in network.inputs:
                    continue
                op = g.nodes[node]["op"]
                if op["type"] not in ("conv", "linear"):
                    self.steps.append(value)
                    planned.add(value)
                    continue
                key = (g.nodes[node]["layer"],) + tuple(op.get(k) for k in SIGNATURE_KEYS)
                group = [v for v in layers[key] if v not in planned]
                inside = set(group)
                group = [v for v in group if not inside & set(computations[v][1])]  # none reads another
                for step in self._choose(group, computations):
                    self.steps.append(step)
                    planned.update(step.members)
        self._cache = DerivedTensors(network, self._merge_all)  # a bound method: a deep copy merges its own blocks

    def _fans(self, value: Value, computations) -> list[int]:
        g = self.network.structure.graph
        op = g.nodes[value[0]]["op"]
        return [edge_fan(op, g.nodes[src]["shape"]) for src, _ in computations[value][1]]

    def _macs(self, value: Value, fan: int, computations) -> int:
        """Multiply-adds per sample of `value`'s block reading `fan` columns."""
        g = self.network.structure.graph
        data = g.nodes[value[0]]
        spec = LayerSpec.from_op(data["op"], data["width"])
        source = g.nodes[computations[value][1][0][0]]["shape"]
        return spec.multiply_adds((fan,) if spec.type == "linear" else (fan, *source[1:]))

    def _choose(self, group: list[Value], computations) -> list[Step]:
        """One wide step if its zeros cost less than the calls it saves over the alternative: grouped steps of
        equal shapes on disjoint inputs, and one step for each other block."""
        g = self.network.structure.graph
        op, width = g.nodes[group[0][0]]["op"], g.nodes[group[0][0]]["width"]
        spec = LayerSpec.from_op(op, width)
        union = sorted({s for v in group for s in computations[v][1]}, key=self._position)
        fans = {v: self._fans(v, computations) for v in group}
        fan_of = {s: f for v in group for s, f in zip(computations[v][1], fans[v])}
        steps, alone = [], []
        shapes: dict[tuple, list[Value]] = {}
        for v in group:
            shapes.setdefault((g.nodes[v[0]]["width"], tuple(fans[v])), []).append(v)
        for members in shapes.values():
            sources = [s for v in members for s in computations[v][1]]
            if len(members) > 1 and len(set(sources)) == len(sources):
                steps.append(Step(members, sources, True, spec, widths=[g.nodes[v[0]]["width"] for v in members]))
            else:
                alone += members
        saved = (len(steps) + len(alone) - 1) * CALL_MACS[op["type"]]
        sparse = sum(self._macs(v, sum(fans[v]), computations) for v in group)
        dense = sum(self._macs(v, sum(fan_of[s] for s in union), computations) for v in group)
        if dense - sparse <= saved:
            return [self._wide(group, union, fan_of, spec, computations)]
        return steps + [self._wide([v], computations[v][1], fan_of, spec, computations) for v in alone]

    def _position(self, value: Value) -> tuple:
        return self.network.order.index(value[0]), value[1]

    def _wide(self, members, union, fan_of, spec, computations) -> Step:
        offsets, at = {}, 0
        for s in union:
            offsets[s], at = at, at + fan_of[s]
        columns = [torch.cat([torch.arange(offsets[s], offsets[s] + fan_of[s]) for s in computations[v][1]])
                   for v in members]
        widths = [self.network.structure.graph.nodes[v[0]]["width"] for v in members]
        return Step(list(members), list(union), False, spec, columns, widths, at)

    # running
    def forward(self, x: torch.Tensor) -> dict[Value, torch.Tensor]:
        """Every computation's output (slices of its step's output) for input x."""
        net = self.network
        values: dict[Value, torch.Tensor] = {(node, 0): x for node in net.inputs}
        whole: dict[tuple[Value, ...], torch.Tensor] = {}  # each step's output before it is split into members
        tensors = self.tensors()
        for step, merged in zip(self.steps, tensors):
            if not isinstance(step, Step):
                node, cls = step
                _, sources, columns, rows = net.plan[node][cls]
                block = self.blocks[node]
                values[step] = block([values[s] for s in sources], getattr(net, columns) if columns else None,
                                     getattr(net, rows) if rows else None)
                continue
            # a step that reads exactly an earlier step's members, in order, reads its output as it was (no concat)
            x = whole.get(tuple(step.inputs))
            y = self._run(step, [values[s] for s in step.inputs] if x is None else [x], *merged)
            whole[tuple(step.members)] = y
            for value, part in zip(step.members, y.split(step.widths, 1)):
                values[value] = part
        return values

    @staticmethod
    def _run(step: Step, inputs: list[torch.Tensor], weight, bias, mean, var, scale, shift) -> torch.Tensor:
        """The step's output from its inputs (channels concatenated in order; a linear step flattens each)."""
        spec = step.spec
        groups = len(step.members) if step.grouped else 1
        if spec.type == "conv":
            x = torch.cat(inputs, 1) if len(inputs) > 1 else inputs[0]
            y = grouped_conv2d(x, weight, bias, spec.stride, spec.padding, groups)
        else:
            x = torch.cat([i.flatten(1) for i in inputs], 1) if len(inputs) > 1 else inputs[0].flatten(1)
            y = grouped_linear(x, weight, bias, groups)
        if mean is not None:
            y = F.batch_norm(y, mean, var, scale, shift, False, 0.0, _EPS)
        y = F.relu(y) if spec.act == "relu" else y
        if spec.type == "conv" and spec.pool == "global":
            return y.mean(dim=(2, 3), keepdim=True)
        return F.max_pool2d(y, spec.pool) if spec.type == "conv" and spec.pool else y

    def tensors(self) -> list:
        """The merged (weight, bias, mean, var, scale, shift) of each step (None for a block run alone)."""
        return self._cache.get()

    def _merge_all(self) -> list:
        return [self._merge(s) if isinstance(s, Step) else None for s in self.steps]

    def _merge(self, step: Step) -> tuple:
        net = self.network
        weights, biases, norms = [], [], []
        for i, (node, cls) in enumerate(step.members):
            _, _, columns, rows = net.plan[node][cls]
            block = self.blocks[node]
            weight = block.weight if columns is None else block.weight.index_select(1, getattr(net, columns))
            if not step.grouped:  # the block's columns of the union, zeros elsewhere
                weight = weight.new_zeros(weight.shape[0], step.union, *weight.shape[2:]).index_copy(
                    1, step.columns[i], weight)
            weights.append(weight)
            biases.append(block.bias)
            if step.spec.norm:
                norms.append(_eval_norm(block.norm, getattr(net, rows) if rows else None))
        stats = [torch.cat(parts) for parts in zip(*norms)] if norms else [None] * 4
        return (torch.cat(weights), torch.cat(biases), *stats)


def _eval_norm(norm, rows: torch.Tensor | None) -> tuple:
    """(mean, var, scale, shift) with which `norm` normalises in eval mode."""
    if isinstance(norm, TaskBatchNorm):
        mean, var = norm.eval_statistics()
        return mean[rows[0]], var[rows[0]], norm.weight, norm.bias
    return norm.running_mean, norm.running_var, norm.weight, norm.bias


ONEDNN_MIN_GROUP_INPUT = 64  # input channels per group from which oneDNN's grouped kernels beat ATen's on the CPU


def grouped_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
                   groups: int) -> torch.Tensor:
    """conv2d with `groups`; on the CPU, groups of few input channels run without oneDNN, whose kernels were up to
    4x slower than ATen's there (measured: [256, 100, 4, 4] * [190, 10, 5, 5], 10 groups; VGG-11's routed layers with
    36 per group), while from 64 per group oneDNN was 1.2-2.9x faster (VGG-11, 71-282 per group)."""
    if groups == 1 or x.device.type != "cpu" or torch.compiler.is_compiling() or torch.compiler.is_exporting() \
            or weight.shape[1] >= ONEDNN_MIN_GROUP_INPUT:
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)
    finally:
        torch.backends.mkldnn.enabled = before


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int) -> torch.Tensor:
    """x [B, G * in] -> [B, G * out], group g by rows g of weight [G * out, in]: one batched matrix product."""
    if groups == 1:
        return F.linear(x, weight, bias)
    batch = x.shape[0]
    y = torch.bmm(x.view(batch, groups, -1).transpose(0, 1), weight.view(groups, -1, weight.shape[1]).transpose(1, 2))
    y = y.transpose(0, 1).reshape(batch, -1)
    return y if bias is None else y + bias


class DerivedTensors:
    """Tensors computed from a module's parameters and buffers, kept until one of them is written or replaced
    (their versions are the key). Built afresh, with their autograd graph, when gradients may flow to the
    parameters, under torch.export (so the program computes them from its own parameters), and for inference
    tensors, which keep no version."""

    def __init__(self, module, build):
        self.module, self.build = module, build
        self.key: list | None = None
        self.value = None
        self._tensors: list[torch.Tensor] = []
        self._listed_at = -1  # the registrations counted when _tensors was listed

    def get(self):
        if torch.compiler.is_compiling() or torch.compiler.is_exporting() or (
                torch.is_grad_enabled() and any(p.requires_grad for p in self.module.parameters())):
            return self.build()
        if self._listed_at != _registrations[0]:  # listed again only after a module, parameter or buffer anywhere
            # was registered or replaced (walking the module tree per call was a fifth of a small frozen model's pass)
            self._tensors = [*self.module.parameters(), *self.module.buffers()]
            self._listed_at = _registrations[0]
        try:
            key = [(t.data_ptr(), t._version) for t in self._tensors]
        except RuntimeError:  # an inference tensor: no version to key on
            return self.build()
        if key != self.key:
            with torch.no_grad():
                self.value = self.build()
            self.key = key
        return self.value


_registrations = [0]  # modules, parameters and buffers registered (or replaced) on any module so far


def _count_registration(module, name, value):
    _registrations[0] += 1


for _register in (torch.nn.modules.module.register_module_module_registration_hook,
                  torch.nn.modules.module.register_module_parameter_registration_hook,
                  torch.nn.modules.module.register_module_buffer_registration_hook):
    _register(_count_registration)


def fusable(network) -> bool:
    """Whether every block's eval computation is one the plan reproduces (norm eps 1e-5, relu or none)."""
    for block in network.blocks.values():
        norm = getattr(block, "norm", None)
        if norm is not None and hasattr(norm, "eps") and norm.eps != _EPS:
            return False
    return True

