"""Sharing structures: the block graph every strategy reports, its views and pictures, and frozen models."""
from . import views
from .freeze import freeze
from .frozen import load_frozen, save_frozen
from .graph import SharingStructure

__all__ = ["SharingStructure", "freeze", "save_frozen", "load_frozen", "views"]
