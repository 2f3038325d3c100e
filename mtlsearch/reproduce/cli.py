"""`mtlsearch reproduce`."""
from __future__ import annotations

import sys
from pathlib import Path


def add_commands(sub) -> None:
    r = sub.add_parser("reproduce", help="rerun the papers' key experiments on the bundled data; write RESULTS.md")
    r.add_argument("--out", default="docs", help="where RESULTS.md goes (pictures in OUT/results/)")
    r.add_argument("--quick", action="store_true", help="a smoke check: one seed, few epochs (a few minutes)")
    r.add_argument("--workers", type=int, default=2, help="runs at once, one thread each (default: 2)")
    r.add_argument("--seeds", type=int, help="seeds per setting (default: 3, or 1 with --quick)")
    r.add_argument("--overwrite", action="store_true", help="replace an earlier RESULTS.md and results/ in --out")
    r.add_argument("--reuse", action="store_true", help="keep the runs of the earlier OUT/results/runs.json this "
                   "plan still has and train only the missing ones (e.g. after adding seeds); rewrites RESULTS.md")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=_reproduce)


def _reproduce(args) -> None:
    from . import Plan, check_out_dir, expected_minutes, reproduce, reused_results

    check_out_dir(args.out, args.overwrite or args.reuse)
    if args.workers >= 1 and (args.seeds is None or args.seeds >= 1):
        seeds = args.seeds or (1 if args.quick else 3)
        plan = Plan.quick(seeds) if args.quick else Plan.full(seeds)
        kept = reused_results(Path(args.out), plan)[0].trained if args.reuse else {}
        print(f"training takes about {expected_minutes(plan, args.workers, kept):.0f} minutes on {args.workers} idle "
              "cores, plus the cost measurements" + (f" ({len(kept)} runs reused)" if args.reuse else ""),
              file=sys.stderr)
    path = reproduce(args.out, quick=args.quick, workers=args.workers, seeds=args.seeds, quiet=args.quiet,
                     overwrite=args.overwrite, reuse=args.reuse)
    print(f"results written to {path}")
