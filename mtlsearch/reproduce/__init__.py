"""`mtlsearch reproduce`: rerun the three papers' key experiments on the bundled data and write RESULTS.md.

    reproduce(out_dir="docs", quick=False, workers=2, seeds=3)

trains every run the plan (plan.py) defines on `workers` single-threaded processes, then writes
out_dir/RESULTS.md with the tables, verdicts and pictures (out_dir/results/*.png, raw results in runs.json).
The workers are started as fresh processes, so a script calling reproduce() needs the usual
`if __name__ == "__main__":` guard (the `mtlsearch reproduce` command has it).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .plan import Plan  # the rest is imported when used: `mtlsearch --help` stays quick


def reproduce(out_dir: str | Path = "docs", quick: bool = False, workers: int = 2, seeds: int | None = None,
              plan: Plan | None = None, quiet: bool = False, command: str | None = None,
              overwrite: bool = False) -> Path:
    """Run the reproduction and return the path of RESULTS.md.

    seeds: per setting (default 3, or 1 with `quick`); `plan` overrides quick and seeds (e.g. a smaller smoke
    plan in tests); `command` is the command line RESULTS.md names as its generator; an existing RESULTS.md or
    results/ in `out_dir` is refused before anything runs unless `overwrite`.
    """
    from .experiments import Results, all_runs, cost_chains
    from .report import write_report
    from .runner import execute

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UserError(f"workers must be a whole number of at least 1, got {workers!r}")
    if plan is None:
        plan = Plan.quick(1 if seeds is None else seeds) if quick else Plan.full(3 if seeds is None else seeds)
    out = check_out_dir(out_dir, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    trained, costs, seconds = execute(all_runs(plan), cost_chains(plan), workers, plan.cost_budget_bytes, quiet)
    if command is None:
        command = f"mtlsearch reproduce --out {out_dir}" + (" --quick" if quick else "") + \
                  f" --workers {workers} --seeds {len(plan.seeds)} --overwrite"
    return write_report(Results(trained, costs, plan), out, seconds, command)


def check_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse a file, or an earlier RESULTS.md or results/ unless `overwrite`, before anything runs."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"`out_dir` {out} is a file; give a directory", ("out_dir",))
    earlier = [p for p in (out / "RESULTS.md", out / "results") if p.exists()]
    if earlier and not overwrite:
        raise UserError(f"{earlier[0]} exists; pass `overwrite` to replace it or choose another `out_dir`",
                        ("overwrite", "out_dir"))
    return out


def expected_minutes(plan: Plan, workers: int = 2) -> float:
    """A rough duration of the training runs from per-epoch CPU times measured on the project's machine."""
    from .experiments import all_runs
    from .runner import estimate_seconds

    return sum(estimate_seconds(r) for r in all_runs(plan)) / workers / 60


__all__ = ["reproduce", "Plan", "check_out_dir", "expected_minutes"]
