"""Writing a run's discovered structure next to its metrics: graph files, pictures and the frozen model."""
from __future__ import annotations

from pathlib import Path

from .draw import draw_affinity, draw_structure
from .freeze import freeze
from .frozen import save_frozen
from .graph import SharingStructure, validate

EXPORTED = ("structure.json", "structure.graphml", "structure.png", "affinity.png", "frozen/")


def export_structure(out, structure: SharingStructure, weights: dict) -> list[str]:
    """structure.json (node-link), structure.graphml, structure.png, affinity.png and frozen/; returns the names."""
    out = Path(out)
    validate(structure.graph, f"the {structure.strategy} structure")  # what is written must load back
    structure.save_json(out / "structure.json")
    structure.save_graphml(out / "structure.graphml")
    draw_structure(structure, out / "structure.png")
    draw_affinity(structure, out / "affinity.png")
    save_frozen(freeze(structure, {k: v.detach().cpu() for k, v in weights.items()}), out / "frozen",
                structure.graph.graph["input_shape"])
    return list(EXPORTED)
