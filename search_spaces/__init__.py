"""Define-by-run search spaces: `space(trial) -> dict` per strategy (see README.md), drawn from declared ranges."""
NAMES = ("task_routing", "sfg", "selective_sharing", "task_affinity", "baselines", "all")


def by_strategy() -> dict[str, dict]:
    """What the spaces search for each strategy: its own settings' ranges, then training's (lr, epochs, batch size)."""
    from search_spaces.all import STRATEGIES as DISCOVERY
    from search_spaces.baselines import STRATEGIES as BASELINES
    from search_spaces.common import TRAINING

    return {strategy: {**ranges, **TRAINING} for strategy, ranges in {**DISCOVERY, **BASELINES}.items()}
