"""Layers that strategies and structures build on, below both: they know nothing of strategies or structures."""
from .norm import TaskBatchNorm

__all__ = ["TaskBatchNorm"]
