"""Cost of exporting a run's structure (graph files, pictures, frozen model), measured in one run and printed.

    python bench/structure_export.py [--rounds N] [--threads N] [--quick] [--device D]

Per baseline on digits (10 tasks, the 1x8x8 CNN): median seconds of one training epoch and of each export step,
and the whole export over a default 20-epoch training run (what `mtlsearch train` adds).    target <= 0.25
torch.export alone should take a few seconds at most (the first export in a process adds a one-off warm-up,
excluded by a warm-up round). Rounds alternate training and export, so a busy machine slows both alike.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Ratio, bench_arguments, seconds
from mtlsearch.problems import load_problem
from mtlsearch.strategies import BASELINES, get_strategy
from mtlsearch.structure.draw import draw_affinity, draw_structure
from mtlsearch.structure.freeze import freeze
from mtlsearch.structure.frozen import export_program, save_frozen
from mtlsearch.training import TrainConfig, Trainer

DEFAULT_EPOCHS = TrainConfig().epochs


def measure(name: str, problem, rounds: int, device: str = "cpu") -> dict[str, float]:
    trainer = Trainer(problem, get_strategy(name)(problem, {}, 0), TrainConfig(epochs=1), quiet=True, device=device)
    structure, weights = trainer.strategy.structure(trainer.model)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        steps = {
            "epoch": trainer.train_epoch,
            "graph files": lambda: (structure.save_json(out / "s.json"), structure.save_graphml(out / "s.graphml")),
            "pictures": lambda: (draw_structure(structure, out / "s.png"), draw_affinity(structure, out / "a.png")),
            "torch.export": lambda: export_program(freeze(structure, weights), structure.graph.graph["input_shape"]),
            "save_frozen": lambda: save_frozen(freeze(structure, weights), out / "frozen"),
        }
        for round_ in range(rounds + 1):
            for key, step in steps.items():
                elapsed = seconds(step)
                if round_:  # round 0 warms up torch.export and matplotlib
                    times.setdefault(key, []).append(elapsed)
    return {key: statistics.median(values) for key, values in times.items()}


def ratios(quick: bool = False, device: str = "cpu", rounds: int = 3, threads: int = 1) -> list[Ratio]:
    torch.set_num_threads(threads)
    problem = load_problem("digits")
    print(f"{'baseline':<14} {'epoch':>7} {'graph':>7} {'pictures':>9} {'export':>7} {'frozen/':>8}  "
          f"whole export / {DEFAULT_EPOCHS} epochs")
    out = []
    for name in (["hard_sharing"] if quick else BASELINES):
        t = measure(name, problem, 1 if quick else rounds, device)
        whole = t["graph files"] + t["pictures"] + t["save_frozen"]
        print(f"{name:<14} {t['epoch']:>7.2f} {t['graph files']:>7.2f} {t['pictures']:>9.2f} {t['torch.export']:>7.2f} "
              f"{t['save_frozen']:>8.2f}  {whole / (DEFAULT_EPOCHS * t['epoch']):.3f}  (target <= 0.25)")
        out.append(Ratio("structure_export", f"whole export / {DEFAULT_EPOCHS} training epochs, {name} on digits",
                         whole / (DEFAULT_EPOCHS * t["epoch"]), 0.25))
    return out


def main(argv=None) -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    ratios(args.quick, args.device, args.rounds, args.threads)


if __name__ == "__main__":
    main()
