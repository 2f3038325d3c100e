"""A discovered structure, reused: read it from GraphML, retrain it from scratch, fine-tune it on your own data,
and run its frozen model with plain torch.

A run directory (from `mtlsearch train`, `mtlsearch search`'s best/<strategy>/, or `mtlsearch.tune.export`)
holds the structure (structure.json, structure.graphml) and frozen/ (model.pt2, weights.safetensors).

    python examples/retrain_exported.py --run runs/search-.../best/task_routing --out runs/reused
    python examples/retrain_exported.py --smoke     # trains a one-epoch Task Routing run to start from
"""
import argparse
import json
import logging
import tempfile
from pathlib import Path

import networkx
import numpy as np
import torch
from sklearn.datasets import load_digits

import mtlsearch


def my_own_data(path: Path) -> str:
    """Your data as an .npz (x [N, ...], y [N, T], task names): here the digits with noise and shifted ink."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    x = digits.images[:, None] / 16.0 * rng.uniform(0.6, 1.0, (len(digits.images), 1, 1, 1))
    x = (x + rng.normal(0, 0.15, x.shape)).astype(np.float32)
    y = (digits.target[:, None] == np.arange(10)).astype(np.float32)  # the same ten tasks as the structure
    np.savez(path, x=x, y=y, task_names=[f"is_{d}" for d in range(10)])
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run directory holding structure.json and frozen/")
    parser.add_argument("--out", help="where the retrained runs go (default: a temporary directory)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="one-epoch runs: checks that the example runs")
    args = parser.parse_args()
    epochs = 1 if args.smoke else args.epochs
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        run = Path(args.run) if args.run else out / "discovered"
        if not args.run:
            mtlsearch.train("digits", "task_routing", run, epochs=1, settings={"batch_size": 128}, quiet=True,
                            overwrite=True)

        # 1. the structure as a plain networkx graph: blocks (layer, tasks, width, params), edges (data flow)
        graph = networkx.read_graphml(run / "structure.graphml")
        shared = [n for n, d in graph.nodes(data=True) if len(str(d.get("tasks", "")).split(",")) > 1]
        print(f"{graph.number_of_nodes()} blocks, {len(shared)} used by several tasks")
        structure = mtlsearch.SharingStructure.load_graphml(run / "structure.graphml")
        print(f"{mtlsearch.views.total_params(structure):,} parameters; tasks {', '.join(structure.task_names)}")

        # 2. the same structure with fresh weights, trained again on the same data (`mtlsearch retrain`)
        scratch_run = mtlsearch.retrain_run(run, out / "from_scratch", epochs=epochs, mode="scratch",
                                            settings={"batch_size": 128}, overwrite=True, quiet=True)
        print(f"retrained from scratch: test score {scratch_run['test']['score']:.4f}")

        # 3. its trained weights fine-tuned on your own data (same task names and input shape)
        tuned = mtlsearch.retrain_run(run, out / "finetuned", epochs=epochs, mode="finetune",
                                      dataset=my_own_data(out / "my_data.npz"), settings={"lr": 3e-4},
                                      overwrite=True, quiet=True)
        print(f"fine-tuned on your data: test score {tuned['test']['score']:.4f}")

        # 4. the frozen model needs only torch: a torch.export program, outputs in tasks.json's order
        logging.getLogger("torch._export.serde.serialize").setLevel(logging.ERROR)  # notes on unused symbols
        program = torch.export.load(run / "frozen" / "model.pt2").module()
        tasks = json.loads((run / "frozen" / "tasks.json").read_text())["tasks"]
        x = torch.tensor(load_digits().images[:5, None] / 16.0, dtype=torch.float32)
        outputs = program(x)
        guesses = torch.stack([o.reshape(-1) for o in outputs], dim=1).argmax(dim=1)
        print(f"frozen model on 5 digits: {[tasks[i] for i in guesses]} (truth {load_digits().target[:5].tolist()})")


if __name__ == "__main__":
    main()
