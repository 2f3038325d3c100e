"""Task groups as strategies that change their architecture keep them: checked once, in one canonical order."""
from __future__ import annotations

from ..errors import UserError


def check_groups(groups, task_names: list[str], strategy: str) -> list[list[str]]:
    """Groups that cover every task exactly once, tasks in problem order, groups ordered by their first task;
    anything else (e.g. an edited architecture state) is a UserError naming `strategy` and the tasks."""
    if not isinstance(groups, list) or not all(isinstance(g, list) and g for g in groups):
        raise UserError(f"{strategy} groups must be a list of non-empty task lists, got {groups!r}")
    flat = [t for g in groups for t in g]
    if sorted(flat) != sorted(task_names) or len(set(flat)) != len(flat):
        raise UserError(f"{strategy} groups must cover each task once; tasks: {', '.join(task_names)}; "
                        f"got {groups!r}")
    index = {t: i for i, t in enumerate(task_names)}
    return sorted((sorted(g, key=index.__getitem__) for g in groups), key=lambda g: index[g[0]])
