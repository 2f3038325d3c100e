"""`mtlsearch search` and `mtlsearch spaces`."""
from __future__ import annotations

import time

from .config import BACKENDS, SAMPLERS, SCHEDULERS


def add_commands(sub) -> None:
    s = sub.add_parser("search", help="search strategies and their settings with Ray Tune or Optuna")
    s.add_argument("--dataset", default="digits")
    s.add_argument("--space", default="all", help="a space name (mtlsearch spaces) or FILE.py defining space(trial)")
    s.add_argument("--trials", type=int, default=12,
                   help="trials in all; Optuna: the study's total, shared by every worker that joins it")
    s.add_argument("--name", help="run name: results go to OUT/NAME (default: search-<date>-<time>); Optuna "
                                  "workers on one machine with the same name and settings share its study and OUT/NAME")
    s.add_argument("--out", default="runs")
    s.add_argument("--backend", choices=BACKENDS, default="ray")
    s.add_argument("--objectives", default="score", help="score (default) or score,params for a Pareto front")
    s.add_argument("--sampler", choices=tuple(SAMPLERS), help="default: tpe, nsga2 for two objectives")
    s.add_argument("--scheduler", choices=SCHEDULERS, default="none", help="Ray: stop weak trials early")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--address", help="Ray: join a cluster (auto or HOST:PORT) instead of starting a local Ray")
    s.add_argument("--cpus-per-trial", type=float, default=1.0)
    s.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU between trials")
    s.add_argument("--concurrency", type=int, default=2, help="trials at once")
    s.add_argument("--storage", help="Optuna: a database URL (sqlite:///FILE.db, postgresql+psycopg://USER@HOST/DB); "
                                     "workers on several machines share its study, each with its own --out "
                                     "(default: a journal file in OUT/NAME)")
    s.add_argument("--storage-path", help="Ray: where trials write their checkpoints, a directory every node of "
                                          "the cluster sees or a URI such as s3://bucket/path (default: OUT/NAME/ray)")
    s.add_argument("--data-root")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a setting for every trial instead of sampling it (e.g. epochs=2)")
    s.add_argument("--resume", metavar="DIR", help="complete an interrupted search in DIR")
    s.add_argument("--trust", action="store_true",
                   help="resume a directory you did not write: its pickles will run as code")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(run=_search)
    sub.add_parser("spaces", help="list the search spaces").set_defaults(run=_spaces)


def _config(args):
    from ..settings import parse_sets
    from .config import SearchConfig, parse_objectives

    objectives = parse_objectives(args.objectives)
    return SearchConfig(dataset=args.dataset, space=args.space, trials=args.trials,
                        name=args.name or time.strftime("search-%Y%m%d-%H%M%S"), out=args.out, backend=args.backend,
                        objectives=objectives, sampler=args.sampler or ("nsga2" if len(objectives) > 1 else "tpe"),
                        scheduler=args.scheduler, seed=args.seed, address=args.address,
                        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                        concurrency=args.concurrency, storage=args.storage, storage_path=args.storage_path,
                        data_root=args.data_root, fixed=parse_sets(args.set))


def _search(args) -> None:
    from .driver import load_config, search

    if args.resume:
        config, resume = load_config(args.resume), True
    else:
        config, resume = _config(args), False
    summary = search(config, overwrite=args.overwrite, quiet=args.quiet, resume=resume, trust=args.trust)
    print(f"{summary['trials']} trials ({summary['done']} done, {summary['stopped']} stopped early, "
          f"{summary['failed']} failed) in {summary['seconds']:.0f}s; results in {config.run_dir}")
    for strategy, best in summary["best"].items():
        where = best["dir"] or "trained by a worker on another machine, which exports it"
        test = "-" if best["test_score"] is None else f"{best['test_score']:.4f}"
        print(f"  best {strategy:<18} val {best['val_score']:.4f}  test {test:>6}  "
              f"{best['params']:>10,} params  -> {where}")


def _spaces(args) -> None:
    from .spaces import describe, space_names

    for name in space_names():
        print(f"{name:<18} {describe(name)}")
    print("FILE.py            your own file defining space(trial) -> dict")
