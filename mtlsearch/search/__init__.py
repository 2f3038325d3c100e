"""Searches over strategies and their settings with Ray Tune (default) or plain Optuna, and their results.

The driver is imported on first use, so `mtlsearch --help` and its error messages stay fast.
"""
from .config import SearchConfig, SearchInterrupted, TrialRecord, TrialStatus

_DRIVER = ("search", "finish", "load_config", "TrialProgress")


def __getattr__(name):
    if name in _DRIVER:
        from . import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'mtlsearch.search' has no attribute {name!r}")


__all__ = ["SearchConfig", "SearchInterrupted", "TrialRecord", "TrialStatus", *_DRIVER]
