"""The `mtlsearch` command line: user mistakes end in one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import sys

from .errors import UserError


def _train(args) -> None:
    from .run import train_run
    from .settings import parse_sets

    metrics = train_run(args.dataset, args.strategy, args.out, epochs=args.epochs, seed=args.seed,
                        settings=parse_sets(args.set), overwrite=args.overwrite, quiet=args.quiet,
                        data_root=args.data_root, download=args.download, device=args.device)
    print(f"{args.strategy} on {args.dataset}: test score {metrics['test']['score']:.4f}, "
          f"{metrics['params']:,} parameters, {metrics['train_seconds']:.1f}s; results in {args.out}")


def _datasets(args) -> None:
    from .problems import BUILTIN_DATASETS, TORCHVISION_DATASETS

    for name, (loader, description) in BUILTIN_DATASETS.items():
        problem = loader()
        sizes = "/".join(str(v) for v in problem.sizes().values())
        print(f"{name:<14} {len(problem.tasks):>3} tasks  train/val/test {sizes:<16} {description}")
    for name, (_, description) in TORCHVISION_DATASETS.items():
        print(f"{name:<14} {description}")
    print("FILE.npz       your arrays x [N, ...] and y [N, T] (optional task_names, task_types, x_val/y_val/x_test/y_test)")


def _strategies(args) -> None:
    from .strategies import available, get_strategy

    for name in available():
        cls = get_strategy(name)
        settings = ", ".join(f"{k}={v}" for k, v in cls.defaults.items()) or "-"
        print(f"{name:<18} {cls.description}  [{settings}]")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlsearch", description="Discover what a multi-task network should share.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one strategy on one problem and export what it learned")
    t.add_argument("--strategy", default="hard_sharing")
    t.add_argument("--dataset", default="digits", help="registry name, FILE.npz or module:attribute")
    t.add_argument("--out", default="runs/train")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a trainer or strategy setting")
    t.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--data-root", help="where torchvision datasets are read from")
    t.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    t.set_defaults(run=_train)
    sub.add_parser("datasets", help="list the datasets").set_defaults(run=_datasets)
    sub.add_parser("strategies", help="list the strategies and their settings").set_defaults(run=_strategies)
    return p




def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as err:
        print(f"mtlsearch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mtlsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
