"""The search driver: validate, run the trials on Ray Tune or Optuna, then write leaderboard, front and best
structures."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import UserError
from ..run import RunWriter, write_json
from .config import SearchConfig, TrialRecord, TrialStatus
from .results import best_per_strategy, draw_pareto, optuna_plots, pareto_front, write_leaderboard
from .spaces import SpaceRef, check_space
from .study import open_storage
from .trial import cached_problem, export_best, load_state
from .trust import sign, verify
from .workers import open_run_dir, run_dir_lock


class TrialProgress:
    """A bar over the search's trials with the best score so far; quiet when output is not a terminal."""

    def __init__(self, total: int, quiet: bool):
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=quiet or not sys.stderr.isatty())
        self.best, self.quiet = None, quiet

    def already_done(self, count: int) -> None:
        """Count the trials an earlier, interrupted run of the search finished."""
        self.bar.update(count)

    def done(self, score: float | None, failed: bool = False) -> None:
        if score is not None and (self.best is None or score > self.best):
            self.best = score
        self.bar.update(1)
        self.bar.set_postfix(best=f"{self.best:.4f}" if self.best is not None else "-", refresh=False)
        if failed:
            self.bar.write("a trial failed; the search goes on (see leaderboard.md)", file=sys.stderr)

    def note(self, text: str) -> None:
        """One line on stderr that leaves the bar in place; none when quiet."""
        if not self.quiet:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def search(config: SearchConfig, *, overwrite: bool = False, quiet: bool = False, resume: bool = False,
           trust: bool = False, callbacks: list | None = None) -> dict:
    """Run (or resume) a search and write its results to `config.run_dir`; returns a summary.

    Ctrl-C raises SearchInterrupted once the state is saved: `search(config, resume=True)` finishes it. A resume
    loads the directory's pickles only if this user's key signed them (trust.py), or when `trust` says so.
    """
    if resume and not trust:
        if config.backend == "ray" and config.storage_path:  # Ray's pickles are there, not under the signature
            raise UserError(f"the Ray state of {config.run_dir} is kept in `storage_path` {config.storage_path}, "
                            "outside the signed run directory; resume with `trust` if you trust that storage",
                            ("storage_path", "trust"))
        verify(config.run_dir)
    space = SpaceRef(config.space, config.fixed)
    problem = cached_problem(config.dataset, config.data_root)
    check_space(space, problem, config.space)
    run_dir = config.run_dir
    if config.backend == "ray":  # join or start Ray before anything is written: a bad address loses nothing
        from .ray_backend import connect

        connect(config.address, None if config.address else max(1, round(config.concurrency * config.cpus_per_trial)))
    storage = None
    if config.backend == "optuna" and config.storage:  # a bad storage, too, fails before anything is written
        storage = open_storage(config.storage)
    if not resume:
        open_run_dir(config, overwrite, asdict(config))  # Optuna workers of one search may share it
    started = time.perf_counter()
    progress = TrialProgress(config.trials, quiet)
    try:
        if config.backend == "ray":
            from .ray_search import run_ray

            records, study = run_ray(config, space, progress, resume=resume, callbacks=callbacks or [])
        else:
            from .optuna_search import run_optuna

            records, study = run_optuna(config, space, progress, storage=storage, callbacks=callbacks or [])
    finally:
        progress.close()
        sign(run_dir)  # what this process leaves for a resume, under this user's key
    with run_dir_lock(config):  # workers sharing the run directory write its results one after the other
        return finish(config, records, study, time.perf_counter() - started)


def finish(config: SearchConfig, records: list[TrialRecord], study, seconds: float) -> dict:
    """Leaderboard, Pareto front, Optuna plots, and the best trial of each strategy exported for retraining."""
    run_dir = config.run_dir
    write_leaderboard(records, run_dir)
    draw_pareto(records, run_dir / "pareto.png")
    front = pareto_front(records)
    write_json(run_dir / "pareto.json", [{"trial": r.trial, "strategy": r.strategy, "val_score": r.val_score,
                                          "params": r.params} for r in front])
    plots = optuna_plots(study, run_dir, config.objectives) if study is not None else []
    best = {}
    for strategy, record in best_per_strategy(records).items():
        if not Path(record.state_path or "").is_file():  # another machine's worker trained it: it exports it
            best[strategy] = {"trial": record.trial, "val_score": record.val_score, "test_score": None,
                              "params": record.params, "dir": None}
            continue
        writer = RunWriter(run_dir / "best" / strategy, config.dataset, strategy, config.seed, config.data_root,
                           origin={"trial": record.trial})
        metrics = export_best(load_state(record.state_path), record.sampled, writer)
        best[strategy] = {"trial": record.trial, "val_score": record.val_score,
                          "test_score": metrics["test"]["score"], "params": record.params, "dir": str(writer.out)}
    statuses = [r.status for r in records]
    summary = {"trials": len(records), "done": statuses.count(TrialStatus.DONE),
               "failed": statuses.count(TrialStatus.FAILED),
               "stopped": statuses.count(TrialStatus.STOPPED) + statuses.count(TrialStatus.PRUNED),
               "seconds": round(seconds, 1), "best": best, "pareto": [r.trial for r in front], "plots": plots}
    write_json(run_dir / "summary.json", summary)
    return summary


def load_config(run_dir: str | Path) -> SearchConfig:
    """The SearchConfig saved in an earlier search's directory (to resume it)."""
    path = Path(run_dir) / "search.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a search directory (no search.json); valid: runs/<name> of an earlier "
                        "search")
    fields = SearchConfig.__dataclass_fields__
    try:
        saved = dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise UserError(f"{path} is not a search.json mtlsearch wrote ({err})".splitlines()[0]) from None
    if set(saved) - set(fields):
        raise UserError(f"{path} has unknown keys {', '.join(sorted(set(saved) - set(fields)))}; "
                        f"valid: {', '.join(fields)}")
    # the directory as given, wherever it is now: a copied or moved search resumes in place, from any directory
    return SearchConfig(**{**saved, "study": saved.get("study") or saved.get("name"),
                           "out": str(Path(run_dir).parent), "name": Path(run_dir).name})
