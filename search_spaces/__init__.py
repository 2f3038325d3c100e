"""Define-by-run search spaces: `space(trial) -> dict` per strategy (see README.md)."""
NAMES = ("task_routing", "sfg", "selective_sharing", "baselines", "all")
