"""Writing a run's discovered structure next to its metrics."""
from __future__ import annotations

from pathlib import Path

from .graph import SharingStructure


def export_structure(out: Path, structure: SharingStructure, weights: dict) -> None:
    """structure.json (node-link) and structure.graphml."""
    structure.save_json(out / "structure.json")
    structure.save_graphml(out / "structure.graphml")
