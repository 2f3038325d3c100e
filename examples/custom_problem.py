"""Your own data and your own layers: a torch Dataset with tasks of three types, and a backbone of your own.

The dataset yields (x, y) with one label per task in y; `problem_from_dataset` reads every item once (so a bad
item is named before training), checks the labels against the task types and makes a seeded 80/10/10 split.
A `Problem` carries your backbone: every strategy builds its blocks from these layers.

    python examples/custom_problem.py --out runs/custom
    python examples/custom_problem.py --smoke

The command line and Ray Tune's workers load the same problem by `module:attribute`, e.g.
`mtlsearch train --dataset my_package.data:make_problem` or `{"dataset": "my_package.data:make_problem"}`.
"""
import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset

import mtlsearch


class Waves(Dataset):
    """Noisy 1-d signals of 32 samples: a sine of some frequency and phase plus a step somewhere."""

    def __init__(self, size: int = 1200, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        t = torch.linspace(0, 1, 32)
        self.frequency = torch.randint(1, 4, (size,), generator=g)  # 1, 2 or 3 periods
        self.phase = torch.rand(size, generator=g) * 6.28
        self.step_at = torch.rand(size, generator=g)
        waves = torch.sin(6.28 * self.frequency[:, None] * t + self.phase[:, None])
        steps = (t[None, :] > self.step_at[:, None]).float()
        self.x = waves + steps + 0.1 * torch.randn(size, 32, generator=g)  # [N, 32]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        # one label per task, in the order of TASKS: a class index, a 0/1 label, a real value
        y = torch.tensor([self.frequency[i] - 1, float(self.step_at[i] < 0.5), self.step_at[i]])
        return self.x[i], y


TASKS = [mtlsearch.Task("frequency", "multiclass", num_classes=3),  # cross-entropy, scored by accuracy
         mtlsearch.Task("early_step", "binary"),                      # BCE, scored by balanced accuracy
         mtlsearch.Task("step_position", "regression")]               # MSE, scored by R²


def my_backbone(input_shape) -> mtlsearch.Backbone:
    """A trunk of two 64-unit layers (each linear -> batch norm -> ReLU) and a 32-unit layer per task branch."""
    trunk = [mtlsearch.LayerSpec("linear", 64), mtlsearch.LayerSpec("linear", 64)]
    return mtlsearch.Backbone("waves_mlp", tuple(input_shape), trunk, branch=[mtlsearch.LayerSpec("linear", 32)])


def make_problem() -> mtlsearch.Problem:
    """The problem, as `module:attribute` loads it: data, tasks and backbone together."""
    problem = mtlsearch.problem_from_dataset(Waves(), name="waves", tasks=TASKS)
    problem.backbone = my_backbone(problem.input_shape)
    return problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where the runs are written (default: a temporary directory)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="two epochs: checks that the example runs")
    args = parser.parse_args()
    problem = make_problem()
    epochs = 2 if args.smoke else args.epochs
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        for name, settings in (("hard_sharing", {}), ("selective_sharing", {"criterion": "similarity"})):
            strategy = mtlsearch.get_strategy(name)(problem, settings, seed=0)
            trainer = mtlsearch.Trainer(problem, strategy, mtlsearch.TrainConfig(epochs=epochs), quiet=True)
            best = trainer.fit()  # the model ends at its best validation epoch
            tasks = best["val"]["tasks"]
            per_task = ", ".join(f"{t}: {m[problem.task(t).primary_metric]:.3f}" for t, m in tasks.items())
            print(f"{name:<18} val score {best['val']['score']:.3f} ({per_task})")
            structure, weights = strategy.structure(trainer.model)
            mtlsearch.export_structure(out / name, structure, weights)  # structure files and frozen/ model
        print(f"structures written to {out}" if args.out else "structures written to a temporary directory")


if __name__ == "__main__":
    main()
