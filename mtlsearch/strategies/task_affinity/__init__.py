"""Task Affinity Grouping: look-ahead inter-task affinity, network selection, one trunk per chosen group."""
from .lookahead import LookAheadAffinity
from .selection import choose_groups, total_affinity
from .strategy import TaskAffinity

__all__ = ["TaskAffinity", "LookAheadAffinity", "choose_groups", "total_affinity"]
