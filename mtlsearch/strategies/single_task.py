"""Single-task networks: every task has its own copy of the whole backbone; nothing is shared."""
from __future__ import annotations

from ..structure.builders import add_chain, add_head
from .structured import StructuredStrategy


class SingleTask(StructuredStrategy):
    name = "single_task"
    description = "one independent network per task (no sharing)"

    def make_structure(self, backbone):
        s = self.new_structure(backbone)
        source = s.add_input()
        for task in self.problem.tasks:
            last, layer = add_chain(s, backbone.trunk + backbone.branch, source, [task.name], f"{task.name}_", 0)
            add_head(s, task, last, layer)
        return s
