"""Writing a run's discovered structure next to its metrics: graph files, pictures and the frozen model."""
from __future__ import annotations

from pathlib import Path

from .freeze import freeze
from .frozen import save_frozen
from .graph import SharingStructure, validate

EXPORTED = ("structure.json", "structure.graphml", "structure.png", "affinity.png", "frozen/")


def export_structure(out, structure: SharingStructure, weights: dict) -> list[str]:
    """structure.json (node-link), structure.graphml, structure.png, affinity.png and frozen/; returns the names.

    Args:
        out: the directory to write into (created if missing; files already there are replaced).
        structure: the discovered structure, e.g. the first value of `strategy.structure(trainer.model)`.
        weights: the trained weights by state-dict name, the second value of `strategy.structure(...)`.

    Example:
        >>> structure, weights = strategy.structure(trainer.model)
        >>> export_structure("runs/mine", structure, weights)
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    validate(structure.graph, f"the {structure.strategy} structure")  # what is written must load back
    structure.save_json(out / "structure.json")
    structure.save_graphml(out / "structure.graphml")
    from .draw import draw_affinity, draw_structure  # matplotlib only where a picture is drawn (not in trials)

    draw_structure(structure, out / "structure.png")
    draw_affinity(structure, out / "affinity.png")
    save_frozen(freeze(structure, {k: v.detach().cpu() for k, v in weights.items()}), out / "frozen",
                structure.graph.graph["input_shape"])
    return list(EXPORTED)
