"""Hard parameter sharing: one trunk used by every task, then one branch and head per task."""
from __future__ import annotations

from ..structure.builders import add_chain, add_head
from .structured import StructuredStrategy


class HardSharing(StructuredStrategy):
    name = "hard_sharing"
    description = "shared trunk, per-task branch and head (Caruana 1997)"

    def make_structure(self, backbone):
        s = self.new_structure(backbone)
        trunk, layer = add_chain(s, backbone.trunk, s.add_input(), s.task_names, "trunk", 0)
        for task in self.problem.tasks:
            last, top = add_chain(s, backbone.branch, trunk, [task.name], f"{task.name}_branch", layer, kind="branch")
            add_head(s, task, last, top)
        return s
