"""Every bench in one run, its ratios written to docs/BENCH.md: a table of each ratio against its bar, with the
machine, the load and the date, so the file says what it was measured on.

    python bench/all.py                  # every bench, full size (about 15-25 minutes on 2 idle cores)
    python -m bench --quick --out X.md   # a smoke run of every bench (seconds; what tests/test_fast_paths.py runs)
    python bench/all.py --device cuda    # the GPU figures (default: cuda when present)
    python -m bench --add-profiles       # no bench: profile the bars docs/BENCH.md marks not met (if it has none)

A bar not met comes with its profile (where the time goes) where the bench provides one (EXPLANATIONS).

Run it on a quiet machine: the ratios are robust to steady load (each compares calls taken in turns), not to
load that comes and goes. bench/discovery.py is a quality curve, not a ratio, and runs on its own.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path

import mtlsearch  # noqa: F401  before torch: it puts torch's large CPU tensors on huge pages, as for the CLI
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import search, selective_sharing, sfg, structure_export, task_affinity, task_routing
from bench.common import Ratio, bench_arguments, memory_gib

BENCHES = {"sfg": sfg.ratios, "task_routing": task_routing.ratios, "selective_sharing": selective_sharing.ratios,
           "structure_export": structure_export.ratios, "task_affinity": task_affinity.ratios,
           "search": search.ratios}
# benches whose measures come with a profile when their bar is not met
EXPLANATIONS = {"sfg": sfg.explanations, "task_routing": task_routing.explanations, "search": search.explanations}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "BENCH.md"


def machine(device: str) -> str:
    """CPU model, cores, memory, Python, torch and the device, in one line."""
    model = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = "" if memory_gib() is None else f", {memory_gib():.0f} GiB"
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") and torch.cuda.is_available() else ""
    return (f"{model}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; Python "
            f"{platform.python_version()}, torch {torch.__version__}; device {device}{gpu}")


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def markdown(rows: list[Ratio], device: str, quick: bool, started: str, load_before: str, seconds: float) -> str:
    met = [r for r in rows if r.met is not None]
    lines = ["# Benchmarks", "",
             f"Written by `python bench/all.py{' --quick' if quick else ''} --device {device}` on {started} "
             f"in {seconds / 60:.1f} minutes{' (quick: smoke-test sizes, not the figures)' if quick else ''}.", "",
             f"- machine: {machine(device)}",
             f"- load average (1 / 5 / 15 min): {load_before} before, {load()} after",
             f"- bars met: {sum(bool(r.met) for r in met)} of {len(met)}", "",
             "| bench | measure | value | bar | met |", "|---|---|---|---|---|"]
    for r in rows:
        bar = "" if r.bar is None else f"{'<=' if r.at_most else '>='} {r.bar:g}"
        verdict = "" if r.met is None else ("yes" if r.met else "**no**")
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.bench} | {r.measure}{note} | {r.value:.3f} | {bar} | {verdict} |")
    for r in rows:
        if r.met is False and r.explain is not None:
            lines += ["", f"## Where the time goes: {r.measure}", "", r.explain()]
    return "\n".join(lines) + "\n"


def add_profiles(path: Path, device: str) -> list[str]:
    """Append to a written BENCH.md the profile of every measure whose bar it marks not met and that has none yet
    (profiles are measured now, on this machine); returns those measures."""
    text = path.read_text()
    known = {m: f for explanations in EXPLANATIONS.values() for m, f in explanations(device=device).items()}
    added = []
    for line in text.splitlines():
        if line.startswith("| ") and line.rstrip().endswith("| **no** |"):
            measure = line.split(" | ")[1]
            name = next((m for m in known if measure == m or measure.startswith(m + " (")), None)
            heading = f"## Where the time goes: {name}"
            if name is not None and heading not in text:
                text += f"\n{heading}\n\n{known[name]()}\n"
                added.append(name)
    path.write_text(text)
    return added


def main(argv=None) -> int:
    parser = bench_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT})")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these benches")
    parser.add_argument("--add-profiles", action="store_true", help="run no bench: add to --out the profiles of "
                        "the bars it marks not met that do not have one yet")
    args = parser.parse_args(argv)
    if args.add_profiles:
        print("profiles added:", ", ".join(add_profiles(args.out, args.device)) or "none")
        return 0
    started, load_before, clock = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), load(), \
        time.perf_counter()
    rows: list[Ratio] = []
    for name in args.only or BENCHES:
        print(f"== {name}", flush=True)
        rows += BENCHES[name](quick=args.quick, device=args.device)
    text = markdown(rows, args.device, args.quick, started, load_before, time.perf_counter() - clock)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
