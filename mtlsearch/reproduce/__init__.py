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
              overwrite: bool = False, reuse: bool = False) -> Path:
    """Run the reproduction and return the path of RESULTS.md.

    seeds: per setting (default 3, or 1 with `quick`); `plan` overrides quick and seeds (e.g. a smaller smoke
    plan in tests); `command` is the command line RESULTS.md names as its generator; an existing RESULTS.md or
    results/ in `out_dir` is refused before anything runs unless `overwrite`. `reuse`: keep every result of the
    earlier out_dir/results/runs.json that this plan still has (same run, same settings and epochs) and train only
    the rest, e.g. after adding seeds or a strategy; RESULTS.md is rewritten from all of them.

    Example:
        >>> reproduce("docs", reuse=True)  # doctest: +SKIP
        PosixPath('docs/RESULTS.md')
    """
    from .experiments import Results, all_runs, cost_chains
    from .report import write_report
    from .runner import execute

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UserError(f"workers must be a whole number of at least 1, got {workers!r}")
    if plan is None:
        plan = Plan.quick(1 if seeds is None else seeds) if quick else Plan.full(3 if seeds is None else seeds)
    out = check_out_dir(out_dir, overwrite or reuse)
    earlier, generations = reused_results(out, plan) if reuse else (Results({}, {}, plan), [])
    out.mkdir(parents=True, exist_ok=True)
    trained, costs, seconds = execute(all_runs(plan), cost_chains(plan), workers, plan.cost_budget_bytes, quiet,
                                      earlier.trained, earlier.costs)
    if command is None:
        command = f"mtlsearch reproduce --out {out_dir}" + (" --quick" if quick else "") + \
                  f" --workers {workers} --seeds {len(plan.seeds)} " + ("--reuse" if reuse else "--overwrite")
    results = Results({**earlier.trained, **trained}, {**earlier.costs, **costs}, plan, reused=len(earlier.trained),
                      reused_costs=len(earlier.costs))
    return write_report(results, out, seconds, command, generations)


def reused_results(out: Path, plan: Plan):
    """(the earlier results this plan can keep, the generations they came from); a missing runs.json is refused."""
    from .experiments import all_runs, cost_chains
    from .four_groupings import reusable
    from .report import earlier_generations, read_raw

    raw = out / "results" / "runs.json"
    if not raw.is_file():
        raise UserError(f"{raw} does not exist: `reuse` needs an earlier reproduction in `out_dir`; run without it",
                        ("reuse", "out_dir"))
    try:
        earlier = read_raw(raw, plan)
        generations = earlier_generations(out)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{raw} is not a runs.json `mtlsearch reproduce` wrote ({err}); run without `reuse`",
                        ("reuse",)) from None
    wanted = set(all_runs(plan))
    earlier.trained = {job: r for job, r in earlier.trained.items() if job in wanted and reusable(job, r, plan)}
    chains = cost_chains(plan)
    earlier.costs = {c: earlier.costs[c] for chain in chains if all(c in earlier.costs for c in chain) for c in chain}
    return earlier, generations


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


def expected_minutes(plan: Plan, workers: int = 2, reused=()) -> float:
    """A rough duration of the training runs (those not `reused`) from per-epoch CPU times measured on the
    project's machine."""
    from .experiments import all_runs
    from .runner import estimate_seconds

    return sum(estimate_seconds(r) for r in all_runs(plan) if r not in reused) / workers / 60


__all__ = ["reproduce", "Plan", "check_out_dir", "expected_minutes", "reused_results"]
