"""A strategy of your own, trained and exported like the built-in ones.

"Split trunk": every task shares the first `shared_layers` layers of the backbone, then has its own copy of
the rest (0 is single-task networks; all trunk layers is hard sharing). A StructuredStrategy only lays out
blocks; the trainer, the exported structure and the frozen model come with it.

    python examples/custom_strategy.py --out runs/split_trunk
    python examples/custom_strategy.py --smoke            # one epoch, into a temporary directory

In this process `register_strategy` is enough. For other processes (the `mtlsearch` command, Ray Tune's
workers) put the class in a package and register it under the `mtlsearch.strategies` entry point:

    [project.entry-points."mtlsearch.strategies"]
    split_trunk = "my_package.strategies:SplitTrunk"
"""
import argparse
import tempfile
from pathlib import Path

import mtlsearch
from mtlsearch.structure.builders import add_chain, add_head


@mtlsearch.register_strategy
class SplitTrunk(mtlsearch.StructuredStrategy):
    name = "split_trunk"
    description = "tasks share the first layers of the trunk, then each has its own copy of the rest"
    # each setting is declared once: it validates `settings`/--set, and `mtlsearch strategies` lists it
    settings = (mtlsearch.Setting("shared_layers", int, 1, "trunk layers every task shares", low=0),)

    def make_structure(self, backbone):
        s = self.new_structure(backbone)  # an empty structure with the problem's tasks and input
        shared = backbone.trunk[:self.config["shared_layers"]]
        # blocks used by every task, then per task: the rest of the trunk, the branch and its output layer
        trunk, layer = add_chain(s, shared, s.add_input(), s.task_names, "shared", 0)
        for task in self.problem.tasks:
            own = backbone.trunk[len(shared):] + backbone.branch
            last, top = add_chain(s, own, trunk, [task.name], f"{task.name}_", layer, kind="branch")
            add_head(s, task, last, top)
        return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="the run directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="one epoch: checks that the example runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        # the same call as `mtlsearch train`: config.json, metrics.json, structure.json/.graphml, pictures, frozen/
        metrics = mtlsearch.train("digits", "split_trunk", out, epochs=1 if args.smoke else args.epochs,
                                  settings={"shared_layers": 2, "batch_size": 128}, overwrite=True, quiet=True)
        print(f"split_trunk on digits: test score {metrics['test']['score']:.4f}, {metrics['params']:,} parameters")

        # what it learned is a structure like any other: summarise it, reload the frozen model
        structure = mtlsearch.SharingStructure.load_json(out / "structure.json")
        print(mtlsearch.views.summary(structure))
        model = mtlsearch.load_frozen(out / "frozen")
        print(f"frozen model for {len(model.task_names)} tasks, {mtlsearch.views.total_params(model.structure):,} "
              "parameters")


if __name__ == "__main__":
    main()
