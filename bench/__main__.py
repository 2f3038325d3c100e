"""`python -m bench`: every bench, written to docs/BENCH.md (see bench/all.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.all import main  # noqa: E402

raise SystemExit(main())
