"""Cross-stitch networks (Misra et al. 2016): one column per task, mixed after every trunk layer.

Symbols: alpha_{tj} (the stitch weight of column j in task t's mix) are the `stitch` blocks' weights,
initialised alpha_tt = `self_weight`, the rest (1 - self_weight) / (T - 1).
"""
from __future__ import annotations

from ..structure.builders import add_chain, add_head, op_of
from .setting import Setting
from .structured import StructuredStrategy


class CrossStitch(StructuredStrategy):
    name = "cross_stitch"
    description = "per-task columns linearly mixed by learned cross-stitch units"
    settings = (Setting("self_weight", float, 0.9, "initial alpha_tt, a column's weight on itself in its own stitch",
                        low=0.0, high=1.0),)

    def make_structure(self, backbone):
        s = self.new_structure(backbone)
        everyone = s.task_names
        source = s.add_input()
        sources = {t: source for t in everyone}
        for layer, spec in enumerate(backbone.trunk, start=1):
            columns = {}
            for t in everyone:
                shape = spec.out_shape(tuple(s.graph.nodes[sources[t]]["shape"]))
                columns[t] = s.add_block(f"{t}_col{layer}", layer=2 * layer - 1, kind=spec.type, tasks=everyone,
                                         width=spec.width, shape=shape, op=op_of(spec), column=t)
                s.connect(sources[t], columns[t])
            for t in everyone:
                column = s.graph.nodes[columns[t]]
                sources[t] = s.add_block(f"{t}_stitch{layer}", layer=2 * layer, kind="stitch", tasks=everyone,
                                         width=column["width"], shape=column["shape"], column=t,
                                         op={"type": "stitch", "self": columns[t],
                                             "self_weight": self.config["self_weight"]})
                for j in everyone:
                    s.connect(columns[j], sources[t])
        top = 2 * len(backbone.trunk)
        for task in self.problem.tasks:
            last, layer = add_chain(s, backbone.branch, sources[task.name], [task.name], f"{task.name}_branch", top,
                                    kind="branch")
            add_head(s, task, last, layer)
        return s
