"""The `mtlsearch` command line: user mistakes end in one line on stderr and exit status 2, Ctrl-C in 130."""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from .errors import TrainingDiverged, UserCodeError, UserError
from .reproduce import cli as reproduce_commands
from .search import cli as search_commands


TRAIN_DEFAULTS = {"strategy": "hard_sharing", "dataset": "digits", "out": "runs/train", "seed": 0}


def _train(args) -> None:
    from .run import resume_run, train_run
    from .settings import parse_sets

    common = {"epochs": args.epochs, "settings": parse_sets(args.set), "quiet": args.quiet, "download": args.download,
              "device": args.device}
    if args.resume:
        if args.out is not None or args.overwrite:
            raise UserError("`resume` rewrites the run's own directory; leave out `out` and `overwrite`",
                            ("resume", "out", "overwrite"))
        out = args.resume
        metrics = resume_run(out, strategy=args.strategy, dataset=args.dataset, seed=args.seed,
                             data_root=args.data_root, **common)
    else:
        given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k) is not None}
        named = {**TRAIN_DEFAULTS, **given}
        out = named["out"]
        metrics = train_run(named["dataset"], named["strategy"], out, seed=named["seed"], overwrite=args.overwrite,
                            data_root=args.data_root, **common)
    print(f"{metrics['strategy']} on {metrics['dataset']}: test score {metrics['test']['score']:.4f}, "
          f"{metrics['params']:,} parameters, {metrics['train_seconds']:.1f}s; results in {out}")


def _datasets(args) -> None:
    from .problems import BUILTIN_DATASETS, TORCHVISION_DATASETS
    from .problems.parameters import describe

    for name, (loader, description) in BUILTIN_DATASETS.items():
        problem = loader()
        sizes = "/".join(str(v) for v in problem.sizes().values())
        print(f"{name:<14} {len(problem.tasks):>3} tasks  train/val/test {sizes:<16} {description}")
        if describe(loader):
            print(f"{'':<14} parameters (defaults): {name}:{describe(loader)}")
    for name, (_, description) in TORCHVISION_DATASETS.items():
        print(f"{name:<14} {description}")
    print("FILE.npz       your arrays x [N, ...] and y [N, T] "
          "(optional task_names, task_types, x_val/y_val/x_test/y_test)")


def _strategies(args) -> None:
    from .strategies import available, get_strategy
    from .strategies.setting import dataclass_settings
    from .training import TrainConfig

    def show(settings) -> None:
        """Each setting as `--set` takes it (name=default), what it accepts, then what it does."""
        for s in settings:
            default = "none" if s.default is None else str(s.default).lower() if s.type is bool else s.default
            print(f"  {f'{s.name}={default}':<26} {s.describe()}\n  {'':<26} {s.help}")

    for name in available():
        cls = get_strategy(name)
        print(f"{name:<18} {cls.description}")
        show(cls.settings)
    print("every strategy also takes the trainer's settings:")
    show(dataclass_settings(TrainConfig))


def _task_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _export(args) -> None:
    from .run import prepare_out_dir
    from .structure.frozen import load_frozen, save_frozen
    from .structure.views import total_params

    tasks = _task_list(args.tasks)
    model = load_frozen(args.run_dir, tasks)
    name = "frozen_" + ("+".join(model.task_names) if tasks else "all")
    out = prepare_out_dir(args.out or Path(args.run_dir) / name, args.overwrite)
    save_frozen(model, out)
    print(f"frozen model for {', '.join(model.task_names)}: {total_params(model.structure):,} parameters; "
          f"written to {out}")


def _retrain(args) -> None:
    from .retrain import retrain_run
    from .settings import parse_sets

    metrics = retrain_run(args.run_dir, args.out, epochs=args.epochs, mode="finetune" if args.finetune else "scratch",
                          seed=args.seed, settings=parse_sets(args.set), dataset=args.dataset,
                          data_root=args.data_root, download=args.download, overwrite=args.overwrite,
                          quiet=args.quiet, device=args.device)
    print(f"{metrics['strategy']} structure retrained ({metrics['retrain']['mode']}) on {metrics['dataset']}: "
          f"test score {metrics['test']['score']:.4f}, {metrics['params']:,} parameters, "
          f"{metrics['train_seconds']:.1f}s; results in {args.out}")


def _show(args) -> None:
    from .structure.graph import SharingStructure
    from .structure.views import summary

    path = Path(args.path)
    if path.suffix == ".graphml":
        structure = SharingStructure.load_graphml(path)
    elif path.suffix == ".json":
        structure = SharingStructure.load_json(path)
    else:
        from .structure.frozen import structure_files

        structure = SharingStructure.load_json(structure_files(path, need_weights=False).structure)
    print(summary(structure))


def _compare(args) -> None:
    from .groupings import compare, describe

    result = compare(args.run_dirs, args.out, args.overwrite)
    print(describe(result))
    if args.out:
        print(f"written to {args.out}: compare.json, compare.png")


DEBUG_HELP = "when your own code (a module:attribute dataset) fails, show its traceback"


def _run_options(p: argparse.ArgumentParser) -> None:
    """Options every command that trains shares (train, retrain)."""
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data-root", help="where torchvision datasets are read from")
    p.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlsearch", description="Discover what a multi-task network should share.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one strategy on one problem and export what it learned")
    t.add_argument("--strategy", help="default: hard_sharing")
    t.add_argument("--dataset", help="registry name (with parameters: multimnist:pairs=20000; see mtlsearch "
                                     "datasets), FILE.npz or module:attribute (default: digits)")
    t.add_argument("--out", help="default: runs/train")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int, help="default: 0")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a trainer or strategy setting")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint to --epochs "
                   "(default: its configured count); the strategy, dataset and settings stay the run's")
    _run_options(t)
    t.set_defaults(run=_train)
    e = sub.add_parser("export", help="write a frozen model (torch.export program + weights) of some tasks")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a train/retrain output or a frozen-model directory")
    e.add_argument("--tasks", help="comma-separated task names (default: all); only their blocks are kept")
    e.add_argument("--out", help="output directory (default: RUN_DIR/frozen_<tasks>)")
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    e.set_defaults(run=_export)
    r = sub.add_parser("retrain", help="retrain a run's frozen structure from scratch or fine-tune its weights")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a directory holding structure.json (+ weights.safetensors)")
    r.add_argument("--epochs", type=int, required=True)
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--from-scratch", action="store_true", help="fresh initialisation (the default)")
    mode.add_argument("--finetune", action="store_true", help="start from the saved weights")
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a trainer setting (lr, batch_size, ...)")
    r.add_argument("--dataset", help="the dataset (default: the one in RUN_DIR's config.json)")
    _run_options(r)
    r.set_defaults(run=_retrain)
    w = sub.add_parser("show", help="print a structure's summary: parameters per task, sharing per layer, groups")
    w.add_argument("path", metavar="RUN_DIR", help="a run or frozen-model directory, or a structure .json/.graphml")
    w.set_defaults(run=_show)
    c = sub.add_parser("compare", help="compare the task groupings runs on one problem imply (adjusted Rand index)")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories of any strategies, or a search "
                   "directory (its best trial of each strategy)")
    c.add_argument("--out", help="write compare.json and compare.png into this directory")
    c.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    c.set_defaults(run=_compare)
    search_commands.add_commands(sub)
    reproduce_commands.add_commands(sub)
    sub.add_parser("datasets", help="list the datasets").set_defaults(run=_datasets)
    sub.add_parser("strategies", help="list the strategies and their settings").set_defaults(run=_strategies)
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    for command in sub.choices.values():  # also after the command: `mtlsearch train ... --debug`
        try:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        except argparse.ArgumentError:  # the command has its own --debug
            pass
    return p


FLAGS = {"out_dir": "--out", "settings": "--set", "fixed": "--set"}  # where a parameter's flag has another name


def flag(argument: str) -> str:
    """The command-line flag of a library parameter: `data_root` -> --data-root."""
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as err:
        hint = ""
        if isinstance(err, UserCodeError) and args.debug:
            traceback.print_exception(err.__cause__)
        elif isinstance(err, UserCodeError):
            hint = " (--debug shows its traceback)"
        print(f"mtlsearch {args.command}: error: {err.worded(flag)}{hint}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:  # the user's settings: say which one to change, no traceback
        print(f"mtlsearch {args.command}: error: {err}; a smaller lr usually trains", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # a search says how to resume it
        print(f"mtlsearch {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
