"""mtlsearch: discover what a multi-task network should share between its tasks."""
__version__ = "0.1.0"
