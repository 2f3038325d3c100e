"""Searches over strategies and their settings with Ray Tune (default) or plain Optuna, and their results.

The driver is imported on first use, so `mtlsearch --help` and its error messages stay fast.
"""
_DRIVER = ("SearchConfig", "SearchInterrupted", "search", "finish", "load_config", "Progress")


def __getattr__(name):
    if name in _DRIVER:
        from . import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'mtlsearch.search' has no attribute {name!r}")


__all__ = list(_DRIVER)
