"""Selective Sharing: gradient capture, Tensor-Train factors, HDBSCAN criteria, branch merging."""
from .criteria import CRITERIA
from .factors import task_factors
from .strategy import SelectiveSharing

__all__ = ["SelectiveSharing", "CRITERIA", "task_factors"]
